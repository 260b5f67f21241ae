"""Countdown world: reach a target from given numbers with + - * (standard precedence, no
parentheses, each given number used at most as often as it is given, at least two numbers).

Prompt: the numbers separated by spaces, '>', the target, '=': "3 5 7>22=". The reference
answer is one solution ("3*5+7"); the verifier accepts any valid expression. Expressions are
read by a tokenizer and a two-level precedence evaluator over integers, never by eval.
"""
from __future__ import annotations

import random
import re
from collections import Counter

from .base import Task, Verdict, REJECTED, clean_completion, judged

WORLD = "countdown"
COUNT_RANGE = range(2, 6)
NUMBER_RANGE = range(1, 13)
TARGET_RANGE = range(1, 1000)
OPERATORS = "+-*"
_PROMPT = re.compile(r"([0-9]+(?: [0-9]+)+)>(-?[0-9]+)=")
_TOKEN = re.compile(r"0|[1-9][0-9]*|[+*-]")


def evaluate(numbers: list[int], operators: list[str]) -> int:
    """Value of numbers[0] op numbers[1] op ... with * binding tighter than + and -."""
    total, term = 0, numbers[0]
    sign = 1
    for operator, number in zip(operators, numbers[1:]):
        if operator == "*":
            term *= number
        else:
            total += sign * term
            sign, term = (1 if operator == "+" else -1), number
    return total + sign * term


def tokenize(expression: str) -> tuple[list[int], list[str]] | None:
    """Numbers and operators of 'n op n op n ...' (canonical non-negative integers, at least
    two of them, no spaces), or None when the expression is not of that shape."""
    tokens = _TOKEN.findall(expression)
    if "".join(tokens) != expression or len(tokens) < 3 or len(tokens) % 2 == 0:
        return None
    numbers, operators = tokens[0::2], tokens[1::2]
    if not all(n.isdigit() for n in numbers) or not all(op in OPERATORS for op in operators):
        return None
    return [int(n) for n in numbers], operators


def parse_prompt(prompt: str) -> tuple[list[int], int]:
    """The given numbers and the target of a countdown prompt."""
    match = _PROMPT.fullmatch(prompt)
    if match is None:
        raise ValueError(f"not a countdown prompt: {prompt!r}")
    return [int(n) for n in match.group(1).split()], int(match.group(2))


def sample(count: int, rng: random.Random) -> Task:
    """`count` numbers and a target built from a random expression over a random subset of
    at least two of them, so a solution exists; targets are kept in 1..999."""
    numbers = [rng.choice(NUMBER_RANGE) for _ in range(count)]
    while True:
        used = rng.sample(numbers, rng.randint(2, count))
        operators = [rng.choice(OPERATORS) for _ in used[1:]]
        target = evaluate(used, operators)
        if target in TARGET_RANGE:
            break
    answer = str(used[0]) + "".join(op + str(n) for op, n in zip(operators, used[1:]))
    prompt = " ".join(map(str, numbers)) + f">{target}="
    return Task(prompt=prompt, answer=answer, category="countdown", difficulty=count,
                world=WORLD, meta={"numbers": numbers, "target": target})


def verify(task: Task, completion: str) -> Verdict:
    """Correct iff the expression uses only given numbers (within their multiplicity) and
    evaluates to the target. format_ok: a well-formed expression of at least two numbers."""
    text = clean_completion(completion)
    parsed = None if text is None else tokenize(text)
    if parsed is None:
        return REJECTED
    numbers, operators = parsed
    given, target = parse_prompt(task.prompt)
    uses_given = not Counter(numbers) - Counter(given)
    return judged(text, uses_given and evaluate(numbers, operators) == target)
