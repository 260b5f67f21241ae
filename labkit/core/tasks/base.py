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


# ---------------------------------------------------------------------------------------------
# Answer extraction for chat checkpoints (labkit.core.policy.Policy.answer_extractor)
#
# A chat model answers in words ("12 + 34 = 46.", "The answer is **46**.", "\boxed{3*5+7}"); the
# verifiers read a bare answer. `extract_answer` finds it. The shipped char-level bases never go
# through it: their completions are the answer.

MAX_EXTRACT_CHARS = 4096  # only the last this-many characters of a completion are scanned
_BOXED = "\\boxed{"
_ANSWER_MARKER = re.compile(r"\banswer\b(?:\s+(?:is|would\s+be|will\s+be))?\s*[:=]?", re.IGNORECASE)
_NUMBER = r"\d+(?:,\d{3})*"
# an answer-shaped span: an integer (thousands commas allowed) or an expression `n op n ...` with + - *
_ANSWER_SPAN = re.compile(rf"-?{_NUMBER}(?:[ \t]*[-+*][ \t]*{_NUMBER})*")
_OPERATOR_SPELLINGS = (("\\times", "*"), ("\\cdot", "*"), ("\u00d7", "*"), ("\u22c5", "*"), ("\u00b7", "*"),
                       ("\u2212", "-"), ("\u2013", "-"))


def _spans(text: str) -> list[str]:
    """The answer-shaped spans of `text`, in order, without spaces or thousands commas."""
    return [re.sub(r"[ \t,]", "", m.group()) for m in _ANSWER_SPAN.finditer(text)]


def _last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (nested braces matched), or None."""
    start = text.rfind(_BOXED)
    if start < 0:
        return None
    depth, begin = 1, start + len(_BOXED)
    for i in range(begin, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[begin:i]
    return None


def extract_answer(completion: str) -> str:
    """The bare answer in a chat model's completion, for the task verifiers; the completion itself
    when it holds nothing answer-shaped (the verifier then rejects it as it would).

    An answer-shaped span is an integer (``-12``, ``9,716`` read as ``9716``) or an expression of
    integers and + - * (``3 * 5 + 7`` read as ``3*5+7``; ``\\times``, ``×`` and ``·`` read as ``*``,
    the unicode minus as ``-``). In order of preference:

    1. the last ``\\boxed{...}``: the first span inside it;
    2. the first span after the last "answer is" / "answer:" ("The answer is **46**." -> ``46``);
    3. the last span of the completion ("12 + 34 = 46." -> ``46``).

    Rule 3 takes the value after the last '=', so a countdown model must state its expression
    as the answer ("The answer is 3*5+7", or boxed) to be read right. Only the last
    MAX_EXTRACT_CHARS characters are scanned."""
    if not isinstance(completion, str):
        return completion
    text = completion[-MAX_EXTRACT_CHARS:]
    for spelling, operator in _OPERATOR_SPELLINGS:
        text = text.replace(spelling, operator)
    boxed = _last_boxed(text)
    if boxed is not None:
        inside = _spans(boxed)
        if inside:
            return inside[0]
    markers = list(_ANSWER_MARKER.finditer(text))
    if markers:
        after = _spans(text[markers[-1].end():])
        if after:
            return after[0]
    spans = _spans(text)
    return spans[-1] if spans else completion
