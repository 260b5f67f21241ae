"""Notebook 15's chain world (labkit.core.chains), its mixture, and its game (labkit.nb.n15_self_play_critic)."""
import random

import pytest

from labkit.core import chains as C
from labkit.core.tasks import Task


def chain(prompt="7-5+3="):
    return Task(prompt, "5", "chain2", 2, C.WORLD)


def test_solution_and_checker_by_hand():
    t = chain()
    assert C.terms_of(t) == [("", 7), ("-", 5), ("+", 3)]
    assert C.solution(t) == "7-5=2;2+3=5"
    assert C.first_wrong_step(t, "7-5=2;2+3=5") == 0
    assert C.first_wrong_step(t, " 7-5=2;2+3=5\n") == 0
    assert C.first_wrong_step(t, "7-5=3;3+3=6") == 1        # the slip carried on: only step 1 is wrong
    assert C.first_wrong_step(t, "7-5=2;2+3=6") == 2
    assert C.first_wrong_step(t, "7-5=2;3+3=6") == 2        # left value miscopied
    assert C.first_wrong_step(t, "7-5=2;2-3=-1") == 2       # wrong operation
    assert C.first_wrong_step(t, "7-4=3;3+3=6") == 1        # operand miscopied
    assert C.first_wrong_step(Task("37+25-18=", "44", "chain2", 2, C.WORLD), "37+25=62;62-18=44") == 0
    for bad in ("", "2;5", "7-5=2", "7-5=2;2+3=5;5+1=6", "7-5=2;2+3=x", "2+2", "1" * 300, None):
        assert C.first_wrong_step(t, bad) is None


def test_corrupt_carries_the_wrong_value_on():
    t = chain("7-5+3+1=")
    assert C.corrupt(t, 2, 6) == "7-5=2;2+3=6;6+1=7"
    assert C.first_wrong_step(t, C.corrupt(t, 2, 6)) == 2
    assert C.corrupt(t, 1, 2) == C.solution(t)
    with pytest.raises(ValueError):
        C.corrupt(t, 4, 1)
    with pytest.raises(ValueError):
        C.corrupt(t, 0, 1)


def test_off_by_one_by_hand():
    rng = random.Random(0)
    assert {C.off_by_one(C.Step(7, "-", 5, 0), rng) for _ in range(50)} == {1, 3}


def test_critic_and_sneaky_formats():
    t = chain()
    assert C.critic_prompt(t, "7-5=2;2+3=6") == "7-5+3=7-5=2;2+3=6|c"
    assert C.critic_text(t, 0) == "yy" and C.critic_text(t, 2) == "yn" and C.critic_text(t, 1) == "n"
    for k in (0, 1, 2):
        assert C.parse_critic(t, C.critic_text(t, k)) == k
    for bad in ("", "y", "yyy", "yyn", "ny?", "ok", None):
        assert C.parse_critic(t, bad) is None
    assert C.parse_critic(t, "nyy") == 1                      # marks after the first n are not read
    assert C.sneaky_prompt(t, 2) == "7-5+3=7-5=2;2+3=|s"
    assert C.sneaky_prompt(t, 1) == "7-5+3=7-5=|s"
    assert C.parse_result(" 34") == 34 and C.parse_result("-3") == -3
    for bad in ("034", "3 4", "34;", "", "1e3", None):
        assert C.parse_result(bad) is None
    with pytest.raises(ValueError):
        C.critic_text(t, 3)
    with pytest.raises(ValueError):
        C.sneaky_prompt(t, 3)
    with pytest.raises(ValueError):
        C.critic_prompt(Task("1+2=", "3", "add", 1, "arithmetic"), "1+2=3")


def test_make_chains_stay_in_range_and_are_seeded():
    a = C.make_chains(200, random.Random(3))
    assert [t.prompt for t in a] == [t.prompt for t in C.make_chains(200, random.Random(3))]
    for t in a:
        steps = C.solution_steps(t)
        assert len(steps) == t.difficulty in C.OPS
        assert all(C.LOW <= s.result <= C.HIGH for s in steps)
        assert t.answer == str(steps[-1].result)
    assert C.harmonic_f1(0.5, 1.0) == pytest.approx(2 / 3) and C.harmonic_f1(0, 0) == 0
    with pytest.raises(ValueError):
        C.make_chain(0, random.Random(0))


def test_mixture_demonstrations_are_consistent():
    from labkit.bases.mixtures import critic as mix
    stream = mix.demonstrations(0, 0.15, 0.15)
    kinds = set()
    for _ in range(300):
        prompt, completion = next(stream)
        if prompt.endswith(C.CRITIC_MARK):
            kinds.add("critic")
            body = prompt[:-len(C.CRITIC_MARK)]
            i = body.index("=")
            t = chain(body[:i + 1])
            assert C.parse_critic(t, completion) == C.first_wrong_step(t, body[i + 1:])
        elif prompt.endswith(C.SNEAKY_MARK):
            kinds.add("sneaky")
            assert C.parse_result(completion) is not None
        else:
            kinds.add("solve")
            t = chain(prompt)
            k = C.first_wrong_step(t, completion)
            assert k is not None
            if k:   # the solver's slips are off by one
                from labkit.nb.n15_self_play_critic import error_kind
                assert error_kind(t, completion, k) == "off_by_one"
    assert kinds == {"critic", "sneaky", "solve"}


# ---------------------------------------------------------------------------------------------
# The game

def test_game_rewards_by_hand():
    from labkit.nb.n15_self_play_critic import critic_reward, sneaky_reward
    assert critic_reward(2, 2) == 1.0 and critic_reward(0, 0) == 1.0
    assert critic_reward(1, 2) == -1.0 and critic_reward(None, 0) == -1.0 and critic_reward(0, 2) == -1.0
    assert sneaky_reward(True, [2, 2, 2, 2], 2) == -1.0           # caught every time
    assert sneaky_reward(True, [0, 1, None, 0], 2) == 1.0         # fooled every time (a miss, a wrong step, garbage)
    assert sneaky_reward(True, [2, 0, 2, 0], 2) == 0.0
    assert sneaky_reward(False, [0, 0], 2) == -1.0                # no real error: lost, whatever the critic says
    with pytest.raises(ValueError):
        sneaky_reward(True, [], 1)


def test_error_kind_by_hand():
    from labkit.nb.n15_self_play_critic import error_kind, error_kinds
    t = chain()
    assert error_kind(t, "7-5=3;3+3=6", 1) == "off_by_one"
    assert error_kind(t, "7-5=2;2+3=4", 2) == "off_by_one"
    assert error_kind(t, "7-5=8;8+3=11", 1) == "other"
    assert error_kind(t, "7-4=3;3+3=6", 1) == "copy"
    assert error_kinds([(t, "7-5=3;3+3=6", 1), (t, "7-5=8;8+3=11", 1)]) == {"off_by_one": 0.5, "other": 0.5, "copy": 0.0}
    with pytest.raises(ValueError):
        error_kind(t, "garbage", 1)


class Batch:
    def __init__(self, completions):
        self.completions = completions


@pytest.fixture
def scripted15(monkeypatch):
    from labkit.nb import n15_self_play_critic as n15
    replies = {}
    monkeypatch.setattr(n15, "rollout", lambda policy, prompts, *a, **k: Batch([replies.get(p, "??") for p in prompts]))
    return replies


def test_sneaky_attacks_build_chains_and_flag_real_errors(scripted15):
    from labkit.nb.n15_self_play_critic import sneaky_attacks
    t = chain()
    rng = random.Random(0)
    j = random.Random(0).randint(1, 2)
    right = C.solution_steps(t)[j - 1].result
    scripted15[C.sneaky_prompt(t, j)] = str(right + 1)
    out = sneaky_attacks(None, [t], 3, rng)
    assert out.indices == [j] * 3 and out.real == [True] * 3
    assert all(C.first_wrong_step(t, c) == j for c in out.chains)
    scripted15[C.sneaky_prompt(t, j)] = str(right)                 # the right value: no error
    assert sneaky_attacks(None, [t], 2, random.Random(0)).real == [False, False]
    scripted15[C.sneaky_prompt(t, j)] = "x"                        # unreadable: the chain stays right
    out = sneaky_attacks(None, [t], 2, random.Random(0))
    assert out.real == [False, False] and out.chains == [C.solution(t)] * 2


def test_random_attacks_are_real_errors():
    from labkit.nb.n15_self_play_critic import error_kind, random_attacks
    tasks = C.make_chains(20, random.Random(1))
    out = random_attacks(tasks, 3, random.Random(2))
    assert len(out.chains) == 60 and all(out.real)
    for t, c, j in zip(out.tasks, out.chains, out.indices):
        assert C.first_wrong_step(t, c) == j
        assert error_kind(t, c, j) in ("off_by_one", "other")
    with pytest.raises(ValueError):
        random_attacks(tasks, 0, random.Random(0))


def test_critic_f1_counts_exact_names(scripted15):
    from labkit.nb.n15_self_play_critic import critic_f1, natural_chains
    t = chain()
    wrong, right = "7-5=3;3+3=6", C.solution(t)
    scripted15[C.critic_prompt(t, wrong)] = "n"
    scripted15[C.critic_prompt(t, right)] = "yy"
    s = critic_f1(None, [(t, wrong, 1), (t, right, 0)])
    assert s["f1"] == 1.0 and s["n_erroneous"] == 1 and s["n_correct"] == 1
    scripted15[C.critic_prompt(t, wrong)] = "yn"                   # names step 2: wrong
    assert critic_f1(None, [(t, wrong, 1), (t, right, 0)])["f1"] == 0.0
    with pytest.raises(ValueError):
        critic_f1(None, [])
    scripted15[t.prompt] = wrong
    assert natural_chains(None, [t, chain("1+1+1=")]) == [(t, wrong, 1)]   # the unreadable one is dropped


def test_the_game_runs_on_the_shipped_base():
    import copy

    import torch

    from labkit.core.grpo import RLConfig
    from labkit.core.policy import load_policy
    from labkit.nb.n15_self_play_critic import (CRITIC_TOKENS, SNEAKY_TOKENS, critic_step, sneaky_attacks,
                                                sneaky_step)
    torch.manual_seed(0)
    base = load_policy("tiny-critic")
    critic, sneaky = copy.deepcopy(base), copy.deepcopy(base)
    tasks = C.make_chains(2, random.Random(0))
    g = torch.Generator().manual_seed(0)
    attacks = sneaky_attacks(sneaky, tasks, 2, random.Random(0), g)
    items = [(t, c, C.first_wrong_step(t, c)) for t, c in zip(attacks.tasks, attacks.chains)]
    out = critic_step(critic, torch.optim.Adam(critic.model.parameters(), lr=1e-4), items,
                      RLConfig(group_size=2, max_new_tokens=CRITIC_TOKENS), g)
    assert len(out["named"]) == 8 and -1 <= out["metrics"]["reward/mean"] <= 1
    metrics = sneaky_step(sneaky, torch.optim.Adam(sneaky.model.parameters(), lr=1e-4), attacks, out["named"], 2,
                          RLConfig(group_size=2, max_new_tokens=SNEAKY_TOKENS))
    assert -1 <= metrics["reward/mean"] <= 1
