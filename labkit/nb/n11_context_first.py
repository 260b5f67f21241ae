"""11 · Context first: describe the image before seeing the question (DoGe): the mechanism that notebooks/11_context_first.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import random
import re

import numpy as np
import torch

from labkit.core.grpo import grpo_advantages
from labkit.core.vision.rollout import vlm_rollout, vlm_update
from labkit.core.vision.world import (COLOURS, KINDS, VisualTask, answer_from_counts, images_of, make_scene,
                                      question_text, render, text_only_correct, verify)

THINK_TOKENS = 33  # len("<description>r2g1b3</description>"): the Thinker writes the context, no answer
THINK_RE = re.compile(r"<description>r\dg\db\d</description>")
FORMAT_WEIGHT = 0.1  # the authors' format_score


def shuffle_rewards(rewards, rng: np.random.Generator) -> np.ndarray:
    # the control: r_1 o sigma, a random permutation over the batch (same rewards, no link to the description)
    rewards = np.asarray(rewards, dtype=float)
    return rewards[rng.permutation(len(rewards))]


def mask_question(question: str) -> str:
    # m(q): the question with the colours it asks about masked; "r+b?" -> "_+_?"
    if not isinstance(question, str) or not question:
        raise ValueError(f"question must be a non-empty str; got {question!r}")
    return "".join("_" if ch in COLOURS else ch for ch in question)


def thinker_reward(solved, format_ok, format_weight: float = FORMAT_WEIGHT) -> np.ndarray:
    # r_1 = (1 - w) * mean_k 1[a_hat_k = y] + w * 1[format]      (w = 0.1)
    solved, format_ok = np.asarray(solved, dtype=float), np.asarray(format_ok, dtype=float)
    if solved.shape != format_ok.shape:
        raise ValueError(f"need one format flag per solver score; got {format_ok.shape} and {solved.shape}")
    if ((solved < 0) | (solved > 1)).any() or not 0 <= format_weight <= 1:
        raise ValueError("solver scores and format_weight must lie in [0, 1]")
    return (1 - format_weight) * solved + format_weight * format_ok


def scarce_pool(n_images: int, seed: int) -> list:
    # the data-scarce training set: n_images scenes, fixed for the whole run
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        raise ValueError(f"n_images must be an int >= 1; got {n_images!r}")
    return [make_scene(random.Random(f"doge-pool-{seed}-{i}")) for i in range(n_images)]


def draw_task(rng: random.Random, pool=None, shortcut: float = 0.5) -> VisualTask:
    # one (image, question, answer): on a pool image (scarce), or a fresh scene (pool None: data-rich)
    while True:
        scene = rng.choice(pool) if pool is not None else make_scene(rng)
        kind = rng.choice(KINDS)
        if kind == "more":
            pairs = [(a, b) for a in COLOURS for b in COLOURS if scene.count(a) > scene.count(b)]
            if not pairs:
                continue
            big, small = rng.choice(pairs)
            colours = (big, small) if rng.random() < shortcut else (small, big)
        else:
            colours = tuple(rng.sample(COLOURS, 1 if kind == "count" else 2))
        return VisualTask(scene, question_text(kind, colours), answer_from_counts(kind, colours, scene.counts),
                          kind, colours, render(scene))


@torch.no_grad()
def solver_scores(solver, tokenizer, tasks, texts, samples: int = 4, temperature: float = 1.0,
                  generator=None) -> np.ndarray:
    # mean_k 1[a_hat_k = y], a_hat_k ~ pi_sol(. | q, c): the Solver reads the real question and the text, no image
    if len(tasks) != len(texts):
        raise ValueError(f"need one text per task; got {len(texts)} for {len(tasks)} tasks")
    if samples < 1:
        raise ValueError(f"samples must be >= 1; got {samples}")
    rows = [(t, t.question + x) for t, x in zip(tasks, texts) for _ in range(samples)]
    out = vlm_rollout(solver, tokenizer, [p for _, p in rows], None, max_new_tokens=4, temperature=temperature,
                      generator=generator)
    right = [text_only_correct(t, a) for (t, _), a in zip(rows, out.completions)]
    return np.asarray(right, dtype=float).reshape(len(tasks), samples).mean(axis=1)


def thinker_step(model, reference, solver, optimizer, tokenizer, tasks, cfg, samples: int = 4,
                 temperature: float = 1.0, generator=None, shuffle_rng=None) -> dict:
    # stage 1: c ~ pi_theta(. | I, m(q)); r_1 from the Solver; GRPO on the description's tokens
    owners = [t for t in tasks for _ in range(cfg.group_size)]
    batch = vlm_rollout(model, tokenizer, [mask_question(t.question) for t in owners], images_of(owners),
                        THINK_TOKENS, cfg.temperature, generator)
    format_ok = [THINK_RE.fullmatch(c) is not None for c in batch.completions]
    solved = solver_scores(solver, tokenizer, owners, batch.completions, samples, temperature, generator)
    rewards = thinker_reward(solved, format_ok)
    if shuffle_rng is not None:
        rewards = shuffle_rewards(rewards, shuffle_rng)
    # A_i = (r_i - mean(r)) / (std(r) + eps) per group; PPO-clip + beta k3 to the frozen cold start
    advantages = grpo_advantages(torch.tensor(rewards, dtype=torch.float32), cfg.group_size)
    metrics = vlm_update(model, optimizer, batch, advantages, cfg, ref_model=reference)
    right = [c == f"<description>{t.description}</description>" for t, c in zip(owners, batch.completions)]
    metrics.update({"reward/mean": float(rewards.mean()), "solver": float(solved.mean()),
                    "format_ok": float(np.mean(format_ok)), "desc_right": float(np.mean(right))})
    return metrics


def solve_step(model, reference, optimizer, tokenizer, tasks, cfg, generator=None) -> dict:
    # stage 2 (and the baselines): (c, a) ~ pi_theta(. | I, q); r_2 = 0.9 1[a = y] + 0.1 1[format]
    owners = [t for t in tasks for _ in range(cfg.group_size)]
    batch = vlm_rollout(model, tokenizer, [t.question for t in owners], images_of(owners), cfg.max_new_tokens,
                        cfg.temperature, generator)
    verdicts = [verify(t, c) for t, c in zip(owners, batch.completions)]
    rewards = torch.tensor([(1 - FORMAT_WEIGHT) * v.correct + FORMAT_WEIGHT * v.format_ok for v in verdicts])
    advantages = grpo_advantages(rewards, cfg.group_size)
    metrics = vlm_update(model, optimizer, batch, advantages, cfg, ref_model=reference)
    metrics.update({"reward/mean": rewards.mean().item(), "acc": float(np.mean([v.correct for v in verdicts]))})
    return metrics
