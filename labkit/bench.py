"""``labkit bench``: labkit's GRPO loop side by side with TRL's GRPOTrainer, and the hardware floor.

    labkit bench                          # both configurations, a table
    labkit bench --config long --json     # one configuration, machine-readable
    labkit bench --steps 2 --warmup 1 --no-trl   # a quick check of the harness
    labkit bench --fast --rounds 3        # benchmarks/README.md's table: also the experimental variant,
                                          # the sides alternating three times

Both sides train the same model (the shipped `tiny` checkpoint, or a seeded random `tiny` preset
when none is shipped: speed does not depend on the weights) on the same tasks, 8 prompts x 8
completions a step, fp32, one optimizer step per batch (AdamW, weight decay 0, the same learning
rate, gradient clipping at 1.0), token-mean PPO-clip loss (TRL: ``loss_type="dapo"``), no reference
model (TRL: ``beta=0``), no gradient checkpointing, no bf16 on CPU.

Completion lengths are forced to be equal: a forward hook on the output embedding adds -1e4 to the
EOS logit of the one model instance each side trains, so no completion stops early and every
completion is exactly `max_new_tokens` long on both sides (EOS gets probability 0; no NaN in the
entropies). Nothing else of either library is changed.

Timing: the median wall time of one whole training step (sample tasks / fetch the batch, sample
the completions, score them, update) over `--steps` steps after `--warmup` steps. TRL's steps are
timed by a `TrainerCallback` between consecutive ``on_step_end`` calls. Each side runs in its own
subprocess (unless ``--inprocess``), so its peak memory is its own: `resource.getrusage` ru_maxrss
of that process (the whole process: Python, torch and the library imports included), and the
growth of that high-water mark over the timed steps.

The floor, on the same machine and the same token count: one forward+backward+AdamW step over the
B x (P + T) tokens, plus one prefill of B x P prompt tokens, plus (T - 1) cached decode steps of
B x 1 tokens (a completion of T tokens takes a prefill and T - 1 decode calls), each a plain call
of the same `transformers` model, the median of repeated measurements of each piece.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass

import torch

PROMPTS_PER_STEP = 8
GROUP_SIZE = 8
LEARNING_RATE = 1e-5
MAX_GRAD_NORM = 1.0
CLIP_EPS = 0.2
EOS_PENALTY = -1e4  # added to the EOS logit: probability exp(-1e4) = 0, log-probability finite


@dataclass(frozen=True)
class BenchConfig:
    name: str
    category: str
    difficulty: int
    max_new_tokens: int
    note: str


CONFIGS = {
    "short": BenchConfig("short", "add", 2, 6, "2-digit addition, 6 new tokens"),
    "long": BenchConfig("long", "countdown", 5, 32, "countdown with 5 numbers, 32 new tokens"),
}

# ---------------------------------------------------------------------------------------------
# Shared set-up


def load_avg() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        return []


def maxrss_mib() -> float:
    """Peak resident set size of this process so far, MiB (NaN where `resource` is missing: Windows)."""
    try:
        import resource
    except ImportError:  # pragma: no cover
        return float("nan")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def bench_policy(model: str = "tiny", device: str = "cpu", seed: int = 0):
    """The policy both sides train: a shipped checkpoint when there is one, else a seeded random preset."""
    from labkit.policy import PRESETS, Policy, build_tokenizer, load_policy, make_model, shipped_models

    torch.manual_seed(seed)
    if model in shipped_models() or os.path.isdir(model):
        policy = load_policy(model, device=device)
        source = f"checkpoint {model}"
    elif model in PRESETS:
        tokenizer = build_tokenizer()
        policy = Policy(make_model(model, tokenizer).to(device), tokenizer)
        source = f"random {model} preset (seed {seed})"
    else:
        raise ValueError(f"unknown model {model!r}: a shipped checkpoint, a directory or a preset ({', '.join(PRESETS)})")
    return policy, source


def suppress_eos(model, eos_id: int):
    """Force full-length completions: add EOS_PENALTY to the EOS logit of every forward pass."""
    head = model.get_output_embeddings()
    bias = torch.zeros(head.weight.shape[0], device=head.weight.device)
    bias[eos_id] = EOS_PENALTY

    def hook(module, inputs, output):
        return output + bias.to(output.dtype)

    return head.register_forward_hook(hook)


def tasks_for(config: BenchConfig, steps: int, seed: int):
    from labkit.tasks import make_tasks

    return make_tasks(config.category, config.difficulty, PROMPTS_PER_STEP * steps, seed)


def prompt_tokens(tokenizer, tasks) -> int:
    return int(tokenizer([t.prompt for t in tasks], return_tensors="pt", padding=True)["input_ids"].shape[1])


def summarise(step_times: list[float], config: BenchConfig, extra: dict | None = None) -> dict:
    median = statistics.median(step_times)
    batch = PROMPTS_PER_STEP * GROUP_SIZE
    out = {
        "median_step_s": round(median, 5),
        "completions_per_s": round(batch / median, 2),
        "tokens_per_s": round(batch * config.max_new_tokens / median, 1),
        "step_s_min": round(min(step_times), 5),
        "step_s_max": round(max(step_times), 5),
        "steps_timed": len(step_times),
    }
    out.update(extra or {})
    out["step_times"] = [round(x, 5) for x in step_times]
    return out


def pool(rounds: list[dict], config: BenchConfig) -> dict:
    """One side's figures over several rounds: the median over all timed steps of all rounds,
    the median of the per-round medians of the parts, the highest peak memory."""
    times = [x for r in rounds for x in r["step_times"]]
    extra = {k: v for k, v in rounds[0].items() if k not in ("median_step_s", "completions_per_s", "tokens_per_s",
                                                               "step_s_min", "step_s_max", "steps_timed", "step_times")}
    for key in extra:
        if key.startswith("median_"):
            extra[key] = round(statistics.median(r[key] for r in rounds), 5)
        elif key in ("peak_rss_mib", "rss_growth_mib"):
            extra[key] = max(r[key] for r in rounds)
    extra["rounds_median_step_s"] = [r["median_step_s"] for r in rounds]
    return summarise(times, config, extra)


# ---------------------------------------------------------------------------------------------
# labkit's loop


def run_labkit(config: BenchConfig, steps: int = 20, warmup: int = 3, seed: int = 0, model: str = "tiny",
               device: str = "cpu", variant: str = "labkit") -> dict:
    """Time `labkit.rl.grpo_step` (or an experimental variant of it, see `fast_rollout`)."""
    from labkit import rl
    from labkit.rl import RLConfig, grpo_step

    policy, source = bench_policy(model, device, seed)
    handle = suppress_eos(policy.model, policy.tokenizer.eos_token_id)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    cfg = RLConfig(group_size=GROUP_SIZE, max_new_tokens=config.max_new_tokens, temperature=1.0, top_p=1.0,
                   epochs=1, minibatches=1, max_grad_norm=MAX_GRAD_NORM)
    cfg.loss.clip_low = cfg.loss.clip_high = CLIP_EPS
    tasks = tasks_for(config, steps + warmup, seed + 1000)
    generator = torch.Generator(device=policy.device).manual_seed(seed)
    originals = rl.rollout, rl.completion_logprobs
    if variant == "fast":
        rl.rollout, rl.completion_logprobs = fast_rollout, shared_prefix_logprobs
    try:
        rss_before = maxrss_mib()
        times, rollout_s, update_s, lengths = [], [], [], []
        for step in range(steps + warmup):
            if step == warmup:
                rss_before = maxrss_mib()  # the growth of the high-water mark over the timed steps
            started = time.perf_counter()
            batch = tasks[step * PROMPTS_PER_STEP:(step + 1) * PROMPTS_PER_STEP]
            result = grpo_step(policy, optimizer, batch, cfg, generator=generator)
            if device != "cpu":
                torch.cuda.synchronize()
            elapsed = time.perf_counter() - started
            if step >= warmup:
                times.append(elapsed)
                rollout_s.append(result.metrics["time/rollout"])
                update_s.append(result.metrics["time/update"])
                lengths.append(result.metrics["len/mean"])
    finally:
        rl.rollout, rl.completion_logprobs = originals
        handle.remove()
    return summarise(times, config, {
        "median_rollout_s": round(statistics.median(rollout_s), 5),
        "median_update_s": round(statistics.median(update_s), 5),
        "completion_len_mean": round(statistics.mean(lengths), 2),
        "prompt_tokens": prompt_tokens(policy.tokenizer, tasks[:PROMPTS_PER_STEP]),
        "model": source,
        "peak_rss_mib": round(maxrss_mib(), 1),
        "rss_growth_mib": round(maxrss_mib() - rss_before, 1),
    })


# ---------------------------------------------------------------------------------------------
# TRL's GRPOTrainer, configured to do the same work


def trl_available() -> bool:
    try:
        import trl  # noqa: F401
    except ImportError:
        return False
    return True


def run_trl(config: BenchConfig, steps: int = 20, warmup: int = 3, seed: int = 0, model: str = "tiny",
            device: str = "cpu") -> dict:
    """Time TRL's GRPOTrainer on the same model, tasks and batch."""
    import tempfile

    import trl
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.utils import logging as hf_logging
    from trl import GRPOConfig, GRPOTrainer

    from labkit.tasks import verify

    hf_logging.set_verbosity_error()
    policy, source = bench_policy(model, device, seed)
    handle = suppress_eos(policy.model, policy.tokenizer.eos_token_id)
    tasks = tasks_for(config, steps + warmup, seed + 1000)
    dataset = Dataset.from_dict({"prompt": [t.prompt for t in tasks], "task_index": list(range(len(tasks)))})

    def reward(prompts, completions, task_index, **kwargs):
        return [verify(tasks[i], text).reward for i, text in zip(task_index, completions)]

    class Clock(TrainerCallback):
        def __init__(self):
            self.ends = []
            self.rss_before = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):
            if device != "cpu":
                torch.cuda.synchronize()
            self.ends.append(time.perf_counter())
            if len(self.ends) == warmup:
                self.rss_before = maxrss_mib()

    clock = Clock()
    with tempfile.TemporaryDirectory() as out, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers 5 renames gradient_checkpointing
        args = GRPOConfig(
            output_dir=out,
            per_device_train_batch_size=PROMPTS_PER_STEP * GROUP_SIZE,
            gradient_accumulation_steps=1,
            num_generations=GROUP_SIZE,
            max_completion_length=config.max_new_tokens,
            max_steps=steps + warmup,
            learning_rate=LEARNING_RATE,
            lr_scheduler_type="constant",
            warmup_steps=0,
            weight_decay=0.0,
            max_grad_norm=MAX_GRAD_NORM,
            optim="adamw_torch",
            beta=0.0,  # no reference model
            epsilon=CLIP_EPS,
            num_iterations=1,
            loss_type="dapo",  # token-mean, as labkit's default loss_agg
            scale_rewards="group",
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            gradient_checkpointing=False,
            bf16=device != "cpu",  # labkit autocasts to bf16 on CUDA only
            fp16=False,
            use_cpu=device == "cpu",
            use_vllm=False,
            shuffle_dataset=False,
            logging_strategy="no",
            save_strategy="no",
            report_to="none",
            disable_tqdm=True,
            log_completions=False,
            dataloader_num_workers=0,
            seed=seed,
        )
        trainer = GRPOTrainer(model=policy.model, reward_funcs=reward, args=args, train_dataset=dataset,
                              processing_class=policy.tokenizer, callbacks=[clock])
        fair = {"ref_model": trainer.ref_model is None, "gradient_checkpointing": not policy.model.is_gradient_checkpointing,
                "fp32": next(policy.model.parameters()).dtype == torch.float32 and not args.bf16 or device != "cpu",
                "batch": args.generation_batch_size == PROMPTS_PER_STEP * GROUP_SIZE}
        if not all(fair.values()):
            raise RuntimeError(f"TRL is not configured like labkit: {fair}")
        generate_s = []
        original = trainer._generate

        def timed_generate(*a, **k):
            started = time.perf_counter()
            result = original(*a, **k)
            generate_s.append(time.perf_counter() - started)
            return result

        trainer._generate = timed_generate
        rss_setup = maxrss_mib()
        with contextlib.redirect_stdout(sys.stderr):  # its end-of-training summary
            trainer.train()
    handle.remove()
    ends = clock.ends
    times = [b - a for a, b in zip(ends[warmup - 1:], ends[warmup:])] if warmup else \
        [ends[0] - clock.begin] + [b - a for a, b in zip(ends, ends[1:])]
    rss_before = clock.rss_before if clock.rss_before is not None else rss_setup
    return summarise(times, config, {
        "median_generate_s": round(statistics.median(generate_s[warmup:]), 5),
        "prompt_tokens": prompt_tokens(policy.tokenizer, tasks[:PROMPTS_PER_STEP]),
        "model": source,
        "trl_version": trl.__version__,
        "peak_rss_mib": round(maxrss_mib(), 1),
        "rss_growth_mib": round(maxrss_mib() - rss_before, 1),
    })


# ---------------------------------------------------------------------------------------------
# The floor


def _median_time(fn, repeats: int, sync) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        sync()
        started = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def run_floor(config: BenchConfig, repeats: int = 20, seed: int = 0, model: str = "tiny", device: str = "cpu") -> dict:
    """Plain calls of the same model on the same token counts: train step, prefill, decode steps."""
    import torch.nn.functional as F
    from transformers import DynamicCache

    from labkit.rollout import cache_keyword

    policy, source = bench_policy(model, device, seed)
    net, tokenizer = policy.model, policy.tokenizer
    tasks = tasks_for(config, 1, seed + 1000)
    groups = [t.prompt for t in tasks for _ in range(GROUP_SIZE)]
    encoded = tokenizer(groups, return_tensors="pt", padding=True).to(policy.device)
    prompt_ids, prompt_mask = encoded["input_ids"], encoded["attention_mask"]
    batch, prompt_len = prompt_ids.shape
    new = config.max_new_tokens
    vocab = net.get_output_embeddings().weight.shape[0]
    gen = torch.Generator().manual_seed(seed)
    completion = torch.randint(4, vocab, (batch, new), generator=gen).to(policy.device)
    full_ids = torch.cat([prompt_ids, completion], dim=1)
    full_mask = torch.cat([prompt_mask, torch.ones_like(completion)], dim=1)
    optimizer = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    key = cache_keyword(net)
    sync = torch.cuda.synchronize if policy.device.type == "cuda" else (lambda: None)

    def train_step():
        net.train()
        logits = net(input_ids=full_ids, attention_mask=full_mask).logits[:, prompt_len - 1:-1]
        loss = -F.log_softmax(logits, -1).gather(-1, completion[..., None]).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.no_grad()
    def prefill():
        cache = DynamicCache()
        net(input_ids=prompt_ids, attention_mask=prompt_mask, use_cache=True, logits_to_keep=1, **{key: cache})
        return cache

    train_s = _median_time(train_step, repeats, sync)
    net.eval()
    prefill_s = _median_time(prefill, repeats, sync)

    # decode steps: time each cached call of one new token; the median over all steps of several passes
    decode_times = []
    with torch.no_grad():
        for _ in range(max(2, repeats // max(1, new - 1)) + 1):
            cache = prefill()
            mask = prompt_mask
            positions = (prompt_mask.long().cumsum(-1) - 1)[:, -1:]
            for t in range(new - 1):
                mask = torch.cat([mask, torch.ones(batch, 1, dtype=mask.dtype, device=mask.device)], dim=1)
                positions = positions + 1
                sync()
                started = time.perf_counter()
                net(input_ids=completion[:, t:t + 1], attention_mask=mask, position_ids=positions, use_cache=True,
                    logits_to_keep=1, **{key: cache})
                sync()
                decode_times.append(time.perf_counter() - started)
    decode_s = statistics.median(decode_times[new - 1:] or decode_times)  # first pass is warm-up
    total = train_s + prefill_s + (new - 1) * decode_s
    return {
        "train_step_s": round(train_s, 5),
        "prefill_s": round(prefill_s, 5),
        "decode_step_s": round(decode_s, 6),
        "decode_steps": new - 1,
        "floor_step_s": round(total, 5),
        "floor_completions_per_s": round(batch / total, 2),
        "tokens_trained": batch * (prompt_len + new),
        "prompt_tokens": prompt_len,
        "model": source,
    }


# ---------------------------------------------------------------------------------------------
# Experimental faster variants, measured here only (labkit.rollout and labkit.rl are the lead's).
# `--fast` times grpo_step with both swapped in: `fast_rollout` for `rl.rollout` and
# `shared_prefix_logprobs` for `rl.completion_logprobs`.


def _unique_rows(ids: torch.Tensor):
    """(unique rows, inverse index, index of one source row per unique row)."""
    unique, inverse = torch.unique(ids, dim=0, return_inverse=True)
    first = torch.empty(len(unique), dtype=torch.long, device=ids.device)
    first.scatter_(0, inverse, torch.arange(len(ids), device=ids.device))
    return unique, inverse, first


def shared_prefix_logprobs(model, batch, with_entropy: bool = False):
    """`labkit.rollout.completion_logprobs`, computing each distinct prompt once.

    The G groups share G prompts: run the prompts once (G rows, with gradients) into a KV cache,
    index the cache out to the B rows, then run the completion tokens of all B rows on top of it.
    Same log-probabilities and gradients as one forward over B x (P + T) (the prompt's KV gets
    the sum of the B rows' gradients through the indexing), but B x P prompt tokens become G x P.
    """
    from transformers import DynamicCache

    from labkit.rollout import autocast, cache_keyword, completion_logprobs, position_ids_for

    prompt_len = batch.prompt_len
    unique, inverse, first = _unique_rows(batch.input_ids[:, :prompt_len])
    if 2 * len(unique) > len(batch):  # little to share
        return completion_logprobs(model, batch, with_entropy)
    ids, mask = batch.input_ids, batch.attention_mask
    positions = position_ids_for(mask)
    cache = DynamicCache()
    key = cache_keyword(model)
    with autocast(ids.device):
        out = model(input_ids=unique, attention_mask=mask[first, :prompt_len], position_ids=positions[first, :prompt_len],
                    use_cache=True, logits_to_keep=1, **{key: cache})
        logits = out.logits[inverse]  # (B, 1, V): predicts the first completion token
        if ids.shape[1] - prompt_len > 1:
            cache.batch_select_indices(inverse)
            rest = model(input_ids=ids[:, prompt_len:-1], attention_mask=mask[:, :-1],
                         position_ids=positions[:, prompt_len:-1], use_cache=True, **{key: cache}).logits
            logits = torch.cat([logits, rest], dim=1)
    logp_all = torch.nn.functional.log_softmax(logits.float(), dim=-1)
    logp = logp_all.gather(-1, batch.completion_ids[..., None]).squeeze(-1)
    if not with_entropy:
        return logp
    return logp, -(logp_all.exp() * logp_all).sum(-1)


@torch.no_grad()
def fast_rollout(policy, prompts, max_new_tokens=16, temperature=1.0, top_p=1.0, generator=None):
    """`labkit.rollout.rollout` with a shared prefill, a static KV cache and a lean decode step.

    Each distinct prompt is prefilled once (one `transformers` call) and its KV cache indexed out
    to its group's rows, in a preallocated cache; each decode step is a lean Llama forward over
    the model's own weights (fused q/k/v and gate/up matrices, attention as two batched matmuls,
    RoPE tables computed once). The sampling is the substrate's (softmax(logits / temperature),
    top-p, `torch.multinomial` with `generator`), and so is the returned `Rollout`.
    Models other than plain Llama fall back to the substrate's rollout.
    """
    from transformers import DynamicCache

    from labkit.rollout import Rollout, cache_keyword, position_ids_for, rollout, top_p_filter

    model, tokenizer = policy.model, policy.tokenizer
    lean = _LeanLlama.of(model)
    if lean is None:
        return rollout(policy, prompts, max_new_tokens, temperature, top_p, generator)
    was_training = model.training
    model.eval()
    device = policy.device
    encoded = tokenizer(list(prompts), return_tensors="pt", padding=True)
    prompt_ids = encoded["input_ids"].to(device)
    prompt_mask = encoded["attention_mask"].to(device)
    batch, prompt_len = prompt_ids.shape
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    total = prompt_len + max_new_tokens

    tokens = torch.full((batch, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logprobs = torch.zeros(batch, max_new_tokens, device=device)
    entropies = torch.zeros(batch, max_new_tokens, device=device)
    completion_mask = torch.zeros(batch, max_new_tokens, device=device)
    alive = torch.ones(batch, dtype=torch.bool, device=device)

    # prefill each distinct prompt once, then give every row its prompt's cache
    unique, inverse, first = _unique_rows(prompt_ids)
    positions = position_ids_for(prompt_mask)
    prefill_cache = DynamicCache()
    out = model(input_ids=unique, attention_mask=prompt_mask[first], position_ids=positions[first], use_cache=True,
                logits_to_keep=1, **{cache_keyword(model): prefill_cache})
    logits = out.logits[inverse, -1].float()
    cache = lean.new_cache(batch, total)
    for (k_cache, v_cache), layer in zip(cache, prefill_cache.layers):
        k_cache.view(batch, lean.kv_heads, total, -1)[:, :, :prompt_len] = layer.keys[inverse]
        v_cache.view(batch, lean.kv_heads, total, -1)[:, :, :prompt_len] = layer.values[inverse]
    del prefill_cache
    # key-padding bias over the whole static cache, one row per (sequence, head)
    bias = torch.zeros(batch, total, device=device)
    bias[:, :prompt_len].masked_fill_(prompt_mask == 0, float("-inf"))
    bias = bias[:, None, None, :].expand(-1, lean.heads, 1, -1).reshape(batch * lean.heads, 1, total)
    step_positions = positions[:, -1:] + torch.arange(1, max_new_tokens, device=device)  # (B, T - 1)
    cos, sin = lean.rope_tables(step_positions)

    for t in range(max_new_tokens):
        if temperature > 0:
            scores = logits / temperature if temperature != 1.0 else logits  # x / 1.0 == x exactly
            logp_all = scores.log_softmax(-1)
            sample_scores = top_p_filter(scores, top_p) if top_p < 1.0 else scores
            next_ids = torch.multinomial(sample_scores.softmax(-1), 1, generator=generator).squeeze(1)
        else:
            logp_all = logits.log_softmax(-1)
            next_ids = logits.argmax(-1)
        entropies[:, t] = -(logp_all.exp() * logp_all).sum(-1) * alive
        logprobs[:, t] = logp_all.gather(1, next_ids[:, None]).squeeze(1) * alive
        completion_mask[:, t] = alive
        next_ids = torch.where(alive, next_ids, pad_id)
        tokens[:, t] = next_ids
        alive &= next_ids != eos_id
        if t == max_new_tokens - 1 or not alive.any():
            break
        logits = lean.decode(next_ids, cos[:, t], sin[:, t], cache, prompt_len + t, bias)

    used = int(completion_mask.sum(0).nonzero().max()) + 1
    tokens, logprobs, entropies = tokens[:, :used], logprobs[:, :used], entropies[:, :used]
    completion_mask = completion_mask[:, :used]
    finished = ((tokens == eos_id) & completion_mask.bool()).any(-1)
    full_ids = torch.cat([prompt_ids, tokens], dim=1)
    full_mask = torch.cat([prompt_mask, completion_mask.long()], dim=1)
    texts = tokenizer.batch_decode([row[m.bool()].tolist() for row, m in zip(tokens, completion_mask)],
                                   skip_special_tokens=True)
    model.train(was_training)
    return Rollout(full_ids, full_mask, prompt_len, completion_mask, logprobs, entropies, texts, list(prompts), finished)


class _LeanLlama:
    """One-token decode step of a `transformers` Llama over its own weights, with a static KV cache.

    The fused weight matrices are concatenated once per rollout (the weights change every update)."""

    def __init__(self, model):
        inner, cfg = model.model, model.config
        self.embed = inner.embed_tokens.weight
        self.head = model.get_output_embeddings()  # a module call, so forward hooks still apply
        self.rotary = inner.rotary_emb
        self.norm_w, self.eps = inner.norm.weight, inner.norm.variance_epsilon
        self.heads, self.kv_heads = cfg.num_attention_heads, cfg.num_key_value_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
        self.scaling = self.head_dim ** -0.5
        self.layers = []
        for layer in inner.layers:
            a, m = layer.self_attn, layer.mlp
            self.layers.append((
                layer.input_layernorm.weight, layer.input_layernorm.variance_epsilon,
                torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]),
                a.o_proj.weight,
                layer.post_attention_layernorm.weight, layer.post_attention_layernorm.variance_epsilon,
                torch.cat([m.gate_proj.weight, m.up_proj.weight]),
                m.down_proj.weight,
            ))

    @staticmethod
    def of(model):
        cfg = model.config
        plain = (type(model).__name__ == "LlamaForCausalLM" and getattr(cfg, "pretraining_tp", 1) == 1
                 and cfg.hidden_act == "silu" and not cfg.attention_bias and not cfg.mlp_bias)
        return _LeanLlama(model) if plain else None

    def new_cache(self, batch, total):
        shape = (batch * self.kv_heads, total, self.head_dim)
        return [(self.embed.new_zeros(shape), self.embed.new_zeros(shape)) for _ in self.layers]

    def rope_tables(self, positions):
        cos, sin = self.rotary(self.embed[:1], positions)  # (B, S, D)
        return cos.to(self.embed.dtype), sin.to(self.embed.dtype)

    def decode(self, ids, cos, sin, cache, at, bias):
        """ids (B,) written at cache slot `at`; returns the next-token logits (B, V) in float32."""
        F = torch.nn.functional
        batch, h, kv, d = ids.shape[0], self.heads, self.kv_heads, self.head_dim
        hidden = h * d
        cos, sin = cos[:, None], sin[:, None]  # (B, 1, D)
        length = at + 1
        mask = bias[:, :, :length]
        x = self.embed[ids]
        for (ln1, eps1, w_qkv, w_o, ln2, eps2, w_gu, w_down), (k_cache, v_cache) in zip(self.layers, cache):
            qkv = F.linear(F.rms_norm(x, (x.shape[-1],), ln1, eps1), w_qkv)
            qk = _rope(qkv[:, :hidden + kv * d].view(batch, h + kv, d), cos, sin)  # q and k in one go
            q = qk[:, :h]
            k_cache.view(batch, kv, -1, d)[:, :, at] = qk[:, h:]
            v_cache.view(batch, kv, -1, d)[:, :, at] = qkv[:, hidden + kv * d:].view(batch, kv, d)
            keys, values = k_cache[:, :length], v_cache[:, :length]
            if kv != h:
                keys = keys.view(batch, kv, length, d).repeat_interleave(h // kv, 1).view(batch * h, length, d)
                values = values.view(batch, kv, length, d).repeat_interleave(h // kv, 1).view(batch * h, length, d)
            scores = torch.baddbmm(mask, q.reshape(batch * h, 1, d), keys.transpose(1, 2), alpha=self.scaling)
            attn = torch.bmm(scores.softmax(-1), values).view(batch, hidden)
            x = x + F.linear(attn, w_o)
            gate, up = F.linear(F.rms_norm(x, (x.shape[-1],), ln2, eps2), w_gu).chunk(2, dim=-1)
            x = x + F.linear(F.silu(gate) * up, w_down)
        return self.head(F.rms_norm(x, (x.shape[-1],), self.norm_w, self.eps)).float()


def _rope(x, cos, sin):
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


# ---------------------------------------------------------------------------------------------
# Orchestration: each side in its own process, then one table


def _worker(args) -> dict:
    torch.set_num_threads(args.threads)
    config = CONFIGS[args.config]
    if args.worker == "floor":
        return run_floor(config, repeats=max(args.steps, 5), seed=args.seed, model=args.model, device=args.device)
    if args.worker == "trl":
        return run_trl(config, args.steps, args.warmup, args.seed, args.model, args.device)
    return run_labkit(config, args.steps, args.warmup, args.seed, args.model, args.device, variant=args.worker)


def _spawn(side: str, config: str, args) -> dict:
    cmd = [sys.executable, "-m", "labkit.bench", "--worker", side, "--config", config, "--steps", str(args.steps),
           "--warmup", str(args.warmup), "--threads", str(args.threads), "--seed", str(args.seed),
           "--model", args.model, "--device", args.device]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads),
               TOKENIZERS_PARALLELISM="false")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if done.returncode:
        raise RuntimeError(f"bench worker {side}/{config} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def bench_config(name: str, args) -> dict:
    run = (lambda side: _spawn(side, name, args)) if not args.inprocess else \
        (lambda side: _worker(argparse.Namespace(**{**vars(args), "worker": side, "config": name})))
    config = CONFIGS[name]
    result = {"config": name, "task": config.note, "batch": f"{PROMPTS_PER_STEP} prompts x {GROUP_SIZE} completions",
              "completion_tokens": config.max_new_tokens, "threads": args.threads, "load_avg_before": load_avg()}
    sides = ["labkit"] + (["fast"] if args.fast else [])
    if not args.no_trl and trl_available():
        sides.append("trl")
    elif not args.no_trl:
        result["trl"] = None
        result["trl_skipped"] = "trl is not installed (pip install 'labkit[bench]')"
    order = ["floor"] + sides
    runs = {side: [] for side in order}
    for r in range(args.rounds):  # sides alternate, and each round starts one side later, so no side is always last
        for side in order[r % len(order):] + order[:r % len(order)]:
            runs[side].append(run(side))
    floors = runs.pop("floor")
    result["floor"] = sorted(floors, key=lambda f: f["floor_step_s"])[(len(floors) - 1) // 2]  # the median round
    result["floor"]["rounds_floor_step_s"] = [f["floor_step_s"] for f in floors]
    for side, rounds in runs.items():
        result["labkit_fast" if side == "fast" else side] = pool(rounds, config)
    floor = result["floor"]["floor_step_s"]
    for side in ("labkit", "labkit_fast", "trl"):
        if result.get(side):
            result[side]["step_over_floor"] = round(result[side]["median_step_s"] / floor, 2)
    if result.get("trl"):
        # the ratio within each round (the sides ran minutes apart at most), and over the pooled steps
        for side, key in (("labkit", "labkit_over_trl_by_round"), ("fast", "labkit_fast_over_trl_by_round")):
            if side in runs:
                result[key] = [round(t["median_step_s"] / x["median_step_s"], 2) for x, t in zip(runs[side], runs["trl"])]
        lab, trl = result["labkit"], result["trl"]
        result["labkit_over_trl_completions_per_s"] = round(lab["completions_per_s"] / trl["completions_per_s"], 2)
        if result.get("labkit_fast"):
            result["labkit_fast_over_trl_completions_per_s"] = round(
                result["labkit_fast"]["completions_per_s"] / trl["completions_per_s"], 2)
    result["load_avg_after"] = load_avg()
    return result


def table(results: list[dict]) -> str:
    head = ("| config | side | median step (s) | completions/s | labkit/TRL | step/floor | peak RSS MiB (growth) |\n"
            "|---|---|---|---|---|---|---|")
    rows = [head]
    for r in results:
        for side in ("labkit", "labkit_fast", "trl"):
            s = r.get(side)
            if not s:
                continue
            ratio = r.get("labkit_over_trl_completions_per_s") if side == "labkit" else \
                r.get("labkit_fast_over_trl_completions_per_s") if side == "labkit_fast" else 1.0
            ratio = "–" if ratio is None else f"{ratio:.2f}x"
            rows.append(f"| {r['config']} | {side} | {s['median_step_s']:.4f} | {s['completions_per_s']:.1f} | {ratio} "
                        f"| {s['step_over_floor']:.2f} | {s['peak_rss_mib']:.0f} ({s['rss_growth_mib']:.0f}) |")
        f = r["floor"]
        rows.append(f"| {r['config']} | floor | {f['floor_step_s']:.4f} | {f['floor_completions_per_s']:.1f} | | 1.00 "
                    f"| train {f['train_step_s']:.4f} + prefill {f['prefill_s']:.4f} + {f['decode_steps']} x decode "
                    f"{f['decode_step_s']:.5f} |")
    loads = "; ".join(f"{r['config']}: {r['load_avg_before']} -> {r['load_avg_after']}" for r in results)
    text = "\n".join(rows) + f"\n\nthreads: {results[0]['threads']}; load average (1, 5, 15 min) before -> after: {loads}"
    for key, label in (("labkit_over_trl_by_round", "labkit/TRL"), ("labkit_fast_over_trl_by_round", "labkit_fast/TRL")):
        by_round = "; ".join(f"{r['config']} {r[key]}" for r in results if r.get(key))
        if by_round:
            text += f"\n{label} within each round: {by_round}"
    return text


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="labkit bench", description="labkit's GRPO step against TRL's GRPOTrainer "
                                 "and the hardware floor (8 prompts x 8 completions, fp32).")
    ap.add_argument("--config", default="all", choices=["short", "long", "all"])
    ap.add_argument("--steps", type=int, default=20, help="timed steps per side (default 20)")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    ap.add_argument("--rounds", type=int, default=1, help="run the sides this many times, alternating, and pool "
                    "their timed steps (default 1)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on both sides (default 1)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="tiny", help="shipped checkpoint, directory or preset (default tiny)")
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    ap.add_argument("--no-trl", action="store_true", help="skip TRL (it is skipped anyway when not installed)")
    ap.add_argument("--fast", action="store_true", help="also time the experimental variant (labkit_fast): "
                    "shared-prefix prefill and update, static KV cache, lean decode step")
    ap.add_argument("--inprocess", action="store_true", help="run every side in this process (faster; peak "
                    "memory is then the whole process's)")
    ap.add_argument("--worker", choices=["labkit", "fast", "trl", "floor"], help=argparse.SUPPRESS)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.threads < 1 or args.rounds < 1:
        print("labkit bench: need --steps >= 1, --warmup >= 0, --threads >= 1, --rounds >= 1", file=sys.stderr)
        return 2
    if args.worker:
        print(json.dumps(_worker(args)))
        return 0
    torch.set_num_threads(args.threads)
    names = ["short", "long"] if args.config == "all" else [args.config]
    results = [bench_config(name, args) for name in names]
    if args.json:
        print(json.dumps({"results": results, "command": "labkit bench " + " ".join(argv or sys.argv[1:])}, indent=1))
    else:
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
