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

from labkit.core.evaluate import check_tasks, sample_and_judge
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


@dataclass
class FirstPass:
    """One first pass judged by `measure`."""

    correct: bool
    format_ok: bool
    desc_accurate: bool
    desc_solved: bool  # the second pass, from this description, answers right


@torch.no_grad()
def measure(model, tokenizer, tasks: list[VisualTask], samples: int = 1, temperature: float = 1.0,
            seed: int = 0, batch_size: int = 256) -> Measured:
    """Sample `samples` first passes per task and score them (see the module docstring)."""
    check_tasks("measure", tasks, samples)
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)

    def sampler(part: list[VisualTask]):
        return vlm_rollout(model, tokenizer, [t.question for t in part], images_of(part), MAX_NEW_TOKENS,
                           temperature, generator)

    def judge(part: list[VisualTask], batch) -> list[FirstPass]:
        verdicts = [verify(t, text) for t, text in zip(part, batch.completions)]
        solved = second_pass(model, tokenizer, part, [v.description for v in verdicts])
        return [FirstPass(v.correct, v.format_ok, description_accurate(t, v.description), s)
                for t, v, s in zip(part, verdicts, solved)]

    judged = sample_and_judge(tasks, sampler, judge, samples, batch_size)[1]
    n = len(judged)
    return Measured(sum(j.correct for j in judged) / n, sum(j.format_ok for j in judged) / n,
                    sum(j.desc_accurate for j in judged) / n, sum(j.desc_solved for j in judged) / n, samples)
