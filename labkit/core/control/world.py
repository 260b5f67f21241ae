"""A batched point-mass world with a known optimal policy (the control notebooks' environment).

State ``s = (p_x, p_y, g_x, g_y)``: the agent's position and the goal's, both in ``[-1, 1]^2``.
Action ``a`` in ``[-1, 1]^2`` (clipped), dynamics ``p' = clip(p + speed * a, -1, 1)``, reward 1 on every
step that ends within ``radius`` of the goal, else 0; episodes last ``horizon`` steps. The optimal
policy heads straight for the goal at full speed and stops on it:
``a* = clip((g - p) / speed, -1, 1)``. Everything is a tensor op over a batch of episodes, and the
start states come from a ``torch.Generator``, so a seed fixes every episode.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["PointMass"]


def _check_positive(name, value, kind=float):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"PointMass: {name} must be a positive number; got {value!r}")
    if kind is int and int(value) != value:
        raise ValueError(f"PointMass: {name} must be a positive integer; got {value!r}")
    return kind(value)


@dataclass(frozen=True)
class PointMass:
    horizon: int = 16
    speed: float = 0.25
    radius: float = 0.1

    state_dim = 4
    act_dim = 2

    def __post_init__(self):
        _check_positive("horizon", self.horizon, int)
        _check_positive("speed", self.speed)
        _check_positive("radius", self.radius)

    def reset(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` start states, (n, 4): position and goal uniform in the square."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"PointMass.reset: n must be an integer >= 1; got {n!r}")
        return torch.rand(n, 4, generator=generator) * 2 - 1

    def _check(self, states, actions=None):
        if not isinstance(states, torch.Tensor) or states.ndim != 2 or states.shape[1] != 4:
            shape = tuple(states.shape) if isinstance(states, torch.Tensor) else type(states).__name__
            raise ValueError(f"PointMass: states must be a (n, 4) tensor; got {shape}")
        if actions is not None and (not isinstance(actions, torch.Tensor) or actions.shape != (states.shape[0], 2)):
            shape = tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__
            raise ValueError(f"PointMass: actions must be a ({states.shape[0]}, 2) tensor; got {shape}")

    def step(self, states: torch.Tensor, actions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(next_states, rewards) for a batch; non-finite actions count as 0."""
        self._check(states, actions)
        a = torch.nan_to_num(actions.to(states.dtype), nan=0.0, posinf=1.0, neginf=-1.0).clamp(-1, 1)
        position = (states[:, :2] + self.speed * a).clamp(-1, 1)
        goal = states[:, 2:]
        reward = ((position - goal).norm(dim=1) < self.radius).to(states.dtype)
        return torch.cat([position, goal], dim=1), reward

    def optimal_action(self, states: torch.Tensor) -> torch.Tensor:
        """a* = clip((g - p) / speed, -1, 1): full speed toward the goal, landing on it."""
        self._check(states)
        return ((states[:, 2:] - states[:, :2]) / self.speed).clamp(-1, 1)

    def rollout(self, states: torch.Tensor, policy) -> torch.Tensor:
        """Returns of a memoryless ``policy(states) -> actions`` from ``states`` (n,)."""
        self._check(states)
        total = torch.zeros(states.shape[0])
        for _ in range(self.horizon):
            states, reward = self.step(states, policy(states))
            total += reward
        return total
