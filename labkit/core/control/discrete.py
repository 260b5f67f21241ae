"""Discrete stochastic worlds for the control notebooks (34 dichotomy of control), in torch.

Both worlds follow ``PointMass``'s interface, so ``evaluate_policy`` and the ``Trajectories`` /
``sample_windows`` sequence format work unchanged: a batch of states is a (n, S) one-hot tensor, an
action is any (n, A) tensor whose argmax is the action taken (a one-hot, or logits), every episode
lasts ``horizon`` steps (a terminal cell absorbs: the state stays, the reward is 0).

- ``BernoulliBandit``: one state, A arms; arm i pays 1 with probability ``means[i]`` (stochastic)
  or pays ``means[i]`` itself (``stochastic=False``: the same means, no randomness). The DoC
  paper's bandit is two arms with means (0.1, 0.9) (dice_rl's ``BernoulliBandit(bernoulli_prob=0.1)``).
- ``FrozenLake``: gym's 4x4 map (``SFFF / FHFH / FFFH / HFFG``), actions 0 left, 1 down, 2 right,
  3 up; with ``slip`` > 0 the agent moves in the intended direction with probability 1 - 2 slip and
  in each perpendicular one with probability ``slip`` (gym's ``is_slippery``: slip = 1/3); reward 1
  on entering G; H and G end the episode. ``slip=0`` is the deterministic lake.

The worlds' own randomness (slips, Bernoulli payouts) comes from ``world.generator``; ``reseed(seed)``
fixes it, so a seed fixes every episode. ``transition`` holds P(s' | s, a) as an (S, A, S) tensor (a
test compares it with gymnasium's table when gymnasium is installed). ``collect`` rolls out a
behaviour policy given as action probabilities and returns ``Trajectories``.
"""
from __future__ import annotations

import torch

from labkit.core.control.data import Trajectories, return_to_go

__all__ = ["BernoulliBandit", "FrozenLake", "LAKE_4X4", "collect", "greedy_policy", "policy_value"]

LAKE_4X4 = ("SFFF", "FHFH", "FFFH", "HFFG")
_MOVES = ((0, -1), (1, 0), (0, 1), (-1, 0))   # left, down, right, up (gym's order), as (row, col)


def _check_states(owner, states, n_states):
    if not isinstance(states, torch.Tensor) or states.ndim != 2 or states.shape[1] != n_states:
        shape = tuple(states.shape) if isinstance(states, torch.Tensor) else type(states).__name__
        raise ValueError(f"{owner}: states must be a (n, {n_states}) one-hot tensor; got {shape}")


def _check_actions(owner, states, actions, n_actions):
    if not isinstance(actions, torch.Tensor) or actions.shape != (states.shape[0], n_actions):
        shape = tuple(actions.shape) if isinstance(actions, torch.Tensor) else type(actions).__name__
        raise ValueError(f"{owner}: actions must be a ({states.shape[0]}, {n_actions}) tensor (argmax = the action); got {shape}")


class _Discrete:
    """Shared machinery: one-hot states, argmax actions, a world-owned generator, rollouts."""

    state_dim: int
    act_dim: int
    horizon: int

    def reseed(self, seed: int) -> None:
        """Fix the world's own randomness (slips, payouts)."""
        self.generator = torch.Generator().manual_seed(int(seed))

    def one_hot(self, index: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.one_hot(index.long(), self.state_dim).float()

    def index(self, states: torch.Tensor) -> torch.Tensor:
        _check_states(type(self).__name__, states, self.state_dim)
        return states.argmax(dim=1)

    def reset(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` start states (n, S), all the start cell."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"{type(self).__name__}.reset: n must be an integer >= 1; got {n!r}")
        return self.one_hot(torch.full((n,), self.start))

    def optimal_action(self, states: torch.Tensor) -> torch.Tensor:
        """One-hot of the greedy action of the optimal stationary policy (value iteration)."""
        return torch.nn.functional.one_hot(self.optimal[self.index(states)], self.act_dim).float()

    def rollout(self, states: torch.Tensor, policy) -> torch.Tensor:
        """Returns of a memoryless ``policy(states) -> (n, A)`` from ``states``, (n,)."""
        total = torch.zeros(states.shape[0])
        for _ in range(self.horizon):
            states, reward = self.step(states, policy(states))
            total += reward
        return total


class BernoulliBandit(_Discrete):
    """A one-step bandit: arm i pays Bernoulli(means[i]) (stochastic) or means[i] (deterministic)."""

    def __init__(self, means=(0.1, 0.9), stochastic: bool = True):
        means = tuple(means) if isinstance(means, (tuple, list)) else means
        if not isinstance(means, tuple) or len(means) < 2 or not all(
                not isinstance(m, bool) and isinstance(m, (int, float)) and 0 <= m <= 1 for m in means):
            raise ValueError(f"BernoulliBandit: means must be two or more probabilities in [0, 1]; got {means!r}")
        if not isinstance(stochastic, bool):
            raise ValueError(f"BernoulliBandit: stochastic must be True or False; got {stochastic!r}")
        self.means = torch.tensor(means, dtype=torch.float32)
        self.stochastic = stochastic
        self.state_dim, self.act_dim, self.horizon, self.start = 1, len(means), 1, 0
        self.transition = torch.ones(1, self.act_dim, 1)
        self.optimal = torch.tensor([int(self.means.argmax())])
        self.reseed(0)

    def step(self, states, actions):
        _check_states("BernoulliBandit", states, 1)
        _check_actions("BernoulliBandit", states, actions, self.act_dim)
        p = self.means[torch.nan_to_num(actions.float()).argmax(dim=1)]
        reward = (torch.rand(p.shape, generator=self.generator) < p).float() if self.stochastic else p.clone()
        return states.clone(), reward

    def terminal(self, states):
        return torch.zeros(states.shape[0], dtype=torch.bool)

    def outcome(self, states, next_states, rewards):
        """The environment's part of a step as an index in 0..n_outcomes-1: here the payout (0 or 1,
        rounded in the deterministic bandit, where the arm alone fixes it)."""
        return rewards.round().long().clamp(0, 1)

    n_outcomes = 2

    def expected_return(self, probs: torch.Tensor) -> float:
        """The exact expected return of a policy given as arm probabilities (A,)."""
        return float((probs * self.means).sum())


class FrozenLake(_Discrete):
    """gym's FrozenLake on a map of S/F/H/G rows; ``slip`` = the probability of each perpendicular move."""

    def __init__(self, slip: float = 1 / 3, horizon: int = 30, desc=LAKE_4X4, gamma: float = 0.99):
        if isinstance(slip, bool) or not isinstance(slip, (int, float)) or not 0 <= slip <= 0.5:
            raise ValueError(f"FrozenLake: slip must be a number in [0, 0.5]; got {slip!r}")
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise ValueError(f"FrozenLake: horizon must be an integer >= 1; got {horizon!r}")
        rows = tuple(desc)
        if not rows or len({len(r) for r in rows}) != 1 or any(set(r) - set("SFHG") for r in rows) or \
                "".join(rows).count("S") != 1 or "".join(rows).count("G") < 1:
            raise ValueError(f"FrozenLake: desc must be equal-length rows of S/F/H/G with one S and a G; got {desc!r}")
        self.desc, self.slip, self.horizon, self.gamma = rows, float(slip), horizon, float(gamma)
        self.n_rows, self.n_cols = len(rows), len(rows[0])
        cells = "".join(rows)
        self.state_dim, self.act_dim = len(cells), 4
        self.start = cells.index("S")
        self.holes = torch.tensor([c == "H" for c in cells])
        self.goals = torch.tensor([c == "G" for c in cells])
        self.terminals = self.holes | self.goals
        self.transition = self._transition()
        self.optimal = greedy_policy(self, self.gamma)
        self.reseed(0)

    def _move(self, cell, direction):
        r, c = divmod(cell, self.n_cols)
        dr, dc = _MOVES[direction]
        r, c = min(max(r + dr, 0), self.n_rows - 1), min(max(c + dc, 0), self.n_cols - 1)
        return r * self.n_cols + c

    def _transition(self):
        p = torch.zeros(self.state_dim, 4, self.state_dim, dtype=torch.float64)
        for s in range(self.state_dim):
            for a in range(4):
                if self.terminals[s]:
                    p[s, a, s] = 1.0
                    continue
                # 1 - 2 slip intended, slip each perpendicular ((a - 1) % 4 and (a + 1) % 4)
                for direction, prob in (((a - 1) % 4, self.slip), (a, 1 - 2 * self.slip), ((a + 1) % 4, self.slip)):
                    p[s, a, self._move(s, direction)] += prob
        return p.float()

    def step(self, states, actions):
        s = self.index(states)
        _check_actions("FrozenLake", states, actions, 4)
        a = torch.nan_to_num(actions.float()).argmax(dim=1)
        nxt = torch.multinomial(self.transition[s, a], 1, generator=self.generator).squeeze(1)
        reward = (self.goals[nxt] & ~self.terminals[s]).float()
        return self.one_hot(nxt), reward

    def terminal(self, states):
        return self.terminals[self.index(states)]

    n_outcomes = property(lambda self: 2 * self.state_dim)

    def outcome(self, states, next_states, rewards):
        """(r, s') as one index r * S + s' (the environment's part of a step)."""
        return rewards.round().long().clamp(0, 1) * self.state_dim + self.index(next_states)


def policy_value(world, probs: torch.Tensor, gamma: float = 1.0, horizon: int | None = None) -> torch.Tensor:
    """V(s) of a stationary policy ``probs`` (S, A) over ``horizon`` steps (the world's by default)
    with discount ``gamma``, by dynamic programming on the known model: the exact expected return."""
    horizon = world.horizon if horizon is None else horizon
    p = world.transition.double()
    reward = (world.goals[None, None, :] & ~world.terminals[:, None, None]).double() if hasattr(world, "goals") \
        else world.means.double()[None, :, None].expand(p.shape)
    v = torch.zeros(world.state_dim, dtype=torch.float64)
    for _ in range(horizon):
        q = (p * (reward + gamma * v[None, None, :])).sum(-1)
        v = (probs.double() * q).sum(-1)
    return v


def greedy_policy(world, gamma: float = 0.99, iterations: int = 1000) -> torch.Tensor:
    """The greedy action per state of discounted value iteration (ties to the lowest action)."""
    p = world.transition.double()
    reward = (world.goals[None, None, :] & ~world.terminals[:, None, None]).double()
    v = torch.zeros(world.state_dim, dtype=torch.float64)
    for _ in range(iterations):
        q = (p * (reward + gamma * v[None, None, :])).sum(-1)
        v = q.max(dim=1).values * (~world.terminals).double()
    return q.argmax(dim=1)


def collect(world, n_episodes: int, behaviour, generator: torch.Generator | None = None) -> Trajectories:
    """Roll out ``behaviour(states, t) -> (n, A)`` action probabilities for ``n_episodes`` episodes of
    the world's horizon. Actions are stored one-hot; ``kinds`` is 0 (one behaviour: callers that mix
    behaviours concatenate). The world's generator draws its own randomness, ``generator`` the actions."""
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
        raise ValueError(f"collect: n_episodes must be an integer >= 1; got {n_episodes!r}")
    s = world.reset(n_episodes)
    states, actions, rewards = [], [], []
    for t in range(world.horizon):
        probs = behaviour(s, t)
        if not isinstance(probs, torch.Tensor) or probs.shape != (n_episodes, world.act_dim) or bool((probs < 0).any()):
            raise ValueError(f"collect: behaviour must return ({n_episodes}, {world.act_dim}) action probabilities")
        a = torch.nn.functional.one_hot(torch.multinomial(probs, 1, generator=generator).squeeze(1), world.act_dim).float()
        states.append(s)
        actions.append(a)
        s, r = world.step(s, a)
        rewards.append(r)
    states, actions, rewards = torch.stack(states, 1), torch.stack(actions, 1), torch.stack(rewards, 1)
    return Trajectories(states, actions, rewards, return_to_go(rewards), torch.zeros(n_episodes, dtype=torch.long),
                        actions.clone(), torch.zeros(actions.shape[:2], dtype=torch.bool))
