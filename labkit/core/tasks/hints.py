"""The hint format of notebook 05 (SAGE), shared with the `hints` pretraining mixture that taught
the base model to read and write it (labkit/bases/mixtures/hints.py).

With the reference solution n1 o1 n2 o2 ... nk of a countdown task:

    level 0   no hint
    level 1   which numbers the solution uses, ascending       "3 5 7"
    level 2   + the first step: the solution's first two numbers "3 5 7:3*5"   (k = 2: "3 5:3")
    level 3   + every step but the last: all but the last number "3 5 7:3*5+"

A hint is never the whole solution (the last number is always withheld). The hinted prompt is
`hint + ";" + prompt`, so its tail (where the answer starts) is the unhinted prompt. A self-hint
request is `"h<level>|" + prompt + solution + "|"`; its completion is the hint.
"""
from __future__ import annotations

from labkit.core.tasks.base import Task
from labkit.core.tasks.countdown import tokenize

LEVELS = (0, 1, 2, 3)  # 0 = no hint
MAX_LEVEL = LEVELS[-1]
HINT_SEPARATOR = ";"  # hint ; prompt
MAX_HINT_CHARS = 24


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
