"""Many battles at once: a process pool whose results do not depend on the number of workers.

Each job is (w1, w2, rounds, seed); its result is `battle(w1, w2, rounds, seed, settings)`, a pure
function of the job, so `battle_many(jobs, workers=k)` returns the same list for every k.
Warriors travel to the workers as data (Warrior tuples) and run only inside the MARS.
"""
from __future__ import annotations

from concurrent.futures import ProcessPoolExecutor

from labkit.core.corewar.mars import TINY_HILL, BattleResult, Settings, battle

__all__ = ["battle_many"]


def _job(args):
    w1, w2, rounds, seed, settings = args
    return battle(w1, w2, rounds, seed, settings)


def battle_many(jobs, settings: Settings = TINY_HILL, workers: int = 1) -> list[BattleResult]:
    """Results of `jobs` = [(w1, w2, rounds, seed), ...] in order; `workers` > 1 uses processes."""
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive int; got {workers!r}")
    args = [(w1, w2, rounds, seed, settings) for (w1, w2, rounds, seed) in jobs]
    if workers == 1 or len(args) < 2:
        return [_job(a) for a in args]
    with ProcessPoolExecutor(max_workers=workers) as ex:
        return list(ex.map(_job, args, chunksize=max(1, len(args) // (4 * workers))))
