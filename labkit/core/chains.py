"""Step-formatted arithmetic chains: a task world whose every step a parser checks (notebook 15).

A chain task is a sum of one-digit numbers whose running value keeps one digit, `7-5+3=`; its solution
is written one step per operation, each step carrying the running value forward:

    prompt      "7-5+3="
    solution    "7-5=2;2+3=5"           steps joined by ';', the last result is the answer

A step `L op X = R` is right when its left value L is the previous step's *written* result (the first
operand for step 1), op and X are the prompt's, and R = L op X. So an error does not cascade: a step
that carries a wrong value forward correctly is itself right, and `first_wrong_step` names the first
step that is wrong (1-based), 0 when all are right. Nothing a model writes is evaluated: steps are
read with a regular expression and the arithmetic is done here on parsed integers.

Three formats on this world (the `critic` pretraining mixture teaches them; notebook 15 plays them):

    solve    "7-5+3="                   -> "7-5=2;2+3=5"
    critic   "7-5+3=7-5=2;2+3=6|c"      -> "yn"     a mark per step up to the first n
    sneaky   "7-5+3=7-5=2;2+3=|s"       -> "6"      a wrong result for the step it is shown

The critic writes `y` for each right step and stops at the first `n` (all `y`: the chain is right);
`parse_critic` reads the index of its first `n`. The sneaky generator reads a right chain cut at the
`=` of one step and writes a result for it; `corrupt` puts that result into the chain and carries it
forward (later steps recomputed from it, the way a solver that slipped goes on).

Two error models: `near_miss` (labkit.bases.pretrain: the result's digit replaced by another, the
*random* corruption) and `off_by_one` (the right value plus or minus one, the solver's natural slip).
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass

from labkit.core.checks import check_int
from labkit.core.tasks import Task

OPS = (2, 3, 4)  # difficulty: operations per chain
LOW, HIGH = 0, 9  # every running value has one digit (tiny's add/sub skill is sure there, greedily)
OPERAND = (1, 9)  # and every operand
STEP_SEP, CRITIC_MARK, SNEAKY_MARK = ";", "|c", "|s"
WORLD = "chains"
_STEP = re.compile(r"(-?\d+)([+-])(\d+)=(-?\d+)")
_INT = re.compile(r"-?(?:0|[1-9]\d*)")
_TERMS = re.compile(r"([+-]?)(\d+)")


@dataclass(frozen=True)
class Step:
    left: int
    op: str
    operand: int
    result: int

    @property
    def value(self) -> int:
        """What the step's arithmetic gives: left op operand."""
        return self.left + self.operand if self.op == "+" else self.left - self.operand

    @property
    def text(self) -> str:
        return f"{self.left}{self.op}{self.operand}={self.result}"


def _check_task(task) -> Task:
    if not isinstance(task, Task) or task.world != WORLD:
        raise ValueError(f"need a chain task (labkit.core.chains.make_chain); got {task!r}")
    return task


def make_chain(ops: int, rng: random.Random) -> Task:
    """A chain of `ops` operations on one-digit numbers whose running value keeps one digit (LOW..HIGH)."""
    ops = check_int("ops", ops, min=1, max=6)
    value = rng.randint(*OPERAND)
    terms = [("", value)]
    for _ in range(ops):
        while True:
            x, op = rng.randint(*OPERAND), rng.choice("+-")
            options = [o for o in (op, "-" if op == "+" else "+") if LOW <= (value + x if o == "+" else value - x) <= HIGH]
            if options:
                break
        op = options[0]
        value = value + x if op == "+" else value - x
        terms.append((op, x))
    prompt = "".join(f"{op}{x}" for op, x in terms) + "="
    return Task(prompt, str(value), f"chain{ops}", ops, WORLD, {"terms": terms})


def make_chains(n: int, rng: random.Random, ops=OPS) -> list[Task]:
    n = check_int("n", n, min=0)
    return [make_chain(rng.choice(ops), rng) for _ in range(n)]


def terms_of(task: Task) -> list[tuple[str, int]]:
    """The prompt's terms [('', 7), ('-', 5), ('+', 3)], read from the prompt itself."""
    _check_task(task)
    return [(op, int(x)) for op, x in _TERMS.findall(task.prompt[:-1])]


def solution_steps(task: Task) -> list[Step]:
    """The right steps of a chain."""
    terms = terms_of(task)
    value, steps = terms[0][1], []
    for op, x in terms[1:]:
        step = Step(value, op, x, 0)
        steps.append(Step(value, op, x, step.value))
        value = step.value
    return steps


def steps_text(steps: list[Step]) -> str:
    return STEP_SEP.join(s.text for s in steps)


def solution(task: Task) -> str:
    return steps_text(solution_steps(task))


def parse_steps(text: str) -> list[Step] | None:
    """Steps from a written chain, or None when any step does not read as `L op X = R`."""
    if not isinstance(text, str) or len(text) > 200:
        return None
    parts = text.strip().split(STEP_SEP)
    steps = []
    for part in parts:
        m = _STEP.fullmatch(part)
        if m is None:
            return None
        steps.append(Step(int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))))
    return steps


def first_wrong_step(task: Task, text: str) -> int | None:
    """The checker: the 1-based index of the first wrong step of a written chain, 0 when all steps are
    right, None when the text does not read as steps or has not as many steps as the chain operations."""
    terms = terms_of(task)
    steps = parse_steps(text)
    if steps is None or len(steps) != len(terms) - 1:
        return None
    previous = terms[0][1]
    for i, (step, (op, x)) in enumerate(zip(steps, terms[1:]), start=1):
        if step.left != previous or step.op != op or step.operand != x or step.result != step.value:
            return i
        previous = step.result
    return 0


def off_by_one(step: Step, rng: random.Random) -> int:
    """A counting slip: the step's right value plus or minus one (the solver's natural error)."""
    return step.value + rng.choice((-1, 1))


def corrupt(task: Task, index: int, result: int) -> str:
    """The right chain with step `index` (1-based) given `result`, later steps carried on from it."""
    steps = solution_steps(task)
    index = check_int("index", index, min=1, max=len(steps))
    out = steps[:index - 1]
    s = steps[index - 1]
    out.append(Step(s.left, s.op, s.operand, int(result)))
    for s in steps[index:]:
        left = out[-1].result
        step = Step(left, s.op, s.operand, 0)
        out.append(Step(left, s.op, s.operand, step.value))
    return steps_text(out)


# ---------------------------------------------------------------------------------------------
# The critic's and the sneaky generator's formats

def critic_prompt(task: Task, chain: str) -> str:
    return f"{_check_task(task).prompt}{chain}{CRITIC_MARK}"


def critic_text(task: Task, first_wrong: int) -> str:
    """The critic's marks for a chain whose first wrong step is `first_wrong` (0: all right)."""
    n = len(terms_of(task)) - 1
    first_wrong = check_int("first_wrong", first_wrong, min=0, max=n)
    return "y" * n if first_wrong == 0 else "y" * (first_wrong - 1) + "n"


def parse_critic(task: Task, text: str) -> int | None:
    """The step a critic names: the index of its first `n`, 0 for `y` on every step, None otherwise."""
    n = len(terms_of(task)) - 1
    marks = text.strip() if isinstance(text, str) else ""
    if not marks or set(marks) - {"y", "n"}:
        return None
    if "n" in marks:
        i = marks.index("n")
        return i + 1 if i < n else None
    return 0 if len(marks) == n else None


def sneaky_prompt(task: Task, index: int) -> str:
    """The right chain up to the `=` of step `index` (1-based), then the sneaky mark."""
    steps = solution_steps(_check_task(task))
    index = check_int("index", index, min=1, max=len(steps))
    done = "".join(s.text + STEP_SEP for s in steps[:index - 1])
    s = steps[index - 1]
    return f"{task.prompt}{done}{s.left}{s.op}{s.operand}={SNEAKY_MARK}"


def parse_result(text: str) -> int | None:
    """A step result the sneaky generator wrote: a canonical integer, else None."""
    text = text.strip() if isinstance(text, str) else ""
    return int(text) if _INT.fullmatch(text) and len(text) <= 6 else None


def harmonic_f1(acc_erroneous: float, acc_correct: float) -> float:
    """ProcessBench's F1: the harmonic mean of the accuracy on erroneous chains (the first wrong step
    named exactly) and on right chains (judged all right)."""
    s = acc_erroneous + acc_correct
    return 2 * acc_erroneous * acc_correct / s if s else 0.0
