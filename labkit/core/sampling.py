"""Batched sampling with a KV cache.

`rollout` turns prompts into completions and returns what RL needs: the token ids, a mask of
generated tokens, and for each generated token its log-probability and the entropy of the full
next-token distribution. It draws exactly what `model.generate(do_sample=True)` draws for the
same seed (a test checks this), but keeps the per-token statistics that `generate` throws away.

`sample` is the one token-by-token loop behind it, behind the calculator's `tool_rollout` (an
`on_token` hook forces the tool's reply into the sequence) and behind the vision `vlm_rollout`
(its decoder puts the image prefix in front): a decoder gives next-token logits, the loop draws,
records log-probs and entropies, and lets the hook change what is written.
"""
import contextlib
import inspect
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from transformers import DynamicCache

from labkit.core.static_llama import LeanDecoder, position_ids_for, shared_prompt_logprobs
from labkit.core.checks import check_float, check_int
from labkit.core.policy import Policy


@dataclass
class Rollout:
    """A batch of completions. Row i of every tensor is completion i.

    `input_ids` is [left-padded prompt | completion right-padded after EOS]; the completion starts
    at column `prompt_len`. `logprobs`/`entropies` are those of the sampling distribution
    (softmax of logits / temperature, before top-p truncation), aligned with `completion_mask`.

    `prompts` are the task prompts; for a chat policy `input_ids` hold them in the chat template
    (`Policy.format_prompt`). `completions` are what the verifiers read: the decoded text, or for a
    policy with an `answer_extractor` (a chat checkpoint) the answer extracted from it; `texts` keeps
    the decoded text as written (None where a batch was rebuilt from parts without it).
    """

    input_ids: torch.Tensor  # (B, P + T)
    attention_mask: torch.Tensor  # (B, P + T)
    prompt_len: int
    completion_mask: torch.Tensor  # (B, T) float: 1 for generated tokens (EOS included)
    logprobs: torch.Tensor  # (B, T)
    entropies: torch.Tensor  # (B, T)
    completions: list[str]  # decoded completion text, EOS and padding removed (chat policy: the answer in it)
    prompts: list[str]
    finished: torch.Tensor  # (B,) bool: the completion ended with EOS
    texts: list[str] | None = field(default=None, kw_only=True)  # the decoded completions as written

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


# ---------------------------------------------------------------------------------------------
# Decoders: what the sampling loop asks of a model
#
#   decoder.prefill()              -> logits (B, V) of completion token 0, after the prompts
#   decoder.step(ids, t, present)  -> logits (B, V) of token t + 1, after feeding token t (ids (B,));
#                                     present (B,) bool: the rows that wrote token t (the others had ended)


class TransformersDecoder:
    """Prefill and one-token steps through the model's own forward: any causal LM (peft adapters,
    hooked or wrapped models included) that takes a KV cache.

    mask_finished: give the attention mask a 0 for rows that have ended (the calculator's rollout
    always has) instead of a 1 (the text rollout). Either way an ended row's outputs are discarded,
    but transformers drops an all-ones mask for a faster kernel, so the choice moves the live rows'
    float rounding: each rollout keeps its own, and its seeds their samples."""

    def __init__(self, model, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, mask_finished: bool = False):
        self.model, self.step_ids, self.mask = model, prompt_ids, prompt_mask
        self.mask_finished = mask_finished
        self.positions = position_ids_for(prompt_mask)
        self.cache = {cache_keyword(model): DynamicCache()}  # filled in place by each forward call

    def _forward(self) -> torch.Tensor:
        with autocast(self.step_ids.device):
            out = self.model(input_ids=self.step_ids, attention_mask=self.mask, position_ids=self.positions,
                             use_cache=True, logits_to_keep=1, **self.cache)
        return out.logits[:, -1, :].float()

    def prefill(self) -> torch.Tensor:
        return self._forward()

    def step(self, ids: torch.Tensor, t: int, present: torch.Tensor | None = None) -> torch.Tensor:
        self.step_ids = ids[:, None]
        if self.mask_finished and present is not None:
            column = present[:, None].to(self.mask.dtype)
        else:
            column = self.mask.new_ones(len(ids), 1)
        self.mask = torch.cat([self.mask, column], dim=1)
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


# ---------------------------------------------------------------------------------------------
# One token


def sample_next(logits: torch.Tensor, temperature: float, top_p: float, generator, exp_logprobs: bool = False):
    """(next ids, log pi of every token) from next-token logits (B, V): softmax(logits / T),
    top-p truncated for the draw only; temperature 0 is greedy.

    exp_logprobs: draw an untruncated sample from exp(log pi) rather than softmax(logits / T), as the
    vision rollout always has: the same distribution, another float rounding, so its seeds keep their samples."""
    if temperature == 0:
        return logits.argmax(-1), logits.log_softmax(-1)
    scores = logits / temperature
    # log pi(a) = scores(a) - log sum_b exp(scores(b))
    logp_all = scores.log_softmax(-1)
    if exp_logprobs and top_p == 1.0:
        probs = logp_all.exp()
    else:
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


# ---------------------------------------------------------------------------------------------
# The sampling loop, shared by the text, calculator and vision rollouts


@dataclass
class Override:
    """What an `on_token` hook changes at step t. Each field is a (B,) tensor, or None for no change;
    rows that had already ended are left alone."""

    ids: torch.Tensor | None = None  # long: the token to write on each forced row
    forced: torch.Tensor | None = None  # bool: token t is the environment's, not the policy's (mask 0, log-prob 0)
    stop: torch.Tensor | None = None  # bool: the row ends after token t (EOS ends a row without a hook)


@dataclass
class Sampled:
    """What `sample` returns: (B, T) tensors trimmed to the last column any row wrote."""

    tokens: torch.Tensor  # (B, T) long: pad after a row's end
    completion_mask: torch.Tensor  # (B, T) float: 1 on sampled (policy) tokens, EOS included
    forced_mask: torch.Tensor  # (B, T) float: 1 on tokens an on_token hook forced
    logprobs: torch.Tensor  # (B, T): log pi of each sampled token, 0 elsewhere
    entropies: torch.Tensor  # (B, T): entropy of the distribution each token was sampled from, 0 elsewhere
    finished: torch.Tensor  # (B,) bool: ended by EOS or by the hook, not by running out of tokens

    @property
    def present(self) -> torch.Tensor:
        """1 on every written token, sampled or forced: the completion's attention mask."""
        return self.completion_mask + self.forced_mask

    def rollout(self, tokenizer, prompts: list[str], prompt_ids: torch.Tensor, prompt_mask: torch.Tensor,
                cls=Rollout, answer_extractor=None, **extra) -> Rollout:
        """A `cls` (Rollout or a subclass, whose own fields come in `extra`) of these completions;
        `answer_extractor` (text -> answer, e.g. a chat policy's) makes its `completions`."""
        present = self.present
        texts = tokenizer.batch_decode([row[keep.bool()].tolist() for row, keep in zip(self.tokens, present)],
                                       skip_special_tokens=True)
        completions = list(texts) if answer_extractor is None else [answer_extractor(text) for text in texts]
        return cls(torch.cat([prompt_ids, self.tokens], dim=1), torch.cat([prompt_mask, present.long()], dim=1),
                   prompt_ids.shape[1], self.completion_mask, self.logprobs, self.entropies, completions,
                   list(prompts), self.finished, texts=texts, **extra)


def check_sampling(max_new_tokens, temperature, top_p=1.0) -> None:
    """One-line ValueErrors for sampling settings out of range."""
    check_int("max_new_tokens", max_new_tokens, min=1)
    check_float("temperature (0: greedy)", temperature, min=0)
    check_float("top_p", top_p, gt=0, max=1)


def _row_flags(name: str, flags, batch: int, device) -> torch.Tensor | None:
    if flags is None:
        return None
    if not isinstance(flags, torch.Tensor) or flags.dtype != torch.bool or tuple(flags.shape) != (batch,):
        got = f"{flags.dtype} tensor of shape {tuple(flags.shape)}" if isinstance(flags, torch.Tensor) \
            else type(flags).__name__
        raise ValueError(f"Override.{name} must be a bool tensor of shape ({batch},); got {got}")
    return flags.to(device)


def _apply_override(override, next_ids: torch.Tensor, alive: torch.Tensor):
    """(forced, stop, ids to write) from a hook's Override; rows that had ended keep their pad."""
    if not isinstance(override, Override):
        raise ValueError(f"on_token must return an Override or None; got {type(override).__name__}")
    batch, device = len(next_ids), next_ids.device
    forced = _row_flags("forced", override.forced, batch, device)
    stop = _row_flags("stop", override.stop, batch, device)
    forced = alive & forced if forced is not None else torch.zeros_like(alive)
    stop = alive & stop if stop is not None else torch.zeros_like(alive)
    if forced.any():
        ids = override.ids
        if not isinstance(ids, torch.Tensor) or ids.dtype != torch.long or tuple(ids.shape) != (batch,):
            got = f"{ids.dtype} tensor of shape {tuple(ids.shape)}" if isinstance(ids, torch.Tensor) else repr(ids)
            raise ValueError(f"Override.ids must be a long tensor of shape ({batch},) when rows are forced; got {got}")
        next_ids = torch.where(forced, ids.to(device), next_ids)
    return forced, stop, next_ids


@torch.no_grad()
def sample(decoder, max_new_tokens: int, eos_id: int, pad_id: int, temperature: float = 1.0, top_p: float = 1.0,
           generator: torch.Generator | None = None, on_token=None, exp_logprobs: bool = False) -> Sampled:
    """Sample up to `max_new_tokens` tokens per row from `decoder` (see Decoders above).

    Each step draws one token for every row (`sample_next`; the generator advances the same way
    whatever the hook does), then `on_token(t, ids, alive)` may change it: `ids` (B,) are the
    tokens sampled at step t (pad on rows that have ended), `alive` (B,) the rows writing token t;
    it returns None or an `Override` that forces tokens (the environment speaks: not trained on)
    or stops rows. Both tensors are read-only. A row ends at EOS, at a stop, or at max_new_tokens.
    exp_logprobs: see `sample_next` (the vision rollout's draw).
    """
    check_sampling(max_new_tokens, temperature, top_p)
    if on_token is not None and not callable(on_token):
        raise ValueError(f"on_token must be callable as on_token(t, ids, alive) or None; got {type(on_token).__name__}")
    logits = decoder.prefill()
    batch, device = logits.shape[0], logits.device
    tokens = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logprobs, entropies, completion_mask, forced_mask = (torch.zeros(batch, max_new_tokens, device=device)
                                                         for _ in range(4))
    alive = torch.ones(batch, dtype=torch.bool, device=device)
    finished = torch.zeros_like(alive)
    for t in range(max_new_tokens):
        # a_t ~ pi(. | prompt, a_<t), pi = softmax(logits / T), top-p truncated for the draw only
        sampled, logp_all = sample_next(logits, temperature, top_p, generator, exp_logprobs)
        next_ids = torch.where(alive, sampled, torch.full_like(sampled, pad_id))
        forced = stop = None
        if on_token is not None:
            override = on_token(t, next_ids, alive)
            if override is not None:
                forced, stop, next_ids = _apply_override(override, next_ids, alive)
        policy = alive if forced is None else alive & ~forced  # the rows whose token t is the policy's
        # H = -sum_a pi(a) log pi(a), over the full distribution at this position
        entropies[:, t] = entropy_of(logp_all) * policy
        # log pi(a_t), of the token drawn
        logprobs[:, t] = logp_all.gather(1, sampled[:, None]).squeeze(1) * policy
        completion_mask[:, t] = policy.float()
        if forced is not None:
            forced_mask[:, t] = forced.float()
        tokens[:, t] = next_ids
        writing = alive  # the rows that wrote token t: the decoder's attention mask for it
        ended = next_ids == eos_id if stop is None else (next_ids == eos_id) | stop
        finished |= alive & ended
        alive = alive & ~ended
        if t == max_new_tokens - 1 or not alive.any():
            break
        logits = decoder.step(next_ids, t, writing)

    # drop the columns after the last token any row wrote
    used = int((completion_mask + forced_mask).sum(0).nonzero().max()) + 1
    return Sampled(tokens[:, :used], completion_mask[:, :used], forced_mask[:, :used], logprobs[:, :used],
                   entropies[:, :used], finished)


@contextlib.contextmanager
def eval_mode(model):
    """The model in eval mode (no dropout) inside the block, back in its own mode after."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def encode_prompts(tokenizer, prompts: list[str], device, add_special_tokens: bool = True
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of the prompts, left-padded by the tokenizer, on `device`."""
    encoded = tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=add_special_tokens)
    return encoded["input_ids"].to(device), encoded["attention_mask"].to(device)


def encode_policy_prompts(policy: Policy, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids, attention mask) of task prompts as the policy reads them, on its device: where prompt text
    becomes ids for every rollout (and so for every score of one). A chat policy reads each prompt in
    its chat template (`Policy.format_prompt`; the template writes its own special tokens, so the
    tokenizer adds none); a char-level base reads `<bos>` + the prompt."""
    if not getattr(policy, "chat", False):
        return encode_prompts(policy.tokenizer, prompts, policy.device)
    return encode_prompts(policy.tokenizer, [policy.format_prompt(p) for p in prompts], policy.device,
                          add_special_tokens=False)


def check_prompts(name: str, prompts) -> None:
    """A one-line ValueError unless `prompts` is a non-empty list (a bare string would be split into characters)."""
    if isinstance(prompts, str) or not prompts:
        got = "a string (wrap it in a list)" if isinstance(prompts, str) else "an empty list"
        raise ValueError(f"{name} needs at least one prompt, as a list of strings; got {got}")


@torch.no_grad()
def rollout(policy: Policy, prompts: list[str], max_new_tokens: int = 16, temperature: float = 1.0,
            top_p: float = 1.0, generator: torch.Generator | None = None, engine: str = "auto") -> Rollout:
    """Sample one completion per prompt (repeat a prompt in `prompts` for a group). A chat policy reads
    each prompt in its chat template and its `completions` are the extracted answers (see Rollout).

    temperature 0 decodes greedily. Sampling uses `torch.multinomial` with `generator` (or the
    global torch RNG), so a fixed seed gives the same completions on the same device.
    engine: "transformers" runs the model's own forward each token; "lean" the static-cache
    decoder of `labkit.core.static_llama` (plain Llama only); "auto" (default) the lean one where it applies
    on the CPU. Both draw the same tokens for the same generator.
    """
    check_prompts("rollout", prompts)
    check_sampling(max_new_tokens, temperature, top_p)
    tokenizer = policy.tokenizer
    with eval_mode(policy.model):
        prompt_ids, prompt_mask = encode_policy_prompts(policy, prompts)
        decoder = decoder_for(policy.model, engine, prompt_ids, prompt_mask, max_new_tokens)
        out = sample(decoder, max_new_tokens, tokenizer.eos_token_id, tokenizer.pad_token_id, temperature, top_p,
                     generator)
    return out.rollout(tokenizer, prompts, prompt_ids, prompt_mask,
                       answer_extractor=getattr(policy, "answer_extractor", None))


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
    texts = [t for p in parts for t in p.texts] if all(p.texts is not None for p in parts) else None
    return Rollout(torch.cat(ids), torch.cat(attn), prompt_len, torch.cat(masks), torch.cat(logps),
                   torch.cat(ents), [c for p in parts for c in p.completions],
                   [q for p in parts for q in p.prompts], torch.cat([p.finished for p in parts]), texts=texts)


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
