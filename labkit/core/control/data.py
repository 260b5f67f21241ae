"""Offline datasets for the control notebooks: behaviour policies of mixed quality, trajectories with
return-to-go, action-label noise, and the sequence format of decision transformers.

``make_dataset`` rolls out a mixture of behaviour policies in a world (``PointMass``) and keeps whole
trajectories; ``corrupt_actions`` replaces a fraction of the *stored action labels* by uniform random
actions (the states and rewards stay those the true actions produced: label noise, not a worse
policy); ``sample_windows`` cuts windows of ``context`` consecutive steps into a ``SequenceBatch``
``(R_t, s_t, a_t)_{t = start..start+K-1}``. Windows never need padding: trajectories all have the
world's horizon, and a model trained on every position of a window sees the short contexts of an
episode's first steps in the windows that start at 0.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

__all__ = ["BEHAVIOURS", "behaviour_action", "return_to_go", "Trajectories", "make_dataset", "corrupt_actions",
           "SequenceBatch", "sample_windows", "take_windows"]

BEHAVIOURS = ("expert", "medium", "random")


def behaviour_action(kind: str, world, states: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One step of a behaviour policy: ``expert`` (a* plus N(0, 0.1^2) noise), ``medium`` (a uniform
    random action on half the steps, the expert's on the others), ``random`` (uniform in [-1, 1]^2)."""
    if kind not in BEHAVIOURS:
        raise ValueError(f"behaviour must be one of {', '.join(BEHAVIOURS)}; got {kind!r}")
    n = states.shape[0]
    uniform = torch.rand(n, world.act_dim, generator=generator) * 2 - 1
    expert = (world.optimal_action(states) + 0.1 * torch.randn(n, world.act_dim, generator=generator)).clamp(-1, 1)
    if kind == "expert":
        return expert
    if kind == "random":
        return uniform
    coin = torch.rand(n, 1, generator=generator) < 0.5
    return torch.where(coin, uniform, expert)


def return_to_go(rewards: torch.Tensor) -> torch.Tensor:
    """R_t = sum_{t' >= t} r_t' along the last dimension (undiscounted, as decision transformers)."""
    if not isinstance(rewards, torch.Tensor) or rewards.ndim < 1:
        raise ValueError("return_to_go: rewards must be a tensor with a time dimension last")
    return rewards.flip(-1).cumsum(-1).flip(-1)


@dataclass(frozen=True)
class Trajectories:
    """N trajectories of H steps: ``states`` (N, H, S) before each action, ``actions`` (N, H, A) the
    stored labels, ``rewards`` and ``rtg`` (N, H), ``kinds`` (N,) the index into BEHAVIOURS,
    ``clean_actions`` (N, H, A) the actions actually taken, ``noisy`` (N, H) which labels were corrupted."""
    states: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    rtg: torch.Tensor
    kinds: torch.Tensor
    clean_actions: torch.Tensor
    noisy: torch.Tensor

    @property
    def returns(self) -> torch.Tensor:
        return self.rtg[:, 0]

    def __len__(self) -> int:
        return self.states.shape[0]


def _check_mix(mix) -> dict:
    if not isinstance(mix, dict) or not mix:
        raise ValueError(f"mix must be a dict behaviour -> fraction, e.g. {{'expert': 0.3, 'medium': 0.4, 'random': 0.3}}; got {mix!r}")
    for kind, share in mix.items():
        if kind not in BEHAVIOURS:
            raise ValueError(f"mix: behaviour must be one of {', '.join(BEHAVIOURS)}; got {kind!r}")
        if isinstance(share, bool) or not isinstance(share, (int, float)) or not share >= 0:
            raise ValueError(f"mix: the share of {kind!r} must be a number >= 0; got {share!r}")
    total = sum(mix.values())
    if not total > 0:
        raise ValueError("mix: the shares must not all be 0")
    return {k: v / total for k, v in mix.items()}


def make_dataset(world, n_episodes: int, mix: dict, generator: torch.Generator | None = None) -> Trajectories:
    """Roll out ``n_episodes`` episodes, each from one behaviour policy; the counts follow ``mix``
    (largest remainder), the episodes of each kind are contiguous."""
    if isinstance(n_episodes, bool) or not isinstance(n_episodes, int) or n_episodes < 1:
        raise ValueError(f"make_dataset: n_episodes must be an integer >= 1; got {n_episodes!r}")
    shares = _check_mix(mix)
    counts = {k: int(n_episodes * s) for k, s in shares.items()}
    for k in sorted(shares, key=lambda k: -(n_episodes * shares[k] - counts[k]))[: n_episodes - sum(counts.values())]:
        counts[k] += 1
    parts = []
    for kind in BEHAVIOURS:
        n = counts.get(kind, 0)
        if n == 0:
            continue
        s = world.reset(n, generator)
        states, actions, rewards = [], [], []
        for _ in range(world.horizon):
            a = behaviour_action(kind, world, s, generator)
            states.append(s)
            actions.append(a)
            s, r = world.step(s, a)
            rewards.append(r)
        parts.append((torch.stack(states, 1), torch.stack(actions, 1), torch.stack(rewards, 1),
                      torch.full((n,), BEHAVIOURS.index(kind))))
    states, actions, rewards, kinds = (torch.cat([p[i] for p in parts]) for i in range(4))
    return Trajectories(states, actions, rewards, return_to_go(rewards), kinds, actions.clone(),
                        torch.zeros(actions.shape[:2], dtype=torch.bool))


def corrupt_actions(data: Trajectories, fraction: float, generator: torch.Generator | None = None) -> Trajectories:
    """Replace each stored action label, independently with probability ``fraction``, by a uniform
    random action in [-1, 1]^A. States, rewards and return-to-go are unchanged (they came from the
    actions really taken, kept in ``clean_actions``)."""
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ValueError(f"corrupt_actions: fraction must be a number in [0, 1]; got {fraction!r}")
    noisy = torch.rand(data.actions.shape[:2], generator=generator) < fraction
    random = torch.rand(data.actions.shape, generator=generator) * 2 - 1
    actions = torch.where(noisy[..., None], random, data.clean_actions)
    return replace(data, actions=actions, noisy=noisy)


@dataclass(frozen=True)
class SequenceBatch:
    """The sequence format: B windows of K steps. ``states`` (B, K, S), ``actions`` (B, K, A),
    ``rtg`` (B, K, 1), ``timesteps`` (B, K) long, ``mask`` (B, K) 1 where a step is real.
    A decision transformer reads the tokens R_1, s_1, a_1, R_2, s_2, a_2, ... and predicts a_t
    from the output at s_t."""
    states: torch.Tensor
    actions: torch.Tensor
    rtg: torch.Tensor
    timesteps: torch.Tensor
    mask: torch.Tensor

    def __post_init__(self):
        b, k = self.states.shape[:2]
        for name, shape in (("actions", (b, k)), ("rtg", (b, k, 1)), ("timesteps", (b, k)), ("mask", (b, k))):
            got = tuple(getattr(self, name).shape)
            if got[: len(shape)] != shape:
                raise ValueError(f"SequenceBatch: {name} must start with shape {shape} to match states {tuple(self.states.shape)}; got {got}")


def sample_windows(data: Trajectories, batch_size: int, context: int, generator: torch.Generator | None = None,
                   actions: torch.Tensor | None = None) -> SequenceBatch:
    """``batch_size`` windows of ``context`` consecutive steps, episodes and starts uniform.
    ``actions`` (N, H, A) replaces the stored labels (e.g. ``data.clean_actions``)."""
    n, horizon = data.states.shape[:2]
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"sample_windows: batch_size must be an integer >= 1; got {batch_size!r}")
    if isinstance(context, bool) or not isinstance(context, int) or not 1 <= context <= horizon:
        raise ValueError(f"sample_windows: context must be an integer in 1..{horizon} (the horizon); got {context!r}")
    episode = torch.randint(n, (batch_size,), generator=generator)
    start = torch.randint(horizon - context + 1, (batch_size,), generator=generator)
    return take_windows(data, episode, start, context, actions)


def take_windows(data: Trajectories, episode: torch.Tensor, start: torch.Tensor, context: int,
                 actions: torch.Tensor | None = None) -> SequenceBatch:
    """The windows ``data[episode[i], start[i] : start[i] + context]`` as a SequenceBatch."""
    if episode.shape != start.shape or episode.ndim != 1:
        raise ValueError(f"take_windows: episode and start must be 1-D of one length; got {tuple(episode.shape)} and {tuple(start.shape)}")
    if int(start.max()) + context > data.states.shape[1] or int(start.min()) < 0:
        raise ValueError(f"take_windows: windows must lie inside the horizon {data.states.shape[1]}")
    steps = start[:, None] + torch.arange(context)
    rows = episode[:, None]
    labels = data.actions if actions is None else actions
    return SequenceBatch(states=data.states[rows, steps], actions=labels[rows, steps],
                         rtg=data.rtg[rows, steps][..., None], timesteps=steps,
                         mask=torch.ones(len(episode), context))
