"""The cold start of the tiny VLM: supervised training that ships as data/models/tiny-vlm.

Two kinds of examples (as Vision-SR1's cold-start data: vision reasoning + text-only reasoning):

    (image, question)            -> <description>r2g1b3</description>5    the description noisy, the answer right
    description + question       -> 5                                      the answer that description implies

Vision-SR1 starts from a pretrained LLM that already reads; ours is 0.9M parameters, so the recipe
builds that reader first, in two stages with their own optimizer and learning-rate schedule:

    init      the language model starts from a shipped text base (`--init tiny-calc`: digits, sums);
              the patch encoder and projector start fresh
    reading   `reading_steps` text-only steps (description + question -> the implied answer, `more`
              balanced) at `reading_lr`, warm-up then cosine decay to a tenth
    vision    `steps` steps on the image + text-only mix at `lr`, a fresh AdamW and a fresh schedule
              (the checkpoint is the one after the decay: RL from a mid-schedule checkpoint collapsed)

Why: a cold start without the first two (round 3's shipped one: random init, 1200 mixed steps at
3e-3) saw perfectly but hardly read: from ground-truth descriptions its reader answered `count`
0.75, `sum` 0.58 and `more` with a constant, so the visual reward scored the reader, not the
description. One reading phase inside the mixed schedule (round 3, 1000 + 700 steps) learned to read
`count` but not `more` and then did not learn to see. The shipped recipe (round 4 prototype, then
this module) reads 1.00 on every kind from ground-truth descriptions; `more` is asked as `r>b?`.

Only the image examples carry the language shortcut (`more` answered "y" with probability
`shortcut`); the text-only examples are drawn balanced (`text_shortcut` 0.5), so the text-only
reader learns to read the description rather than the shortcut.

The descriptions are imperfect on purpose (world.noisy_description): with probability p_noise one
count is off by one, a count the question asks about (`--noise asked`, the paper's premise: the
answers come from looking, the descriptions are wrong where it matters) or a random colour's
(`--noise colour`). The defaults are the shipped recipe (8 CPU-minutes on one thread):

    python -m labkit.bases.vision_coldstart --out data/models/tiny-vlm --threads 1
    python -m labkit.bases.vision_coldstart --out data/models/tiny-vlm-colour-noise --noise colour --threads 1
"""
import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from labkit.core.policy.loading import resolve_checkpoint
from labkit.bases.pretrain import encode_batch, learning_rate
from labkit.core.policy.tokenizer import build_tokenizer
from labkit.core.vision.model import make_vlm
from labkit.core.vision.world import (KINDS, REGIMES, answer_from_counts, completion_text, counterbias_tasks, images_of,
                                 make_tasks, noisy_description, parse_description, sample_task, text_only_prompt)

CARD_TASKS = 200  # held-out tasks per card set
CARD_SAMPLES = 2


def examples(seed: int, p_noise: float, regime: str, shortcut: float, text_fraction: float = 0.3,
             text_shortcut: float = 0.5):
    """An endless stream of (task, description, text_only). Image examples carry the language
    shortcut (`more` answered "y" with probability `shortcut`); text-only examples are drawn with
    `text_shortcut` (0.5: balanced), so the text-only reader learns to read the description rather
    than the shortcut (a shortcut reader answers "y" on every counter-bias task whatever it is told)."""
    rng = random.Random(f"coldstart-{seed}")
    while True:
        text_only = rng.random() < text_fraction
        task = sample_task(rng, rng.choice(KINDS), text_shortcut if text_only else shortcut)
        description = noisy_description(task, rng, p_noise, regime)
        yield task, description, text_only


def batches(seed, batch_size, text_fraction, p_noise, regime, shortcut, text_shortcut=0.5):
    stream = examples(seed, p_noise, regime, shortcut, text_fraction, text_shortcut)
    while True:
        image_rows, text_rows = [], []
        for _ in range(batch_size):
            task, description, text_only = next(stream)
            if text_only:  # text-only: the answer this (possibly wrong) description implies
                implied = answer_from_counts(task.kind, task.colours, parse_description(description))
                text_rows.append((text_only_prompt(task.question, description), implied))
            else:  # with the image: the (possibly wrong) description, then the right answer
                image_rows.append((task, (task.question, completion_text(description, task.answer))))
        yield image_rows, text_rows


def reading_batches(seed, batch_size, p_noise, regime, text_shortcut=0.5):
    """Text-only batches for the reading phase: description + question -> the implied answer."""
    stream = examples(f"reading-{seed}", p_noise, regime, shortcut=text_shortcut, text_fraction=1.0,
                      text_shortcut=text_shortcut)
    while True:
        rows = []
        for _ in range(batch_size):
            task, description, _ = next(stream)
            implied = answer_from_counts(task.kind, task.colours, parse_description(description))
            rows.append((text_only_prompt(task.question, description), implied))
        yield [], rows


def init_language_model(model, init) -> None:
    """Copy a shipped text base (a name in data/models or a checkpoint directory) into the VLM's
    language model. The base must share the VLM's tokenizer and shapes; a tied head is untied."""
    from transformers import AutoTokenizer, LlamaForCausalLM

    path = resolve_checkpoint(init)
    if json.loads((path / "config.json").read_text()).get("model_type") != "llama":
        raise ValueError(f"--init {init}: not a Llama text base; accepted: a base pretrained by `labkit pretrain`")
    if AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False).get_vocab() != build_tokenizer().get_vocab():
        raise ValueError(f"--init {init}: its tokenizer is not labkit's (build_tokenizer); accepted: a base "
                         "pretrained by `labkit pretrain`")
    base = LlamaForCausalLM.from_pretrained(path, local_files_only=True, dtype=torch.float32, trust_remote_code=False)
    state = base.state_dict()
    if "lm_head.weight" not in state or base.config.tie_word_embeddings:  # the VLM's head is untied
        state["lm_head.weight"] = state["model.embed_tokens.weight"].clone()
    target = model.language_model.state_dict()
    wrong = [k for k in target if k not in state or state[k].shape != target[k].shape]
    if wrong:
        raise ValueError(f"--init {init}: shapes differ from the VLM's `tiny` language model at {wrong[0]} "
                         f"(and {len(wrong) - 1} more); accepted: a `tiny`-preset base")
    model.language_model.load_state_dict({k: state[k] for k in target})


def _train_steps(model, tokenizer, optimizer, stream, steps, lr, phase, device, history, started, log_every,
                 step_offset=0):
    """`steps` AdamW steps on `stream` (batches of image rows and text rows), linear warm-up then cosine
    decay to a tenth of `lr`; the loss is the mean over both kinds of rows of the completion tokens."""
    warmup = min(100, steps // 10 + 1)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, steps, lr, warmup=warmup)
        image_rows, text_rows = next(stream)
        losses, weights = [], []
        if image_rows:
            ids, mask, labels = encode_batch(tokenizer, [pair for _, pair in image_rows])
            pixels = images_of([task for task, _ in image_rows]).to(device)
            losses.append(model(input_ids=ids.to(device), attention_mask=mask.to(device), pixel_values=pixels,
                                labels=labels.to(device)).loss)
            weights.append(len(image_rows))
        if text_rows:
            ids, mask, labels = encode_batch(tokenizer, text_rows)
            losses.append(model(input_ids=ids.to(device), attention_mask=mask.to(device),
                                labels=labels.to(device)).loss)
            weights.append(len(text_rows))
        loss = sum(l * w for l, w in zip(losses, weights)) / sum(weights)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % log_every == 0 or step == steps - 1:
            history.append({"step": step_offset + step, "phase": phase, "loss": round(loss.item(), 4),
                            "minutes": round((time.time() - started) / 60, 2)})
            print(json.dumps(history[-1]), flush=True)


def _adamw(model, lr):
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=0.01)


def coldstart(out, steps=1000, batch_size=64, lr=1e-3, p_noise=0.3, regime="asked", text_fraction=0.3,
              shortcut=0.9, seed=0, threads=None, device="cpu", log_every=50, text_shortcut=0.5, reading_steps=800,
              reading_lr=1e-3, init="tiny-calc"):
    """Train and save a TinyVLM cold start (see the module docstring); `init=None` starts the language
    model from random weights, `reading_steps=0` skips the reading stage."""
    from transformers.utils import logging as hf_logging

    from labkit.core.vision.evaluate import reading_rate

    hf_logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    tokenizer = build_tokenizer()
    model = make_vlm(tokenizer)
    if init:
        init_language_model(model, init)
    model.to(device)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    history, started, cpu_started = [], time.time(), time.process_time()
    read_after = None
    model.train()
    if reading_steps:  # stage 1: learn to read descriptions (text only; its own optimizer and schedule)
        _train_steps(model, tokenizer, _adamw(model, reading_lr), reading_batches(seed, batch_size, p_noise, regime, text_shortcut),
                     reading_steps, reading_lr, "reading", device, history, started, log_every)
        model.eval()
        read_after = reading_rate(model, tokenizer, make_tasks(CARD_TASKS * 3 // 2, 1, 0.5, split="eval"))
        print(json.dumps({"reading_rate_after_reading": read_after}), flush=True)
        model.train()
    # stage 2: learn to see, keeping text_fraction text-only rows (a fresh optimizer and schedule)
    _train_steps(model, tokenizer, _adamw(model, lr), batches(seed, batch_size, text_fraction, p_noise, regime, shortcut,
                                                              text_shortcut),
                 steps, lr, "vision", device, history, started, log_every, step_offset=reading_steps)
    model.eval()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    settings = dict(init=str(init) if init else None, reading_steps=reading_steps, reading_lr=reading_lr, steps=steps,
                    batch_size=batch_size, lr=lr, p_noise=p_noise, regime=regime,
                    text_fraction=text_fraction, shortcut=shortcut, text_shortcut=text_shortcut, seed=seed,
                    parameters=sum(p.numel() for p in model.parameters()),
                    minutes=round((time.time() - started) / 60, 1),
                    cpu_minutes=round((time.process_time() - cpu_started) / 60, 1))
    (out / "coldstart.json").write_text(json.dumps({"settings": settings, "reading_rate_after_reading": read_after,
                                                     "history": history}, indent=1))
    return out


def write_card(out, command: str) -> Path:
    """card.json + README.md: how the checkpoint was made and what it does on held-out scenes."""
    from labkit.core.vision.evaluate import measure, reading_rate
    from labkit.core.vision.model import load_vlm

    out = Path(out)
    log = json.loads((out / "coldstart.json").read_text())
    made, read_after = log["settings"], log.get("reading_rate_after_reading")
    model, tokenizer = load_vlm(out, device="cpu")
    sets = {"eval": make_tasks(CARD_TASKS, 0, made["shortcut"], split="eval"),
            "counterbias": counterbias_tasks(CARD_TASKS, 0)}
    reading = reading_rate(model, tokenizer, make_tasks(CARD_TASKS * 3 // 2, 1, 0.5, split="eval"))
    rows = {}
    for name, tasks in sets.items():
        rows[name] = {"sampled": measure(model, tokenizer, tasks, CARD_SAMPLES, 1.0).as_dict(),
                      "greedy": measure(model, tokenizer, tasks, 1, 0.0).as_dict()}
    (out / "card.json").write_text(json.dumps({"made": made, "command": command, "measured": rows,
                                                 "reading": reading}, indent=1))
    init = made.get("init")
    lines = [f"# {out.name}: the tiny vision-language model of notebook 12", "",
             f"A {made['parameters']:,}-parameter TinyVLM (labkit/core/vision/model.py): a patch-MLP encoder and projector "
             "feeding labkit's tiny Llama as 17 prefix embeddings (a pooled token and one per patch). Cold-started by "
             "labkit/bases/vision_coldstart.py in stages, each with its own AdamW and its own warm-up + cosine schedule:", "",
             f"1. init: the language model from {f'the text base `{init}`' if init else 'random weights'}; "
             "the patch encoder and projector fresh.",
             f"2. reading: {made.get('reading_steps', 0)} text-only steps at lr {made.get('reading_lr', '-')} "
             "(description + question -> the answer that description implies, `more` balanced).",
             f"3. vision: {made['steps']} steps at lr {made['lr']} on "
             "(image, question) -> `<description>...</description>answer` with descriptions noisy "
             f"(p={made['p_noise']}, noise on {'a count the question asks about' if made['regime'] == 'asked' else 'a random colour'}) "
             f"and answers right, plus {made['text_fraction']:.0%} text-only examples "
             f"(`more` answered y with probability {made.get('text_shortcut', made['shortcut'])} there, "
             f"{made['shortcut']} with the image).", "",
             f"Made with: `{command}`", "", "Settings: " + ", ".join(f"{k}={v}" for k, v in made.items()), "",
             f"## Held-out scenes ({CARD_TASKS} tasks per set; sampled = temperature 1, {CARD_SAMPLES} samples)", "",
             "| set | decoding | acc | format | desc_accuracy | desc_solve_rate |", "|---|---|---|---|---|---|"]
    for name, by in rows.items():
        for decoding, m in by.items():
            lines.append(f"| {name} | {decoding} | {m['acc']:.3f} | {m['format']:.3f} | {m['desc_accuracy']:.3f} | "
                         f"{m['desc_solve_rate']:.3f} |")
    lines += ["", f"The text-only reader alone, from the ground-truth description (greedy, {CARD_TASKS * 3 // 2} "
              "balanced held-out tasks): " + ", ".join(f"{kind} {rate:.3f}" for kind, rate in reading.items()) + "."]
    if read_after:
        lines[-1] += " After the reading stage, before the vision stage: " + ", ".join(
            f"{kind} {rate:.3f}" for kind, rate in read_after.items()) + "."
    (out / "README.md").write_text("\n".join(lines) + "\n")
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m labkit.bases.vision_coldstart", description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="checkpoint directory, e.g. data/models/tiny-vlm")
    parser.add_argument("--init", default="tiny-calc",
                        help="text base the language model starts from (a shipped name or a checkpoint directory; "
                             "`none`: random weights)")
    parser.add_argument("--reading-steps", type=int, default=800,
                        help="stage 1: text-only steps, the language model learns to read descriptions (0: none)")
    parser.add_argument("--reading-lr", type=float, default=1e-3, help="stage 1's peak learning rate")
    parser.add_argument("--steps", type=int, default=1000,
                        help="stage 2: steps on the image + text-only mix, a fresh optimizer and schedule")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3, help="stage 2's peak learning rate")
    parser.add_argument("--p-noise", type=float, default=0.3, help="share of descriptions with one count off by one")
    parser.add_argument("--noise", default="asked", choices=REGIMES, help="which count the noise hits")
    parser.add_argument("--text-fraction", type=float, default=0.3, help="share of text-only examples")
    parser.add_argument("--shortcut", type=float, default=0.9, help="P(answer 'y') for `more` questions")
    parser.add_argument("--text-shortcut", type=float, default=0.5,
                        help="P(answer 'y') for `more` questions in the text-only examples (0.5: balanced)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--card-only", action="store_true")
    parser.add_argument("--force", action="store_true", help="overwrite an existing checkpoint")
    args = parser.parse_args(argv)
    if args.reading_steps < 0:
        parser.error(f"--reading-steps must be >= 0; got {args.reading_steps}")
    for name in ("steps", "batch_size"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1; got {getattr(args, name)}")
    for name in ("lr", "reading_lr"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0; got {getattr(args, name)}")
    init = None if args.init.lower() == "none" else args.init
    if init and not args.card_only:
        try:
            resolve_checkpoint(init)
        except ValueError as error:
            parser.error(f"--init: {error}")
    for name in ("p_noise", "text_fraction", "shortcut", "text_shortcut"):
        if not 0 <= getattr(args, name) <= 1:
            parser.error(f"--{name.replace('_', '-')} must be in [0, 1]; got {getattr(args, name)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    if not args.card_only and (out / "config.json").exists() and not args.force:
        parser.error(f"{out} already holds a checkpoint; pass --force to overwrite it or --out elsewhere")
    if not args.card_only:
        coldstart(out, args.steps, args.batch_size, args.lr, args.p_noise, args.noise, args.text_fraction,
                  args.shortcut, args.seed, args.threads, args.device, text_shortcut=args.text_shortcut,
                  reading_steps=args.reading_steps, reading_lr=args.reading_lr, init=init)
    write_card(out, "python -m labkit.bases.vision_coldstart " + " ".join(argv if argv is not None else sys.argv[1:]))
    print(f"checkpoint and card: {out}")


if __name__ == "__main__":
    main()
