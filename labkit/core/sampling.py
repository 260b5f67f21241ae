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

from labkit.core.static_llama import LeanDecoder, position_ids_for, shared_prompt_logprobs
from labkit.core.checks import check_float
from labkit.core.policy import Policy


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


ENGINES = ("auto", "lean", "transformers")


class TransformersDecoder:
    """Prefill and one-token steps through the model's own forward: any causal LM (peft adapters,
    hooked or wrapped models included) that takes a KV cache."""

    def __init__(self, model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor):
        self.model, self.step_ids, self.mask = model, prompt_ids, prompt_mask
        self.positions = position_ids_for(prompt_mask)
        self.cache = {cache_keyword(model): DynamicCache()}  # filled in place by each forward call

    def _forward(self) -> torch.Tensor:
        with autocast(self.step_ids.device):
            out = self.model(input_ids=self.step_ids, attention_mask=self.mask, position_ids=self.positions,
                             use_cache=True, logits_to_keep=1, **self.cache)
        return out.logits[:, -1, :].float()

    def prefill(self) -> torch.Tensor:
        return self._forward()

    def step(self, ids: torch.Tensor, t: int) -> torch.Tensor:
        self.step_ids = ids[:, None]
        self.mask = torch.cat([self.mask, self.mask.new_ones(len(ids), 1)], dim=1)
        self.positions = self.positions[:, -1:] + 1
        return self._forward()


def decoder_for(model, engine: str, prompt_ids, prompt_mask, max_new_tokens: int):
    """The lean static-cache decoder where it applies (`auto`: plain Llama on CPU), else transformers'."""
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}; got {engine!r}")
    lean = engine == "lean" or (engine == "auto" and prompt_ids.device.type == "cpu")
    if lean and LeanDecoder.supports(model):
        return LeanDecoder(model, prompt_ids, prompt_mask, max_new_tokens, cache_keyword(model),
                           position_ids_for(prompt_mask))
    if engine == "lean":
        raise ValueError(f"engine 'lean' needs a plain LlamaForCausalLM without hooks; got "
                         f"{type(model).__name__} (use engine='auto' or 'transformers')")
    return TransformersDecoder(model, prompt_ids, prompt_mask)


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, generator):
    """(next ids, log pi of every token) from next-token logits (B, V): softmax(logits / T),
    top-p truncated for the draw only; temperature 0 is greedy."""
    if temperature == 0:
        return logits.argmax(-1), logits.log_softmax(-1)
    scores = logits / temperature
    logp_all = scores.log_softmax(-1)
    probs = (top_p_filter(scores, top_p) if top_p < 1.0 else scores).softmax(-1)
    return draw(probs, generator), logp_all


def draw(probs: torch.Tensor, generator=None) -> torch.Tensor:
    """One token id per row of ``probs`` (B, V), drawn on the generator's device and returned
    on ``probs``' device: a CPU generator gives the same ids whatever device the model is on.
    Devices are compared by the tensor they resolve to, so ``cuda`` and ``cuda:0`` agree."""
    if generator is None:
        return torch.multinomial(probs, 1).squeeze(1)
    on_generator = probs.to(generator.device)  # no copy when it is already there
    return torch.multinomial(on_generator, 1, generator=generator).squeeze(1).to(probs.device)


@torch.no_grad()
def rollout(policy: Policy, prompts: list[str], max_new_tokens: int = 16, temperature: float = 1.0,
            top_p: float = 1.0, generator: torch.Generator | None = None, engine: str = "auto") -> Rollout:
    """Sample one completion per prompt (repeat a prompt in `prompts` for a group).

    temperature 0 decodes greedily. Sampling uses `torch.multinomial` with `generator` (or the
    global torch RNG), so a fixed seed gives the same completions on the same device.
    engine: "transformers" runs the model's own forward each token; "lean" the static-cache
    decoder of `labkit.core.static_llama` (plain Llama only); "auto" (default) the lean one where it applies
    on the CPU. Both draw the same tokens for the same generator.
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
    prompt_mask = encoded["attention_mask"].to(device)
    batch, prompt_len = prompt_ids.shape
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    decoder = decoder_for(model, engine, prompt_ids, prompt_mask, max_new_tokens)

    tokens = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(batch, max_new_tokens, device=device)
    entropies = torch.zeros(batch, max_new_tokens, device=device)
    alive = torch.ones(batch, dtype=torch.bool, device=device)
    completion_mask = torch.zeros(batch, max_new_tokens, device=device)

    logits = decoder.prefill()
    for t in range(max_new_tokens):
        next_ids, logp_all = sample_next(logits, temperature, top_p, generator)
        # H = -sum_a pi(a) log pi(a), over the full distribution at this position
        entropies[:, t] = entropy_of(logp_all) * alive
        logprobs[:, t] = logp_all.gather(1, next_ids[:, None]).squeeze(1) * alive
        completion_mask[:, t] = alive.float()
        next_ids = torch.where(alive, next_ids, torch.full_like(next_ids, pad_id))
        tokens[:, t] = next_ids
        alive = alive & (next_ids != eos_id)
        if t == max_new_tokens - 1 or not alive.any():
            break
        logits = decoder.step(next_ids, t)

    used = int(completion_mask.sum(0).nonzero().max()) + 1
    tokens, logprobs, entropies = tokens[:, :used], logprobs[:, :used], entropies[:, :used]
    completion_mask = completion_mask[:, :used]
    finished = ((tokens == eos_id) & completion_mask.bool()).any(-1)
    full_ids = torch.cat([prompt_ids, tokens], dim=1)
    full_mask = torch.cat([prompt_mask, completion_mask.long()], dim=1)
    texts = tokenizer.batch_decode([row[m.bool()].tolist() for row, m in zip(tokens, completion_mask)],
                                   skip_special_tokens=True)
    model.train(was_training)
    return Rollout(full_ids, full_mask, prompt_len, completion_mask, logprobs, entropies,
                   texts, list(prompts), finished)


def concat_rollouts(parts: list[Rollout], pad_id: int) -> Rollout:
    """Rows of several rollouts in one batch, whatever their prompt lengths: prompts left-padded,
    completions right-padded to the longest, so `completion_logprobs` and `labkit.core.grpo.update` score
    every row as it was sampled (notebooks 03 and 05 batch vines and hinted re-rolls this way)."""
    if not parts:
        raise ValueError("concat_rollouts needs at least one rollout")
    prompt_len = max(p.prompt_len for p in parts)
    width = max(p.completion_mask.shape[1] for p in parts)
    ids, attn, masks, logps, ents = [], [], [], [], []
    for p in parts:
        left, right = prompt_len - p.prompt_len, width - p.completion_mask.shape[1]
        ids.append(F.pad(p.input_ids, (left, right), value=pad_id))
        attn.append(F.pad(p.attention_mask, (left, right), value=0))
        masks.append(F.pad(p.completion_mask, (0, right), value=0.0))
        logps.append(F.pad(p.logprobs, (0, right), value=0.0))
        ents.append(F.pad(p.entropies, (0, right), value=0.0))
    return Rollout(torch.cat(ids), torch.cat(attn), prompt_len, torch.cat(masks), torch.cat(logps),
                   torch.cat(ents), [c for p in parts for c in p.completions],
                   [q for p in parts for q in p.prompts], torch.cat([p.finished for p in parts]))


def completion_logprobs(model, batch: Rollout, with_entropy: bool = False, share_prompts: bool = True,
                        temperature: float = 1.0):
    """Per-token log-probabilities (and entropies) of the completion tokens under `model`,
    recomputed with gradients in one forward pass over prompt + completion.

    temperature: score under softmax(logits / T), the distribution `rollout` sampled from at
    temperature T, so that the PPO ratio pi_theta / pi_old starts at 1 (TRL and verl do the same).

    share_prompts: when groups repeat prompts, each distinct prompt is computed once and its KV
    cache shared by its rows (`labkit.core.static_llama.shared_prompt_logprobs`; same values and gradients)."""
    ids, mask = batch.input_ids, batch.attention_mask
    logits = shared_prompt_logprobs(model, batch, cache_keyword(model), autocast) if share_prompts else None
    if logits is None:
        with autocast(ids.device):
            logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids_for(mask)).logits
        # the logits at position t predict token t + 1
        logits = logits[:, batch.prompt_len - 1:-1]
    logp_all = F.log_softmax(logits.float() / check_scoring_temperature(temperature), dim=-1)
    logp = logp_all.gather(-1, batch.completion_ids[..., None]).squeeze(-1)
    if not with_entropy:
        return logp
    entropy = entropy_of(logp_all)
    return logp, entropy


def check_scoring_temperature(temperature: float) -> float:
    """A temperature to score under: > 0 (greedy decoding, T = 0, has no log-probabilities to match)."""
    return check_float("temperature for scoring", temperature, gt=0)
