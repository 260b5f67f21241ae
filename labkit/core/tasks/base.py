"""The shapes every task world shares: Task, Verdict, length limits and the completion guard.

The policy is a tiny character-level transformer, so prompts and answers are short printable
ASCII. Model output is data: completions are checked with small parsers, never evaluated.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

MAX_PROMPT_CHARS = 24
MAX_ANSWER_CHARS = 18
# Longest completion a verifier looks at; anything longer is rejected without being scanned,
# so a runaway 10**6-character sample costs nothing.
MAX_COMPLETION_CHARS = 64

ASCII_WHITESPACE = " \t\n\r"
_CANONICAL_INTEGER = re.compile(r"-?(?:0|[1-9][0-9]*)")
_DIGIT_STRING = re.compile(r"[0-9]+")


@dataclass(frozen=True)
class Task:
    """One verifiable problem: `prompt` ends where the completion begins; `answer` is a
    reference solution (for countdown, one of possibly many)."""

    prompt: str
    answer: str
    category: str
    difficulty: int
    world: str
    meta: dict = field(default_factory=dict, hash=False)

    def to_json(self) -> dict:
        return {"prompt": self.prompt, "answer": self.answer, "category": self.category,
                "difficulty": self.difficulty, "world": self.world, "meta": self.meta}

    @classmethod
    def from_json(cls, record: dict) -> "Task":
        return cls(**record)


@dataclass(frozen=True)
class Verdict:
    """A verifier's judgement: binary reward, the normalised parse (or None), and whether
    the completion had the right shape at all (format_ok) regardless of correctness."""

    reward: float
    parsed: str | None
    correct: bool
    format_ok: bool


REJECTED = Verdict(reward=0.0, parsed=None, correct=False, format_ok=False)


def judged(parsed: str, correct: bool) -> Verdict:
    """Verdict for a well-formed completion."""
    return Verdict(reward=1.0 if correct else 0.0, parsed=parsed, correct=correct, format_ok=True)


def clean_completion(completion: str) -> str | None:
    """The completion without surrounding ASCII whitespace, or None if it is too long or not
    printable ASCII (full-width or Arabic-Indic digits, a unicode minus...)."""
    if len(completion) > MAX_COMPLETION_CHARS:
        return None
    text = completion.strip(ASCII_WHITESPACE)
    if not text or not (text.isascii() and text.isprintable()):
        return None
    return text


def is_canonical_integer(text: str) -> bool:
    """'-12', '0', '7' yes; '-0', '007', '+12', '1e9', '2+2', '12abc' no."""
    return _CANONICAL_INTEGER.fullmatch(text) is not None and text != "-0"


def is_digit_string(text: str) -> bool:
    """One or more ASCII digits (leading zeros allowed: these are strings, not numbers)."""
    return _DIGIT_STRING.fullmatch(text) is not None
