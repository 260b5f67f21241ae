"""The format of a notebook's ``## Exercises`` section (ARENA's), read by the anatomy check
(labkit.lab.notebooks) and by the student copies (labkit.lab.exercises)::

    ### Exercise 2 · Write `clip_cov_loss`

    > **Difficulty:** 🔴🔴🔴 · **Minutes:** 25 · **Solution:** the cell under *Mechanism* that defines it

    **What to do.** ...

    **How it is checked.** `labkit.check("labkit.nb.n02_entropy_mechanism.clip_cov_loss", clip_cov_loss)` ...
"""
from __future__ import annotations

import re
from dataclasses import dataclass

MIN_EXERCISES, MAX_EXERCISES = 2, 3


_EXERCISE_RE = re.compile(r"^###[ \t]+Exercise[ \t]+(\d+)[ \t]*[·:.\-–—][ \t]*(.+?)[ \t]*$", re.M)
_DIFFICULTY_RE = re.compile(r"Difficulty[:*\s]*(\S+)")
_MINUTES_RE = re.compile(r"Minutes[:*\s]*(\d+)")
_WHAT_RE = re.compile(r"\*\*What to do\b")
_HOW_RE = re.compile(r"\*\*How it is checked\b")
CHECK_RE = re.compile(r"labkit\.check\(\s*[\"']([\w.]+)[\"']\s*,\s*([A-Za-z_][\w.]*)\s*\)")
DIFFICULTY_FORMS = "🔴⚪⚪, 🔴🔴⚪, 🔴🔴🔴 or 1-3"


@dataclass(frozen=True)
class Exercise:
    number: int
    title: str
    difficulty: int | None       # 1-3 (🔴⚪⚪ .. 🔴🔴🔴); None when missing or malformed
    minutes: int | None
    checks: tuple                # ((target, name), ...) from its `labkit.check("target", name)` calls
    cell: int                    # index of the markdown cell that holds it
    text: str                    # its markdown, from its heading to the next exercise or the cell's end

    @property
    def stars(self) -> str:
        return "🔴" * (self.difficulty or 0) + "⚪" * (3 - (self.difficulty or 0))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _difficulty(text: str) -> int | None:
    m = _DIFFICULTY_RE.search(text)
    if not m:
        return None
    value = m.group(1).replace("\ufe0f", "").strip("*·,;")
    if value in ("1", "2", "3"):
        return int(value)
    k = value.count("🔴")
    return k if 1 <= k <= 3 and value == "🔴" * k + "⚪" * (3 - k) else None


def _exercises_in(cells: list, offset: int = 0) -> list[Exercise]:
    """The ``### Exercise N · title`` blocks of these markdown cells (cell indices + offset)."""
    found = []
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "markdown":
            continue
        text = _source(cell)
        heads = list(_EXERCISE_RE.finditer(text))
        for j, m in enumerate(heads):
            body = text[m.start():heads[j + 1].start() if j + 1 < len(heads) else len(text)].strip()
            minutes = _MINUTES_RE.search(body)
            found.append(Exercise(number=int(m.group(1)), title=m.group(2), difficulty=_difficulty(body),
                                  minutes=int(minutes.group(1)) if minutes else None,
                                  checks=tuple(CHECK_RE.findall(body)), cell=i + offset, text=body))
    return found


def _section(cells: list) -> tuple[int, int] | None:
    """(index of the ``## Exercises`` cell, index of the ``## Notes`` cell or len(cells))."""
    start = None
    for i, cell in enumerate(cells):
        if cell.get("cell_type") != "markdown":
            continue
        heads = [line[3:].strip() for line in _source(cell).splitlines() if line.startswith("## ")]
        if start is None and any(h == "Exercises" or h.startswith("Exercises ") for h in heads):
            start = i
        if start is not None and i > start and any(h == "Notes" or h.startswith("Notes ") for h in heads):
            return start, i
    return (start, len(cells)) if start is not None else None


def parse_exercises(nb: dict) -> list[Exercise]:
    """The exercises of a notebook (a dict as json.load gives it), in order; [] without the section."""
    cells = nb.get("cells", [])
    span = _section(cells)
    return _exercises_in(cells[span[0]:span[1]], span[0]) if span else []


def exercise_problems(cells: list) -> list[str]:
    """How the ``## Exercises`` section (its cells, up to ``## Notes``) departs from the format:
    2-3 exercises numbered from 1, each with a difficulty, minutes, what to do and how it is checked."""
    exercises = _exercises_in(cells)
    if not MIN_EXERCISES <= len(exercises) <= MAX_EXERCISES:
        return [f"'## Exercises' holds {len(exercises)} exercise{'' if len(exercises) == 1 else 's'}; want "
                f"{MIN_EXERCISES}-{MAX_EXERCISES} "
                f"('### Exercise N · title', numbered from 1)"]
    problems = []
    numbers = [e.number for e in exercises]
    if numbers != list(range(1, len(exercises) + 1)):
        problems.append(f"exercises are numbered {', '.join(map(str, numbers))}; want 1 to {len(exercises)} in order")
    for e in exercises:
        if e.difficulty is None:
            problems.append(f"Exercise {e.number} has no difficulty ('**Difficulty:** {DIFFICULTY_FORMS}')")
        if e.minutes is None:
            problems.append(f"Exercise {e.number} has no minutes ('**Minutes:** 15')")
        if not _WHAT_RE.search(e.text):
            problems.append(f"Exercise {e.number} does not say what to do ('**What to do.**')")
        if not _HOW_RE.search(e.text):
            problems.append(f"Exercise {e.number} does not say how it is checked ('**How it is checked.**')")
    return problems
