"""The default mixture (data/models/tiny): every category of labkit.core.tasks, easy levels most."""
import random

from labkit.bases.pretrain import demonstration
from labkit.core.tasks import CATEGORIES, DIFFICULTIES, sample_task, train_seed

DESCRIPTION = "noisy demonstrations from every task world (labkit/core/tasks)"

# Share of each category in the stream; within a category, difficulty d has weight
# 1 / (rank of d + 1), so easy levels are learned well and hard ones only a little.
CATEGORY_WEIGHTS = {"add": 0.2, "sub": 0.15, "mul": 0.1, "carry": 0.15,
                    "countdown": 0.1, "sort": 0.15, "reverse": 0.15}


def demonstrations(seed: int, p_wrong: float, p_slip: float):
    """Endless (prompt, completion) pairs drawn from the category/difficulty mixture."""
    rng = random.Random(train_seed(seed))  # never the eval sets' seeds
    categories = [c for c in CATEGORIES if c in CATEGORY_WEIGHTS]
    weights = [CATEGORY_WEIGHTS[c] for c in categories]
    while True:
        category = rng.choices(categories, weights)[0]
        levels = DIFFICULTIES[category]
        level = rng.choices(levels, [1 / (rank + 1) for rank in range(len(levels))])[0]
        task = sample_task(category, level, rng)
        yield task.prompt, demonstration(task, rng, p_wrong, p_slip)
