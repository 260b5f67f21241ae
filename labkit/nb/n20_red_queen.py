"""20 · Digital Red Queen: warriors evolved against every past champion, in our own Core War: the mechanism that notebooks/20_red_queen.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from labkit.core.corewar import TINY_HILL, Settings, Warrior, battle_many
from labkit.core.corewar.redcode import MODES, OPCODES, Instruction, MODIFIERS, default_modifier
from labkit.bases.mixtures.redcode import (NEW_PROMPT, MAX_PARENT_CHARS, compact, family_warrior,
                                           generated_warrior, mutate_prompt)


__all__ = ["descriptor", "Candidate", "MapElites", "evaluate", "ModelOperator", "RandomOperator",
           "random_line_edit", "drq", "generality", "SPAWN_BINS", "COVERAGE_BINS"]

# the authors' behaviour descriptor: (total spawned processes, memory coverage), each in 6 bins;
# coverage bins scaled from core 8000 (10, 100, 500, 1000, 4000) to core 800
SPAWN_BINS = (1, 10, 100, 1000, 10000)
COVERAGE_BINS = (1, 10, 50, 100, 400)


def descriptor(spawned: float, coverage: float) -> tuple[int, int]:
    """The MAP-Elites cell: (bin of spawned processes, bin of cells written), each 0..5."""
    if spawned < 0 or coverage < 0:
        raise ValueError(f"spawned and coverage must be >= 0; got {spawned}, {coverage}")
    return (sum(spawned >= t for t in SPAWN_BINS), sum(coverage >= t for t in COVERAGE_BINS))


@dataclass
class Candidate:
    warrior: Warrior | None     # None: the generator's text was not a warrior
    text: str                   # what the operator produced (the model's completion, or the edit)
    origin: str                 # "new" or "mutate"
    fitness: float = float("-inf")
    cell: tuple | None = None


class MapElites:
    """An archive of elites, one per descriptor cell; a candidate replaces a cell's elite only
    with a strictly higher fitness (the authors' `place`)."""

    def __init__(self):
        self.archive: dict[tuple, Candidate] = {}
        self.history: list[Candidate] = []

    def place(self, c: Candidate) -> bool:
        self.history.append(c)
        if c.warrior is None or c.cell is None:
            return False
        old = self.archive.get(c.cell)
        if old is None or c.fitness > old.fitness:
            self.archive[c.cell] = c
            return True
        return False

    def sample(self, rng: random.Random) -> Candidate:
        keys = sorted(self.archive)
        if not keys:
            raise ValueError("sample from an empty archive")
        return self.archive[rng.choice(keys)]

    def best(self) -> Candidate | None:
        if not self.archive:
            return None
        return max((self.archive[k] for k in sorted(self.archive)), key=lambda c: c.fitness)


def evaluate(candidates, opponents, rounds: int, seed: int, settings: Settings = TINY_HILL,
             workers: int = 1) -> int:
    """Fitness of each valid candidate = its mean battle score against `opponents` (`rounds`
    rounds each; battle k of a candidate is seeded seed + k, so every candidate meets the same
    placements); its cell = descriptor of its mean spawned processes and cells written.
    Returns the number of rounds simulated (the battle budget spent)."""
    valid = [c for c in candidates if c.warrior is not None]
    jobs = [(c.warrior, o, rounds, seed + k) for c in valid for k, o in enumerate(opponents)]
    results = battle_many(jobs, settings, workers)
    n = len(opponents)
    for i, c in enumerate(valid):
        rs = results[i * n:(i + 1) * n]
        c.fitness = sum(r.score for r in rs) / n
        c.cell = descriptor(sum(r.spawned for r in rs) / n, sum(r.coverage for r in rs) / n)
    return len(jobs) * rounds


def generality(warrior: Warrior, heldout, rounds: int = 4, seed: int = 0, settings: Settings = TINY_HILL,
               workers: int = 1) -> float:
    """Mean battle score of `warrior` against held-out warriors it never met (0.5 = even)."""
    jobs = [(warrior, h, rounds, seed + k) for k, h in enumerate(heldout)]
    return sum(r.score for r in battle_many(jobs, settings, workers)) / len(jobs)


def _as_candidate(make, text, origin, settings):
    try:
        w = make()
    except ValueError:
        return Candidate(None, text, origin)
    if len(w) > settings.length:
        return Candidate(None, text, origin)
    return Candidate(w, text, origin)


class ModelOperator:
    """The frozen generator (the paper's LLM): writes new warriors and edits given ones."""

    def __init__(self, policy, temperature: float = 1.0, generator=None, settings: Settings = TINY_HILL):
        self.policy, self.temperature, self.generator, self.settings = policy, temperature, generator, settings

    def _complete(self, prompts, max_new_tokens):
        from labkit.core.sampling import rollout
        return rollout(self.policy, prompts, max_new_tokens=max_new_tokens, temperature=self.temperature,
                       generator=self.generator).completions

    def new(self, n: int) -> list[Candidate]:
        texts = self._complete([NEW_PROMPT] * n, 110) if n else []
        return [_as_candidate(lambda t=t: generated_warrior(NEW_PROMPT, t), t, "new", self.settings) for t in texts]

    def mutate(self, parents) -> list[Candidate]:
        # a parent too long for the context (> MAX_PARENT_CHARS in compact form) gets a new warrior instead
        fits = [len(compact(p)) <= MAX_PARENT_CHARS for p in parents]
        prompts = [mutate_prompt(p) for p, f in zip(parents, fits) if f]
        edits = iter(self._complete(prompts, 16) if prompts else [])
        out = []
        for p, f in zip(parents, fits):
            if not f:
                out += self.new(1)
                continue
            t = next(edits)
            out.append(_as_candidate(lambda p=p, t=t: generated_warrior(mutate_prompt(p), t), t, "mutate",
                                     self.settings))
        return out


def random_line_edit(parent: Warrior, rng: random.Random, span: int = 40) -> Warrior:
    """One line of `parent` replaced by a uniformly random instruction: any opcode, any modes,
    the '94 default modifier, fields uniform in [-span, span]."""
    k = rng.randrange(len(parent))
    op, am, bm = rng.choice(OPCODES), rng.choice(MODES), rng.choice(MODES)
    mod = MODIFIERS.index(default_modifier(op, am, bm))
    ins = Instruction(OPCODES.index(op), mod, MODES.index(am), rng.randint(-span, span),
                      MODES.index(bm), rng.randint(-span, span))
    lines = list(parent.instructions)
    lines[k] = ins
    return Warrior(parent.name, tuple(lines), parent.start)


class RandomOperator:
    """No model: new warriors straight from the classic templates the generator was taught,
    mutations by `random_line_edit`."""

    def __init__(self, rng: random.Random, settings: Settings = TINY_HILL):
        self.rng, self.settings = rng, settings

    def new(self, n: int) -> list[Candidate]:
        out = []
        for _ in range(n):
            w = family_warrior(self.rng)
            out.append(Candidate(w, compact(w), "new"))
        return out

    def mutate(self, parents) -> list[Candidate]:
        out = []
        for p in parents:
            w = random_line_edit(p, self.rng)
            out.append(Candidate(w, compact(w), "mutate"))
        return out


OBJECTIVES = ("red_queen", "static")


def drq(operator, initial, rounds: int, iters: int, batch: int, rng: random.Random, objective: str = "red_queen",
        n_init: int = 8, p_new: float = 0.1, battle_rounds: int = 2, settings: Settings = TINY_HILL,
        workers: int = 1, on_step=None) -> dict:
    """Digital Red Queen. Round r runs MAP-Elites for `iters` steps of `batch` candidates, with
    fitness against the initial opponents and every earlier round's champion (`red_queen`), and
    ends with the best elite as round r's champion. `static` keeps one archive and the initial
    opponents throughout, and plays each battle for more rounds instead, so a valid candidate costs
    the same battle rounds under both objectives."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}; got {objective!r}")
    for name, v in (("rounds", rounds), ("iters", iters), ("batch", batch), ("n_init", n_init),
                    ("battle_rounds", battle_rounds)):
        if not isinstance(v, int) or v < (0 if name == "iters" else 1):
            raise ValueError(f"{name} must be a positive int; got {v!r}")
    if not 0 <= p_new <= 1:
        raise ValueError(f"p_new must be in [0, 1]; got {p_new!r}")
    initial = list(initial)
    champions, archives, fitness, budget, candidates = [], [], [], 0, []
    archive = MapElites()
    for r in range(rounds):
        if objective == "red_queen":
            archive = MapElites()
            opponents, per_battle = initial + champions, battle_rounds
        else:
            opponents, per_battle = initial, battle_rounds * (len(initial) + len(champions))
        steps = [operator.new(n_init)]
        for step in range(iters + 1):
            batch_c = steps.pop() if step == 0 else None
            if batch_c is None:
                parents, n_new = [], 0
                for _ in range(batch):
                    if not archive.archive or rng.random() < p_new:
                        n_new += 1
                    else:
                        parents.append(archive.sample(rng).warrior)
                batch_c = operator.new(n_new) + operator.mutate(parents)
            budget += evaluate(batch_c, opponents, per_battle, rng.getrandbits(31), settings, workers)
            for c in batch_c:
                archive.place(c)
            candidates += [(r, c) for c in batch_c]
            if on_step is not None:
                on_step(r, step, archive)
        best = archive.best()
        if best is not None:
            champions.append(best.warrior)
            fitness.append(best.fitness)
        archives.append(len(archive.archive))
    return dict(champions=champions, fitness=fitness, cells=archives, budget=budget, candidates=candidates)
