"""``python benchmarks/bench.py``: labkit's GRPO loop side by side with TRL's GRPOTrainer, and the hardware floor.

    python benchmarks/bench.py                          # both configurations, a table
    python benchmarks/bench.py --config long --json     # one configuration, machine-readable
    python benchmarks/bench.py --steps 2 --warmup 1 --no-trl   # a quick check of the harness
    python benchmarks/bench.py --reference --rounds 3   # benchmarks/README.md's table: also labkit with its fast
                                          # paths off, the sides alternating three times

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
import functools
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
    from labkit.core.policy import PRESETS, Policy, build_tokenizer, load_policy, make_model, shipped_models

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
    """The training tasks of `steps` steps for run seed `seed` (drawn from train_seed(seed): never the eval sets')."""
    from labkit.core.tasks import make_tasks, train_seed

    return make_tasks(config.category, config.difficulty, PROMPTS_PER_STEP * steps, train_seed(seed))


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
    """Time `labkit.core.grpo.grpo_step`. variant "reference": with labkit's fast paths off (every token
    through `transformers`, no prompt sharing in the update), to show what they buy."""
    from labkit.core import grpo as rl
    from labkit.core.grpo import RLConfig, grpo_step

    policy, source = bench_policy(model, device, seed)
    handle = suppress_eos(policy.model, policy.tokenizer.eos_token_id)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=LEARNING_RATE, weight_decay=0.0)
    cfg = RLConfig(group_size=GROUP_SIZE, max_new_tokens=config.max_new_tokens, temperature=1.0, top_p=1.0,
                   epochs=1, minibatches=1, max_grad_norm=MAX_GRAD_NORM)
    cfg.loss.clip_low = cfg.loss.clip_high = CLIP_EPS
    tasks = tasks_for(config, steps + warmup, seed)
    generator = torch.Generator(device=policy.device).manual_seed(seed)
    originals = rl.rollout, rl.completion_logprobs
    if variant == "reference":
        rl.rollout = functools.partial(originals[0], engine="transformers")
        rl.completion_logprobs = functools.partial(originals[1], share_prompts=False)
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

    from labkit.core.tasks import verify

    hf_logging.set_verbosity_error()
    policy, source = bench_policy(model, device, seed)
    handle = suppress_eos(policy.model, policy.tokenizer.eos_token_id)
    tasks = tasks_for(config, steps + warmup, seed)
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

    from labkit.core.sampling import cache_keyword

    policy, source = bench_policy(model, device, seed)
    net, tokenizer = policy.model, policy.tokenizer
    tasks = tasks_for(config, 1, seed)
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
# Orchestration: each side in its own process, then one table


# worker name -> the key of its figures in the results
SIDE_KEYS = {"labkit": "labkit", "reference": "labkit_reference", "trl": "trl"}


def _worker(args) -> dict:
    torch.set_num_threads(args.threads)
    config = CONFIGS[args.config]
    if args.worker == "floor":
        return run_floor(config, repeats=max(args.steps, 5), seed=args.seed, model=args.model, device=args.device)
    if args.worker == "trl":
        return run_trl(config, args.steps, args.warmup, args.seed, args.model, args.device)
    return run_labkit(config, args.steps, args.warmup, args.seed, args.model, args.device, variant=args.worker)


def _spawn(side: str, config: str, args) -> dict:
    cmd = [sys.executable, "-m", "bench", "--worker", side, "--config", config, "--steps", str(args.steps),
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
    sides = ["labkit"] + (["reference"] if args.reference else [])
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
        result[SIDE_KEYS[side]] = pool(rounds, config)
    floor = result["floor"]["floor_step_s"]
    for side in SIDE_KEYS.values():
        if result.get(side):
            result[side]["step_over_floor"] = round(result[side]["median_step_s"] / floor, 2)
    if result.get("trl"):
        # the ratio within each round (the sides ran minutes apart at most), and over the pooled steps
        trl = result["trl"]
        for side in ("labkit", "reference"):
            if side in runs:
                key = SIDE_KEYS[side]
                result[f"{key}_over_trl_by_round"] = [round(t["median_step_s"] / x["median_step_s"], 2)
                                                      for x, t in zip(runs[side], runs["trl"])]
                result[f"{key}_over_trl_completions_per_s"] = round(
                    result[key]["completions_per_s"] / trl["completions_per_s"], 2)
    result["load_avg_after"] = load_avg()
    return result


def table(results: list[dict]) -> str:
    head = ("| config | side | median step (s) | completions/s | labkit/TRL | step/floor | peak RSS MiB (growth) |\n"
            "|---|---|---|---|---|---|---|")
    rows = [head]
    for r in results:
        for side in SIDE_KEYS.values():
            s = r.get(side)
            if not s:
                continue
            ratio = 1.0 if side == "trl" else r.get(f"{side}_over_trl_completions_per_s")
            ratio = "–" if ratio is None else f"{ratio:.2f}x"
            rows.append(f"| {r['config']} | {side} | {s['median_step_s']:.4f} | {s['completions_per_s']:.1f} | {ratio} "
                        f"| {s['step_over_floor']:.2f} | {s['peak_rss_mib']:.0f} ({s['rss_growth_mib']:.0f}) |")
        f = r["floor"]
        rows.append(f"| {r['config']} | floor | {f['floor_step_s']:.4f} | {f['floor_completions_per_s']:.1f} | | 1.00 "
                    f"| train {f['train_step_s']:.4f} + prefill {f['prefill_s']:.4f} + {f['decode_steps']} x decode "
                    f"{f['decode_step_s']:.5f} |")
    loads = "; ".join(f"{r['config']}: {r['load_avg_before']} -> {r['load_avg_after']}" for r in results)
    text = "\n".join(rows) + f"\n\nthreads: {results[0]['threads']}; load average (1, 5, 15 min) before -> after: {loads}"
    for key, label in (("labkit_over_trl_by_round", "labkit/TRL"),
                       ("labkit_reference_over_trl_by_round", "labkit_reference/TRL")):
        by_round = "; ".join(f"{r['config']} {r[key]}" for r in results if r.get(key))
        if by_round:
            text += f"\n{label} within each round: {by_round}"
    return text


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python benchmarks/bench.py", description="labkit's GRPO step against TRL's GRPOTrainer "
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
    ap.add_argument("--reference", action="store_true", help="also time labkit with its fast paths off "
                    "(labkit_reference: every token through transformers, no prompt sharing in the update)")
    ap.add_argument("--inprocess", action="store_true", help="run every side in this process (faster; peak "
                    "memory is then the whole process's)")
    ap.add_argument("--worker", choices=["labkit", "reference", "trl", "floor"], help=argparse.SUPPRESS)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.steps < 1 or args.warmup < 0 or args.threads < 1 or args.rounds < 1:
        print("bench.py: need --steps >= 1, --warmup >= 0, --threads >= 1, --rounds >= 1", file=sys.stderr)
        return 2
    if args.worker:
        print(json.dumps(_worker(args)))
        return 0
    torch.set_num_threads(args.threads)
    names = ["short", "long"] if args.config == "all" else [args.config]
    results = [bench_config(name, args) for name in names]
    if args.json:
        print(json.dumps({"results": results, "command": "python benchmarks/bench.py " + " ".join(argv or sys.argv[1:])}, indent=1))
    else:
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
