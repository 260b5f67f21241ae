"""Arms: the (category, difficulty) pairs that training loops and curricula choose between.

Notebook parameters name them in one string, e.g. ``"add:1-3,sub:2,carry:0-4"``, so papermill
and `labkit run -p` can pass them.
"""
from __future__ import annotations

from .registry import CATEGORIES, DIFFICULTIES

Arm = tuple[str, int]


def parse_arms(spec: str) -> list[Arm]:
    """``"add:1-3,sort:4"`` -> [("add", 1), ("add", 2), ("add", 3), ("sort", 4)].
    A category alone means all its difficulties."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"arms must be a string like 'add:1-3,sub:2'; got {spec!r}")
    arms: list[Arm] = []
    for part in spec.split(","):
        category, _, levels = part.strip().partition(":")
        if category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r} in arms {spec!r}; accepted: {', '.join(CATEGORIES)}")
        valid = DIFFICULTIES[category]
        if not levels:
            chosen = list(valid)
        else:
            low, _, high = levels.partition("-")
            try:
                low, high = int(low), int(high or low)
            except ValueError:
                raise ValueError(f"bad difficulty range {levels!r} in arms {spec!r}; write e.g. 'add:1-3'") from None
            # check the ends before building the range: 'add:1-1000000000' must not allocate a billion ints
            bad = [d for d in (low, high) if d not in valid] or ([] if low <= high else [levels])
            if bad:
                raise ValueError(f"difficulty {bad[0]} out of range for {category} in arms {spec!r}; "
                                 f"accepted: {valid[0]}..{valid[-1]}")
            chosen = list(range(low, high + 1))  # small now: both ends are valid difficulties
            gaps = [d for d in chosen if d not in valid]
            if gaps:
                raise ValueError(f"difficulty {gaps[0]} out of range for {category} in arms {spec!r}; "
                                 f"accepted: {', '.join(map(str, valid))}")
        arms.extend((category, d) for d in chosen if (category, d) not in arms)
    return arms


def format_arm(arm: Arm) -> str:
    return f"{arm[0]}:{arm[1]}"
