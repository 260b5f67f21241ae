"""33 · Decision Mamba: a multi-grained selective state space model and self-evolving labels: the mechanism that notebooks/33_decision_mamba.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import math
import torch
from torch import nn
from torch.nn import functional as F
from labkit.core.control.models import Heads, TokenEmbedding

__all__ = ["selective_scan", "associative_scan", "SCAN_MODES", "Mixer", "MultiGrainedBlock", "DecisionMamba",
           "GRAINS", "pser_beta", "pser_target", "dm_loss"]


SCAN_MODES = ("parallel", "sequential")


def _shape(t):
    return tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__


def associative_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """All h_t of h_t = a_t * h_{t-1} + b_t (h_0 = 0) along dim 1, in ceil(log2 L) vectorised steps.

    The pairs (a, b) compose associatively, (a_1, b_1) then (a_2, b_2) = (a_2 a_1, a_2 b_1 + b_2), so
    a Hillis-Steele prefix scan doubles the span each element covers at every step."""
    if a.shape != b.shape:
        raise ValueError(f"associative_scan: a and b must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    length, k = a.shape[1], 1
    while k < length:
        # (a_{t-k}, b_{t-k}) spans the steps before the span of (a_t, b_t): compose them
        b = torch.cat([b[:, :k], a[:, k:] * b[:, :-k] + b[:, k:]], dim=1)
        a = torch.cat([a[:, :k], a[:, k:] * a[:, :-k]], dim=1)
        k *= 2
    return b


def selective_scan(x, delta, A, B, C, D=None, mode: str = "parallel"):
    """Mamba's S6 scan. x, delta: (b, L, d); A: (d, n); B, C: (b, L, n); D: (d,) or None -> y (b, L, d)."""
    if mode not in SCAN_MODES:
        raise ValueError(f"selective_scan: mode must be one of {', '.join(SCAN_MODES)}; got {mode!r}")
    if not isinstance(x, torch.Tensor) or x.ndim != 3:
        raise ValueError(f"selective_scan: x must be a (batch, length, channels) tensor; got {_shape(x)}")
    b, length, d = x.shape
    if not isinstance(A, torch.Tensor) or A.ndim != 2 or A.shape[0] != d:
        raise ValueError(f"selective_scan: A must be ({d}, state) for x with {d} channels; got {_shape(A)}")
    n = A.shape[1]
    for name, t, want in (("delta", delta, (b, length, d)), ("B", B, (b, length, n)), ("C", C, (b, length, n))):
        if not isinstance(t, torch.Tensor) or tuple(t.shape) != want:
            raise ValueError(f"selective_scan: {name} must have shape {want}; got {_shape(t)}")
    if D is not None and (not isinstance(D, torch.Tensor) or tuple(D.shape) != (d,)):
        raise ValueError(f"selective_scan: D must have shape ({d},) or be None; got {_shape(D)}")
    # ZOH for A: Abar_t = exp(Delta_t A)   (b, L, d, n)
    decay = torch.exp(delta[..., None] * A)
    # Bbar_t x_t = Delta_t B_t x_t (Mamba's simplified ZOH for B)   (b, L, d, n)
    drive = delta[..., None] * B[:, :, None, :] * x[..., None]
    if mode == "sequential":
        # h_t = Abar_t h_{t-1} + Bbar_t x_t, one step at a time
        h, states = torch.zeros_like(drive[:, 0]), []
        for t in range(length):
            h = decay[:, t] * h + drive[:, t]
            states.append(h)
        h = torch.stack(states, dim=1) if states else drive
    else:
        h = associative_scan(decay, drive)
    # y_t = C_t h_t + D x_t
    y = (h * C[:, :, None, :]).sum(-1)
    return y if D is None else y + D * x


class Mixer(nn.Module):
    """Mamba's mixer (Gu and Dao 2023): in_proj -> causal depthwise conv -> SiLU -> selective scan,
    gated by SiLU(z) -> out_proj. Delta, B, C come from the input (x_proj, dt_proj): the selection."""

    def __init__(self, hidden: int, state: int = 8, expand: int = 2, conv: int = 4, dt_min=1e-3, dt_max=1e-1):
        super().__init__()
        inner = expand * hidden
        self.inner, self.state, self.dt_rank = inner, state, math.ceil(hidden / 16)
        self.in_proj = nn.Linear(hidden, 2 * inner)
        self.conv1d = nn.Conv1d(inner, inner, conv, groups=inner, padding=conv - 1)
        self.x_proj = nn.Linear(inner, self.dt_rank + 2 * state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, inner)
        dt = torch.exp(torch.rand(inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt): Delta starts in [dt_min, dt_max]
        # S4D-real initialisation: A = -(1, 2, ..., n) for every channel
        self.A_log = nn.Parameter(torch.log(torch.arange(1, state + 1, dtype=torch.float32)).repeat(inner, 1))
        self.D = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, hidden)

    def forward(self, x, mode: str = "parallel"):
        length = x.shape[1]
        u, gate = self.in_proj(x).chunk(2, dim=-1)
        u = F.silu(self.conv1d(u.transpose(1, 2))[..., :length]).transpose(1, 2)   # causal: left context only
        dt, B, C = self.x_proj(u).split([self.dt_rank, self.state, self.state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))                                        # Delta_t > 0, input-dependent
        y = selective_scan(u, delta, -torch.exp(self.A_log), B, C, self.D, mode)   # A = -exp(A_log) < 0
        return self.out_proj(y * F.silu(gate))


GRAINS = ("multi", "coarse")


class MultiGrainedBlock(nn.Module):
    """x + coarse(norm x) + LN(fine(norm x)): the coarse mixer scans the whole token sequence
    (across steps), the fine one each step's (R_t, s_t, a_t) triplet on its own (within a step)."""

    def __init__(self, hidden: int, state: int = 8, grain: str = "multi"):
        super().__init__()
        if grain not in GRAINS:
            raise ValueError(f"grain must be one of {', '.join(GRAINS)}; got {grain!r}")
        self.grain = grain
        self.norm = nn.LayerNorm(hidden)
        self.coarse = Mixer(hidden, state)
        if grain == "multi":
            self.fine = Mixer(hidden, state)
            self.fine_norm = nn.LayerNorm(hidden)

    def forward(self, x, mode: str = "parallel"):
        z = self.norm(x)
        out = x + self.coarse(z, mode)                                 # coarse: h over R_1, s_1, a_1, R_2, ...
        if self.grain == "multi":
            b, length, h = z.shape
            triplets = z.reshape(b * (length // 3), 3, h)              # fine: each step's (R_t, s_t, a_t) alone
            out = out + self.fine_norm(self.fine(triplets, mode).reshape(b, length, h))
        return out


class DecisionMamba(nn.Module):
    """Decision Mamba: DT's token embedding and heads around multi-grained mamba blocks."""

    def __init__(self, state_dim, act_dim, hidden=32, n_layer=2, state=8, max_timestep=64, rtg_scale=1.0,
                 grain="multi", dropout=0.1, mode="parallel"):
        super().__init__()
        if mode not in SCAN_MODES:
            raise ValueError(f"mode must be one of {', '.join(SCAN_MODES)}; got {mode!r}")
        self.mode, self.dropout = mode, dropout
        self.embed = TokenEmbedding(state_dim, act_dim, hidden, max_timestep, rtg_scale)
        self.blocks = nn.ModuleList(MultiGrainedBlock(hidden, state, grain) for _ in range(n_layer))
        self.norm = nn.LayerNorm(hidden)
        self.heads = Heads(state_dim, act_dim, hidden)

    def forward(self, batch):
        x = F.dropout(self.embed(batch), self.dropout, self.training)
        for block in self.blocks:
            x = block(x, self.mode)
        return self.heads(self.norm(x))

    def act(self, batch):
        return self(batch)["action"][:, -1]


def pser_beta(iteration: int, iterations: int, beta_T: float = 1.0, cap: float = 0.5) -> float:
    """beta_k = min(cap, beta_T (k - 1) / K) for iteration k = 1..K: 0 while there is no past model."""
    if isinstance(iterations, bool) or not isinstance(iterations, int) or iterations < 1:
        raise ValueError(f"pser_beta: iterations must be an integer >= 1; got {iterations!r}")
    if isinstance(iteration, bool) or not isinstance(iteration, int) or not 1 <= iteration <= iterations:
        raise ValueError(f"pser_beta: iteration must be an integer in 1..{iterations}; got {iteration!r}")
    return min(cap, beta_T * (iteration - 1) / iterations)


def pser_target(labels: torch.Tensor, past: torch.Tensor, beta: float) -> torch.Tensor:
    """PSER's refined label: a~ = (1 - beta) a + beta a^(k-1), the past model's prediction held fixed."""
    if labels.shape != past.shape:
        raise ValueError(f"pser_target: labels and past predictions must have the same shape; got {tuple(labels.shape)} and {tuple(past.shape)}")
    if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0 <= beta <= 1:
        raise ValueError(f"pser_target: beta must be a number in [0, 1]; got {beta!r}")
    return (1 - beta) * labels + beta * past.detach()


def dm_loss(out: dict, batch, action_target, weights=(0.9, 0.05, 0.05), rtg_scale: float = 1.0):
    """L = w_a ||a^ - a~||^2 + w_s Huber(s^_{t+1}, s_{t+1}) + w_R Huber(R^_{t+1}, R_{t+1});
    the next state and return-to-go (divided by ``rtg_scale``, as the model reads it) are predicted
    from the a_t token (the authors' predict_sr)."""
    w_a, w_s, w_r = weights
    loss = w_a * F.mse_loss(out["action"], action_target)
    if (w_s or w_r) and batch.states.shape[1] > 1 and "state" in out:
        loss = loss + w_s * F.smooth_l1_loss(out["state"][:, :-1], batch.states[:, 1:]) \
                    + w_r * F.smooth_l1_loss(out["rtg"][:, :-1], batch.rtg[:, 1:] / rtg_scale)
    return loss
