"""Notebook 10's mechanism (labkit.nb.n10_task_space): ExIt's learning potential, task instances, buffer and step;
WebRL's band filter, ORM rewards, failure-seeded variants and step; each arm's equal budget."""
import copy
import random

import pytest
import torch

from labkit.core.grpo import LossConfig, RLConfig
from labkit.core.policy import load_policy
from labkit.core.tasks import Task, make_tasks
from labkit.core.tasks.arithmetic import count_carries
from labkit.nb.n10_task_space import (EXIT_ARMS, WEBRL_ARMS, Instance, TaskBuffer, exit_step, failure_variant,
                                      in_band, learning_potential, next_instances, orm_rewards, self_improve,
                                      webrl_step)


@pytest.fixture(scope="module")
def base():
    torch.manual_seed(0)
    return load_policy("tiny-judge")


def carry(c=2, n=8, seed=1234):
    return make_tasks("carry", c, n, seed)

# ------------------------------------------------------------------------------------------ ExIt's score and WebRL's band


def test_learning_potential_by_hand():
    # returns 1, 0, 1, 1: mean .75, squared deviations .0625 x 3 + .5625 = .75, / (n - 1) = .25
    assert learning_potential([1.0, 0.0, 1.0, 1.0]) == pytest.approx(0.25)
    # half right in a group of 8: 8 x .25 / 7
    assert learning_potential([1.0] * 4 + [0.0] * 4) == pytest.approx(2 / 7)
    # a settled group has no learning potential, nor a group of one
    assert learning_potential([1.0] * 8) == 0.0 and learning_potential([0.0] * 8) == 0.0
    assert learning_potential([1.0]) == 0.0
    assert learning_potential(torch.tensor([0.0, 1.0])) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        learning_potential([[1.0, 0.0], [0.0, 1.0]])


def test_in_band_edges_and_bad_inputs():
    assert in_band(0.05) and in_band(0.75) and in_band(0.5)
    assert not in_band(0.0) and not in_band(0.875) and not in_band(1.0)
    assert in_band(1.0, 0.0, 1.0) and not in_band(0.5, 0.6, 0.9)
    with pytest.raises(ValueError):
        in_band(1.5)
    with pytest.raises(ValueError):
        in_band(0.5, 0.8, 0.2)

# ------------------------------------------------------------------------------------------ instances and the buffer


def test_instance_prompts():
    task = carry()[0]
    assert Instance(task).prompt == task.prompt
    h = Instance(task, "123", "fy v456 cn =n", 1)
    assert h.prompt == f"{task.prompt}123|fy v456 cn =n|>"


def test_buffer_evicts_the_lowest_and_refuses_no_better_newcomers():
    tasks = carry()
    buf = TaskBuffer(capacity=2)
    assert buf.add(Instance(tasks[0]), 0.1) and buf.add(Instance(tasks[1]), 0.3)
    assert not buf.add(Instance(tasks[2]), 0.1)          # no higher than the worst: refused
    assert buf.add(Instance(tasks[3]), 0.2)              # evicts the .1
    assert len(buf) == 2 and sorted(buf.scores.values()) == [0.2, 0.3]
    assert {i.task.prompt for i in buf.items.values()} == {tasks[1].prompt, tasks[3].prompt}
    with pytest.raises(ValueError):
        buf.add(Instance(tasks[4]), -0.1)
    with pytest.raises(ValueError):
        buf.add(tasks[4], 0.5)
    with pytest.raises(ValueError):
        TaskBuffer(capacity=0)


def test_buffer_samples_in_proportion_to_the_score():
    tasks = carry()
    buf = TaskBuffer(capacity=8)
    buf.add(Instance(tasks[0]), 0.0)
    buf.add(Instance(tasks[1]), 0.1)
    buf.add(Instance(tasks[2]), 0.3)
    rng = random.Random(0)
    draws = [buf.sample(rng)[1].task.prompt for _ in range(4000)]
    assert tasks[0].prompt not in draws                  # a score of 0 is never replayed while others score
    assert draws.count(tasks[2].prompt) / len(draws) == pytest.approx(0.75, abs=0.03)
    # shuffled: uniform over the buffer
    draws = [buf.sample(rng, shuffled=True)[1].task.prompt for _ in range(3000)]
    assert draws.count(tasks[0].prompt) / len(draws) == pytest.approx(1 / 3, abs=0.03)
    # all zero: uniform; rescore moves the weights
    key = next(k for k, v in buf.items.items() if v.task.prompt == tasks[0].prompt)
    buf.rescore(key, 5.0)
    draws = [buf.sample(rng)[1].task.prompt for _ in range(2000)]
    assert draws.count(tasks[0].prompt) / len(draws) > 0.9
    with pytest.raises(ValueError):
        TaskBuffer().sample(rng)

# ------------------------------------------------------------------------------------------ histories and the loop


def test_next_instances_carry_the_attempt_and_its_feedback_and_shuffle_keeps_the_multiset(base):
    tasks = carry(n=6)
    answers = [t.answer for t in tasks[:3]] + ["1", "2", "3"]
    roots = [Instance(t) for t in tasks]
    g = torch.Generator().manual_seed(0)
    kids = next_instances(base, roots, answers, g)
    assert [k.answer for k in kids] == answers and all(k.depth == 1 and k.task == r.task for k, r in zip(kids, roots))
    assert all(isinstance(k.feedback, str) and k.prompt.endswith("|>") for k in kids)
    g = torch.Generator().manual_seed(0)
    shuffled = next_instances(base, roots, answers, g, random.Random(3))
    assert sorted(k.feedback for k in shuffled) == sorted(k.feedback for k in kids)
    assert [k.feedback for k in shuffled] != [k.feedback for k in kids]
    assert next_instances(base, kids[:2], ["5", "6"], g)[0].depth == 2
    with pytest.raises(ValueError):
        next_instances(base, roots, answers[:2], g)


def test_self_improve_returns_one_accuracy_per_attempt(base):
    acc = self_improve(base, base, carry(n=4), 3, 2, torch.Generator().manual_seed(0))
    assert len(acc) == 3 and all(0.0 <= a <= 1.0 for a in acc)
    with pytest.raises(ValueError):
        self_improve(base, base, carry(n=2), 0)

# ------------------------------------------------------------------------------------------ the ExIt step


def test_exit_arms_spend_equal_rollouts_and_build_their_task_spaces(base):
    cfg = RLConfig(group_size=4, max_new_tokens=8)
    roots = [t for c in range(5) for t in carry(c, 8)]
    n = 4
    for arm in EXIT_ARMS:
        policy = copy.deepcopy(base)
        opt = torch.optim.AdamW(policy.model.parameters(), lr=1e-4)
        state, rng, g = {}, random.Random(0), torch.Generator().manual_seed(0)
        rows = [exit_step(arm, policy, opt, cfg, roots, base, state, n, rng, g, select_prob=1.0) for _ in range(3)]
        assert [r["rollouts"] for r in rows] == [n * 4] * 3
        if arm == "single":
            assert all(r["histories"] == 0 for r in rows) and state == {}
        elif arm == "fixed2":
            assert rows[0]["histories"] == 0 and rows[1]["histories"] == rows[2]["histories"] == 0.5
            assert rows[2]["depth"] == 0.5           # never deeper than one revision
            assert len(state["histories"]) == n // 2
        else:
            assert rows[0]["histories"] == 0 and len(state["buffer"]) >= n
            assert rows[1]["histories"] == 1.0      # select_prob 1 with a full-enough buffer: only histories
    with pytest.raises(ValueError):
        exit_step("nope", base, None, cfg, roots, base, {}, n, random.Random(0), None)

# ------------------------------------------------------------------------------------------ WebRL


def test_failure_variant_changes_one_digit_and_keeps_the_world():
    rng = random.Random(0)
    for task in carry(3, 20):
        v = failure_variant(task, rng)
        a, b = str(task.meta["a"]), str(task.meta["b"])
        x, y = str(v.meta["a"]), str(v.meta["b"])
        assert len(x) == len(a) == 4 and len(y) == len(b) == 4
        assert sum(p != q for p, q in zip(a + b, x + y)) == 1
        assert v.answer == str(int(x) + int(y)) and v.category == "carry" and v.world == task.world
        assert v.difficulty == count_carries(int(x), int(y)) and v.prompt == f"{x}+{y}="
    task = carry()[0]
    assert all(failure_variant(task, random.Random(s), {task.prompt}).prompt != task.prompt for s in range(20))
    with pytest.raises(ValueError):
        failure_variant(Task("1+2=", "3", "add", 1, "arithmetic", {"a": 1, "b": 2}), rng)


def test_orm_pays_answers_equal_to_the_judges_value_and_rejects_near_misses(base):
    tasks = carry(n=8)
    g = torch.Generator().manual_seed(0)
    right = orm_rewards(base, tasks, [t.answer for t in tasks], g)
    near = orm_rewards(base, tasks, [str(int(t.answer) + 10) for t in tasks], g)
    malformed = orm_rewards(base, tasks, [" " + t.answer + "x" for t in tasks], g)
    assert right.shape == (8,) and set(right.tolist()) <= {0.0, 1.0}
    assert right.mean() >= 0.75 and near.mean() <= 0.25 and malformed.sum() == 0
    with pytest.raises(ValueError):
        orm_rewards(base, tasks, ["1"], g)


def test_webrl_arms_spend_equal_rollouts_and_only_webrl_grows_a_pool(base):
    cfg = RLConfig(group_size=4, max_new_tokens=8, loss=LossConfig(kl_coef=0.05))
    train = [t for c in range(5) for t in carry(c, 4)]
    n = 4
    for arm in WEBRL_ARMS:
        policy = copy.deepcopy(base)
        opt = torch.optim.AdamW(policy.model.parameters(), lr=1e-4)
        state, rng, g = {}, random.Random(0), torch.Generator().manual_seed(0)
        rows = [webrl_step(arm, policy, opt, cfg, train, base, state, n, rng, g, ref_model=base.model)
                for _ in range(4)]
        assert [r["rollouts"] for r in rows] == [n * 4] * 4
        if arm == "fixed":
            assert state["pool"] == [] and all(r["generated"] == 0 and r["kept"] == 1 for r in rows)
        else:
            assert all(v.category == "carry" for v in state["pool"])
            assert all(r["generated"] in (0, 0.5) for r in rows)
    with pytest.raises(ValueError):
        webrl_step("nope", base, None, cfg, train, base, {}, n, random.Random(0), None)
