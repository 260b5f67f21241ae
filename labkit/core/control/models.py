"""Baselines for the sequence-model notebooks: a small decision transformer and an MLP policy.

``DecisionTransformer``: the token sequence R_1, s_1, a_1, R_2, ... (one linear embedding per
modality, a learned timestep embedding added to all three tokens of a step, LayerNorm), ``n_layer``
pre-norm causal self-attention blocks, and heads on the outputs: the action a_t from the token s_t
(tanh), the next state and the next return-to-go from the token a_t. It is Chen et al. (2021)'s
model at toy size in plain torch (no GPT-2 position embeddings: the timestep embedding is the
position, as in their code). ``MLPPolicy``: behaviour cloning from the current state alone.

Both take a ``SequenceBatch`` and return ``{"action": (B, K, A), "state": (B, K, S), "rtg": (B, K, 1)}``
(the MLP: the action only); ``act(batch)`` gives the last step's action, the evaluator's interface.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["DecisionTransformer", "MLPPolicy", "interleave", "count_parameters"]


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _positive_int(owner, name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{owner}: {name} must be an integer >= 1; got {value!r}")
    return value


def interleave(r: torch.Tensor, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """(B, K, H) x 3 -> (B, 3K, H) in the order R_1, s_1, a_1, R_2, s_2, a_2, ..."""
    b, k, h = s.shape
    return torch.stack([r, s, a], dim=2).reshape(b, 3 * k, h)


class TokenEmbedding(nn.Module):
    """Embeds a SequenceBatch into the interleaved (B, 3K, H) token sequence (DT's embedding)."""

    def __init__(self, state_dim, act_dim, hidden, max_timestep, rtg_scale):
        super().__init__()
        self.rtg_scale = float(rtg_scale)
        self.embed_rtg = nn.Linear(1, hidden)
        self.embed_state = nn.Linear(state_dim, hidden)
        self.embed_action = nn.Linear(act_dim, hidden)
        self.embed_time = nn.Embedding(max_timestep, hidden)
        self.norm = nn.LayerNorm(hidden)

    def forward(self, batch):
        time = self.embed_time(batch.timesteps.clamp(0, self.embed_time.num_embeddings - 1))
        tokens = interleave(self.embed_rtg(batch.rtg / self.rtg_scale) + time,
                            self.embed_state(batch.states) + time, self.embed_action(batch.actions) + time)
        return self.norm(tokens)


class Heads(nn.Module):
    """Action from the s_t token (tanh); next state and next return-to-go from the a_t token."""

    def __init__(self, state_dim, act_dim, hidden):
        super().__init__()
        self.action = nn.Linear(hidden, act_dim)
        self.state = nn.Linear(hidden, state_dim)
        self.rtg = nn.Linear(hidden, 1)

    def forward(self, x):
        b, n, h = x.shape
        x = x.reshape(b, n // 3, 3, h)
        return {"action": torch.tanh(self.action(x[:, :, 1])), "state": self.state(x[:, :, 2]), "rtg": self.rtg(x[:, :, 2])}


class _Block(nn.Module):
    def __init__(self, hidden, n_head, dropout):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))
        self.n_head, self.dropout = n_head, dropout

    def forward(self, x):
        b, n, h = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, n, 3, self.n_head, h // self.n_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        x = x + F.dropout(self.proj(y.transpose(1, 2).reshape(b, n, h)), self.dropout, self.training)
        return x + F.dropout(self.mlp(self.ln2(x)), self.dropout, self.training)


class DecisionTransformer(nn.Module):
    """A causal transformer over (R, s, a) tokens (Chen et al. 2021) at toy size."""

    def __init__(self, state_dim, act_dim, hidden=32, n_layer=2, n_head=1, max_timestep=64, rtg_scale=1.0,
                 dropout=0.1):
        super().__init__()
        for name in ("state_dim", "act_dim", "hidden", "n_layer", "n_head", "max_timestep"):
            _positive_int("DecisionTransformer", name, locals()[name])
        if hidden % n_head:
            raise ValueError(f"DecisionTransformer: hidden ({hidden}) must be divisible by n_head ({n_head})")
        self.embed = TokenEmbedding(state_dim, act_dim, hidden, max_timestep, rtg_scale)
        self.blocks = nn.ModuleList(_Block(hidden, n_head, dropout) for _ in range(n_layer))
        self.norm = nn.LayerNorm(hidden)
        self.heads = Heads(state_dim, act_dim, hidden)

    def forward(self, batch):
        x = self.embed(batch)
        for block in self.blocks:
            x = block(x)
        return self.heads(self.norm(x))

    def act(self, batch):
        return self(batch)["action"][:, -1]


class MLPPolicy(nn.Module):
    """Behaviour cloning: a_t = tanh(MLP(s_t)), no return conditioning, no history."""

    def __init__(self, state_dim, act_dim, hidden=64, n_layer=2, dropout=0.1):
        super().__init__()
        for name in ("state_dim", "act_dim", "hidden", "n_layer"):
            _positive_int("MLPPolicy", name, locals()[name])
        layers, width = [], state_dim
        for _ in range(n_layer):
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.net = nn.Sequential(*layers, nn.Linear(width, act_dim))

    def forward(self, batch):
        return {"action": torch.tanh(self.net(batch.states))}

    def act(self, batch):
        return self(batch)["action"][:, -1]
