"""labkit.nb.n07_curriculum_bandit: samplers over arms (notebook 07) against hand-computed values."""
import math
import random
from types import SimpleNamespace

import pytest
import torch

from labkit.nb.n07_curriculum_bandit import (CURRICULA, SECBandit, Schedule, Uniform, boltzmann, frontier, make_sampler,
                               mean_abs_advantage)
from labkit.core.grpo import grpo_advantages

A, B, C = ("carry", 0), ("carry", 1), ("carry", 2)


def test_boltzmann_by_hand():
    assert boltzmann([0.0, math.log(2)], tau=1.0) == pytest.approx([1 / 3, 2 / 3])
    assert boltzmann([0.0, 0.2 * math.log(3)], tau=0.2) == pytest.approx([1 / 4, 3 / 4])
    assert boltzmann([5.0, 5.0, 5.0, 5.0], tau=0.3) == pytest.approx([0.25] * 4)
    # large Q / tau does not overflow: the max is subtracted first
    assert boltzmann([1000.0, 0.0], tau=0.01) == pytest.approx([1.0, 0.0])


def test_frontier_by_hand():
    assert frontier(0.5) == 1.0
    assert frontier(0.0) == frontier(1.0) == 0.0
    assert frontier(0.1) == pytest.approx(0.6)  # 2 * sqrt(0.09)


def test_sec_td0_update_by_hand_unsampled_zero():
    bandit = SECBandit([A, B, C], alpha=0.5, tau=1.0)
    assert bandit.q == [0.0, 0.0, 0.0] and bandit.probs() == pytest.approx([1 / 3] * 3)
    bandit.update({A: 0.8, B: 0.4})  # C not drawn: r = 0, as in the authors' code
    assert bandit.q == pytest.approx([0.4, 0.2, 0.0])
    bandit.update({A: 0.2})
    assert bandit.q == pytest.approx([0.3, 0.1, 0.0])
    e = [math.exp(0.3), math.exp(0.1), 1.0]
    assert bandit.probs() == pytest.approx([x / sum(e) for x in e])
    for got, want in zip(bandit.q_history, [[0, 0, 0], [0.4, 0.2, 0.0], [0.3, 0.1, 0.0]], strict=True):
        assert got == pytest.approx(want)
    assert bandit.q_of() == pytest.approx({A: 0.3, B: 0.1, C: 0.0})


def test_sec_unsampled_keep_and_q0_and_alpha():
    bandit = SECBandit([A, B], alpha=0.25, q0=1.0, unsampled="keep")
    bandit.update({A: 0.0})
    assert bandit.q == pytest.approx([0.75, 1.0])  # B untouched
    bandit = SECBandit([A, B], alpha=1.0)  # alpha = 1: Q is the last reward
    bandit.update({A: 0.7, B: 0.1})
    assert bandit.q == pytest.approx([0.7, 0.1])


def test_mean_abs_advantage_is_the_frontier_for_binary_groups():
    # arm A: one group with 2 of 8 right; arm B: one group all right (no signal)
    rewards = torch.tensor([1.0, 1.0] + [0.0] * 6 + [1.0] * 8)
    adv = grpo_advantages(rewards, 8, eps=1e-12, population_std=True)
    tasks = [SimpleNamespace(category="carry", difficulty=d) for d in (0, 1) for _ in range(8)]
    r = mean_abs_advantage(tasks, adv)
    assert r[A] == pytest.approx(frontier(0.25)) and r[A] == pytest.approx(2 * math.sqrt(3) / 4)
    assert r[B] == 0.0
    # by hand: std = sqrt(3)/4, |A| = sqrt(3) for the 2 right, 1/sqrt(3) for the 6 wrong: mean sqrt(3)/2
    assert adv[:2].tolist() == pytest.approx([math.sqrt(3)] * 2) and adv[2].item() == pytest.approx(-1 / math.sqrt(3))
    assert mean_abs_advantage(["x", "x"], [1.0, -3.0], key=lambda t: t) == {"x": 2.0}


def test_schedules_visit_arms_in_equal_shares():
    rng = random.Random(0)
    easy = make_sampler("easy_to_hard", [A, B, C], total_steps=2)
    # 8 prompts in all; prompt i comes from arm floor(3 i / 8): 0,0,0,1,1,1,2,2
    assert easy.sample(4, rng) == [A, A, A, B]
    assert easy.sample(4, rng) == [B, B, C, C]
    assert easy.sample(4, rng) == [C] * 4  # past the end: stays on the last arm
    assert easy.prob_history[0] == pytest.approx([0.75, 0.25, 0.0])
    assert easy.count_history == [[3, 1, 0], [0, 2, 2], [0, 0, 4]]
    hard = make_sampler("hard_to_easy", [A, B, C], total_steps=2)
    assert hard.arms == [A, B, C]  # histories keep the given order
    assert hard.sample(4, rng) == [C, C, C, B]
    assert hard.sample(4, rng) == [B, B, A, A]
    assert hard.prob_history[1] == pytest.approx([0.5, 0.5, 0.0])
    three = Schedule([A, B, C], total_steps=3)
    assert [three.sample(2, rng) for _ in range(3)] == [[A, A], [B, B], [C, C]]


def test_uniform_and_sec_are_seeded_and_record_history():
    first = [Uniform([A, B, C]).sample(50, random.Random(7)) for _ in range(2)]
    assert first[0] == first[1]
    counts = Uniform([A, B, C]).sample(3000, random.Random(1))
    assert all(abs(counts.count(arm) / 3000 - 1 / 3) < 0.03 for arm in (A, B, C))
    bandit = SECBandit([A, B], tau=0.1)
    bandit.update({A: 1.0, B: 0.0})  # Q = [0.5, 0]: p(A) = 1 / (1 + e^-5)
    draws = bandit.sample(2000, random.Random(3))
    assert draws.count(A) / 2000 == pytest.approx(1 / (1 + math.exp(-5)), abs=0.01)
    assert bandit.prob_history[-1] == pytest.approx([1 / (1 + math.exp(-5)), 1 / (1 + math.exp(5))])
    assert bandit.count_history[-1] == [draws.count(A), draws.count(B)]
    assert bandit.sample(0, random.Random(0)) == [] and bandit.steps == 2


def test_bandit_finds_the_frontier_of_a_simulated_learner():
    """Arms with fixed success rates 0.97, 0.5, 0.03: Q tracks 2 sqrt(p(1-p)) and the bandit
    puts most prompts on the middle arm; uniform would give it a third."""
    rates = {A: 0.97, B: 0.5, C: 0.03}
    bandit = SECBandit([A, B, C], alpha=0.5, tau=0.2)
    rng, gen = random.Random(0), torch.Generator().manual_seed(0)
    for _ in range(60):
        arms = bandit.sample(16, rng)
        rewards = torch.cat([torch.bernoulli(torch.full((8,), rates[a]), generator=gen) for a in arms])
        adv = grpo_advantages(rewards, 8, population_std=True)
        bandit.update(mean_abs_advantage([SimpleNamespace(category=a[0], difficulty=a[1])
                                          for a in arms for _ in range(8)], adv))
    late = [sum(counts[1] for counts in bandit.count_history[-20:]) / (20 * 16)]
    assert late[0] > 0.6
    assert bandit.q[1] > max(bandit.q[0], bandit.q[2])
    assert bandit.q[1] == pytest.approx(frontier(0.5) * 0.9, abs=0.15)


def test_make_sampler_names():
    assert CURRICULA == ("uniform", "easy_to_hard", "hard_to_easy", "sec")
    assert isinstance(make_sampler("uniform", [A]), Uniform)
    sec = make_sampler("sec", [A, B], alpha=0.3, tau=0.4)
    assert (sec.alpha, sec.tau, sec.unsampled) == (0.3, 0.4, "zero")
    assert make_sampler("easy_to_hard", [A, B], total_steps=4).name == "easy_to_hard"


@pytest.mark.parametrize("make,match", [
    (lambda: Uniform([]), "non-empty list of arms"),
    (lambda: Uniform("carry:0-3"), "not a string; use parse_arms"),
    (lambda: Uniform(5), "must be a list of arms"),
    (lambda: Uniform([A, A]), "distinct"),
    (lambda: Uniform([[1, 2]]), "hashable"),
    (lambda: SECBandit([A], alpha=0), "alpha must be a finite number > 0"),
    (lambda: SECBandit([A], alpha=1.5), "alpha must be"),
    (lambda: SECBandit([A], tau=0.0), "tau must be a finite number > 0"),
    (lambda: SECBandit([A], tau=float("nan")), "tau must be"),
    (lambda: SECBandit([A], q0=float("inf")), "q0 must be a finite number"),
    (lambda: SECBandit([A], unsampled="drop"), "unsampled must be one of zero, keep"),
    (lambda: Schedule([A], total_steps=0), "total_steps must be an integer >= 1"),
    (lambda: Schedule([A], total_steps=2, reverse="yes"), "reverse must be True or False"),
    (lambda: make_sampler("random", [A]), "unknown curriculum 'random'"),
    (lambda: make_sampler("easy_to_hard", [A]), "needs total_steps"),
    (lambda: make_sampler("uniform", [A], tau=1.0), "takes no options"),
    (lambda: Uniform([A]).sample(-1, random.Random(0)), "n must be an integer >= 0"),
    (lambda: Uniform([A]).sample(2.5, random.Random(0)), "n must be an integer"),
    (lambda: Uniform([A]).sample(2, 0), "rng must be a random.Random"),
    (lambda: SECBandit([A]).update({B: 1.0}), "unknown arm"),
    (lambda: SECBandit([A]).update({A: float("nan")}), "reward of arm"),
    (lambda: SECBandit([A]).update({A: "high"}), "reward of arm"),
    (lambda: SECBandit([A]).update([(A, 1.0)]), "must be a dict"),
    (lambda: Uniform([A]).update({B: 0.5}), "unknown arm"),
    (lambda: mean_abs_advantage([1, 2], [0.5]), "one advantage per completion"),
    (lambda: frontier(1.5), "p must be a finite number"),
    (lambda: boltzmann([], 1.0), "at least one value"),
])
def test_bad_inputs_give_one_line_errors(make, match):
    with pytest.raises(ValueError, match=match) as error:
        make()
    assert "\n" not in str(error.value)


# --- the carry mixture: the base of notebook 07's experiment 1 (data/models/tiny-carry) ---

def test_carry_mixture_teaches_only_carry_weighted_toward_few_carries():
    from collections import Counter

    from labkit.bases.mixtures import load_mixture
    from labkit.core.tasks import verify
    from labkit.core.tasks.base import Task

    mixture = load_mixture("carry")
    pairs = [pair for pair, _ in zip(mixture.demonstrations(0, 0.0, 0.0), range(4000))]
    assert pairs[:50] == [pair for pair, _ in zip(mixture.demonstrations(0, 0.0, 0.0), range(50))]  # seeded
    assert pairs[:50] != [pair for pair, _ in zip(mixture.demonstrations(1, 0.0, 0.0), range(50))]
    levels = Counter()
    for prompt, completion in pairs:
        a, b = (int(x) for x in prompt.rstrip("=").split("+"))
        assert 1000 <= a <= 9999 and 1000 <= b <= 9999 and completion == str(a + b)  # no noise asked for
        task = Task(prompt=prompt, answer=str(a + b), category="carry", difficulty=0, world="arithmetic")
        assert verify(task, completion).correct
        carries, carry, x, y = 0, 0, a, b
        while x or y:
            carry = (x % 10 + y % 10 + carry) // 10
            carries, x, y = carries + carry, x // 10, y // 10
        levels[carries] += 1
    shares = {level: levels[level] / len(pairs) for level in range(5)}
    for level, weight in mixture.CARRY_WEIGHTS.items():
        assert abs(shares[level] - weight) < 0.03, (level, shares[level], weight)
    assert shares[0] > shares[1] > shares[2] > shares[3] > shares[4]
    assert {t.category for tasks in mixture.card_tasks().values() for t in tasks} == {"carry"}


def test_carry_mixture_noise_matches_the_requested_rates():
    from labkit.bases.mixtures import load_mixture

    pairs = [pair for pair, _ in zip(load_mixture("carry").demonstrations(3, 0.1, 0.2), range(3000))]
    wrong = sum(c != str(sum(int(x) for x in p.rstrip("=").split("+"))) for p, c in pairs) / len(pairs)
    assert abs(wrong - 0.3) < 0.04  # near misses and format slips together


def test_shipped_tiny_carry_has_a_competence_gradient_over_carries():
    """Notebook 07 needs it: its model card (measured when the base was made) falls with each carry."""
    import json

    from labkit.core.paths import MODELS_DIR

    card = json.loads((MODELS_DIR / "tiny-carry" / "card.json").read_text())
    assert card["made"]["mixture"] == "carry"
    sampled = {row["difficulty"]: row["acc_sampled"] for row in card["rows"] if row["category"] == "carry"}
    assert sorted(sampled) == [0, 1, 2, 3, 4]
    assert all(sampled[d] > sampled[d + 1] for d in range(3)), sampled  # 0 > 1 > 2 > 3 carries
    assert sampled[0] >= 0.6 and 0.02 <= sampled[3] <= 0.3, sampled    # easy mostly solved, hard rarely
