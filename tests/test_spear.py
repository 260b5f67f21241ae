"""SPEAR's schedules, tool-call reward, baseline recalibration and replay buffer (labkit.nb.n04_self_imitation)."""
import math
import random

import pytest
import torch

from labkit.core.grpo import grpo_advantages
from labkit.nb.n04_self_imitation import BaselineBuffer, ReplayBuffer, sil_weight, toolcall_reward, toolcall_weight


def test_sil_weight_cosine_ramp_by_hand():
    # gamma(t) = coef * (1 - cos(pi * min(t / T, 1))) / 2
    assert sil_weight(0, 10) == 0.0
    assert sil_weight(5, 10) == pytest.approx(0.5)
    assert sil_weight(10, 10) == pytest.approx(1.0)
    assert sil_weight(30, 10) == pytest.approx(1.0)  # stays at coef after the ramp
    assert sil_weight(5, 10, coef=0.2) == pytest.approx(0.1)
    assert sil_weight(2, 8) == pytest.approx((1 - math.cos(math.pi / 4)) / 2)
    ramp = [sil_weight(t, 10) for t in range(11)]
    assert ramp == sorted(ramp)


def test_toolcall_weight_cosine_decay_by_hand():
    # w(t) = (1 + cos(pi * t / T)) / 2 for t <= T, else 0
    assert toolcall_weight(0, 10) == 1.0
    assert toolcall_weight(5, 10) == pytest.approx(0.5)
    assert toolcall_weight(10, 10) == pytest.approx(0.0)
    assert toolcall_weight(11, 10) == 0.0
    assert toolcall_weight(1, 4) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)


def test_toolcall_reward_by_hand():
    # r_tool = min(0.1 * calls, 1) * w
    r = toolcall_reward([0, 1, 3, 20], weight=0.5)
    assert torch.allclose(r, torch.tensor([0.0, 0.05, 0.15, 0.5]))
    assert torch.allclose(toolcall_reward([2], weight=1.0, per_call=0.3, cap=0.5), torch.tensor([0.5]))


@pytest.mark.parametrize("call", [lambda: sil_weight(-1, 10), lambda: sil_weight(1, 0), lambda: sil_weight(1.5, 10),
                                  lambda: sil_weight(1, 10, coef=-1), lambda: toolcall_weight(0, 0),
                                  lambda: toolcall_weight(True, 3), lambda: toolcall_reward([-1], 1.0),
                                  lambda: toolcall_reward([1], -0.5)])
def test_schedule_bad_inputs(call):
    with pytest.raises(ValueError):
        call()


def test_baseline_buffer_median_and_recalibration():
    buffer = BaselineBuffer(capacity=3)
    assert buffer.median() == 0.0  # empty: no baseline yet
    buffer.push([0.1, 0.9, 0.5, 0.3])  # the oldest (0.1) falls out
    assert list(buffer.values) == pytest.approx([0.9, 0.5, 0.3])
    assert buffer.median() == pytest.approx(0.5)
    # A~ = r - P50
    assert torch.allclose(buffer.recalibrate([1.0, 0.0]), torch.tensor([0.5, -0.5]))
    even = BaselineBuffer(capacity=4)
    even.push(torch.tensor([[0.0, 1.0], [0.25, 0.75]]))
    assert even.median() == pytest.approx(0.5)  # mean of the middle two
    assert len(even) == 4


def test_baseline_buffer_bad_inputs():
    with pytest.raises(ValueError, match="capacity"):
        BaselineBuffer(capacity=0)
    with pytest.raises(ValueError, match="finite"):
        BaselineBuffer().push([float("nan")])


def test_replay_buffer_keeps_promising_fifo_and_expires():
    buffer = ReplayBuffer(capacity=3, threshold=0.5, max_age=2)
    stored = buffer.add(["a", "b", "c", "d"], rewards=[1, 0, 1, 1], advantages=[1.0, 0.5, 2.0, -1.0], step=0)
    assert stored == 2 and [e.item for e in buffer.entries] == ["a", "c"]  # adv > 0.5 only
    buffer.add(["e", "f"], rewards=[1, 1], advantages=[0.7, 0.9], step=1)
    assert [e.item for e in buffer.entries] == ["c", "e", "f"]  # capacity 3: "a" is pushed out
    entry = buffer.entries[0]
    assert (entry.reward, entry.advantage, entry.step) == (1.0, 2.0, 0)
    buffer.expire(step=3)  # step 0 is 3 > max_age steps old
    assert [e.item for e in buffer.entries] == ["e", "f"]
    buffer.expire(step=3)
    assert len(buffer) == 2


def test_replay_buffer_sampling_is_seeded_and_without_replacement():
    buffer = ReplayBuffer(capacity=100, threshold=0.0)
    buffer.add(list(range(20)), rewards=[1] * 20, advantages=[1] * 20, step=0)
    a = [e.item for e in buffer.sample(5, random.Random(3))]
    b = [e.item for e in buffer.sample(5, random.Random(3))]
    assert a == b and len(set(a)) == 5
    assert len(buffer.sample(50, random.Random(0))) == 20  # at most what it holds
    assert buffer.sample(0, random.Random(0)) == []


def test_threshold_one_on_grpo_advantages_keeps_only_rare_wins():
    # The code's trajectory_score_threshold = 1 on std-normalised GRPO advantages (sample std) in groups of 8:
    # a win with k successes in its group has A = (1 - k/8) / sqrt(8/7 * k/8 * (1 - k/8)):
    # k=1: 2.475, k=2: 1.620, k=3: 1.208 are stored; k=4: 0.935 and more are not.
    buffer = ReplayBuffer(threshold=1.0)
    for k in range(1, 8):
        rewards = torch.tensor([1.0] * k + [0.0] * (8 - k))
        advantages = grpo_advantages(rewards, 8)
        stored = buffer.add([k] * 8, rewards, advantages, step=0)
        assert stored == (k if k <= 3 else 0), (k, advantages[0].item())
    assert advantages.shape == (8,)
    rewards = torch.tensor([1.0, 1.0, 1.0, 0, 0, 0, 0, 0])
    assert grpo_advantages(rewards, 8)[0].item() == pytest.approx(0.625 / math.sqrt(8 / 7 * 0.375 * 0.625), rel=1e-5)


@pytest.mark.parametrize("kwargs", [dict(capacity=0), dict(max_age=-1), dict(threshold=float("inf")),
                                    dict(capacity=2.5)])
def test_replay_buffer_bad_settings(kwargs):
    with pytest.raises(ValueError):
        ReplayBuffer(**kwargs)


def test_replay_buffer_bad_add_and_sample():
    buffer = ReplayBuffer()
    with pytest.raises(ValueError, match="one length"):
        buffer.add(["a"], rewards=[1, 0], advantages=[1], step=0)
    with pytest.raises(ValueError, match="k must"):
        buffer.sample(-1, random.Random(0))
