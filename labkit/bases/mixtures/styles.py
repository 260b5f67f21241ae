"""The `styles` mixture (data/models/styles, notebook 18): additions answered in three surface forms.

Each demonstration writes the sum in one of three styles with unequal frequencies,

    plain  "12+345=" -> "357"     (50%)
    paren  "12+345=" -> "(357)"   (30%)
    hash   "12+345=" -> "#357"    (20%)

and a share `p_wrong` of answers is a near miss, so a base sampled at temperature 1 shows both a
style mix (the object of notebook 18's cyclic preferences) and a spread of answer quality (the
object of its Bradley-Terry oracle). The style is chosen by the first character, so a policy can
shift its mix with one token's probabilities. `p_slip` is unused (the styles are the variation).
"""
import random

from labkit.bases.pretrain import near_miss
from labkit.core.tasks import make_tasks, sample_task, train_seed

DESCRIPTION = "1-3 digit additions, answers in three styles: 357 (50%), (357) (30%), #357 (20%)"

# style -> (share of demonstrations, how it wraps the answer)
STYLES = {"plain": (0.5, "{}"), "paren": (0.3, "({})"), "hash": (0.2, "#{}")}
# difficulty (digits per operand) -> weight
LEVELS = {1: 0.2, 2: 0.5, 3: 0.3}


def styled(answer: str, style: str) -> str:
    """`answer` written in `style` (a key of STYLES)."""
    return STYLES[style][1].format(answer)


def demonstrations(seed: int, p_wrong: float, p_slip: float):
    """Endless (prompt, completion) pairs: an addition, its (sometimes near-miss) sum, styled."""
    rng = random.Random(train_seed(seed))  # never the eval sets' seeds
    names, shares = list(STYLES), [share for share, _ in STYLES.values()]
    levels, weights = list(LEVELS), list(LEVELS.values())
    while True:
        task = sample_task("add", rng.choices(levels, weights)[0], rng)
        answer = near_miss(task.answer, rng) if rng.random() < p_wrong else task.answer
        yield task.prompt, styled(answer, rng.choices(names, shares)[0])


def card_tasks() -> dict:
    """The card measures the additions this base is taught (the verifier accepts only "plain")."""
    return {"add": [t for d in LEVELS for t in make_tasks("add", d, 50, seed=0)]}
