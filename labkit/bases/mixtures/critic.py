"""The critic mixture (data/models/tiny-critic, notebook 15): a base that solves step-formatted chains,
criticises them step by step, and corrupts a step on request (labkit.core.chains).

    solve    "7-5+3="                   -> "7-5=2;2+3=5"    with off-by-one slips
    critic   "7-5+3=7-5=2;2+3=6|c"      -> "yn"             marks up to the first wrong step
    sneaky   "7-5+3=7-5=2;2+3=|s"       -> "1"              a wrong result for that step

The regime notebook 15 is about (SPC's): the solver's natural errors and the errors the critic is
taught on differ. The solver's demonstrations slip the way counting does, a step's result off by one
(`off_by_one`) on P_SLIP of the steps, and carry the wrong value on. The critic is taught only on *random*
corruptions (`near_miss`: one step's result replaced by another digit, carried on), half of its chains
right; the sneaky generator is taught to write those same random corruptions. So the base critic is a
random-error critic and the base sneaky generator a random corruptor: what the adversarial game changes is
what the generator learns to write. Numbers have one digit, where tiny's add/sub is sure (greedily):
chains of two-digit numbers were tried first and the base solved none of them after 400 steps.
Meant to continue from tiny (`labkit pretrain --mixture critic --init tiny ...`).
"""
from __future__ import annotations

import random

from labkit.bases.pretrain import near_miss
from labkit.core.chains import (OPS, Step, corrupt, critic_prompt, critic_text, first_wrong_step,
                                make_chain, make_chains, off_by_one, solution, solution_steps, sneaky_prompt,
                                steps_text)
from labkit.core.tasks import Task, train_seed

DESCRIPTION = ("step-formatted +/- chains: solving with off-by-one slips, a step critic taught on random corruptions, "
               "a sneaky step corruptor (labkit.core.chains; notebook 15)")

SHARES = {"solve": 0.4, "critic": 0.4, "sneaky": 0.2}
P_SLIP = 0.15  # share of the solver's steps that slip by one
P_RIGHT_CHAIN = 0.5  # share of the critic's chains that are right


def solver_text(task: Task, rng: random.Random, p_slip: float = P_SLIP) -> str:
    """A solver's chain: each step right, or (p_slip) off by one; a wrong value carried on."""
    out = []
    for s in solution_steps(task):
        left = out[-1].result if out else s.left
        step = Step(left, s.op, s.operand, 0)
        result = off_by_one(step, rng) if rng.random() < p_slip else step.value
        out.append(Step(left, s.op, s.operand, result))
    return steps_text(out)


def random_corruption(task: Task, rng: random.Random) -> tuple[int, int]:
    """A random corruption: a uniform step and one digit of its right result replaced (near_miss)."""
    steps = solution_steps(task)
    index = rng.randint(1, len(steps))
    return index, int(near_miss(str(steps[index - 1].result), rng))


def critic_chain(task: Task, rng: random.Random) -> str:
    if rng.random() < P_RIGHT_CHAIN:
        return solution(task)
    return corrupt(task, *random_corruption(task, rng))


def demonstrations(seed: int, p_wrong: float, p_slip: float):
    """Endless (prompt, completion) pairs of the kinds in SHARES (p_wrong, p_slip unused: the noise is
    the off-by-one slips and random corruptions above)."""
    rng = random.Random(train_seed(seed, stream=15))  # never the eval sets' seeds
    kinds, shares = list(SHARES), list(SHARES.values())
    while True:
        kind = rng.choices(kinds, shares)[0]
        task = make_chain(rng.choice(OPS), rng)
        if kind == "solve":
            yield task.prompt, solver_text(task, rng)
        elif kind == "critic":
            chain = critic_chain(task, rng)
            yield critic_prompt(task, chain), critic_text(task, first_wrong_step(task, chain))
        else:
            index, result = random_corruption(task, rng)
            yield sneaky_prompt(task, index), str(result)


# ---------------------------------------------------------------------------------------------
# The model card: solving (a chain is right when every step is), the critic's exact first-wrong-step
# agreement on random corruptions (half the chains right), and the sneaky generator's real-error rate

def card_tasks() -> dict:
    rng = random.Random(15)  # below TRAIN_SEED_MIN: never a training stream's seed
    solve = [Task(t.prompt, solution(t), t.category, t.difficulty, "chains-solve", {"task": t})
             for t in make_chains(300, rng)]
    crit, sneak = [], []
    for t in make_chains(300, rng):
        chain = critic_chain(t, rng)
        crit.append(Task(critic_prompt(t, chain), str(first_wrong_step(t, chain)), "critic", t.difficulty,
                         "chains-critic", {"task": t}))
        index = rng.randint(1, t.difficulty)
        sneak.append(Task(sneaky_prompt(t, index), "", "sneaky", t.difficulty, "chains-sneaky",
                          {"task": t, "index": index}))
    return {"solve": solve, "critic": crit, "sneaky": sneak}


def card_evaluate(policy, tasks, samples, temperature):
    from labkit.bases.card import scored_evaluate
    from labkit.core.chains import parse_critic, parse_result

    def is_right(task, text):
        chain = task.meta["task"]
        if task.world == "chains-solve":
            return first_wrong_step(chain, text) == 0
        if task.world == "chains-critic":
            return parse_critic(chain, text) == int(task.answer)
        value = parse_result(text)
        return value is not None and value != solution_steps(chain)[task.meta["index"] - 1].result

    return scored_evaluate(policy, tasks, samples, temperature, 48, is_right)
