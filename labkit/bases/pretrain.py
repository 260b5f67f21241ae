"""`labkit pretrain`: supervised pretraining of a base policy on noisy demonstrations.

The base must leave room for RL. Demonstrations are the task worlds' reference answers with
controllable noise: some answers are wrong (a near miss), some have format slips (a leading zero,
trailing junk) that the verifiers reject. The model learns the noise too, so sampling from it
gives a spread of rewards and token entropy well above zero, and easy tasks are mostly, not
always, solved: exactly the variance GRPO learns from. Same seed, same checkpoint.
"""
import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch

from labkit.core.paths import MODELS_DIR
from labkit.bases.mixtures import load_mixture, mixture_names
from labkit.core.policy.models import PRESETS, count_parameters, make_model
from labkit.core.policy.tokenizer import build_tokenizer

SLIP_SUFFIXES = ("=", ".", "?", "!", "+")


def near_miss(answer: str, rng: random.Random) -> str:
    """A plausible wrong answer: one character replaced by another of the same kind."""
    positions = [i for i, ch in enumerate(answer) if ch.isdigit()]
    if not positions:
        return answer[::-1] if len(answer) > 1 and answer[::-1] != answer else answer + "1"
    i = rng.choice(positions)
    wrong = rng.choice([d for d in "0123456789" if d != answer[i]])
    if i == 0 and wrong == "0" and len(answer) > 1:
        wrong = "1" if answer[0] != "1" else "2"
    return answer[:i] + wrong + answer[i + 1:]


def demonstration(task, rng: random.Random, p_wrong: float, p_slip: float) -> str:
    """The completion the model is taught for `task` (without EOS), noise included."""
    answer = task.answer
    u = rng.random()
    if u < p_wrong:
        return near_miss(answer, rng)
    if u < p_wrong + p_slip:
        if rng.random() < 0.5 and answer[0].isdigit():
            return "0" + answer  # leading zero: not canonical, rewarded 0
        return answer + rng.choice(SLIP_SUFFIXES)  # trailing junk: rewarded 0
    return answer


def encode_batch(tokenizer, pairs):
    """Right-padded ids with labels only on the completion and EOS (the prompt is given)."""
    rows, labels = [], []
    for prompt, completion in pairs:
        prompt_ids = tokenizer(prompt)["input_ids"]  # <bos> + prompt
        completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(prompt_ids + completion_ids)
        labels.append([-100] * len(prompt_ids) + completion_ids)
    width = max(map(len, rows))
    pad = tokenizer.pad_token_id
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
    lab = torch.tensor([l + [-100] * (width - len(l)) for l in labels])
    return ids, (ids != pad).long(), lab


def learning_rate(step: int, steps: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def pretrain(preset="tiny", steps=2000, batch_size=256, lr=3e-3, p_wrong=0.15, p_slip=0.15,
             seed=0, out=None, threads=None, log_every=50, device="cpu", mixture="default", init=None):
    """Train a fresh `preset` model on the stream of `mixture` (labkit/bases/mixtures) and save it;
    with `init` (a shipped name or checkpoint directory), continue from those weights instead."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    if init is None:
        model = make_model(preset, tokenizer).to(device)
    else:
        from labkit.core.policy.loading import load_policy

        model = load_policy(init, device=device).model
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)
    stream = load_mixture(mixture).demonstrations(seed, p_wrong, p_slip)
    out = Path(out or MODELS_DIR / preset)
    out.mkdir(parents=True, exist_ok=True)
    history = []
    started = time.time()
    model.train()
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr, warmup=min(100, steps // 10 + 1))
        ids, mask, labels = encode_batch(tokenizer, [next(stream) for _ in range(batch_size)])
        loss = model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % log_every == 0 or step == steps - 1:
            history.append({"step": step, "loss": round(loss.item(), 4), "minutes": round((time.time() - started) / 60, 2)})
            print(json.dumps(history[-1]), flush=True)
            if step % (log_every * 10) == 0:  # an interrupted run keeps a usable checkpoint
                model.save_pretrained(out)
                tokenizer.save_pretrained(out)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    settings = dict(mixture=mixture, **({"init": str(init)} if init is not None else {}), preset=preset, steps=steps, batch_size=batch_size, lr=lr, p_wrong=p_wrong,
                    p_slip=p_slip, seed=seed, parameters=count_parameters(model),
                    minutes=round((time.time() - started) / 60, 1))
    (out / "pretraining.json").write_text(json.dumps({"settings": settings, "history": history}, indent=1))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="labkit pretrain", description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--mixture", default="default", choices=mixture_names(),
                        help="what to pretrain on (a module in labkit/bases/mixtures)")
    parser.add_argument("--init", default=None,
                        help="continue from this checkpoint (shipped name or directory) instead of fresh weights")
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--p-wrong", type=float, default=0.15, help="share of demonstrations with a wrong answer")
    parser.add_argument("--p-slip", type=float, default=0.15, help="share with a format slip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="checkpoint directory (default data/models/<preset>)")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--card-only", action="store_true", help="only (re)write the model card of --out")
    parser.add_argument("--force", action="store_true", help="overwrite an existing checkpoint")
    args = parser.parse_args(argv)
    for name in ("steps", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    if not (0 <= args.p_wrong and 0 <= args.p_slip and args.p_wrong + args.p_slip <= 1):
        parser.error("--p-wrong and --p-slip must be >= 0 and sum to at most 1")
    out = Path(args.out or MODELS_DIR / args.preset)
    if not args.card_only and (out / "config.json").exists() and not args.force:
        parser.error(f"{out} already holds a checkpoint; pass --force to overwrite it or --out elsewhere")
    if not args.card_only:
        pretrain(args.preset, args.steps, args.batch_size, args.lr, args.p_wrong, args.p_slip,
                 args.seed, out, args.threads, device=args.device, mixture=args.mixture, init=args.init)
    from labkit.bases.card import write_card
    write_card(out, command="labkit pretrain " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(f"checkpoint and card: {out}")


if __name__ == "__main__":
    main()
