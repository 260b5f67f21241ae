"""A lean decoder for plain Llama models: the fast path of `labkit.core.sampling`.

Decoding a tiny model is dominated by per-call overhead, not arithmetic: `transformers` spends
most of a one-token step building masks, growing the cache and walking module wrappers. This
decoder does the same mathematics with fewer Python-level calls per token:

- each distinct prompt is prefilled once (one ordinary `transformers` call) and its keys/values
  are copied to every row of its group, in a KV cache preallocated for the whole completion;
- each one-token step is a Llama forward written over the model's own weights: q/k/v and
  gate/up as one matrix each, attention as two batched matmuls over the static cache, RoPE
  tables computed once per rollout.

Only a plain `LlamaForCausalLM` without hooks on its layers qualifies (`LeanDecoder.supports`);
anything else (peft adapters, wrapped or hooked models) is decoded by `transformers`. The output
head is called as a module, so hooks on it (e.g. a logit bias) still apply. The draws equal the
`transformers` path's for the same generator (tests/test_rollout.py checks it); log-probabilities
agree to float rounding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import DynamicCache


def position_ids_for(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding, as `generate` computes them."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


def unique_rows(ids: torch.Tensor):
    """(distinct rows, index of each row's distinct row, one source row per distinct row)."""
    unique, inverse = torch.unique(ids, dim=0, return_inverse=True)
    first = torch.empty(len(unique), dtype=torch.long, device=ids.device)
    first.scatter_(0, inverse, torch.arange(len(ids), device=ids.device))
    return unique, inverse, first


def rotate_half_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # RoPE: x * cos + rotate_half(x) * sin, rotate_half(x) = (-x2, x1)
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


def _has_hooks(module: torch.nn.Module) -> bool:
    return any(m._forward_hooks or m._forward_pre_hooks for m in module.modules())


class LeanDecoder:
    """Prefill + one-token steps for `labkit.core.sampling.sample`, over a static KV cache.

    The fused weight matrices are concatenated once per rollout: the weights change every update.
    """

    @staticmethod
    def supports(model) -> bool:
        cfg = getattr(model, "config", None)
        return (type(model).__name__ == "LlamaForCausalLM" and cfg is not None
                and getattr(cfg, "pretraining_tp", 1) == 1 and cfg.hidden_act == "silu"
                and not cfg.attention_bias and not getattr(cfg, "mlp_bias", False)
                and not _has_hooks(model.model))

    def __init__(self, model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int,
                 cache_keyword: str, position_ids: torch.Tensor):
        inner, cfg = model.model, model.config
        self.model, self.cache_keyword = model, cache_keyword
        self.embed = inner.embed_tokens.weight
        self.head = model.get_output_embeddings()
        self.norm_w, self.eps = inner.norm.weight, inner.norm.variance_epsilon
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.scaling = self.head_dim ** -0.5
        self.layers = []
        for layer in inner.layers:
            a, m = layer.self_attn, layer.mlp
            self.layers.append((
                layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon,
                torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]), a.o_proj.weight,
                layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon,
                torch.cat([m.gate_proj.weight, m.up_proj.weight]), m.down_proj.weight,
            ))
        self.prompt_ids, self.prompt_mask, self.positions = prompt_ids, prompt_mask, position_ids
        self.batch, self.prompt_len = prompt_ids.shape
        self.total = self.prompt_len + max_new_tokens
        step_positions = position_ids[:, -1:] + torch.arange(1, max_new_tokens + 1, device=prompt_ids.device)
        cos, sin = inner.rotary_emb(self.embed[:1], step_positions)  # (B, T, D), once per rollout
        self.cos, self.sin = cos.to(self.embed.dtype), sin.to(self.embed.dtype)

    def prefill(self) -> torch.Tensor:
        """Next-token logits (B, V) after the prompts; fills the static cache."""
        b, p, kv, d = self.batch, self.prompt_len, self.kv_heads, self.head_dim
        unique, inverse, first = unique_rows(self.prompt_ids)
        prefill_cache = DynamicCache()
        out = self.model(input_ids=unique, attention_mask=self.prompt_mask[first],
                         position_ids=self.positions[first], use_cache=True, logits_to_keep=1,
                         **{self.cache_keyword: prefill_cache})
        self.cache = []
        for layer in prefill_cache.layers:
            keys = self.embed.new_zeros(b * kv, self.total, d)
            values = self.embed.new_zeros(b * kv, self.total, d)
            keys.view(b, kv, self.total, d)[:, :, :p] = layer.keys[inverse]
            values.view(b, kv, self.total, d)[:, :, :p] = layer.values[inverse]
            self.cache.append((keys, values))
        # key-padding bias over the whole cache, one row per (sequence, head)
        bias = torch.zeros(b, self.total, device=self.embed.device, dtype=self.embed.dtype)
        bias[:, :p].masked_fill_(self.prompt_mask == 0, float("-inf"))
        self.bias = bias[:, None, None, :].expand(-1, self.heads, 1, -1).reshape(b * self.heads, 1, self.total)
        return out.logits[inverse, -1].float()

    def step(self, ids: torch.Tensor, t: int, present: torch.Tensor | None = None) -> torch.Tensor:
        """Feed completion token t (ids: (B,)); return the logits (B, V) for token t + 1. Rows that
        have ended (present False) stay attended: their outputs are discarded anyway."""
        b, h, kv, d = self.batch, self.heads, self.kv_heads, self.head_dim
        hidden, at = h * d, self.prompt_len + t
        length = at + 1
        cos, sin = self.cos[:, t, None], self.sin[:, t, None]  # (B, 1, D)
        mask = self.bias[:, :, :length]
        x = self.embed[ids]
        for (ln1, eps1, w_qkv, w_o, ln2, eps2, w_gu, w_down), (k_cache, v_cache) in zip(self.layers, self.cache):
            qkv = F.linear(F.rms_norm(x, (x.shape[-1],), ln1, eps1), w_qkv)
            qk = rotate_half_rope(qkv[:, :hidden + kv * d].view(b, h + kv, d), cos, sin)  # q and k in one go
            k_cache.view(b, kv, -1, d)[:, :, at] = qk[:, h:]
            v_cache.view(b, kv, -1, d)[:, :, at] = qkv[:, hidden + kv * d:].view(b, kv, d)
            keys, values = k_cache[:, :length], v_cache[:, :length]
            if kv != h:  # grouped-query attention: each kv head serves h / kv query heads
                keys = keys.view(b, kv, length, d).repeat_interleave(h // kv, 1).view(b * h, length, d)
                values = values.view(b, kv, length, d).repeat_interleave(h // kv, 1).view(b * h, length, d)
            # softmax(q k^T / sqrt(d) + padding bias) v
            scores = torch.baddbmm(mask, qk[:, :h].reshape(b * h, 1, d), keys.transpose(1, 2), alpha=self.scaling)
            attn = torch.bmm(scores.softmax(-1), values).view(b, hidden)
            x = x + F.linear(attn, w_o)
            # SwiGLU MLP: down(silu(gate(x)) * up(x))
            gate, up = F.linear(F.rms_norm(x, (x.shape[-1],), ln2, eps2), w_gu).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, w_down)
        return self.head(F.rms_norm(x, (x.shape[-1],), self.norm_w, self.eps)).float()


def shared_prompt_logprobs(model, batch, cache_keyword: str, autocast) -> torch.Tensor | None:
    """Logits (B, T, V) of a Rollout's completion tokens, each distinct prompt computed once, or
    None when fewer than half the rows share a prompt (nothing to gain).

    The prompts run once (with gradients) into a KV cache that is indexed out to the B rows; the
    completion tokens of all rows run on top. Same values and gradients as one forward over
    B x (P + T) (the shared keys/values receive the sum of their rows' gradients through the
    indexing), with G x P prompt tokens instead of B x P."""
    prompt_len = batch.prompt_len
    ids, mask = batch.input_ids, batch.attention_mask
    unique, inverse, first = unique_rows(ids[:, :prompt_len])
    if 2 * len(unique) > len(ids):
        return None
    positions = position_ids_for(mask)
    cache = DynamicCache()
    with autocast(ids.device):
        out = model(input_ids=unique, attention_mask=mask[first, :prompt_len],
                    position_ids=positions[first, :prompt_len], use_cache=True, logits_to_keep=1,
                    **{cache_keyword: cache})
        logits = out.logits[inverse]  # (B, 1, V): predicts the first completion token
        if ids.shape[1] - prompt_len > 1:
            cache.batch_select_indices(inverse)
            rest = model(input_ids=ids[:, prompt_len:-1], attention_mask=mask[:, :-1],
                         position_ids=positions[:, prompt_len:-1], use_cache=True,
                         **{cache_keyword: cache}).logits
            logits = torch.cat([logits, rest], dim=1)
    return logits
