"""A visual world small enough for a laptop: coloured squares on a grid, questions about them.

A scene puts 0..MAX_COUNT squares of each colour (r, g, b) on distinct cells of a GRID x GRID
grid; `render` draws it as a (3, IMAGE, IMAGE) float tensor (numpy + torch only). Its ground-truth
description is the count per colour, written `r2g1b3`. Questions have verifiable answers:

    count  "how many r?"     -> "2"
    more   "r>b?"            -> "y" | "n"        (never a tie)
    sum    "r+b?"            -> "5"

The policy's completion is `<description>r2g1b3</description>5`: a description, then the answer
(Vision-SR1's format without the think block, which a 1M-parameter model does not need).

The training mix holds a language shortcut: `more` questions are answered "y" with probability
`shortcut` (0.9 by default). `counterbias_tasks` holds only `more` questions whose answer is "n".

Cold-start descriptions are imperfect on purpose (`noisy_description`): with probability p one
count is off by one, either a count the question asks about (`regime="asked"`) or a random
colour's (`regime="colour"`). Notebook 12 explains why the two regimes differ.
"""
import random
import re
from dataclasses import dataclass, field

import numpy as np
import torch

COLOURS = ("r", "g", "b")
RGB = {"r": (0.9, 0.15, 0.15), "g": (0.15, 0.8, 0.2), "b": (0.2, 0.35, 0.95)}
GRID, CELL = 4, 4  # 4 x 4 cells of 4 x 4 pixels: a 16 x 16 image, one square per patch
IMAGE = GRID * CELL
MAX_COUNT = 4
KINDS = ("count", "more", "sum")
REGIMES = ("asked", "colour")
SHORTCUT_ANSWER = "y"  # the answer the `more` shortcut favours

DESCRIPTION_RE = re.compile(r"r(\d)g(\d)b(\d)")
COMPLETION_RE = re.compile(r"<description>([^<>]*)</description>([^<>\s]+)")


@dataclass(frozen=True)
class Scene:
    counts: tuple  # squares per colour, in COLOURS order
    cells: tuple  # (cell index, colour) for each square
    jitter: tuple  # brightness factor per square (the same colour is not always the same pixel)

    def count(self, colour: str) -> int:
        return self.counts[COLOURS.index(colour)]


@dataclass(frozen=True)
class VisualTask:
    scene: Scene
    question: str  # the text prompt that follows the image
    answer: str
    kind: str
    colours: tuple  # the colours the question asks about
    image: torch.Tensor = field(repr=False, compare=False, hash=False)  # (3, IMAGE, IMAGE)

    @property
    def description(self) -> str:
        """The ground-truth description of the scene."""
        return describe(self.scene.counts)


@dataclass(frozen=True)
class VisionVerdict:
    correct: bool  # the answer equals the task's answer
    format_ok: bool  # `<description>...</description>answer` and nothing else
    answer: str | None
    description: str | None  # the text inside <description>...</description>, if any


# ---------------------------------------------------------------------------------------------
# Scenes and rendering


def make_scene(rng: random.Random) -> Scene:
    counts = tuple(rng.randint(0, MAX_COUNT) for _ in COLOURS)
    cells = rng.sample(range(GRID * GRID), sum(counts))
    colours = [c for c, n in zip(COLOURS, counts) for _ in range(n)]
    jitter = tuple(round(rng.uniform(0.75, 1.0), 3) for _ in cells)
    return Scene(counts, tuple(zip(cells, colours)), jitter)


def render(scene: Scene) -> torch.Tensor:
    """The scene as a (3, IMAGE, IMAGE) float tensor in [0, 1]: each square fills its cell but a
    one-pixel border, on a black background."""
    image = np.zeros((3, IMAGE, IMAGE), dtype=np.float32)
    for (cell, colour), bright in zip(scene.cells, scene.jitter):
        row, col = divmod(cell, GRID)
        y, x = row * CELL, col * CELL
        image[:, y:y + CELL - 1, x:x + CELL - 1] = np.array(RGB[colour], dtype=np.float32)[:, None, None] * bright
    return torch.from_numpy(image)


def describe(counts) -> str:
    return "".join(f"{c}{n}" for c, n in zip(COLOURS, counts))


def parse_description(text) -> tuple | None:
    """`r2g1b3` -> (2, 1, 3); None for anything else (surrounding spaces are allowed)."""
    if not isinstance(text, str):
        return None
    match = DESCRIPTION_RE.fullmatch(text.strip())
    return tuple(int(d) for d in match.groups()) if match else None


# ---------------------------------------------------------------------------------------------
# Questions


def answer_from_counts(kind: str, colours: tuple, counts) -> str:
    """The answer a scene with these counts implies (also used for a description's counts)."""
    n = [counts[COLOURS.index(c)] for c in colours]
    if kind == "count":
        return str(n[0])
    if kind == "more":
        return "y" if n[0] > n[1] else "n"
    if kind == "sum":
        return str(n[0] + n[1])
    raise ValueError(f"unknown question kind {kind!r}; accepted: {', '.join(KINDS)}")


def question_text(kind: str, colours: tuple) -> str:
    if kind == "count":
        return f"how many {colours[0]}?"
    if kind == "more":
        return f"{colours[0]}>{colours[1]}?"  # compact, like the description (round 3: a tiny reader did not learn `more r than b?`)
    return f"{colours[0]}+{colours[1]}?"


def _task(scene: Scene, kind: str, colours: tuple) -> VisualTask:
    return VisualTask(scene, question_text(kind, colours), answer_from_counts(kind, colours, scene.counts),
                      kind, colours, render(scene))


def sample_task(rng: random.Random, kind: str, shortcut: float = 0.9, counterbias: bool = False) -> VisualTask:
    """One task of `kind`. For `more`, the answer is "y" with probability `shortcut` (the
    language shortcut), or always "n" when `counterbias`."""
    if kind not in KINDS:
        raise ValueError(f"unknown question kind {kind!r}; accepted: {', '.join(KINDS)}")
    while True:
        scene = make_scene(rng)
        if kind != "more":
            return _task(scene, kind, tuple(rng.sample(COLOURS, 1 if kind == "count" else 2)))
        pairs = [(a, b) for a in COLOURS for b in COLOURS if scene.count(a) > scene.count(b)]
        if pairs:  # some pair differs: ask it the way round the shortcut (or the counter-bias set) wants
            big, small = rng.choice(pairs)
            want_yes = not counterbias and rng.random() < shortcut
            return _task(scene, kind, (big, small) if want_yes else (small, big))


def _check(n, shortcut):
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be an int >= 0; got {n!r}")
    if not 0.0 <= shortcut <= 1.0:
        raise ValueError(f"shortcut must be a probability in [0, 1]; got {shortcut!r}")


def make_tasks(n: int, seed: int, shortcut: float = 0.9, kinds=KINDS, split: str = "train") -> list[VisualTask]:
    """n tasks of the training distribution (kinds drawn uniformly), deterministic from (split, seed);
    use split="eval" for a held-out set drawn from a different stream."""
    _check(n, shortcut)
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown question kind {kind!r}; accepted: {', '.join(KINDS)}")
    rng = random.Random(f"{split}-{seed}")
    return [sample_task(rng, rng.choice(list(kinds)), shortcut) for _ in range(n)]


def counterbias_tasks(n: int, seed: int) -> list[VisualTask]:
    """n `more` questions whose answer is "n": the shortcut ("y") is wrong on every one."""
    _check(n, 0.0)
    rng = random.Random(f"counterbias-{seed}")
    return [sample_task(rng, "more", counterbias=True) for _ in range(n)]


def images_of(tasks) -> torch.Tensor:
    return torch.stack([t.image for t in tasks])


# ---------------------------------------------------------------------------------------------
# Completions: the target the cold start teaches, the verifier, the text-only prompt


def noisy_description(task: VisualTask, rng: random.Random, p_noise: float, regime: str = "asked") -> str:
    """The scene's description with, with probability p_noise, one count off by one: a count the
    question asks about (regime "asked") or a random colour's (regime "colour")."""
    if regime not in REGIMES:
        raise ValueError(f"unknown noise regime {regime!r}; accepted: {', '.join(REGIMES)}")
    counts = list(task.scene.counts)
    if rng.random() < p_noise:
        colour = rng.choice(task.colours if regime == "asked" else COLOURS)
        i = COLOURS.index(colour)
        step = rng.choice((-1, 1))
        if not 0 <= counts[i] + step <= MAX_COUNT:
            step = -step
        counts[i] += step
    return describe(counts)


def completion_text(description: str, answer: str) -> str:
    return f"<description>{description}</description>{answer}"


def text_only_prompt(question: str, description: str) -> str:
    """The second pass sees the question and a description, no image; it completes the answer.
    (Vision-SR1's verify prompt puts the description first; the shipped checkpoints were cold-started
    with this order, and a description-first cold start was not ready in round 3: see notebook 12.)"""
    return f"{question}<description>{description}</description>"


def verify(task: VisualTask, completion: str) -> VisionVerdict:
    """Check a first-pass completion. Format: `<description>...</description>answer`, exactly.
    The answer is what follows the last `</description>` (the whole text when there is none)."""
    if not isinstance(completion, str):
        raise ValueError(f"completion must be a str (decoded text); got {type(completion).__name__}")
    match = COMPLETION_RE.fullmatch(completion.strip())
    description = match.group(1) if match else None
    if match is None and "<description>" in completion and "</description>" in completion:
        description = completion.split("<description>", 1)[1].split("</description>", 1)[0]
    answer = completion.rsplit("</description>", 1)[-1].strip()
    return VisionVerdict(correct=answer == task.answer, format_ok=match is not None,
                         answer=answer or None, description=description)


def description_accurate(task: VisualTask, description) -> bool:
    """The description gets every count the question asks about right."""
    counts = parse_description(description) if description is not None else None
    if counts is None:
        return False
    return all(counts[COLOURS.index(c)] == task.scene.count(c) for c in task.colours)


def text_only_correct(task: VisualTask, completion: str) -> bool:
    """The second pass's answer (its whole completion) is the task's answer."""
    if not isinstance(completion, str):
        raise ValueError(f"completion must be a str (decoded text); got {type(completion).__name__}")
    return completion.strip() == task.answer


# ---------------------------------------------------------------------------------------------
# Vision-SR1's reward (zli12321/Vision-SR1, see_think_selfReward.py: compute_score)

METHOD_WEIGHTS = {  # (w_acc, w_format, w_visual)
    "outcome": (0.9, 0.1, 0.0),  # outcome-only GRPO: accuracy and format
    "sr1": (0.9, 0.1, 1.0),  # Vision-SR1: + the visual (self-)reward
    "sr1_no_acc": (0.0, 0.1, 1.0),  # ablation: the visual reward without the accuracy term
}


def reward(correct: bool, format_ok: bool, visual: bool, method: str = "sr1") -> float:
    """r = w_acc * 1[answer right] + w_format * 1[format] + w_visual * 1[text-only answer right]."""
    if method not in METHOD_WEIGHTS:
        raise ValueError(f"unknown method {method!r}; accepted: {', '.join(METHOD_WEIGHTS)}")
    w_acc, w_format, w_visual = METHOD_WEIGHTS[method]
    return w_acc * float(correct) + w_format * float(format_ok) + w_visual * float(visual)
