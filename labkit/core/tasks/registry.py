"""The category registry: which categories exist, their difficulties, and how to sample and
verify each. Sampling is deterministic: it only ever draws from the caller's random.Random."""
from __future__ import annotations

import numbers
import random
from dataclasses import dataclass
from functools import partial
from typing import Callable

from . import arithmetic, countdown, digits
from .base import Task, Verdict


@dataclass(frozen=True)
class Category:
    world: str
    difficulties: tuple[int, ...]
    sample: Callable[[int, random.Random], Task]
    verify: Callable[[Task, str], Verdict]


_REGISTRY: dict[str, Category] = {
    **{name: Category(arithmetic.WORLD, tuple(arithmetic.DIGIT_RANGE),
                      partial(arithmetic.sample_binary, name), arithmetic.verify)
       for name in arithmetic.OPERATORS},
    "carry": Category(arithmetic.WORLD, tuple(arithmetic.CARRY_RANGE),
                      arithmetic.sample_carry, arithmetic.verify),
    "countdown": Category(countdown.WORLD, tuple(countdown.COUNT_RANGE),
                          countdown.sample, countdown.verify),
    **{name: Category(digits.WORLD, tuple(digits.LENGTH_RANGE),
                      partial(digits.sample, name), digits.verify)
       for name in digits.PREFIXES},
}

CATEGORIES: tuple[str, ...] = tuple(_REGISTRY)
DIFFICULTIES: dict[str, tuple[int, ...]] = {name: c.difficulties for name, c in _REGISTRY.items()}
WORLDS: dict[str, str] = {name: c.world for name, c in _REGISTRY.items()}


def _category(name: str) -> Category:
    if name not in _REGISTRY:
        raise ValueError(f"unknown category {name!r}; accepted: {', '.join(CATEGORIES)}")
    return _REGISTRY[name]


def _checked_difficulty(category: str, difficulty: int) -> int:
    """The difficulty as a plain int (numpy integers from a bandit are fine), or ValueError."""
    accepted = DIFFICULTIES[category]
    if (isinstance(difficulty, bool) or not isinstance(difficulty, numbers.Integral)
            or int(difficulty) not in accepted):
        raise ValueError(f"difficulty {difficulty!r} out of range for {category}; "
                         f"accepted: {accepted[0]}..{accepted[-1]}")
    return int(difficulty)


def sample_task(category: str, difficulty: int, rng: random.Random) -> Task:
    """One task drawn with the caller's generator (for on-the-fly sampling in training loops)."""
    spec = _category(category)
    return spec.sample(_checked_difficulty(category, difficulty), rng)


def make_tasks(category: str, difficulty: int, n: int, seed: int) -> list[Task]:
    """n tasks, the same for the same (category, difficulty, seed) on every machine.

    The generator is seeded with a string of all three (hashed with sha512 by random.Random,
    independent of PYTHONHASHSEED) so categories and difficulties do not share draws."""
    spec = _category(category)
    difficulty = _checked_difficulty(category, difficulty)
    if isinstance(n, bool) or not isinstance(n, numbers.Integral) or n < 0:
        raise ValueError(f"n must be an integer >= 0, got {n!r}")
    rng = random.Random(f"{category}/{difficulty}/{seed}")
    return [spec.sample(difficulty, rng) for _ in range(n)]


def verify(task: Task, completion: str) -> Verdict:
    """Judge a completion (decoded text without EOS/padding) against a task."""
    return _category(task.category).verify(task, completion)
