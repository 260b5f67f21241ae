"""The judge substrate: a policy that judges answers to tasks (notebooks 14-17; taught in 16).

A judge reads a task's prompt with a candidate answer and writes its judgement as text. Four
kinds, each a prompt format the `judge` pretraining mixture (labkit/bases/mixtures/judge.py)
teaches a base, and a helper that samples it and parses what it wrote:

    pointwise, mode "yesno"   "3505+1425=4903|j"        -> "n"                 a verdict token
    pointwise, mode "rubric"  "3505+1425=4903|r"        -> "fy v4930 cn =n"    marks, then a verdict
    pairwise                  "3505+1425=4903|4930|p"   -> "v4930 =2"          which answer is better
    refine                    "3505+1425=4903|fy v4930 cn =n|>" -> "4930"      a revised answer

The rubric (DeepVerifier's rubric-guided verification, value first) checks named properties one by
one: `f` the answer's format (a canonical integer, y/n), `v` the value the judge computes itself,
`c` whether the answer's number equals that value (y/n), and then `=` the verdict (y iff f and c).
The pairwise judge computes the value first too, then writes 1, 2, or 0 (both or neither right).
Refine reads the rubric's feedback and writes a revised answer (SELF's self-refinement).

Every judgement is sampled (temperature 1 by default: the rate RL and a refine loop meet) and
parsed, never executed; an unreadable judgement counts as a rejection (verdict False) and is
marked `parsed=False`. `judge_reward` wraps a pointwise judge as grpo_step's `group_reward_fn`.
Tasks must have a unique answer (arithmetic, sort, reverse); countdown has many and is refused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from labkit.core.checks import check_float, check_int
from labkit.core.sampling import encode_policy_prompts, eval_mode, rollout
from labkit.core.tasks import Task

MODES = ("rubric", "yesno")
SEP = "|"
RUBRIC_MARK, YESNO_MARK, PAIR_MARK, REFINE_MARK = "r", "j", "p", ">"
MAX_ANSWER_CHARS = 12  # candidate answers are cut to this many characters in a judge's prompt
_RUBRIC = re.compile(r"f([yn]) v(-?\d+) c([yn]) =([yn])")
_PAIR = re.compile(r"v(-?\d+) =([012])")
_LEADING_NUMBER = re.compile(r"-?\d+")


# ---------------------------------------------------------------------------------------------
# Formats: what a judge reads and writes (the mixture and the helpers share them)

def _check_task(task) -> Task:
    if not isinstance(task, Task):
        raise ValueError(f"a judge reads labkit.core.tasks.Task objects; got {type(task).__name__}")
    if task.category == "countdown":
        raise ValueError("a judge needs tasks with one right answer (add, sub, mul, carry, sort, reverse); "
                         "got a countdown task")
    return task


def _clip(answer: str) -> str:
    """A candidate answer as a judge's prompt shows it: one line, at most MAX_ANSWER_CHARS, no separator."""
    if not isinstance(answer, str):
        raise ValueError(f"an answer must be a string; got {type(answer).__name__}")
    return answer.replace(SEP, "").replace("\n", " ")[:MAX_ANSWER_CHARS]


def judge_prompt(task: Task, answer: str, mode: str = "rubric") -> str:
    """The prompt of a pointwise judge: task prompt + answer + '|' + 'r' (rubric) or 'j' (yes/no)."""
    mark = {"rubric": RUBRIC_MARK, "yesno": YESNO_MARK}.get(mode)
    if mark is None:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    return f"{_check_task(task).prompt}{_clip(answer)}{SEP}{mark}"


def pairwise_prompt(task: Task, first: str, second: str) -> str:
    return f"{_check_task(task).prompt}{_clip(first)}{SEP}{_clip(second)}{SEP}{PAIR_MARK}"


def refine_prompt(task: Task, answer: str, feedback: str) -> str:
    """What the reviser reads: the task, its answer, the judge's rubric feedback, then '>'."""
    return f"{_check_task(task).prompt}{_clip(answer)}{SEP}{feedback.replace(SEP, '')}{SEP}{REFINE_MARK}"


def leading_number(answer: str) -> str | None:
    """The number an answer starts with, canonical ('04930.' -> '4930'), or None."""
    m = _LEADING_NUMBER.match(answer.strip())
    return None if m is None else str(int(m.group()))


def format_ok(task: Task, answer: str) -> bool:
    """The rubric's `f`: the answer has the shape the verifier reads (Verdict.format_ok)."""
    from labkit.core.tasks import verify
    return verify(task, answer).format_ok


def rubric_marks(task: Task, answer: str, value: str) -> dict:
    """The rubric's marks for `answer` when the judge's own value is `value` (the reference answer
    for an exact judge): format f, value v, match c, verdict (f and c)."""
    f = format_ok(task, answer)
    if task.category in ("sort", "reverse"):
        c = answer.strip() == value
    else:
        c = leading_number(answer) == value
    return {"f": f, "v": value, "c": c, "verdict": f and c}


def rubric_text(marks: dict) -> str:
    """'fy v4930 cn =n' from rubric marks."""
    yn = {True: "y", False: "n"}
    return f"f{yn[marks['f']]} v{marks['v']} c{yn[marks['c']]} ={yn[marks['verdict']]}"


def parse_rubric(text: str) -> dict | None:
    """Marks from a rubric judgement ('fy v4930 cn =n'), or None when it does not read."""
    m = _RUBRIC.fullmatch(text.strip())
    if m is None:
        return None
    return {"f": m.group(1) == "y", "v": m.group(2), "c": m.group(3) == "y", "verdict": m.group(4) == "y"}


def pairwise_text(value: str, preferred: int) -> str:
    return f"v{value} ={preferred}"


def parse_pairwise(text: str) -> tuple[str, int] | None:
    m = _PAIR.fullmatch(text.strip())
    return None if m is None else (m.group(1), int(m.group(2)))


def preferred(first_right: bool, second_right: bool) -> int:
    """1 or 2 when exactly that answer is right; 0 when both or neither are."""
    return 0 if first_right == second_right else (1 if first_right else 2)


# ---------------------------------------------------------------------------------------------
# Judging with a policy

@dataclass
class Judgement:
    verdict: bool        # the judge accepts the answer (False when its text does not read)
    text: str            # what the judge wrote
    parsed: bool         # its text had the judgement's format
    marks: dict = field(default_factory=dict)   # rubric marks (f, v, c, verdict); {} for yes/no

    @property
    def score(self) -> float:
        return 1.0 if self.verdict else 0.0

    @property
    def correct(self) -> bool:  # so sample_and_judge can count accepted answers
        return self.verdict


def _sample(policy, prompts: list[str], max_new_tokens: int, temperature: float, generator,
            batch_size: int) -> list[str]:
    check_int("batch_size", batch_size, min=1)
    out = []
    for i in range(0, len(prompts), batch_size):
        out += rollout(policy, prompts[i:i + batch_size], max_new_tokens, temperature, generator=generator).completions
    return out


def _pairs(tasks, answers, name="answers"):
    if isinstance(tasks, Task) or isinstance(answers, str):
        raise ValueError("give lists of tasks and answers (one answer per task)")
    if not tasks or len(tasks) != len(answers):
        raise ValueError(f"need one of {name} per task and at least one task; got {len(tasks)} tasks and "
                         f"{len(answers)} {name}")


def pointwise(policy, tasks: list[Task], answers: list[str], mode: str = "rubric", temperature: float = 1.0,
              generator: torch.Generator | None = None, batch_size: int = 512) -> list[Judgement]:
    """Judge each answer alone: one sampled judgement per (task, answer)."""
    _pairs(tasks, answers)
    check_float("temperature", temperature, min=0.0)
    prompts = [judge_prompt(t, a, mode) for t, a in zip(tasks, answers)]
    texts = _sample(policy, prompts, 20 if mode == "rubric" else 2, temperature, generator, batch_size)
    out = []
    for text in texts:
        if mode == "yesno":
            word = text.strip()
            out.append(Judgement(word == "y", text, word in ("y", "n")))
        else:
            marks = parse_rubric(text)
            out.append(Judgement(bool(marks and marks["verdict"]), text, marks is not None, marks or {}))
    return out


@torch.no_grad()
def yes_probability(policy, tasks: list[Task], answers: list[str]) -> list[float]:
    """The yes/no judge's probability of 'y' (over 'y' and 'n'): a continuous pointwise score."""
    _pairs(tasks, answers)
    ids, mask = encode_policy_prompts(policy, [judge_prompt(t, a, "yesno") for t, a in zip(tasks, answers)])
    with eval_mode(policy.model):
        logits = policy.model(input_ids=ids, attention_mask=mask).logits[:, -1, :]
    y, n = (policy.tokenizer.convert_tokens_to_ids(c) for c in "yn")
    return torch.softmax(logits[:, [y, n]].float(), dim=-1)[:, 0].tolist()


def pairwise(policy, tasks: list[Task], first: list[str], second: list[str], temperature: float = 1.0,
             generator: torch.Generator | None = None, batch_size: int = 512) -> list[int]:
    """Which answer is better: 1, 2, or 0 (a tie, or an unreadable judgement)."""
    _pairs(tasks, first, "first answers")
    _pairs(tasks, second, "second answers")
    prompts = [pairwise_prompt(t, a, b) for t, a, b in zip(tasks, first, second)]
    texts = _sample(policy, prompts, 16, temperature, generator, batch_size)
    return [(parse_pairwise(x) or ("", 0))[1] for x in texts]


def refine(policy, tasks: list[Task], answers: list[str], judgements: list[Judgement], temperature: float = 1.0,
           generator: torch.Generator | None = None, batch_size: int = 512) -> list[str]:
    """Revised answers given the rubric judge's feedback (SELF's self-refinement, DeepVerifier's
    feedback to the agent). The reviser reads the feedback as written, readable or not."""
    _pairs(tasks, answers)
    _pairs(tasks, judgements, "judgements")
    prompts = [refine_prompt(t, a, j.text.strip()) for t, a, j in zip(tasks, answers, judgements)]
    return _sample(policy, prompts, 16, temperature, generator, batch_size)


def judge_reward(policy, mode: str = "rubric", temperature: float = 1.0, generator: torch.Generator | None = None):
    """A pointwise judge as grpo_step's group_reward_fn: (task, completions) -> [1.0 accepted | 0.0]."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")

    def reward(task: Task, completions: list[str]) -> list[float]:
        return [j.score for j in pointwise(policy, [task] * len(completions), list(completions), mode,
                                           temperature, generator)]
    return reward


# ---------------------------------------------------------------------------------------------
# Measuring a judge alone

def verifier_scores(predicted: list[bool], truth: list[bool]) -> dict:
    """F1 (positive class: the answer is right), precision, recall and accuracy of a judge's verdicts
    against the exact verifier's. Precision with no acceptance and recall with no right answer are 0."""
    if len(predicted) != len(truth) or not truth:
        raise ValueError(f"need as many verdicts as truths, at least one; got {len(predicted)} and {len(truth)}")
    tp = sum(p and t for p, t in zip(predicted, truth))
    fp = sum(p and not t for p, t in zip(predicted, truth))
    fn = sum(t and not p for p, t in zip(predicted, truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    acc = sum(bool(p) == bool(t) for p, t in zip(predicted, truth)) / len(truth)
    return {"f1": f1, "precision": precision, "recall": recall, "acc": acc}
