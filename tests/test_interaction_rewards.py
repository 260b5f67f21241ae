"""Notebook 17's mechanism (labkit.nb.n17_interaction_rewards): CoMAS's interaction rewards, REINFORCE++
whitening, the balanced role assignment, one game and one update."""
import random

import pytest
import torch

from labkit.core.grpo import LossConfig, RLConfig
from labkit.core.policy import load_policy
from labkit.core.tasks import sample_task
from labkit.nb.n17_interaction_rewards import (FALLBACK_SCORE, ROLES, assign_agents, evaluation_of,
                                               interaction_rewards, learn, parse_score, play, scorer_agreement,
                                               scorer_prompt, whiten)


def test_interaction_rewards_hand_values():
    # s = (c - 1) / 2; solver s, critic 1 - s, scorer 0 (the authors' CoMASReward)
    assert interaction_rewards(3) == (1.0, 0.0, 0.0)
    assert interaction_rewards(1) == (0.0, 1.0, 0.0)
    assert interaction_rewards(2) == (0.5, 0.5, 0.0)


def test_interaction_rewards_bad_scores():
    for bad in (0, 4, 2.5, "3", None, True):
        with pytest.raises(ValueError, match="score"):
            interaction_rewards(bad)


def test_whiten_by_hand_and_token_weights():
    a = whiten(torch.tensor([1.0, 0.0]), torch.tensor([1, 1]))
    assert a.tolist() == pytest.approx([1.0, -1.0])
    # weights 3:1 -> mu = 0.75, var = 3/4 * 1/16 + 1/4 * 9/16 = 3/16
    a = whiten(torch.tensor([1.0, 0.0]), torch.tensor([3, 1]))
    assert a.tolist() == pytest.approx([0.25 / 0.1875 ** 0.5, -0.75 / 0.1875 ** 0.5])
    # token-weighted mean of the advantages is 0, token-weighted variance 1
    r, w = torch.tensor([0.0, 0.5, 1.0, 0.0, 1.0]), torch.tensor([2.0, 5.0, 1.0, 3.0, 4.0])
    a = whiten(r, w)
    assert float((a * w).sum() / w.sum()) == pytest.approx(0.0, abs=1e-6)
    assert float((a ** 2 * w).sum() / w.sum()) == pytest.approx(1.0, abs=1e-5)


def test_whiten_equal_rewards_give_zero_and_bad_inputs_raise():
    assert whiten(torch.tensor([0.5, 0.5, 0.5]), torch.tensor([1, 2, 3])).abs().max().item() == 0.0
    with pytest.raises(ValueError, match="one reward"):
        whiten(torch.tensor([1.0, 0.0]), torch.tensor([1]))
    with pytest.raises(ValueError, match="one reward"):
        whiten(torch.tensor([1.0]), torch.tensor([0]))
    with pytest.raises(ValueError, match="one reward"):
        whiten(torch.tensor([]), torch.tensor([]))


def test_assign_agents_is_balanced_and_shuffled():
    order = assign_agents(4, 40, random.Random(0))
    assert sorted(order) == sorted(list(range(4)) * 10) and order != list(range(4)) * 10
    with pytest.raises(ValueError, match="evenly"):
        assign_agents(3, 4, random.Random(0))
    with pytest.raises(ValueError, match="n_agents"):
        assign_agents(0, 4, random.Random(0))


def test_score_parsing_and_scorer_prompt():
    assert parse_score("y") == 3 and parse_score(" n") == 1 and parse_score("x") == FALLBACK_SCORE == 2
    assert evaluation_of("fy v4930 cn =n") == "fy v4930 cn"
    task = sample_task("carry", 1, random.Random(0))
    assert scorer_prompt(task, "123", "fy v4930 cn =n") == f"{task.prompt}123|rfy v4930 cn ="


def test_play_gives_every_role_its_rewards_without_ground_truth():
    policy = load_policy("tiny-judge")
    rng = random.Random(0)
    tasks = [sample_task("carry", rng.randint(0, 2), rng) for _ in range(3)]
    history, parts = play([policy, policy], tasks, 2, torch.Generator().manual_seed(0), random.Random(1))
    assert len(history) == 2 and all(len(r) == 6 for r in history)
    for rnd in history:
        assert sorted(d.critic for d in rnd) == [0, 0, 0, 1, 1, 1]
        assert sorted(d.scorer for d in rnd) == [0, 0, 0, 1, 1, 1]
    for a in (0, 1):
        roles = [role for role, _, _ in parts[a]]
        assert sorted(set(roles)) == sorted(ROLES) and len(roles) == 6   # 2 rounds x 3 roles
        for role, batch, rewards in parts[a]:
            assert len(rewards) == len(batch.completions)
            if role == "scorer":
                assert rewards.abs().sum().item() == 0.0
    # solver + critic rewards of every discussion sum to 1 (s and 1 - s)
    total = sum(r.sum().item() for a in (0, 1) for role, _, r in parts[a] if role != "scorer")
    assert total == pytest.approx(12.0)
    # the coin control: scores are 1 or 3 only, from the rng
    history, _ = play([policy], tasks, 1, torch.Generator().manual_seed(0), random.Random(1), coin=True)
    assert {d.score for d in history[0]} <= {1, 3}
    stats = scorer_agreement(history)
    assert 0 <= stats["agree"] <= 1 and stats["unreadable"] == 0


def test_play_never_reads_the_answer(monkeypatch):
    # a task whose answer is wrong changes the measured `correct` flags but not a single reward
    policy = load_policy("tiny-judge")
    rng = random.Random(3)
    tasks = [sample_task("carry", 1, rng) for _ in range(4)]
    import dataclasses
    liars = [dataclasses.replace(t, answer=str(int(t.answer) + 1)) for t in tasks]
    _, p1 = play([policy], tasks, 1, torch.Generator().manual_seed(5), random.Random(2))
    _, p2 = play([policy], liars, 1, torch.Generator().manual_seed(5), random.Random(2))
    for (r1, _, x1), (r2, _, x2) in zip(p1[0], p2[0]):
        assert r1 == r2 and torch.equal(x1, x2)


def test_learn_updates_only_from_given_roles_and_bad_inputs():
    policy = load_policy("tiny-judge")
    rng = random.Random(0)
    tasks = [sample_task("carry", 1, rng) for _ in range(4)]
    _, parts = play([policy], tasks, 1, torch.Generator().manual_seed(0), random.Random(1))
    cfg = RLConfig(group_size=2, max_new_tokens=20, loss=LossConfig(loss_agg="seq-mean-token-mean"))
    # rewards that differ (four scores can all be equal): 1, 0, 1, 0 on the solutions
    parts[0] = [(role, b, torch.tensor([1.0, 0.0, 1.0, 0.0]) if role == "solver" else r) for role, b, r in parts[0]]
    before = [p.detach().clone() for p in policy.model.parameters()]
    opt = torch.optim.Adam(policy.model.parameters(), lr=1e-3)
    metrics = learn(policy, opt, parts[0], cfg, roles=("solver",))
    assert "grad_norm" in metrics
    assert any(not torch.equal(b, p) for b, p in zip(before, policy.model.parameters()))
    # equal rewards within the chosen roles: zero advantages, no step
    frozen = [p.detach().clone() for p in policy.model.parameters()]
    flat = [(role, b, torch.full_like(r, 0.5)) for role, b, r in parts[0]]
    learn(policy, torch.optim.Adam(policy.model.parameters(), lr=1e-3), flat, cfg)
    assert all(torch.equal(b, p) for b, p in zip(frozen, policy.model.parameters()))
    with pytest.raises(ValueError, match="roles"):
        learn(policy, opt, parts[0], cfg, roles=("judge",))
    with pytest.raises(ValueError, match="at least one agent"):
        play([], tasks)
