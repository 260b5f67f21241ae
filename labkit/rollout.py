"""Batched sampling with a KV cache.

`rollout` turns prompts into completions and returns what RL needs: the token ids, a mask of
generated tokens, and for each generated token its log-probability and the entropy of the full
next-token distribution. It draws exactly what `model.generate(do_sample=True)` draws for the
same seed (a test checks this), but keeps the per-token statistics that `generate` throws away.
"""
import contextlib
import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from labkit.policy import Policy


@dataclass
class Rollout:
    """A batch of completions. Row i of every tensor is completion i.

    `input_ids` is [left-padded prompt | completion right-padded after EOS]; the completion starts
    at column `prompt_len`. `logprobs`/`entropies` are those of the sampling distribution
    (softmax of logits / temperature, before top-p truncation), aligned with `completion_mask`.
    """

    input_ids: torch.Tensor  # (B, P + T)
    attention_mask: torch.Tensor  # (B, P + T)
    prompt_len: int
    completion_mask: torch.Tensor  # (B, T) float: 1 for generated tokens (EOS included)
    logprobs: torch.Tensor  # (B, T)
    entropies: torch.Tensor  # (B, T)
    completions: list[str]  # decoded completion text, EOS and padding removed
    prompts: list[str]
    finished: torch.Tensor  # (B,) bool: the completion ended with EOS

    @property
    def completion_ids(self) -> torch.Tensor:
        return self.input_ids[:, self.prompt_len:]

    @property
    def lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(-1)

    def __len__(self) -> int:
        return self.input_ids.shape[0]


def autocast(device: torch.device):
    """bf16 autocast on CUDA (log-softmax stays in float32); plain float32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def cache_keyword(model) -> str:
    """transformers 5.x renamed `past_key_values` to `cache` in forward(); accept both."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model  # peft wrapper
    forward = inspect.signature(base.forward).parameters
    return "cache" if "cache" in forward else "past_key_values"


def top_p_filter(scores: torch.Tensor, top_p: float) -> torch.Tensor:
    """Nucleus filtering as transformers does it: drop the least likely tokens whose cumulative
    probability stays within 1 - top_p, always keeping the most likely one."""
    sorted_scores, sorted_idx = torch.sort(scores, descending=False)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove_sorted = cumulative <= (1 - top_p)
    remove_sorted[..., -1:] = False
    remove = remove_sorted.scatter(1, sorted_idx, remove_sorted)
    return scores.masked_fill(remove, float("-inf"))


def entropy_of(logp: torch.Tensor) -> torch.Tensor:
    """H = -sum_a pi(a) log pi(a) over the last axis; masked tokens (log pi = -inf) add 0, not NaN."""
    p = logp.exp()
    return -torch.where(p > 0, p * logp, torch.zeros_like(logp)).sum(-1)


def position_ids_for(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding, as `generate` computes them."""
    positions = attention_mask.long().cumsum(-1) - 1
    return positions.masked_fill(attention_mask == 0, 1)


@torch.no_grad()
def rollout(policy: Policy, prompts: list[str], max_new_tokens: int = 16, temperature: float = 1.0,
            top_p: float = 1.0, generator: torch.Generator | None = None) -> Rollout:
    """Sample one completion per prompt (repeat a prompt in `prompts` for a group).

    temperature 0 decodes greedily. Sampling uses `torch.multinomial` with `generator` (or the
    global torch RNG), so a fixed seed gives the same completions on the same device.
    """
    if not prompts:
        raise ValueError("rollout needs at least one prompt; got an empty list")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be >= 1; got {max_new_tokens}")
    if temperature < 0 or not 0 < top_p <= 1:
        raise ValueError(f"need temperature >= 0 and 0 < top_p <= 1; got {temperature}, {top_p}")
    model, tokenizer = policy.model, policy.tokenizer
    device = policy.device
    was_training = model.training
    model.eval()
    encoded = tokenizer(list(prompts), return_tensors="pt", padding=True)
    prompt_ids = encoded["input_ids"].to(device)
    mask = encoded["attention_mask"].to(device)
    batch, prompt_len = prompt_ids.shape
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id

    tokens = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(batch, max_new_tokens, device=device)
    entropies = torch.zeros(batch, max_new_tokens, device=device)
    alive = torch.ones(batch, dtype=torch.bool, device=device)
    completion_mask = torch.zeros(batch, max_new_tokens, device=device)

    cache = {cache_keyword(model): DynamicCache()}  # filled in place by each forward call
    step_ids, positions = prompt_ids, position_ids_for(mask)
    for t in range(max_new_tokens):
        with autocast(device):
            out = model(input_ids=step_ids, attention_mask=mask, position_ids=positions,
                        use_cache=True, logits_to_keep=1, **cache)
        logits = out.logits[:, -1, :].float()
        if temperature > 0:
            scores = logits / temperature
            logp_all = scores.log_softmax(-1)
            sample_scores = top_p_filter(scores, top_p) if top_p < 1.0 else scores
            probs = sample_scores.softmax(-1)
            if generator is not None and generator.device != probs.device:
                probs = probs.cpu()  # a CPU generator (e.g. a fixed eval seed) samples on the CPU
            next_ids = torch.multinomial(probs, 1, generator=generator).squeeze(1).to(device)
        else:
            logp_all = logits.log_softmax(-1)
            next_ids = logits.argmax(-1)
        # H = -sum_a pi(a) log pi(a), over the full distribution at this position
        entropies[:, t] = entropy_of(logp_all) * alive
        logprobs[:, t] = logp_all.gather(1, next_ids[:, None]).squeeze(1) * alive
        completion_mask[:, t] = alive.float()
        next_ids = torch.where(alive, next_ids, torch.full_like(next_ids, pad_id))
        tokens[:, t] = next_ids
        alive = alive & (next_ids != eos_id)
        if not alive.any():
            break
        step_ids = next_ids[:, None]
        mask = torch.cat([mask, torch.ones(batch, 1, dtype=mask.dtype, device=device)], dim=1)
        positions = positions[:, -1:] + 1

    used = int(completion_mask.sum(0).nonzero().max()) + 1
    tokens, logprobs, entropies = tokens[:, :used], logprobs[:, :used], entropies[:, :used]
    completion_mask = completion_mask[:, :used]
    finished = ((tokens == eos_id) & completion_mask.bool()).any(-1)
    full_ids = torch.cat([prompt_ids, tokens], dim=1)
    full_mask = torch.cat([encoded["attention_mask"].to(device), completion_mask.long()], dim=1)
    texts = [tokenizer.decode(row[row_mask.bool()], skip_special_tokens=True)
             for row, row_mask in zip(tokens, completion_mask)]
    model.train(was_training)
    return Rollout(full_ids, full_mask, prompt_len, completion_mask, logprobs, entropies,
                   texts, list(prompts), finished)


def completion_logprobs(model, batch: Rollout, with_entropy: bool = False):
    """Per-token log-probabilities (and entropies) of the completion tokens under `model`,
    recomputed with gradients in one forward pass over prompt + completion."""
    ids, mask = batch.input_ids, batch.attention_mask
    with autocast(ids.device):
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids_for(mask)).logits
    # the logits at position t predict token t + 1
    logits = logits[:, batch.prompt_len - 1:-1].float()
    logp_all = F.log_softmax(logits, dim=-1)
    logp = logp_all.gather(-1, batch.completion_ids[..., None]).squeeze(-1)
    if not with_entropy:
        return logp
    entropy = entropy_of(logp_all)
    return logp, entropy
