"""The calculator-and-copy mixture plus chain drills (data/models/tiny-calc-chain): a base for chain
tasks 'a*b+c=' (labkit.core.calculator.chain_task), where the calculator's reply must be used, not only copied.

Notebook 04's chain task runs a one-operation calculator (labkit.core.calculator, max_operands=2): '[23*45+7]'
is refused ('=?;'), so the way to '23*45+7=' -> '1042' is to call '[23*45]', read '=1035;' and write
1035+7 oneself. Every shipped calculator base fails there (0 of 400 samples right at temperature 1:
the prompt is new to them, and their calls mangle the operands). This mixture teaches the pieces
separately, never the whole solution in one demonstration:

    what to call      "23*45+7=[" -> "23*45]"            (a call already opened: its operands)
    using the reply   "23*45+7=[23*45]=1035;" -> "1042"  (the reply given: add the small number)

and never shows a chain prompt from its start, so whether to open a call on one is left to what the
calculator stream taught on plain products (P_TOOL of them call, cut-free). A trajectory that solves
a chain task composes three decisions the base makes only sometimes: call, call the product, add.
The rest of the stream is the calculator_copy mixture's (copy drills, echo drills, direct answers),
which keeps the base's copy habit. Answers carry the usual noise (near misses, format slips) and
calls an operand typo on P_CALL_TYPO of them, so every piece stays imperfect.

The card measures two sets: the calculator's arithmetic eval set and `[chain]`, the held-out chain
tasks (labkit.core.calculator.chain_eval_tasks: the eval set's 2- and 3-digit products plus 1..9; their rows
read `mul 2` and `mul 3`), with the one-operation calculator and the episode going on after a reply.
"""
import random

from labkit.bases.mixtures import calculator_copy
from labkit.bases.mixtures.calculator import P_CALL_TYPO, card_tasks as calculator_card_tasks
from labkit.bases.pretrain import demonstration, near_miss
from labkit.core.tasks import train_seed
from labkit.core.calculator import format_call, sample_chain_task

DESCRIPTION = ("the calculator_copy mixture plus drills for chain tasks a*b+c (what to call inside an open call; "
               "adding c to a given reply)")

P_WHAT = 0.10  # share of "what to call" drills: a chain prompt + '[' -> the product's operands + ']'
P_USE = 0.35  # share of "using the reply" drills: a chain prompt + call + reply -> reply + c
CHAIN_DIGITS = (1, 2, 3)  # digits of the chain drills' factors

__all__ = ["DESCRIPTION", "demonstrations", "card_evaluate", "card_tasks", "P_WHAT", "P_USE"]


def demonstrations(seed: int, p_wrong: float, p_slip: float):
    """Endless (prompt, completion) pairs: P_WHAT and P_USE chain drills, the calculator_copy stream otherwise."""
    rng = random.Random(train_seed(seed, stream=11))  # never the eval sets' seeds; not the other mixtures' streams
    rest = calculator_copy.demonstrations(seed, p_wrong, p_slip)
    while True:
        u = rng.random()
        if u >= P_WHAT + P_USE:
            yield next(rest)
            continue
        task = sample_chain_task(rng.choice(CHAIN_DIGITS), rng)
        a, b = str(task.meta["a"]), str(task.meta["b"])
        if u < P_WHAT:
            if rng.random() < P_CALL_TYPO:
                a = near_miss(a, rng)
            yield task.prompt + "[", f"{a}*{b}]"
        else:
            call = format_call(f"{a}*{b}")
            yield task.prompt + call, demonstration(task, rng, p_wrong, p_slip)


def card_evaluate(policy, tasks, samples, temperature):
    """The card measures with the one-operation calculator executed and the episode going on after a
    reply (labkit.core.calculator, max_operands=2, stop_after_call=False)."""
    from labkit.core.calculator import evaluate_with_tools

    return evaluate_with_tools(policy, tasks, samples=samples, temperature=temperature, stop_after_call=False,
                               max_operands=2)


def card_tasks() -> dict:
    """The calculator's arithmetic card tasks and the held-out chain tasks."""
    from labkit.core.calculator import chain_eval_tasks

    return {**calculator_card_tasks(), "chain": chain_eval_tasks()}
