"""05 · Self-hinting: giving all-wrong groups a gradient (SAGE): the mechanism that notebooks/05_self_hinting.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import random
from dataclasses import dataclass
import torch
from labkit.core.grpo import subset
from labkit.core.sampling import Rollout, concat_rollouts, rollout
from labkit.core.tasks import Task, verify
from labkit.core.tasks.hints import (HINT_SEPARATOR, LEVELS, MAX_HINT_CHARS, _check_level,
                                     hint_request, hinted_prompt, procedural_hint)


HINT_SOURCES = ("procedural", "self")


# A self-written hint that is unusable is asked for again, up to this many generations in all
# (the authors retry a hint payload that fails to parse: max_retries=3); then that level is skipped.
WRITE_ATTEMPTS = 3


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
# Hinted re-rolling (the authors' on-policy "sage" mode) and its matched-rollout control


@dataclass
class HintedGroups:
    """One step's groups after re-rolling: the batch to update on (group g = rows g*n .. g*n+n-1,
    rolled from the prompt it was finally kept with: its last roll), their unchanged verifier
    rewards, each group's final hint level and hint text, and the cost.

    rolled_at[level]: groups rolled with a hint of that level (level 0 = no hint, the first roll and
    unhinted re-rolls); rerolls: group rolls after the first one; hint_requests: hint-writing
    generations (self-hints, retries included); dropped: (group, level) re-rolls skipped because the
    self-written hint stayed unusable; unspent: re-rolls of a resample budget left unused."""

    batch: Rollout
    rewards: torch.Tensor  # (G * n,)
    levels: list[int]
    hints: list[str]
    rolled_at: dict
    group_size: int
    rerolls: int = 0
    hint_requests: int = 0
    dropped: int = 0
    unspent: int = 0

    @property
    def rollouts(self) -> int:
        """Completions sampled for this step (hint-writing generations not included)."""
        return self.group_size * sum(self.rolled_at.values())


def write_hints(policy, tasks: list[Task], level: int, hint_source: str, attempts: int = WRITE_ATTEMPTS,
                temperature: float = 1.0, generator: torch.Generator | None = None) -> tuple[list[str], int]:
    """The hints of `level` for `tasks` and the number of hint-writing generations spent.

    procedural: the fixed hint, nothing generated. self: the policy writes each hint; a hint that
    `usable_hint` rejects is asked for again, up to `attempts` generations per task (the authors
    retry an unparseable hint payload, max_retries=3); one still unusable is '' (dropped)."""
    if hint_source not in HINT_SOURCES:
        raise ValueError(f"hint_source must be one of {', '.join(HINT_SOURCES)}; got {hint_source!r}")
    level = _check_level(level)
    if level == 0:
        raise ValueError("hint level 0 means no hint; write levels 1..3")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise ValueError(f"attempts must be an int >= 1; got {attempts!r}")
    if hint_source == "procedural":
        return [procedural_hint(t, level) for t in tasks], 0
    hints, todo, requests = [""] * len(tasks), list(range(len(tasks))), 0
    for _ in range(attempts):
        if not todo:
            break
        written = self_hints(policy, [tasks[i] for i in todo], level, temperature, generator)
        requests += len(todo)
        for i, hint in zip(todo, written):
            hints[i] = hint
        todo = [i for i in todo if not hints[i]]
    return hints, requests


def _check_group_size(group_size) -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 2:
        raise ValueError(f"group_size must be an int >= 2; got {group_size!r}")
    return group_size


def _roll(policy, tasks: list[Task], owners: list[int], hints: dict, group_size: int, max_new_tokens: int,
          temperature: float, generator) -> dict:
    """Roll one group for each task index in `owners` (from its hinted prompt when hints[g] is not
    empty) and score it with the unchanged verifier: g -> (the group's rows, its rewards)."""
    prompts = [hinted_prompt(tasks[g].prompt, hints.get(g, "")) for g in owners for _ in range(group_size)]
    batch = rollout(policy, prompts, max_new_tokens, temperature, generator=generator)
    # R(x, tau): the hint never enters the reward
    rewards = torch.tensor([verify(tasks[g], text).reward
                            for g, text in zip((g for g in owners for _ in range(group_size)), batch.completions)])
    out = {}
    for i, g in enumerate(owners):
        rows = torch.arange(i * group_size, (i + 1) * group_size, device=batch.input_ids.device)
        out[g] = (subset(batch, rows), rewards[i * group_size:(i + 1) * group_size])
    return out


def _merge(policy, groups: dict, n: int) -> tuple[Rollout, torch.Tensor]:
    merged = concat_rollouts([groups[g][0] for g in range(n)], policy.tokenizer.pad_token_id)
    return merged, torch.cat([groups[g][1] for g in range(n)])


def _all_wrong(groups: dict, n: int) -> list[int]:
    return [g for g in range(n) if not bool((groups[g][1] > 0).any())]


def roll_with_hints(policy, tasks: list[Task], group_size: int, max_new_tokens: int = 16,
                    temperature: float = 1.0, hint_source: str | None = "procedural",
                    generator: torch.Generator | None = None, hint_temperature: float = 1.0,
                    write_attempts: int = WRITE_ATTEMPTS) -> HintedGroups:
    """SAGE's rollout, as the authors' on-policy `sage` mode: roll every prompt's group without a
    hint; then for level 1, 2, 3 in turn, every group still all wrong gets a hint of that level
    and is rolled again from (x, h); the new group replaces the old one, whatever it scores. A group
    with a success is never re-rolled; a group whose hint is unusable skips that level (no re-roll
    is spent on it). So a group is re-rolled at most MAX_LEVEL times and ends as its last roll.
    Nothing is carried between steps. hint_source None = plain GRPO (one roll)."""
    if hint_source is not None and hint_source not in HINT_SOURCES:
        raise ValueError(f"hint_source must be None or one of {', '.join(HINT_SOURCES)}; got {hint_source!r}")
    group_size = _check_group_size(group_size)
    if not tasks:
        raise ValueError("roll_with_hints needs at least one task")
    n = len(tasks)
    levels, hints = [0] * n, [""] * n
    rolled_at = {level: 0 for level in LEVELS}
    groups = _roll(policy, tasks, list(range(n)), {}, group_size, max_new_tokens, temperature, generator)
    rolled_at[0] = n
    requests = dropped = 0
    for level in LEVELS[1:] if hint_source is not None else ():
        pending = _all_wrong(groups, n)
        if not pending:
            break
        written, spent = write_hints(policy, [tasks[g] for g in pending], level, hint_source, write_attempts,
                                     hint_temperature, generator)
        requests += spent
        usable = {g: h for g, h in zip(pending, written) if h}
        dropped += len(pending) - len(usable)
        if not usable:
            continue
        groups.update(_roll(policy, tasks, list(usable), usable, group_size, max_new_tokens, temperature, generator))
        for g, hint in usable.items():  # the re-roll replaces the group
            levels[g], hints[g] = level, hint
        rolled_at[level] += len(usable)
    batch, rewards = _merge(policy, groups, n)
    return HintedGroups(batch, rewards, levels, hints, rolled_at, group_size, rerolls=sum(rolled_at.values()) - n,
                        hint_requests=requests, dropped=dropped)


def resample_all_wrong(policy, tasks: list[Task], group_size: int, budget: int, max_new_tokens: int = 16,
                       temperature: float = 1.0, generator: torch.Generator | None = None) -> HintedGroups:
    """The matched-rollout control: GRPO that re-rolls all-wrong groups without a hint, `budget`
    group re-rolls in all. Rounds over the groups still all wrong (in task order, the last round
    cut to what is left of the budget); a re-roll replaces the group, a group with a success is
    never re-rolled. Re-rolls left when no group is all wrong are returned as `unspent`."""
    group_size = _check_group_size(group_size)
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
        raise ValueError(f"budget must be an int >= 0 (group re-rolls); got {budget!r}")
    if not tasks:
        raise ValueError("resample_all_wrong needs at least one task")
    n = len(tasks)
    groups = _roll(policy, tasks, list(range(n)), {}, group_size, max_new_tokens, temperature, generator)
    left = budget
    while left > 0:
        wrong = _all_wrong(groups, n)[:left]
        if not wrong:
            break
        groups.update(_roll(policy, tasks, wrong, {}, group_size, max_new_tokens, temperature, generator))
        left -= len(wrong)
    batch, rewards = _merge(policy, groups, n)
    rolled_at = {level: 0 for level in LEVELS}
    rolled_at[0] = n + budget - left
    return HintedGroups(batch, rewards, [0] * n, [""] * n, rolled_at, group_size, rerolls=budget - left,
                        unspent=left)


def training_pool(category_levels, per_level: int, seed: int) -> list[Task]:
    """A fixed pool of training tasks (train_seed: never the eval sets' seeds), revisited over epochs
    so a per-prompt hint level has something to adapt to."""
    from labkit.core.tasks import make_tasks, train_seed

    pool = []
    for category, level in category_levels:
        pool += make_tasks(category, level, per_level, seed=train_seed(seed))
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
