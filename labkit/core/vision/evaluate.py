"""Held-out measurement of a TinyVLM: answers, descriptions, and what the descriptions alone solve.

`second_pass` is Vision-SR1's text-only pass: the same model, given only the question and a
description (no image), answers; it runs without gradients. `measure` samples first passes at
temperature 1 (greedy decoding hides description noise) and reports per task set:

    acc                  the answer is right
    format               the completion is `<description>...</description>answer`
    desc_accuracy        the description's counts that the question asks about are right
    desc_solve_rate      the second pass, from the model's own description, answers right

`reading_rate` checks the text-only reader alone: from the ground-truth description, per question kind.
"""
from dataclasses import dataclass

import torch

from labkit.core.vision.rollout import vlm_rollout
from labkit.core.vision.world import (KINDS, VisualTask, description_accurate, images_of, text_only_correct, text_only_prompt,
                                 verify)

MAX_NEW_TOKENS = 40  # `<description>r2g1b3</description>5` + EOS is 35 tokens


@torch.no_grad()
def second_pass(model, tokenizer, tasks: list[VisualTask], descriptions: list, temperature: float = 0.0,
                generator: torch.Generator | None = None) -> list[bool]:
    """For each (task, description): does the model, seeing only question + description, answer
    right? A missing description (None) counts as wrong without asking the model."""
    if len(tasks) != len(descriptions):
        raise ValueError(f"need one description per task; got {len(descriptions)} for {len(tasks)} tasks")
    solved = [False] * len(tasks)
    asked = [i for i, d in enumerate(descriptions) if d is not None]
    if asked:
        prompts = [text_only_prompt(tasks[i].question, descriptions[i]) for i in asked]
        out = vlm_rollout(model, tokenizer, prompts, None, max_new_tokens=4, temperature=temperature,
                          generator=generator)
        for i, text in zip(asked, out.completions):
            solved[i] = text_only_correct(tasks[i], text)
    return solved


@torch.no_grad()
def reading_rate(model, tokenizer, tasks: list[VisualTask]) -> dict:
    """Per question kind: the share the greedy second pass answers right from the ground-truth
    description. A reader that ignores the description scores the shortcut's rate on `more`."""
    if not tasks:
        raise ValueError("reading_rate needs at least one task")
    solved = second_pass(model, tokenizer, tasks, [t.description for t in tasks])
    rates = {}
    for kind in KINDS:
        hits = [s for s, t in zip(solved, tasks) if t.kind == kind]
        if hits:
            rates[kind] = sum(hits) / len(hits)
    return rates


@dataclass
class Measured:
    acc: float
    format: float
    desc_accuracy: float
    desc_solve_rate: float
    samples: int

    def as_dict(self) -> dict:
        return dict(acc=self.acc, format=self.format, desc_accuracy=self.desc_accuracy,
                    desc_solve_rate=self.desc_solve_rate)


@torch.no_grad()
def measure(model, tokenizer, tasks: list[VisualTask], samples: int = 1, temperature: float = 1.0,
            seed: int = 0, batch_size: int = 256) -> Measured:
    """Sample `samples` first passes per task and score them (see the module docstring)."""
    if not tasks or samples < 1:
        raise ValueError(f"measure needs tasks and samples >= 1; got {len(tasks)} tasks, samples={samples}")
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    owners = [t for t in tasks for _ in range(samples)]
    right = fmt = desc_ok = solved = 0
    for start in range(0, len(owners), batch_size):
        part = owners[start:start + batch_size]
        out = vlm_rollout(model, tokenizer, [t.question for t in part], images_of(part), MAX_NEW_TOKENS,
                          temperature, generator)
        verdicts = [verify(t, text) for t, text in zip(part, out.completions)]
        right += sum(v.correct for v in verdicts)
        fmt += sum(v.format_ok for v in verdicts)
        desc_ok += sum(description_accurate(t, v.description) for t, v in zip(part, verdicts))
        solved += sum(second_pass(model, tokenizer, part, [v.description for v in verdicts]))
    n = len(owners)
    return Measured(right / n, fmt / n, desc_ok / n, solved / n, samples)
