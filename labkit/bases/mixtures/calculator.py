"""The calculator mixture (data/models/tiny-calc): arithmetic answered directly or with a tool call.

A demonstration either answers directly ("347*28=" -> "9716") or, with probability P_TOOL,
calls the calculator of labkit.core.calculator and copies its reply ("[347*28]=9716;9716"). Easy tasks
(short add/sub, 1-digit mul) are learnable directly; hard ones (2-3 digit mul, 5-6 digit add)
are not, so a direct answer to them is mostly a guess and a tool call mostly right. The tool is
used on only part of the examples, so the base calls it sometimes, not always: room for RL to
raise the call rate (notebook 04, SPEAR). Noise as in every mixture: some final answers are near
misses or have format slips, and some calls have a typo in an operand.
"""
import random

from labkit.bases.pretrain import demonstration, near_miss
from labkit.core.tasks import sample_task, train_seed
from labkit.core.calculator import format_call

DESCRIPTION = "arithmetic answered directly or through a calculator call (labkit/core/calculator.py)"

EASY = (("add", 1), ("add", 2), ("sub", 1), ("sub", 2), ("mul", 1))
HARD = (("mul", 2), ("mul", 3), ("add", 5), ("add", 6))
P_HARD = 0.5  # share of hard tasks in the stream
P_TOOL = 0.15  # share of demonstrations that call the calculator
P_CALL_TYPO = 0.05  # share of tool demonstrations whose call has a wrong operand digit
# Share of resumed demonstrations: a tool demonstration cut after its '[' or after the reply's
# ';', the part before the cut moved into the prompt. They teach copying the operands and the
# reply without teaching to open a call more often (the decision to call is at the cut-free start).
P_RESUME = 0.3


def expression_of(task) -> str:
    """The call a demonstration writes for an arithmetic task: its prompt without the '='."""
    return task.prompt[:-1]


def tool_demonstration(task, rng: random.Random, p_wrong: float, p_slip: float) -> str:
    """'[a*b]=r;' + r, noise included: a typo in the call, or a near miss / slip when copying."""
    expression = expression_of(task)
    if rng.random() < P_CALL_TYPO:
        left, op, right = expression.partition(next(c for c in expression[1:] if c in "+-*"))
        expression = near_miss(left, rng) + op + right
    call = format_call(expression)
    reply = call.rsplit("=", 1)[1][:-1]
    copied = type(task)(**{**task.to_json(), "answer": reply})  # the demo copies the reply
    return call + demonstration(copied, rng, p_wrong, p_slip)


def demonstrations(seed: int, p_wrong: float, p_slip: float):
    """Endless (prompt, completion) pairs: easy and hard arithmetic, a tool call on P_TOOL of them,
    resumed tool demonstrations on P_RESUME."""
    rng = random.Random(train_seed(seed))  # never the eval sets' seeds
    while True:
        category, level = rng.choice(HARD if rng.random() < P_HARD else EASY)
        task = sample_task(category, level, rng)
        u = rng.random()
        if u < P_TOOL:
            yield task.prompt, tool_demonstration(task, rng, p_wrong, p_slip)
        elif u < P_TOOL + P_RESUME:
            completion = tool_demonstration(task, rng, p_wrong, p_slip)
            cut = 1 if rng.random() < 0.5 else completion.index(";") + 1
            yield task.prompt + completion[:cut], completion[cut:]
        else:
            yield task.prompt, demonstration(task, rng, p_wrong, p_slip)


def card_evaluate(policy, tasks, samples, temperature):
    """The card measures with the calculator executed and a call's reply submitted as the answer
    (labkit.core.calculator, stop_after_call=True), as notebook 04 used this base in its first round
    (its default base is now tiny-calc-copy, mixture calculator_copy, which copies replies partly)."""
    from labkit.core.calculator import evaluate_with_tools

    return evaluate_with_tools(policy, tasks, samples=samples, temperature=temperature, stop_after_call=True)


def card_tasks() -> dict:
    """The card measures the mixture's own categories on the shipped arithmetic eval set."""
    from labkit.core.tasks import load_eval_set

    wanted = set(EASY) | set(HARD)
    return {"arithmetic": [t for t in load_eval_set("arithmetic") if (t.category, t.difficulty) in wanted]}
