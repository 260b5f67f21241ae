"""Digits world: sort or reverse a digit string; difficulty = its length.

Prompts: "s:5813=" (answer "1358"), "r:5813=" (answer "3185"). Digit strings may start with 0.
"""
from __future__ import annotations

import random

from .base import Task, Verdict, REJECTED, clean_completion, is_digit_string, judged

WORLD = "digits"
LENGTH_RANGE = range(2, 9)
PREFIXES = {"sort": "s", "reverse": "r"}
TRANSFORMS = {"sort": lambda s: "".join(sorted(s)), "reverse": lambda s: s[::-1]}


def sample(category: str, length: int, rng: random.Random) -> Task:
    """A random digit string of `length` digits to sort or reverse."""
    digits = "".join(rng.choice("0123456789") for _ in range(length))
    return Task(prompt=f"{PREFIXES[category]}:{digits}=", answer=TRANSFORMS[category](digits),
                category=category, difficulty=length, world=WORLD, meta={"digits": digits})


def verify(task: Task, completion: str) -> Verdict:
    """Correct iff the completion is exactly the reference digit string."""
    text = clean_completion(completion)
    if text is None or not is_digit_string(text):
        return REJECTED
    return judged(text, text == task.answer)
