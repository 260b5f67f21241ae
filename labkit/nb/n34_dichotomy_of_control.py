"""34 · Dichotomy of control: condition on what you can control, not on luck: the mechanism that notebooks/34_dichotomy_of_control.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import torch
from torch import nn
from torch.nn import functional as F
from labkit.core.control.data import SequenceBatch
from labkit.core.control.models import DecisionTransformer

__all__ = ["SequencePolicy", "DoC", "straight_through", "contrastive_mi", "MI_MODES", "MI_STEPS", "doc_losses", "select_latent"]


class SequencePolicy(nn.Module):
    """pi(a_t | c_t, s_t, history) as logits: the decision transformer of labkit.core.control (its token
    embedding R_t, s_t, a_t and causal blocks) with a categorical head on the s_t tokens. The DT arm
    conditions on the return-to-go c_t = R_t; DoC's policy reads c_t = 0 and a latent z appended to
    every state, pi(a_t | s_t, z, history)."""

    def __init__(self, state_dim, act_dim, cond_dim=0, hidden=32, n_layer=2, n_head=1, max_timestep=64,
                 rtg_scale=1.0, dropout=0.1):
        super().__init__()
        self.body = DecisionTransformer(state_dim + cond_dim, act_dim, hidden=hidden, n_layer=n_layer, n_head=n_head,
                                        max_timestep=max_timestep, rtg_scale=rtg_scale, dropout=dropout)
        del self.body.heads                        # the continuous heads; the logits head replaces them
        self.logits = nn.Linear(hidden, act_dim)
        self.cond_dim = cond_dim

    def forward(self, batch: SequenceBatch, z: torch.Tensor | None = None) -> torch.Tensor:
        """(B, K, A) action logits; ``z`` (B, cond_dim) is appended to every state of the window."""
        if (z is None) != (self.cond_dim == 0):
            raise ValueError(f"SequencePolicy: pass z of width {self.cond_dim} exactly when cond_dim > 0")
        if z is not None:
            if z.shape != (batch.states.shape[0], self.cond_dim):
                raise ValueError(f"SequencePolicy: z must be ({batch.states.shape[0]}, {self.cond_dim}); got {tuple(z.shape)}")
            states = torch.cat([batch.states, z[:, None, :].expand(-1, batch.states.shape[1], -1)], dim=-1)
            batch = SequenceBatch(states, batch.actions, torch.zeros_like(batch.rtg), batch.timesteps, batch.mask)
        x = self.body.embed(batch)
        for block in self.body.blocks:
            x = block(x)
        b, n, h = x.shape
        return self.logits(self.body.norm(x).reshape(b, n // 3, 3, h)[:, :, 1])


def _mlp(inp, hidden, out):
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out))


class DoC(nn.Module):
    """Dichotomy of control's five parts over a categorical latent z of ``latents`` values:
    q(z | tau) (``encoder``, over the whole episode), pi(a | s, z, history) (``policy``), the prior
    p(z | s_0), the value V(s_0, z) and the energy f(z, o | s, a) = E[s, a, o] . z of the
    environment's outcome o = (r_t, s_{t+1}) (a table, as the authors' tabular energy_net)."""

    def __init__(self, state_dim, act_dim, horizon, n_outcomes, latents=8, hidden=32, n_layer=2, dropout=0.1):
        super().__init__()
        self.latents, self.horizon = latents, horizon
        self.policy = SequencePolicy(state_dim, act_dim, cond_dim=latents, hidden=hidden, n_layer=n_layer,
                                     max_timestep=horizon, dropout=dropout)
        self.encoder = _mlp(horizon * (state_dim + act_dim + 1), 2 * hidden, latents)
        self.prior = _mlp(state_dim, hidden, latents)
        self.value = _mlp(state_dim + latents, hidden, 1)
        self.energy = nn.Parameter(0.1 * torch.randn(state_dim, act_dim, n_outcomes, latents))

    def encode(self, states, actions, rewards):
        """q(z | tau) logits (B, latents) from whole episodes (B, H, S), (B, H, A), (B, H)."""
        return self.encoder(torch.cat([states, actions, rewards[..., None]], dim=-1).flatten(1))

    def value_of(self, s0, z):
        """V(s_0, z): the return predicted for an episode from s_0 whose latent is z."""
        return self.value(torch.cat([s0, z], dim=-1)).squeeze(-1)


MI_MODES = ("minimax", "joint")
MI_STEPS = ("sum", "mean")


def straight_through(logits: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """A one-hot sample z ~ softmax(logits) whose gradient is that of the probabilities (straight-through)."""
    probs = logits.softmax(-1)
    index = torch.multinomial(probs.detach(), 1, generator=generator).squeeze(-1)
    hard = F.one_hot(index, logits.shape[-1]).to(probs.dtype)
    return hard + probs - probs.detach()


def contrastive_mi(energy, s, a, o, z, log_rho, mask=None):
    """The contrastive bound on MI(z; r_t, s_{t+1} | s_t, a_t), averaged over the masked steps.

    energy (S, A, O, L); s, a, o (N,) indices; z (N, L); log_rho (S, A, O) = log rho(o | s, a), the
    outcomes' distribution the negatives come from (-inf where impossible); mask (N,) 1 = counted."""
    if z.ndim != 2 or z.shape != (s.shape[0], energy.shape[-1]) or not (s.shape == a.shape == o.shape):
        raise ValueError(f"contrastive_mi: s, a, o must be (N,) and z (N, {energy.shape[-1]}); got "
                         f"{tuple(s.shape)}, {tuple(a.shape)}, {tuple(o.shape)}, {tuple(z.shape)}")
    if log_rho.shape != energy.shape[:3]:
        raise ValueError(f"contrastive_mi: log_rho must be {tuple(energy.shape[:3])}; got {tuple(log_rho.shape)}")
    # f(z, o~ | s, a) = E[s, a, o~] . z for every outcome o~   (N, O)
    f = torch.einsum("nol,nl->no", energy[s, a], z)
    positive = f.gather(1, o[:, None]).squeeze(1)
    mask = torch.ones_like(positive) if mask is None else mask.to(positive.dtype)
    rows = log_rho[s, a]
    rows = rows.masked_fill(~torch.isfinite(rows).any(1, keepdim=True) | (mask[:, None] == 0), 0.0)  # unseen (s, a): unused
    # log E_{rho(o~ | s, a)} exp f(z, o~ | s, a)
    negative = torch.logsumexp(f + rows, dim=1)
    bound = positive - negative
    return (bound * mask).sum() / mask.sum().clamp(min=1)


def doc_losses(model: DoC, episodes, windows: SequenceBatch, steps, log_rho, beta=1.0, mi_mode="minimax",
               generator=None, mi_steps="mean"):
    """DoC's loss on a batch. ``episodes`` = (states, actions, rewards, returns) of the B whole episodes
    (B, H, .); ``windows`` the B training windows cut from them; ``steps`` = (s, a, o, mask), each
    (B, H), the indices of every step of those episodes and 1 where the state is not terminal.

    minimax (the paper): pi, q, V, p minimise  L_pi + L_V + L_prior + beta * sum_t I_f(z; o_t | s_t, a_t), while
    f maximises the bound (so that it estimates the MI). joint (the released code): everything
    minimises L_pi + L_V + L_prior - beta * I_f."""
    if mi_mode not in MI_MODES:
        raise ValueError(f"doc_losses: mi_mode must be one of {', '.join(MI_MODES)}; got {mi_mode!r}")
    if mi_steps not in MI_STEPS:
        raise ValueError(f"doc_losses: mi_steps must be one of {', '.join(MI_STEPS)}; got {mi_steps!r}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not beta >= 0:
        raise ValueError(f"doc_losses: beta must be a number >= 0; got {beta!r}")
    states, actions, rewards, returns = episodes
    # z ~ q(z | tau), straight-through
    q_logits = model.encode(states, actions, rewards)
    z = straight_through(q_logits, generator)
    # L_pi = -log pi(a_t | s_t, z, history) over the window's non-terminal steps
    logits = model.policy(windows, z)
    policy_mask = windows.mask
    nll = F.cross_entropy(logits.flatten(0, 1), windows.actions.argmax(-1).flatten(), reduction="none")
    policy_loss = (nll * policy_mask.flatten()).sum() / policy_mask.sum().clamp(min=1)
    # L_V = (V(s_0, z) - R_0)^2
    value_loss = F.mse_loss(model.value_of(states[:, 0], z), returns)
    # L_prior = KL(q(z | tau) || p(z | s_0)), fitting the prior only (q held fixed)
    q = q_logits.softmax(-1).detach()
    prior_loss = (q * (q.clamp_min(1e-8).log() - model.prior(states[:, 0]).log_softmax(-1))).sum(-1).mean()
    s, a, o, mask = (t.flatten() for t in steps)
    zz = z[:, None, :].expand(-1, states.shape[1], -1).flatten(0, 1)
    # sum_t I_f over an episode's steps (the paper's sum over t), averaged over the B episodes; or one step's
    steps_per_episode = mask.sum() / states.shape[0] if mi_steps == "sum" else 1.0
    if mi_mode == "minimax":
        mi_q = steps_per_episode * contrastive_mi(model.energy.detach(), s, a, o, zz, log_rho, mask)   # q, pi see f fixed
        mi_f = steps_per_episode * contrastive_mi(model.energy, s, a, o, zz.detach(), log_rho, mask)   # f sees z fixed
        loss = policy_loss + value_loss + prior_loss + beta * mi_q - mi_f
    else:
        mi_f = steps_per_episode * contrastive_mi(model.energy, s, a, o, zz, log_rho, mask)
        loss = policy_loss + value_loss + prior_loss - beta * mi_f
    return loss, {"policy": float(policy_loss.detach()), "value": float(value_loss.detach()),
                  "prior": float(prior_loss.detach()), "mi": float(mi_f.detach())}


@torch.no_grad()
def select_latent(model: DoC, s0: torch.Tensor, samples: int = 100, generator=None):
    """z* = argmax over ``samples`` draws z ~ p(z | s_0) of V(s_0, z) (the authors' inference);
    returns (one-hot z* (n, L), V(s_0, z*) (n,))."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"select_latent: samples must be an integer >= 1; got {samples!r}")
    probs = model.prior(s0).softmax(-1)
    draws = torch.multinomial(probs, samples, replacement=True, generator=generator)        # (n, samples)
    z = F.one_hot(draws, model.latents).float()                                             # (n, samples, L)
    values = model.value_of(s0[:, None, :].expand(-1, samples, -1), z)                      # (n, samples)
    best = values.argmax(dim=1)
    return z[torch.arange(len(s0)), best], values[torch.arange(len(s0)), best]
