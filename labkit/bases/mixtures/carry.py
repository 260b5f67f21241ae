"""The carry mixture (data/models/tiny-carry; notebook 07): fixed-width 4-digit addition only,
weighted toward few carries, so the base has a competence gradient at a fixed input length.

The number of carries is the difficulty of `carry` tasks (labkit.core.tasks.arithmetic); every level has
the same prompt length, so what separates the levels is carrying itself, not length. The base sees
mostly 0 and 1 carries, a little of 2 and 3, and almost no 4 (the level notebook 07 holds out).
Trained briefly and with little noise, it solves few-carry sums almost always and many-carry sums
rarely: a sample group is then all right on the easy arm, all wrong on the hard arm, and mixed in
between, the setting a curriculum over difficulty is for.
"""
import random

from labkit.bases.pretrain import demonstration
from labkit.core.tasks import load_eval_set, sample_task, train_seed

DESCRIPTION = "noisy demonstrations of 4-digit addition (`carry`), weighted toward few carries"

# carries -> share of the stream
CARRY_WEIGHTS = {0: 0.40, 1: 0.30, 2: 0.17, 3: 0.10, 4: 0.03}


def demonstrations(seed: int, p_wrong: float, p_slip: float):
    """Endless (prompt, completion) pairs of carry tasks, levels drawn by CARRY_WEIGHTS."""
    rng = random.Random(train_seed(seed))  # never the eval sets' seeds
    levels, weights = list(CARRY_WEIGHTS), list(CARRY_WEIGHTS.values())
    while True:
        task = sample_task("carry", rng.choices(levels, weights)[0], rng)
        yield task.prompt, demonstration(task, rng, p_wrong, p_slip)


def card_tasks() -> dict:
    """The model card measures the carry levels of the shipped arithmetic eval set."""
    return {"arithmetic": load_eval_set("arithmetic", category="carry")}
