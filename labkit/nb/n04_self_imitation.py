"""04 · Self-imitation with progressive exploration: learning to use a tool (SPEAR): the mechanism that notebooks/04_self_imitation.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import math
import random
from collections import deque
from dataclasses import dataclass
import torch


__all__ = ["sil_weight", "toolcall_weight", "toolcall_reward", "BaselineBuffer", "ReplayEntry",
           "ReplayBuffer"]


def _check_step(step, horizon, name) -> None:
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise ValueError(f"step must be an integer >= 0; got {step!r}")
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {horizon!r}")


def sil_weight(step: int, ramp_steps: int, coef: float = 1.0) -> float:
    """The self-imitation loss weight: a cosine ramp from 0 at step 0 to `coef` at `ramp_steps`.
    gamma(t) = coef * (1 - cos(pi * min(t / T, 1))) / 2."""
    _check_step(step, ramp_steps, "ramp_steps")
    if not coef >= 0:
        raise ValueError(f"coef must be >= 0; got {coef!r}")
    progress = min(step / ramp_steps, 1.0)
    return coef * (1 - math.cos(math.pi * progress)) / 2


def toolcall_weight(step: int, decay_steps: int) -> float:
    """The tool-call reward's weight: a cosine decay from 1 at step 0 to 0 at `decay_steps`, 0 after.
    w(t) = (1 + cos(pi * t / T)) / 2 for t <= T."""
    _check_step(step, decay_steps, "decay_steps")
    if step > decay_steps:
        return 0.0
    return (1 + math.cos(math.pi * step / decay_steps)) / 2


def toolcall_reward(calls, weight: float, per_call: float = 0.1, cap: float = 1.0) -> torch.Tensor:
    """The intrinsic reward of each completion: r_tool = min(per_call * calls, cap) * weight."""
    calls = torch.as_tensor(calls, dtype=torch.float32)
    if (calls < 0).any():
        raise ValueError("call counts must be >= 0")
    if not (weight >= 0 and per_call >= 0 and cap >= 0):
        raise ValueError(f"weight, per_call and cap must be >= 0; got {weight!r}, {per_call!r}, {cap!r}")
    return (per_call * calls).clamp(max=cap) * weight


class BaselineBuffer:
    """The most recent `capacity` values (here: group mean rewards); their median is the baseline
    that replayed trajectories are judged against now, not when they were sampled."""

    def __init__(self, capacity: int = 10240):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"BaselineBuffer capacity must be an integer >= 1; got {capacity!r}")
        self.values: deque[float] = deque(maxlen=capacity)

    def push(self, values) -> None:
        for v in torch.as_tensor(values, dtype=torch.float64).flatten().tolist():
            if not math.isfinite(v):
                raise ValueError(f"baseline values must be finite; got {v!r}")
            self.values.append(v)

    def median(self) -> float:
        """P50 of the stored values (the mean of the middle two for an even count); 0 when empty."""
        if not self.values:
            return 0.0
        ordered = sorted(self.values)
        mid = len(ordered) // 2
        return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2

    def recalibrate(self, rewards) -> torch.Tensor:
        """A~ = r - P50(buffer): the advantage of a replayed trajectory against today's baseline."""
        return torch.as_tensor(rewards, dtype=torch.float32) - self.median()

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class ReplayEntry:
    item: object  # what is replayed (a labkit.core.calculator.Trajectory in notebook 04)
    reward: float  # its outcome reward
    advantage: float  # its advantage when it was sampled
    step: int  # the step that sampled it


class ReplayBuffer:
    """Self-generated trajectories with a promising advantage, for self-imitation.

    add() keeps the items whose advantage exceeds `threshold` (FIFO, at most `capacity`);
    entries older than `max_age` steps are dropped (the policy has moved on: their stored
    log-probabilities would make the importance ratio meaningless). sample() draws uniformly
    without replacement with the caller's random.Random, so a seed fixes the draw."""

    def __init__(self, capacity: int = 2048, threshold: float = 0.0, max_age: int = 10):
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ValueError(f"ReplayBuffer capacity must be an integer >= 1; got {capacity!r}")
        if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
            raise ValueError(f"ReplayBuffer max_age must be an integer >= 0; got {max_age!r}")
        if not math.isfinite(threshold):
            raise ValueError(f"ReplayBuffer threshold must be finite; got {threshold!r}")
        self.capacity, self.threshold, self.max_age = capacity, float(threshold), max_age
        self.entries: deque[ReplayEntry] = deque(maxlen=capacity)

    def add(self, items, rewards, advantages, step: int) -> int:
        """Store the items with advantage > threshold; returns how many were stored."""
        rewards = torch.as_tensor(rewards, dtype=torch.float32).flatten().tolist()
        advantages = torch.as_tensor(advantages, dtype=torch.float32).flatten().tolist()
        items = list(items)
        if not (len(items) == len(rewards) == len(advantages)):
            raise ValueError(f"items, rewards and advantages must have one length; got "
                             f"{len(items)}, {len(rewards)}, {len(advantages)}")
        stored = 0
        for item, reward, advantage in zip(items, rewards, advantages):
            if advantage > self.threshold:
                self.entries.append(ReplayEntry(item, reward, advantage, step))
                stored += 1
        return stored

    def expire(self, step: int) -> None:
        """Drop entries sampled more than `max_age` steps before `step`."""
        self.entries = deque((e for e in self.entries if step - e.step <= self.max_age), maxlen=self.capacity)

    def sample(self, k: int, rng: random.Random) -> list[ReplayEntry]:
        """Up to k entries, uniformly without replacement."""
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise ValueError(f"k must be an integer >= 0; got {k!r}")
        return rng.sample(list(self.entries), min(k, len(self.entries)))

    def __len__(self) -> int:
        return len(self.entries)
