"""labkit.nb.n18_self_play_preference: oracles, the SPPO / DPO losses, SPO rewards, the Bradley-Terry reward model."""
import math

import pytest
import torch

from labkit.nb.n18_self_play_preference import (OTHER, STYLES, BradleyTerryOracle, BradleyTerryRewardModel, CountingOracle,
                               CyclicStyleOracle, answer_value, dpo_loss, group_reward_step, matrix_queries,
                               mean_mix, minimax_mixture, oracle_pairs, pearson, preference_matrix, quality,
                               self_play_pairs, sequence_logprob, sequence_logprobs_of, sppo_loss, spo_rewards,
                               style_mix, style_of, total_variation, train_on_rows, win_proportion,
                               win_rate_vs_policy)
from labkit.core.tasks import Task, make_tasks, train_seed

TASK = Task(prompt="17+38=", answer="55", category="add", difficulty=2, world="arithmetic", meta={})


# ------------------------------------------------------------------ styles and quality

@pytest.mark.parametrize("text, style, value", [
    ("55", "plain", 55), ("(55)", "paren", 55), ("#55", "hash", 55), ("-3", "plain", -3),
    ("(-3)", "paren", -3), ("55.", OTHER, None), ("(55", OTHER, None), ("#", OTHER, None),
    ("", OTHER, None), ("# 55", OTHER, None), ("((55))", OTHER, None)])
def test_style_and_value(text, style, value):
    assert style_of(text) == style
    assert answer_value(text) == value


def test_quality_hand_values():
    assert quality(TASK, "55") == 0.0
    assert quality(TASK, "(55)") == 0.0  # the style does not change the quality
    assert quality(TASK, "56") == pytest.approx(-math.log(2))
    assert quality(TASK, "#45") == pytest.approx(-math.log(11))
    assert quality(TASK, "5x") == -10.0
    assert quality(TASK, "9" * 20) == -10.0  # floored


def test_style_mix_and_total_variation():
    mix = style_mix(["1", "2", "(3)", "x"])
    assert mix == {"plain": 0.5, "paren": 0.25, "hash": 0.0, OTHER: 0.25}
    uniform = {s: 1 / 3 for s in STYLES}
    # 1/2 (|1/2 - 1/3| + |1/4 - 1/3| + |0 - 1/3| + |1/4 - 0|) = 1/2 (1/6 + 1/12 + 1/3 + 1/4) = 5/12
    assert total_variation(mix, uniform) == pytest.approx(5 / 12)
    assert total_variation({"plain": 1.0}, uniform) == pytest.approx(2 / 3)


# ------------------------------------------------------------------ oracles

def test_bradley_terry_oracle_hand_values_and_symmetry():
    oracle = BradleyTerryOracle(beta=2.0)
    # sigmoid(2 * (0 - (-log 2))) = 1 / (1 + 2^-2) = 0.8
    assert oracle.prob(TASK, "55", "56") == pytest.approx(0.8)
    assert oracle.prob(TASK, "56", "55") == pytest.approx(0.2)
    assert oracle.prob(TASK, "55", "#55") == 0.5
    for y, z in [("55", "65"), ("(54)", "x"), ("#0", "100")]:
        assert oracle.prob(TASK, y, z) + oracle.prob(TASK, z, y) == pytest.approx(1.0)


def test_bradley_terry_compare_is_noisy_with_the_stated_rate_and_deterministic():
    oracle = BradleyTerryOracle(beta=2.0)
    draws = [oracle.compare(TASK, "55", "56", torch.Generator().manual_seed(0)) for _ in range(3)]
    assert len(set(draws)) == 1  # same generator state, same verdict
    gen = torch.Generator().manual_seed(1)
    wins = sum(oracle.compare(TASK, "55", "56", gen) for _ in range(4000)) / 4000
    assert abs(wins - 0.8) < 0.03


def test_cyclic_oracle_is_a_condorcet_cycle():
    oracle = CyclicStyleOracle()
    assert oracle.style_prob("plain", "paren") == 1.0
    assert oracle.style_prob("paren", "hash") == 1.0
    assert oracle.style_prob("hash", "plain") == 1.0
    assert oracle.style_prob("paren", "plain") == 0.0
    for s in STYLES:
        assert oracle.style_prob(s, s) == 0.5
        assert oracle.style_prob(s, OTHER) == 1.0
    # no Condorcet winner: every style loses to some other style
    for s in STYLES:
        assert any(oracle.style_prob(t, s) == 1.0 for t in STYLES)
    # it reads the style, not the value
    assert oracle.prob(TASK, "3", "(55)") == 1.0
    M = oracle.matrix()
    assert torch.allclose(M + M.T, torch.ones(3, 3))


def test_each_rater_is_transitive_and_the_majority_decides_two_to_one():
    for ranking in CyclicStyleOracle.RATERS:
        assert sorted(ranking) == sorted(STYLES)
    oracle = CyclicStyleOracle()
    for a in STYLES:
        for b in STYLES:
            if a != b:
                votes = sum(r.index(a) < r.index(b) for r in oracle.RATERS)
                assert votes in (1, 2)  # never unanimous: every pair is decided 2 to 1
                assert oracle.style_prob(a, b) == float(votes == 2)


def test_minimax_winner_of_the_cyclic_oracle_is_uniform():
    oracle = CyclicStyleOracle()
    assert torch.allclose(minimax_mixture(oracle.matrix()), torch.full((3,), 1 / 3), atol=1e-6)
    with_other = minimax_mixture(oracle.matrix(STYLES + (OTHER,)))
    assert torch.allclose(with_other, torch.tensor([1 / 3, 1 / 3, 1 / 3, 0.0]), atol=1e-6)


def test_minimax_mixture_unequal_margins_and_condorcet_winner():
    # a > b by u = 0.4, b > c by v = 0.2, c > a by w = 0.2: x = (v, w, u) / (u + v + w) = (1/4, 1/4, 1/2)
    M = torch.tensor([[0.5, 0.9, 0.3], [0.1, 0.5, 0.7], [0.7, 0.3, 0.5]])
    x = minimax_mixture(M)
    assert torch.allclose(x, torch.tensor([0.25, 0.25, 0.5]), atol=1e-6)
    assert ((x @ (M - 0.5)) >= -1e-6).all()  # no pure reply beats it
    transitive = torch.tensor([[0.5, 0.6, 0.8], [0.4, 0.5, 0.7], [0.2, 0.3, 0.5]])
    assert torch.allclose(minimax_mixture(transitive), torch.tensor([1.0, 0.0, 0.0]), atol=1e-6)


# ------------------------------------------------------------------ from preferences to targets

def test_win_rates_hand_values():
    oracle = CyclicStyleOracle()
    P = preference_matrix(oracle, TASK, ["1", "1", "(1)"])
    assert torch.allclose(P, torch.tensor([[0.5, 0.5, 1.0], [0.5, 0.5, 1.0], [0.0, 0.0, 0.5]]))
    # SPPO: mean over all K (self included): (0.5 + 0.5 + 1) / 3 = 2/3, and 0.5 / 3 = 1/6
    assert torch.allclose(win_rate_vs_policy(P), torch.tensor([2 / 3, 2 / 3, 1 / 6]))
    # SPO: over the others only: (0.5 + 1) / 2 = 0.75, and 0
    assert torch.allclose(win_proportion(P), torch.tensor([0.75, 0.75, 0.0]))
    assert spo_rewards(oracle, TASK, ["1", "(1)", "#1"]) == [0.5, 0.5, 0.5]  # a full cycle: all equal


def test_preference_matrix_properties():
    P = preference_matrix(BradleyTerryOracle(1.0), TASK, ["55", "56", "(60)", "x"])
    assert torch.allclose(P + P.T, torch.ones(4, 4))
    assert torch.allclose(P.diagonal(), torch.full((4,), 0.5))
    assert win_rate_vs_policy(P).argmax() == 0 and win_rate_vs_policy(P).argmin() == 3


# ------------------------------------------------------------------ query budgets and SPPO's data

def test_counting_oracle_counts_one_query_per_unordered_pair_and_answers_like_the_oracle():
    plain = BradleyTerryOracle(beta=2.0)
    counted = CountingOracle(plain)
    ys = ["55", "56", "(60)", "x", "#55"]
    P = preference_matrix(counted, TASK, ys)
    assert counted.queries == 10 == matrix_queries(5)  # K (K - 1) / 2, the diagonal and P_ji are free
    assert torch.equal(P, preference_matrix(plain, TASK, ys))
    assert counted.prob(TASK, "55", "56") == plain.prob(TASK, "55", "56") and counted.queries == 11
    a = counted.compare(TASK, "55", "56", torch.Generator().manual_seed(4))
    assert a == plain.compare(TASK, "55", "56", torch.Generator().manual_seed(4)) and counted.queries == 12
    cyclic = CountingOracle(CyclicStyleOracle())
    spo_rewards(cyclic, TASK, ["1", "(1)", "#1", "2"])
    assert cyclic.queries == 6


def test_matrix_queries_hand_values():
    assert [matrix_queries(k) for k in (2, 3, 5, 8)] == [1, 3, 10, 28]


def test_oracle_pairs_all_compares_every_unordered_pair_once():
    tasks = make_tasks("add", 1, 2, seed=train_seed(0))
    group = ["{}", "({})", "#{}", "{}"]
    completions = [g.format(t.answer) for t in tasks for g in group]
    counted = CountingOracle(CyclicStyleOracle())
    winners, losers = oracle_pairs(counted, tasks, completions, 4, torch.Generator().manual_seed(0), pairs="all")
    assert counted.queries == len(winners) == 2 * matrix_queries(4) == 12
    oracle = CyclicStyleOracle()
    for t, task in enumerate(tasks):
        mine = {(w, l) for w, l in zip(winners[6 * t:6 * t + 6], losers[6 * t:6 * t + 6])}
        a = task.answer
        # plain > paren > hash > plain, each decided; plain vs plain is a coin (either order)
        assert {(a, f"({a})"), (f"({a})", f"#{a}"), (f"#{a}", a)} <= mine
        assert all(oracle.prob(task, w, l) >= 0.5 for w, l in mine)
    adjacent = CountingOracle(CyclicStyleOracle())
    w2, _ = oracle_pairs(adjacent, tasks, completions, 4, torch.Generator().manual_seed(0))
    assert adjacent.queries == len(w2) == 4  # (0,1), (2,3) per group


def test_mean_mix_is_the_average_of_the_mixes():
    mixes = [{"plain": 1.0, "paren": 0.0, "hash": 0.0, OTHER: 0.0},
             {"plain": 0.0, "paren": 0.5, "hash": 0.5, OTHER: 0.0},
             {"plain": 0.0, "paren": 0.5, "hash": 0.25}]
    avg = mean_mix(mixes)
    assert list(avg) == list(STYLES) + [OTHER]
    assert avg == pytest.approx({"plain": 1 / 3, "paren": 1 / 3, "hash": 0.25, OTHER: 0.0})
    # a cycle visited evenly averages to the minimax winner
    corners = [{s: float(s == c) for s in STYLES} for c in STYLES]
    assert total_variation(mean_mix(corners), {s: 1 / 3 for s in STYLES}) == pytest.approx(0.0)


def test_self_play_pairs_hand_values():
    tasks = [TASK, TASK]
    completions = ["1", "(1)", "(2)", "#1",     # group 0: mixed styles
                   "5", "6", "7", "8"]          # group 1: all plain, the cyclic oracle cannot tell them apart
    counted = CountingOracle(CyclicStyleOracle())
    p_hat, winners, losers = self_play_pairs(counted, tasks, completions, 4)
    assert counted.queries == 2 * matrix_queries(4)
    # group 0: P^(plain) = (0.5 + 1 + 1 + 0) / 4 = 0.625; each paren (0 + 0.5 + 0.5 + 1) / 4 = 0.5;
    # hash (1 + 0 + 0 + 0.5) / 4 = 0.375
    assert torch.allclose(p_hat[:4], torch.tensor([0.625, 0.5, 0.5, 0.375]))
    assert torch.allclose(p_hat[4:], torch.full((4,), 0.5))
    assert winners == [0] and losers == [3]  # no pair from group 1
    # ties go to the first best and the first worst sample
    _, w, l = self_play_pairs(CyclicStyleOracle(), [TASK], ["(1)", "1", "1", "(2)"], 4)
    assert w == [1] and l == [0]


# ------------------------------------------------------------------ losses

def test_sppo_loss_hand_value():
    logp, ref = torch.tensor([-1.0, -2.0]), torch.tensor([-1.5, -1.0])
    p_hat = torch.tensor([0.75, 0.25])
    # targets eta (P - 1/2) = (0.5, -0.5); log-ratios (0.5, -1.0); residuals (0, -0.5); mean square 0.125
    assert sppo_loss(logp, ref, p_hat, eta=2.0).item() == pytest.approx(0.125)


def test_sppo_loss_gradient_pulls_the_log_ratio_to_its_target():
    logp = torch.tensor([0.0], requires_grad=True)
    sppo_loss(logp, torch.tensor([0.0]), torch.tensor([1.0]), eta=2.0).backward()
    assert logp.grad.item() == pytest.approx(-2.0)  # d/dx (x - 1)^2 at x = 0: descent raises x


def test_dpo_loss_hand_value():
    # beta [(−1 + 1.5) − (−2 + 1.5)] = 1 -> -log sigmoid(1) = log(1 + e^-1)
    value = dpo_loss(torch.tensor([-1.0]), torch.tensor([-2.0]), torch.tensor([-1.5]), torch.tensor([-1.5]), beta=1.0)
    assert value.item() == pytest.approx(math.log1p(math.exp(-1)))
    assert dpo_loss(*(torch.zeros(3),) * 4, beta=0.1).item() == pytest.approx(math.log(2))


def test_sequence_logprob_and_pearson():
    logp = torch.tensor([[-1.0, -2.0, -5.0], [-0.5, -0.5, -0.5]])
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    assert sequence_logprob(logp, mask).tolist() == [-3.0, -1.5]
    assert pearson(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 6.0])) == pytest.approx(1.0)
    assert pearson(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    assert pearson(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 2.0])) == 0.0


# ------------------------------------------------------------------ reward model

def test_bradley_terry_reward_model_learns_a_transitive_preference_and_is_deterministic():
    winners = ["(1)", "(22)", "(3)", "#4", "(5)", "#66"]
    losers = ["1", "22", "#3", "4", "#5", "66"]
    a = BradleyTerryRewardModel(l2=1e-3).fit(winners, losers)
    b = BradleyTerryRewardModel(l2=1e-3).fit(winners, losers)
    assert torch.equal(a.weights, b.weights)
    assert a.accuracy(winners, losers) == 1.0
    s_plain, s_paren, s_hash = a(["7", "(7)", "#7"]).tolist()
    assert s_paren > s_hash > s_plain


def test_a_scalar_reward_model_cannot_fit_the_cycle():
    oracle = CyclicStyleOracle()
    tasks = make_tasks("add", 1, 60, seed=train_seed(0))
    styles = ["{}", "({})", "#{}"]
    completions = [styles[(i + j) % 3].format(t.answer) for i, t in enumerate(tasks) for j in range(2)]
    winners, losers = oracle_pairs(oracle, tasks, completions, 2, torch.Generator().manual_seed(0))
    model = BradleyTerryRewardModel().fit(winners, losers)
    assert model.accuracy(winners, losers) <= 2 / 3 + 1e-9  # every transitive order breaks one link


# ------------------------------------------------------------------ bad inputs

def test_bad_inputs_raise_one_line_value_errors():
    cases = [
        lambda: sppo_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), eta=0.0),
        lambda: sppo_loss(torch.zeros(2), torch.zeros(3), torch.zeros(2), eta=1.0),
        lambda: dpo_loss(torch.zeros(2), torch.zeros(2), torch.zeros(2), torch.zeros(2), beta=-1.0),
        lambda: dpo_loss(torch.zeros(2), torch.zeros(1), torch.zeros(2), torch.zeros(2), beta=1.0),
        lambda: preference_matrix(CyclicStyleOracle(), TASK, ["1"]),
        lambda: minimax_mixture(torch.ones(2, 3)),
        lambda: minimax_mixture(torch.tensor([[0.5, 0.9], [0.9, 0.5]])),
        lambda: style_mix([]),
        lambda: style_of(5),
        lambda: BradleyTerryOracle(beta=0),
        lambda: BradleyTerryOracle(beta=float("inf")),
        lambda: BradleyTerryRewardModel(l2=-1.0),
        lambda: BradleyTerryRewardModel().fit(["1"], []),
        lambda: CyclicStyleOracle().style_prob("plain", "bold"),
        lambda: oracle_pairs(CyclicStyleOracle(), [TASK], ["1", "2", "3"], 2),
        lambda: pearson(torch.zeros(1), torch.zeros(1)),
        lambda: CountingOracle(object()),
        lambda: CountingOracle(CountingOracle(CyclicStyleOracle())),
        lambda: matrix_queries(1),
        lambda: matrix_queries(5.0),
        lambda: matrix_queries(True),
        lambda: mean_mix([]),
        lambda: oracle_pairs(CyclicStyleOracle(), [TASK], ["1", "2"], 2, pairs="every"),
        lambda: self_play_pairs(CyclicStyleOracle(), [TASK], ["1", "2", "3"], 2),
        lambda: self_play_pairs(CyclicStyleOracle(), [TASK], ["1"], 1),
    ]
    for case in cases:
        with pytest.raises(ValueError) as error:
            case()
        assert "\n" not in str(error.value)


# ------------------------------------------------------------------ with a real policy (the tiny base)

@pytest.fixture(scope="module")
def tiny():
    from labkit.core.policy import load_policy
    torch.manual_seed(0)
    return load_policy("tiny", device="cpu")


def test_group_reward_step_is_deterministic(tiny):
    import copy
    from labkit.core.grpo import RLConfig
    tasks = make_tasks("add", 1, 2, seed=train_seed(0))
    cfg = RLConfig(group_size=4, max_new_tokens=6)
    outs = []
    for _ in range(2):
        policy = copy.deepcopy(tiny)
        optimizer = torch.optim.Adam(policy.model.parameters(), lr=1e-3)
        torch.manual_seed(3)
        metrics, batch, rewards = group_reward_step(policy, optimizer, tasks, cfg,
                                                    lambda t, ys: spo_rewards(BradleyTerryOracle(), t, ys))
        outs.append((batch.completions, rewards, next(policy.model.parameters()).detach().clone()))
    assert outs[0][0] == outs[1][0] and torch.equal(outs[0][1], outs[1][1]) and torch.equal(outs[0][2], outs[1][2])
    assert rewards.shape == (8,) and ((rewards >= 0) & (rewards <= 1)).all()


def test_sppo_training_moves_log_ratios_toward_their_targets(tiny):
    import copy
    from labkit.core.sampling import rollout
    policy = copy.deepcopy(tiny)
    torch.manual_seed(0)
    batch = rollout(policy, [t.prompt for t in make_tasks("add", 2, 8, seed=train_seed(0))], max_new_tokens=6)  # 8 prompts:
    # no completion can appear twice with opposite targets
    ref = sequence_logprob(batch.logprobs, batch.completion_mask)
    p_hat = torch.tensor([1.0, 0.0] * 4)
    optimizer = torch.optim.Adam(policy.model.parameters(), lr=1e-3)
    train_on_rows(policy, optimizer, batch, lambda logp, rows: sppo_loss(logp, ref[rows], p_hat[rows], eta=2.0),
                  epochs=10, minibatch=8, generator=torch.Generator().manual_seed(0))
    log_ratio = sequence_logprobs_of(policy, batch) - ref
    before = sppo_loss(ref, ref, p_hat, 2.0).item()  # log-ratio 0: loss = mean target^2 = 1
    after = sppo_loss(log_ratio + ref, ref, p_hat, 2.0).item()
    assert before == pytest.approx(1.0) and after < before
    assert pearson(log_ratio, 2.0 * (p_hat - 0.5)) > 0.5


# ------------------------------------------------------------------ the styles mixture (data/models/styles)

def test_styles_mixture_teaches_the_three_styles_in_its_stated_shares():
    import itertools

    from labkit.bases.mixtures import load_mixture
    mixture = load_mixture("styles")
    pairs = list(itertools.islice(mixture.demonstrations(0, 0.0, 0.0), 3000))
    assert pairs[:50] == list(itertools.islice(mixture.demonstrations(0, 0.0, 0.0), 50))  # seeded
    mix = style_mix([completion for _, completion in pairs])
    assert mix[OTHER] == 0.0
    for name, (share, _) in mixture.STYLES.items():
        assert abs(mix[name] - share) < 0.03, (name, mix[name], share)
    # with p_wrong = 0 every demonstration states the right sum, whatever its style
    for prompt, completion in pairs[:200]:
        a, b = prompt.rstrip("=").split("+")
        assert answer_value(completion) == int(a) + int(b)
