"""The batched evaluator of the control notebooks: all episodes step together.

``evaluate_policy(world, policy, n_episodes, seed, context, target_return)`` runs ``policy`` on
``n_episodes`` start states drawn from ``seed`` (the same states for every policy evaluated with
that seed), feeding it at step t the last ``context`` steps as a ``SequenceBatch`` whose
return-to-go starts at ``target_return`` and drops by each reward received (the decision
transformer's protocol), with the current step's action slot zero. It returns the returns, and the
normalised score ``(R - R_random) / (R_optimal - R_random)`` against the optimal policy and a
uniform random one on the same start states (D4RL's normalisation, without the x100).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from labkit.core.control.data import SequenceBatch

__all__ = ["EvalResult", "evaluate_policy"]


@dataclass(frozen=True)
class EvalResult:
    returns: torch.Tensor        # (n,) the policy's return per episode
    optimal: torch.Tensor        # (n,) the optimal policy's
    random: torch.Tensor         # (n,) a uniform random policy's

    @property
    def mean_return(self) -> float:
        return float(self.returns.mean())

    @property
    def score(self) -> float:
        """Normalised return: 0 = random, 1 = optimal (mean over episodes first)."""
        span = float(self.optimal.mean() - self.random.mean())
        return float((self.returns.mean() - self.random.mean()) / span) if span > 0 else 0.0


def evaluate_policy(world, policy, n_episodes: int, seed: int, context: int, target_return: float) -> EvalResult:
    """Run ``policy(batch: SequenceBatch) -> (n, A)`` actions for the batch's last step."""
    if isinstance(context, bool) or not isinstance(context, int) or context < 1:
        raise ValueError(f"evaluate_policy: context must be an integer >= 1; got {context!r}")
    if isinstance(target_return, bool) or not isinstance(target_return, (int, float)):
        raise ValueError(f"evaluate_policy: target_return must be a number; got {target_return!r}")
    generator = torch.Generator().manual_seed(int(seed))
    start = world.reset(n_episodes, generator)
    states, actions, rtg = [start], [], [torch.full((n_episodes,), float(target_return))]
    total = torch.zeros(n_episodes)
    s = start
    with torch.no_grad():
        for t in range(world.horizon):
            lo = max(0, t + 1 - context)
            hist_actions = torch.stack(actions[lo:t] + [torch.zeros(n_episodes, world.act_dim)], 1)
            batch = SequenceBatch(states=torch.stack(states[lo:t + 1], 1), actions=hist_actions,
                                  rtg=torch.stack(rtg[lo:t + 1], 1)[..., None],
                                  timesteps=torch.arange(lo, t + 1).expand(n_episodes, -1),
                                  mask=torch.ones(n_episodes, t + 1 - lo))
            a = policy(batch)
            if not isinstance(a, torch.Tensor) or a.shape != (n_episodes, world.act_dim):
                got = tuple(a.shape) if isinstance(a, torch.Tensor) else type(a).__name__
                raise ValueError(f"evaluate_policy: policy must return a ({n_episodes}, {world.act_dim}) tensor; got {got}")
            a = a.detach().float().clamp(-1, 1)
            s, r = world.step(s, a)
            total += r
            actions.append(a)
            states.append(s)
            rtg.append(rtg[-1] - r)
        optimal = world.rollout(start, world.optimal_action)
        random_gen = torch.Generator().manual_seed(int(seed) + 1)
        random = world.rollout(start, lambda x: torch.rand(x.shape[0], world.act_dim, generator=random_gen) * 2 - 1)
    return EvalResult(returns=total, optimal=optimal, random=random)
