"""The polychromic objective, its marginal advantage, vine sampling and the set evaluation
(labkit.nb.n03_polychromic) against hand-computed values."""
import copy
import random

import pytest
import torch

from labkit.core.policy import load_policy
from labkit.nb.n03_polychromic import (SetEvaluation, VineConfig, answer_key, countdown_key, diversity,
                                evaluate_sets, marginal_advantages, polychromic_objective,
                                polychromic_step, set_indices, vine_sample)
from labkit.core.grpo import RLConfig, grpo_advantages
from labkit.core.sampling import completion_logprobs, concat_rollouts, rollout
from labkit.core.tasks import make_tasks, train_seed


@pytest.fixture(scope="module")
def tiny():
    torch.set_num_threads(1)
    return load_policy("tiny", device="cpu")


# ---------------------------------------------------------------------------------------------
# answer classes


def test_countdown_key_ignores_reordering_only():
    assert countdown_key("3*5+7") == countdown_key("7+5*3") == countdown_key("5*3+7") == "3*5+7"
    assert countdown_key("12*4") == countdown_key("4*12") == "4*12"  # numeric, not string, order
    assert countdown_key("2-6+5") == countdown_key("5+2-6") == "2+5-6"
    assert countdown_key("6-5") != countdown_key("2-6+5")  # same value, different arithmetic
    assert countdown_key("5*1*5") != countdown_key("5*5")  # different numbers used
    assert countdown_key(" 3*5+7\n") == "3*5+7"


@pytest.mark.parametrize("bad", ["3 * 5", "(3+5)", "-3+5", "07+1", "22", "", "3+*5"])
def test_countdown_key_is_none_for_malformed(bad):
    assert countdown_key(bad) is None


def test_answer_key_classes():
    task = make_tasks("countdown", 3, n=1, seed=train_seed(0))[0]
    assert answer_key(task, "7+5*3") == answer_key(task, "3*5+7")
    assert answer_key(task, "3+*5") != answer_key(task, "3**5")  # malformed: each text its own class
    add = make_tasks("add", 1, n=1, seed=train_seed(0))[0]
    assert answer_key(add, " 12") == answer_key(add, "12")

# ---------------------------------------------------------------------------------------------
# the objective and the marginal advantage


def test_diversity_and_objective_by_hand():
    keys = ["a", "a", "b", "c"]
    assert diversity(keys) == pytest.approx(0.75)
    assert diversity(["a"] * 4) == pytest.approx(0.25)
    # f_poly = mean reward (3/4) x diversity (3/4)
    assert polychromic_objective([1, 1, 0, 1], keys) == pytest.approx(0.5625)
    assert polychromic_objective([0, 0, 0, 0], keys) == 0.0


def test_objective_rejects_bad_sets():
    with pytest.raises(ValueError, match="non-empty"):
        diversity([])
    with pytest.raises(ValueError, match="one key per reward"):
        polychromic_objective([1, 0], ["a"])


def test_marginal_advantage_all_correct_group_by_hand():
    # three correct completions, two of them the same answer: GRPO sees no signal
    rewards, keys = torch.ones(3), ["a", "a", "b"]
    assert torch.equal(grpo_advantages(rewards, 3), torch.zeros(3))
    sets = set_indices(3, 2)  # (0,1) (0,2) (1,2): f = 0.5, 1, 1; V = 2.5 / 3
    adv = marginal_advantages(rewards, keys, sets)
    expected = torch.tensor([0.75 - 2.5 / 3, 0.75 - 2.5 / 3, 1.0 - 2.5 / 3])  # the rare answer gains
    assert torch.allclose(adv, expected)
    assert adv.sum().abs() < 1e-6


def test_marginal_advantage_mixed_group_by_hand():
    # one correct (a), two identical wrong (b), one other wrong (c); pairs
    rewards, keys = torch.tensor([1.0, 0.0, 0.0, 0.0]), ["a", "b", "b", "c"]
    # f: (0,1) .5, (0,2) .5, (0,3) .5, the pairs without the correct one 0; V = 1.5 / 6 = .25
    adv = marginal_advantages(rewards, keys, set_indices(4, 2))
    assert torch.allclose(adv, torch.tensor([0.5 - 0.25, 0.5 / 3 - 0.25, 0.5 / 3 - 0.25, 0.5 / 3 - 0.25]))


def test_marginal_advantage_only_counts_given_sets():
    adv = marginal_advantages([1.0, 0.0, 1.0], ["a", "b", "c"], [(0, 1)])
    assert torch.equal(adv, torch.zeros(3))  # one set: every member scores V; 2 is in no set
    adv = marginal_advantages([1.0, 0.0, 1.0], ["a", "b", "c"], [(0, 1), (0, 2)])
    # f(0,1) = .5, f(0,2) = 1, V = .75: A0 = .75 - .75, A1 = .5 - .75, A2 = 1 - .75
    assert torch.allclose(adv, torch.tensor([0.0, -0.25, 0.25]))


def test_marginal_advantage_bad_inputs():
    with pytest.raises(ValueError, match="one key per trajectory"):
        marginal_advantages([1.0, 0.0], ["a"], [(0, 1)])
    with pytest.raises(ValueError, match="at least one set"):
        marginal_advantages([1.0, 0.0], ["a", "b"], [])


def test_set_indices():
    assert set_indices(4, 2) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert len(set_indices(8, 4)) == 70
    some = set_indices(8, 4, max_sets=5, rng=random.Random(3))
    assert len(set(some)) == 5 and all(len(g) == 4 for g in some)
    assert some == set_indices(8, 4, max_sets=5, rng=random.Random(3))
    assert set_indices(4, 2, max_sets=100) == set_indices(4, 2)
    for n, size, m in ((4, 1, None), (4, 5, None), (4, 2, 0)):
        with pytest.raises(ValueError, match="set_size|max_sets"):
            set_indices(n, size, m)


def test_vine_config_rejects_bad_values():
    for kwargs in ({"vines": 8, "set_size": 9}, {"vines": 1}, {"states": -1}, {"max_sets": 0}):
        with pytest.raises(ValueError, match="VineConfig"):
            VineConfig(**kwargs)
    assert VineConfig(states=2, vines=4).rollouts_per_prompt(8) == 16

# ---------------------------------------------------------------------------------------------
# vine sampling on the tiny model


def test_concat_rollouts_keeps_every_rows_logprobs(tiny):
    gen = torch.Generator().manual_seed(0)
    short = rollout(tiny, ["3 5 7>22=", "2 4>8="], max_new_tokens=6, generator=gen)
    long = rollout(tiny, ["3 5 7>22=3*", "11 12>23=11"], max_new_tokens=9, generator=gen)
    both = concat_rollouts([short, long], tiny.tokenizer.pad_token_id)
    assert len(both) == 4 and both.prompt_len == long.prompt_len
    with torch.no_grad():
        stacked = completion_logprobs(tiny.model, both) * both.completion_mask
        alone = [completion_logprobs(tiny.model, r) * r.completion_mask for r in (short, long)]
    assert torch.allclose(stacked[:2, :alone[0].shape[1]], alone[0], atol=1e-5)
    assert torch.allclose(stacked[2:, :alone[1].shape[1]], alone[1], atol=1e-5)
    assert both.completions == short.completions + long.completions


def test_vine_sample_tree(tiny):
    tasks = make_tasks("countdown", 3, n=2, seed=train_seed(0))
    vine = VineConfig(states=2, vines=3, set_size=2)
    tree = vine_sample(tiny, tasks, root=4, vine=vine, max_new_tokens=12,
                       generator=torch.Generator().manual_seed(1), rng=random.Random(2))
    assert len(tree.texts) == len(tree.tasks) == len(tree.batch) == 2 * 4 + 2 * 2 * 3
    assert tree.states[:2] == [[0, 1, 2, 3], [4, 5, 6, 7]] and len(tree.states) == 2 + 4
    assert tree.cuts[:2] == [0, 0] and all(c >= 1 for c in tree.cuts[2:])
    for j, rows in enumerate(tree.states[2:]):
        task = tree.tasks[rows[0]]
        root_texts = [tree.texts[r] for r in tree.states[tasks.index(task)]]
        prefix = tree.batch.prompts[rows[0]][len(task.prompt):]
        assert len(prefix) == tree.cuts[2 + j]  # a char-level prefix: t tokens
        assert any(text.startswith(prefix) for text in root_texts)  # cut from a root completion
        for r in rows:
            assert tree.tasks[r] is task and tree.texts[r] == prefix + tree.batch.completions[r]
    again = vine_sample(tiny, tasks, root=4, vine=vine, max_new_tokens=12,
                        generator=torch.Generator().manual_seed(1), rng=random.Random(2))
    assert again.texts == tree.texts and again.cuts == tree.cuts


def test_vine_sample_bad_inputs(tiny):
    with pytest.raises(ValueError, match="at least one task"):
        vine_sample(tiny, [], root=4, vine=VineConfig())
    with pytest.raises(ValueError, match="root"):
        vine_sample(tiny, make_tasks("countdown", 2, n=1, seed=train_seed(0)), root=1, vine=VineConfig())


def test_polychromic_step_is_deterministic_and_zero_mean(tiny):
    tasks = make_tasks("countdown", 2, n=3, seed=1001)
    cfg, vine = RLConfig(group_size=4, max_new_tokens=10), VineConfig(states=1, vines=4, set_size=2)
    runs = []
    for _ in range(2):
        policy = copy.deepcopy(tiny)
        torch.manual_seed(0)
        opt = torch.optim.AdamW(policy.model.parameters(), lr=1e-3)
        out = polychromic_step(policy, opt, tasks, cfg, vine, generator=torch.Generator().manual_seed(5),
                               rng=random.Random(6))
        runs.append((out, next(policy.model.parameters()).detach().clone()))
    (a, wa), (b, wb) = runs
    assert a.tree.texts == b.tree.texts and torch.equal(a.advantages, b.advantages) and torch.equal(wa, wb)
    assert a.metrics["rollouts"] == 3 * vine.rollouts_per_prompt(4)
    assert a.tree.root_states == 3 and 0 <= a.metrics["frac_zero_adv_root"] <= 1
    roots_flat = [bool(a.advantages[rows].abs().max() < 1e-9) for rows in a.tree.states[:3]]
    assert a.metrics["frac_zero_adv_root"] == pytest.approx(sum(roots_flat) / 3)
    for rows in a.tree.states:  # all C(N, n) sets: each state's advantages sum to 0
        assert abs(a.advantages[rows].sum().item()) < 1e-5

# ---------------------------------------------------------------------------------------------
# evaluation


def test_set_evaluation_by_hand():
    tasks = make_tasks("countdown", 3, n=2, seed=train_seed(0))
    ev = SetEvaluation(tasks, samples=4, correct=[2, 0], distinct=[1, 0])
    assert ev.pass1 == pytest.approx(2 / 8)
    assert ev.pass_at(4) == pytest.approx(0.5)  # task 0 always covered, task 1 never
    assert ev.pass_at(1) == pytest.approx(0.25)
    assert ev.distinct_correct == pytest.approx(0.5)
    assert ev.by_difficulty()[3]["passk"] == pytest.approx(0.5)


def test_evaluate_sets_counts_and_is_deterministic(tiny):
    tasks = make_tasks("countdown", 2, n=6, seed=1002)
    a = evaluate_sets(tiny, tasks, k=6, max_new_tokens=10, generator=torch.Generator().manual_seed(0))
    b = evaluate_sets(tiny, tasks, k=6, max_new_tokens=10, generator=torch.Generator().manual_seed(0))
    assert a.correct == b.correct and a.distinct == b.distinct
    assert all(0 <= d <= c <= 6 for d, c in zip(a.distinct, a.correct))
    assert all((d > 0) == (c > 0) for d, c in zip(a.distinct, a.correct))
    with pytest.raises(ValueError, match="k must be"):
        evaluate_sets(tiny, tasks, k=0)
    with pytest.raises(ValueError, match="at least one task"):
        evaluate_sets(tiny, [], k=2)
