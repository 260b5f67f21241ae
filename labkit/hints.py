"""Hints for RL on sparse rewards (SAGE, notebook 05): hint formats, procedural hint levels,
self-written hints, hinted re-rolling of all-wrong groups, and the adaptive per-prompt level.

SAGE (Liao et al., "Self-Hinting Language Models Enhance Reinforcement Learning"): a GRPO group
whose rollouts all score 0 has zero advantage and no gradient. For such a prompt x the policy is
conditioned on a hint h (a plan or partial decomposition, never the answer) and the group is
rolled again from (x, h), escalating the hint level until some rollout succeeds. The reward
R(x, tau) is unchanged; the update uses the log-probabilities of the completions under the hinted
prompt; at test time h is empty.

Task family: countdown (labkit.tasks.countdown), because its hints grade naturally from minimal
to detailed without giving the answer. With the reference solution n1 o1 n2 o2 ... nk:

    level 0   no hint
    level 1   which numbers the solution uses, ascending       "3 5 7"
    level 2   + the first step: the solution's first two numbers "3 5 7:3*5"   (k = 2: "3 5:3")
    level 3   + every step but the last: all but the last number "3 5 7:3*5+"

A hint is never the whole solution (the last number is always withheld). The hinted prompt is
`hint + ";" + prompt`, so its tail (where the answer starts) is the unhinted prompt. Hints are
printable ASCII, in the char tokenizer's alphabet (labkit/policy/tokenizer.py).

Self-hints, as in the authors' code: the policy itself writes the hint at a requested level,
given the question and its reference solution (privileged information, used only in training):
the request prompt is `"h<level>|" + prompt + solution + "|"`, the completion is the hint. The
pretraining mixture `hints` (labkit/policy/mixtures/hints.py) teaches both skills.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

import torch

from labkit.rl import subset
from labkit.rollout import Rollout, concat_rollouts, rollout
from labkit.tasks import Task, verify
from labkit.tasks.countdown import tokenize

LEVELS = (0, 1, 2, 3)  # 0 = no hint
MAX_LEVEL = LEVELS[-1]
HINT_SEPARATOR = ";"  # hint ; prompt
MAX_HINT_CHARS = 24
HINT_SOURCES = ("procedural", "self")

# The authors' "sage-light" thresholds (recipe/hint/config/hint_trainer.yaml): a prompt whose last
# group at its level succeeded at most `raise_at` of the time gets a more detailed hint next time;
# above `lower_at` a less detailed one.
RAISE_AT = 0.0
LOWER_AT = 0.35


def _check_level(level) -> int:
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise ValueError(f"hint level must be one of {', '.join(map(str, LEVELS))}; got {level!r}")
    return level


def _solution_parts(task: Task) -> tuple[list[int], list[str]]:
    if task.category != "countdown":
        raise ValueError(f"hints are defined for countdown tasks; got category {task.category!r}")
    parsed = tokenize(task.answer)
    if parsed is None:
        raise ValueError(f"countdown task has no well-formed reference solution: {task.answer!r}")
    return parsed


def procedural_hint(task: Task, level: int) -> str:
    """The fixed hint of `level` for a countdown task, built from its reference solution."""
    level = _check_level(level)
    if level == 0:
        return ""
    numbers, operators = _solution_parts(task)
    used = " ".join(str(n) for n in sorted(numbers))
    if level == 1:
        return used
    # level 2 reveals the first two numbers, level 3 all but the last; never all k of them
    shown = min(2 if level == 2 else len(numbers) - 1, len(numbers) - 1)
    prefix = str(numbers[0]) + "".join(op + str(n) for op, n in zip(operators, numbers[1:shown]))
    if level == 3:
        prefix += operators[shown - 1]  # and the operator that joins the last number
    return f"{used}:{prefix}"


def hinted_prompt(prompt: str, hint: str) -> str:
    """The prompt the policy sees with a hint: `hint;prompt` (unchanged when the hint is empty)."""
    if not hint:
        return prompt
    if not (hint.isascii() and hint.isprintable()) or HINT_SEPARATOR in hint:
        raise ValueError(f"a hint must be printable ASCII without {HINT_SEPARATOR!r}; got {hint!r}")
    return f"{hint}{HINT_SEPARATOR}{prompt}"


def hint_request(task: Task, level: int) -> str:
    """The prompt that asks the policy to write the hint of `level` for `task` (the reference
    solution is shown, as in SAGE: a hint compresses a known solution into a plan)."""
    level = _check_level(level)
    if level == 0:
        raise ValueError("hint level 0 means no hint; request levels 1..3")
    return f"h{level}|{task.prompt}{task.answer}|"


def usable_hint(task: Task, text: str) -> str:
    """A self-written hint as it may be shown: stripped; '' (no hint) when it is empty, too long,
    not printable ASCII, holds the separator, or gives the whole reference solution away."""
    text = text.strip()
    if (not text or len(text) > MAX_HINT_CHARS or not (text.isascii() and text.isprintable())
            or HINT_SEPARATOR in text or task.answer in text):
        return ""
    return text


@torch.no_grad()
def self_hints(policy, tasks: list[Task], level: int, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> list[str]:
    """One hint per task, written by the policy itself at `level` (sampled, as the authors do)."""
    if not tasks:
        return []
    batch = rollout(policy, [hint_request(t, level) for t in tasks], max_new_tokens=MAX_HINT_CHARS + 1,
                    temperature=temperature, generator=generator)
    return [usable_hint(t, text) for t, text in zip(tasks, batch.completions)]


# ---------------------------------------------------------------------------------------------
# The adaptive per-prompt hint level


@dataclass
class HintLevels:
    """Each training prompt's hint level, carried across visits (the authors' "sage-light" rule):

        acc <= raise_at  ->  level + 1   (capped at MAX_LEVEL)
        acc >  lower_at  ->  level - 1   (floored at 0)
        otherwise        ->  level kept

    where acc is the success rate of the prompt's last group at the level it was rolled with."""

    raise_at: float = RAISE_AT
    lower_at: float = LOWER_AT
    levels: dict = field(default_factory=dict)

    def __post_init__(self):
        if not 0 <= self.raise_at <= self.lower_at <= 1:
            raise ValueError(f"need 0 <= raise_at <= lower_at <= 1; got {self.raise_at}, {self.lower_at}")

    def level(self, prompt: str) -> int:
        return self.levels.get(prompt, 0)

    def update(self, prompt: str, level: int, acc: float) -> int:
        level = _check_level(level)
        if acc <= self.raise_at:
            level = min(level + 1, MAX_LEVEL)
        elif acc > self.lower_at:
            level = max(level - 1, 0)
        self.levels[prompt] = level
        return level


# ---------------------------------------------------------------------------------------------
# Hinted re-rolling


@dataclass
class HintedGroups:
    """One step's groups after hinting: the batch to update on (group g = rows g*n .. g*n+n-1,
    rolled from the hinted prompt it was finally kept with), its unchanged verifier rewards, each
    group's final hint level and hint text, and how many groups were rolled at each level."""

    batch: Rollout
    rewards: torch.Tensor  # (G * n,)
    levels: list[int]
    hints: list[str]
    rolled_at: dict  # level -> groups rolled with it (re-rolls included)
    empty_self_hints: int = 0  # self-written hints dropped by usable_hint


def roll_with_hints(policy, tasks: list[Task], group_size: int, max_new_tokens: int = 16,
                    temperature: float = 1.0, hint_source: str | None = "procedural",
                    start_levels: list[int] | None = None, generator: torch.Generator | None = None,
                    hint_temperature: float = 1.0) -> HintedGroups:
    """SAGE's rollout: roll each prompt's group at its start level (0 = no hint); while a group
    is all wrong, write a hint one level more detailed and roll the whole group again from the
    hinted prompt, up to MAX_LEVEL. hint_source None = plain GRPO (no re-rolls)."""
    if hint_source is not None and hint_source not in HINT_SOURCES:
        raise ValueError(f"hint_source must be None or one of {', '.join(HINT_SOURCES)}; got {hint_source!r}")
    if group_size < 2:
        raise ValueError(f"group_size must be >= 2; got {group_size}")
    levels = [0] * len(tasks) if start_levels is None else [_check_level(x) for x in start_levels]
    if len(levels) != len(tasks):
        raise ValueError(f"start_levels has {len(levels)} entries for {len(tasks)} tasks")
    hints = [""] * len(tasks)
    rolled_at = {level: 0 for level in LEVELS}
    dropped = 0
    pending = list(range(len(tasks)))  # groups to roll now
    groups: dict[int, tuple[Rollout, torch.Tensor]] = {}
    while pending:
        if hint_source is not None:
            for level in sorted({levels[g] for g in pending} - {0}):  # write this round's hints
                at_level = [g for g in pending if levels[g] == level]
                if hint_source == "procedural":
                    written = [procedural_hint(tasks[g], level) for g in at_level]
                else:
                    written = self_hints(policy, [tasks[g] for g in at_level], level, hint_temperature, generator)
                    dropped += sum(not h for h in written)
                for g, h in zip(at_level, written):
                    hints[g] = h
        prompts = [hinted_prompt(tasks[g].prompt, hints[g] if levels[g] else "")
                   for g in pending for _ in range(group_size)]
        batch = rollout(policy, prompts, max_new_tokens, temperature, generator=generator)
        rewards = torch.tensor([verify(tasks[g], text).reward  # R(x, tau): the hint never enters it
                                for g, text in zip((g for g in pending for _ in range(group_size)),
                                                   batch.completions)])
        still_wrong = []
        for i, g in enumerate(pending):
            rows = list(range(i * group_size, (i + 1) * group_size))
            groups[g] = (subset(batch, torch.tensor(rows, dtype=torch.long, device=batch.input_ids.device)), rewards[rows])  # a re-roll replaces the group
            rolled_at[levels[g]] += 1
            if hint_source is not None and rewards[rows].max() == 0 and levels[g] < MAX_LEVEL:
                levels[g] += 1
                still_wrong.append(g)
        pending = still_wrong
    merged = concat_rollouts([groups[g][0] for g in range(len(tasks))], policy.tokenizer.pad_token_id)
    rewards = torch.cat([groups[g][1] for g in range(len(tasks))])
    shown = [hints[g] if levels[g] else "" for g in range(len(tasks))]
    return HintedGroups(merged, rewards, levels, shown, rolled_at, dropped)


def training_pool(category_levels, per_level: int, seed: int) -> list[Task]:
    """A fixed pool of training tasks (seeds >= 1000: never the eval sets'), revisited over epochs
    so a per-prompt hint level has something to adapt to."""
    from labkit.tasks import TRAIN_SEED_MIN, make_tasks

    pool = []
    for category, level in category_levels:
        pool += make_tasks(category, level, per_level, seed=TRAIN_SEED_MIN + seed)
    random.Random(seed).shuffle(pool)
    return pool


@torch.no_grad()
def hinted_accuracy(policy, tasks: list[Task], level: int, hint_source: str = "procedural", samples: int = 1,
                    max_new_tokens: int = 16, temperature: float = 1.0,
                    generator: torch.Generator | None = None) -> float:
    """pass@1 of `policy` on `tasks` shown with hints of `level` (0: no hint), scored by the
    unchanged verifier. Self-hints are written once per task, then `samples` answers are drawn."""
    if not tasks:
        raise ValueError("hinted_accuracy needs at least one task")
    if hint_source not in HINT_SOURCES:
        raise ValueError(f"hint_source must be one of {', '.join(HINT_SOURCES)}; got {hint_source!r}")
    level = _check_level(level)
    if level == 0:
        hints = [""] * len(tasks)
    elif hint_source == "procedural":
        hints = [procedural_hint(t, level) for t in tasks]
    else:
        hints = self_hints(policy, tasks, level, temperature, generator)
    owners = [t for t in tasks for _ in range(samples)]
    prompts = [hinted_prompt(t.prompt, h) for t, h in zip(tasks, hints) for _ in range(samples)]
    batch = rollout(policy, prompts, max_new_tokens, temperature, generator=generator)
    return sum(verify(t, text).correct for t, text in zip(owners, batch.completions)) / len(prompts)
