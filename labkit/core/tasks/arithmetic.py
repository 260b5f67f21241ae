"""Arithmetic world: add, sub, mul (difficulty = digits per operand) and carry (fixed-width
4-digit addition, difficulty = number of carries, so difficulty varies at a fixed input length).

Prompts: "12+345=", "345-12=", "12*34="; the answer is the canonical integer ("-12" for a
negative difference).
"""
from __future__ import annotations

import random

from .base import Task, Verdict, REJECTED, clean_completion, is_canonical_integer, judged

WORLD = "arithmetic"
OPERATORS = {"add": "+", "sub": "-", "mul": "*"}
DIGIT_RANGE = range(1, 9)
CARRY_WIDTH = 4
CARRY_RANGE = range(0, CARRY_WIDTH + 1)


def random_operand(digits: int, rng: random.Random) -> int:
    """A number with exactly `digits` digits (any of 0..9 when digits == 1)."""
    if digits == 1:
        return rng.randrange(10)
    return rng.randrange(10 ** (digits - 1), 10 ** digits)


def sample_binary(category: str, digits: int, rng: random.Random) -> Task:
    """An add/sub/mul task whose operands both have `digits` digits."""
    a, b = random_operand(digits, rng), random_operand(digits, rng)
    result = {"add": a + b, "sub": a - b, "mul": a * b}[category]
    return Task(prompt=f"{a}{OPERATORS[category]}{b}=", answer=str(result), category=category,
                difficulty=digits, world=WORLD, meta={"a": a, "b": b})


def count_carries(a: int, b: int) -> int:
    """How many columns produce a carry when a and b are added column by column."""
    carries, carry = 0, 0
    while a or b:
        carry = (a % 10 + b % 10 + carry) // 10
        carries += carry
        a, b = a // 10, b // 10
    return carries


def sample_carry(carries: int, rng: random.Random) -> Task:
    """Two 4-digit numbers whose sum has exactly `carries` carries.

    Built column by column from the units up: pick which columns carry, then draw each
    column's digit pair uniformly among the pairs that give that column's carry-out."""
    carrying_columns = set(rng.sample(range(CARRY_WIDTH), carries))
    a = b = 0
    carry_in = 0
    for column in range(CARRY_WIDTH):
        carry_out = column in carrying_columns
        lowest = 1 if column == CARRY_WIDTH - 1 else 0  # leading digits are non-zero
        pairs = [(x, y) for x in range(lowest, 10) for y in range(lowest, 10)
                 if (x + y + carry_in >= 10) == carry_out]
        x, y = rng.choice(pairs)
        a += x * 10 ** column
        b += y * 10 ** column
        carry_in = int(carry_out)
    return Task(prompt=f"{a}+{b}=", answer=str(a + b), category="carry", difficulty=carries,
                world=WORLD, meta={"a": a, "b": b})


def verify(task: Task, completion: str) -> Verdict:
    """Correct iff the completion is the canonical integer equal to the reference answer."""
    text = clean_completion(completion)
    if text is None or not is_canonical_integer(text):
        return REJECTED
    return judged(text, text == task.answer)
