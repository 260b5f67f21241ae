"""The hints mixture (data/models/tiny-hints, notebook 05): the default mixture, plus countdown
tasks shown with a hint (labkit.nb.n05_self_hinting, levels 1..3) and hint requests answered with the hint.

Three kinds of demonstration:
    default      the default mixture's stream, so no-hint competence stays like data/models/tiny
    read a hint  hinted_prompt(prompt, hint) -> the (noisy) reference solution the hint is cut from
    write a hint hint_request(task, level)  -> procedural_hint(task, level)   (the self-hint skill)
Meant to continue from data/models/tiny (`labkit pretrain --init tiny --mixture hints ...`).
"""
import random

from labkit.core.tasks.hints import MAX_LEVEL, hint_request, hinted_prompt, procedural_hint
from labkit.bases.mixtures import default
from labkit.bases.pretrain import demonstration
from labkit.core.tasks import DIFFICULTIES, sample_task, train_seed

DESCRIPTION = "default mixture + countdown with hints (levels 1-3) + writing hints (labkit/nb/n05_self_hinting.py)"

SHARES = {"default": 0.6, "read": 0.25, "write": 0.15}
# countdown levels for the hinted kinds: hard ones most, as hints matter where the base fails
LEVEL_WEIGHTS = {2: 1.0, 3: 2.0, 4: 3.0, 5: 3.0}


def demonstrations(seed: int, p_wrong: float, p_slip: float):
    """Endless (prompt, completion) pairs: default, hint-reading and hint-writing demonstrations."""
    rng = random.Random(train_seed(seed, stream=1))  # never the eval sets' seeds
    plain = default.demonstrations(seed, p_wrong, p_slip)
    kinds, shares = list(SHARES), list(SHARES.values())
    levels = [d for d in DIFFICULTIES["countdown"] if d in LEVEL_WEIGHTS]
    while True:
        kind = rng.choices(kinds, shares)[0]
        if kind == "default":
            yield next(plain)
            continue
        task = sample_task("countdown", rng.choices(levels, [LEVEL_WEIGHTS[d] for d in levels])[0], rng)
        level = rng.randint(1, MAX_LEVEL)
        if kind == "read":
            yield hinted_prompt(task.prompt, procedural_hint(task, level)), demonstration(task, rng, p_wrong, p_slip)
        else:
            yield hint_request(task, level), procedural_hint(task, level)
