"""The judge mixture (data/models/tiny-judge, notebooks 14-17): a base that solves, judges and refines.

Five kinds of demonstration on the `carry` world (4-digit + 4-digit sums), in the formats of
labkit.core.judge, besides a share of the default mixture so the rest of tiny's skills stay:

    solve     "3505+1425="                        -> "4930"             (noisy, like tiny)
    rubric    "3505+1425=4903|r"                  -> "fy v4930 cn =n"   value first, then the verdict
    yesno     "3505+1425=4903|j"                  -> "n"                the same verdict, no value
    pairwise  "3505+1425=4903|4930|p"             -> "v4930 =2"
    refine    "3505+1425=4903|fy v4930 cn =n|>"   -> "4930"             adopt the feedback's value

The candidate answers judged are the noisy demonstrations of the solver (right ones, near misses,
leading zeros, trailing junk), about half of them right. The judge's own value `v` carries the
solver's arithmetic noise (a near miss with probability p_wrong, no format slips: it writes a
number), and the yes/no demonstration's verdict is the one that (possibly wrong) value gives, so
the two judges learn from identical verdict labels and differ only in writing the value first.
Refine writes the feedback's value when the verdict is n (the answer as it was when y).
Meant to continue from tiny (`labkit pretrain --mixture judge --init tiny ...`).
"""
from __future__ import annotations

import random

from labkit.bases.mixtures import default
from labkit.bases.pretrain import demonstration, near_miss
from labkit.core.judge import (judge_prompt, pairwise_prompt, pairwise_text, parse_rubric, preferred,
                               refine_prompt, rubric_marks, rubric_text)
from labkit.core.tasks import DIFFICULTIES, Task, load_eval_set, sample_task, train_seed, verify

DESCRIPTION = ("carry-world solving + rubric (value-first), yes/no and pairwise judging + refinement "
               "from rubric feedback (labkit.core.judge; notebooks 14-17)")

SHARES = {"default": 0.15, "solve": 0.15, "rubric": 0.25, "yesno": 0.2, "pairwise": 0.1, "refine": 0.15}
# the candidates judged: noisy solver answers with about half of them wrong
CANDIDATE_P_WRONG, CANDIDATE_P_SLIP = 0.3, 0.2
CATEGORY = "carry"


def candidate(task: Task, rng: random.Random) -> str:
    """An answer a solver might write: right, a near miss, or a format slip."""
    return demonstration(task, rng, CANDIDATE_P_WRONG, CANDIDATE_P_SLIP)


def judge_value(task: Task, rng: random.Random, p_wrong: float) -> str:
    """The value the judge computes: the reference answer, a near miss with probability p_wrong."""
    return near_miss(task.answer, rng) if rng.random() < p_wrong else task.answer


def demonstrations(seed: int, p_wrong: float, p_slip: float):
    """Endless (prompt, completion) pairs of the six kinds in SHARES."""
    rng = random.Random(train_seed(seed, stream=16))  # never the eval sets' seeds
    plain = default.demonstrations(seed, p_wrong, p_slip)
    kinds, shares = list(SHARES), list(SHARES.values())
    levels = DIFFICULTIES[CATEGORY]
    while True:
        kind = rng.choices(kinds, shares)[0]
        if kind == "default":
            yield next(plain)
            continue
        task = sample_task(CATEGORY, rng.choice(levels), rng)
        if kind == "solve":
            yield task.prompt, demonstration(task, rng, p_wrong, p_slip)
            continue
        answer = candidate(task, rng)
        marks = rubric_marks(task, answer, judge_value(task, rng, p_wrong))
        if kind == "rubric":
            yield judge_prompt(task, answer, "rubric"), rubric_text(marks)
        elif kind == "yesno":
            yield judge_prompt(task, answer, "yesno"), "y" if marks["verdict"] else "n"
        elif kind == "refine":
            yield refine_prompt(task, answer, rubric_text(marks)), answer if marks["verdict"] else marks["v"]
        else:
            other = candidate(task, rng)
            other_marks = rubric_marks(task, other, marks["v"])
            yield pairwise_prompt(task, answer, other), pairwise_text(
                marks["v"], preferred(marks["verdict"], other_marks["verdict"]))


# ---------------------------------------------------------------------------------------------
# The model card: solving on the shipped carry eval set; each judge's verdict agreement with the
# exact verifier on held-out candidates (a card row's "accuracy" is that agreement)

def card_tasks() -> dict:
    solve = load_eval_set("arithmetic", category=CATEGORY)
    rng = random.Random(16)  # below TRAIN_SEED_MIN: never a training stream's seed
    judged = []
    for task in solve:
        for mode in ("rubric", "yesno"):
            answer = candidate(task, rng)
            judged.append(Task(judge_prompt(task, answer, mode), "y" if verify(task, answer).correct else "n",
                               mode, task.difficulty, "judge", meta={"task": task, "answer": answer}))
    return {"carry": solve, "judge": judged}


def card_evaluate(policy, tasks, samples, temperature):
    from labkit.bases.card import scored_evaluate

    def is_right(task, text):
        if task.world != "judge":
            return verify(task, text).correct
        marks = parse_rubric(text) if task.category == "rubric" else None
        verdict = (marks or {}).get("verdict", False) if task.category == "rubric" else text.strip() == "y"
        return ("y" if verdict else "n") == task.answer

    return scored_evaluate(policy, tasks, samples, temperature, 20, is_right)
