"""26 · Directed evolution: islands, MAP-Elites and memory-directed edits (LoongFlow, Guided Evolution): the mechanism that notebooks/26_directed_evolution.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import math
import random
from labkit.core.checks import check_float, check_int
from labkit.core.sandbox import call_function


OPS = ("add", "mul", "xor", "and", "or", "shl", "shr", "addx", "xorx")
_FORM = {"add": "(a + {c}) & 255", "mul": "(a * {c}) & 255", "xor": "a ^ {c}", "and": "a & {c}", "or": "a | {c}",
         "shl": "(a << {c}) & 255", "shr": "a >> {c}", "addx": "(a + x) & 255", "xorx": "a ^ x"}
# the editor's vocabulary E: insert or replace with each op, delete, tweak a constant (20 edits)
EDITS = tuple([("insert", op) for op in OPS] + [("replace", op) for op in OPS] + [("delete", None), ("tweak", None)])


def random_arg(op: str, rng: random.Random) -> int:
    # the constant of an instruction: 0..15 (add, xor, or), a byte with one or two bits cleared (and),
    # an odd factor 3..15 (mul), a shift 1..3; none (0) for the x-ops
    if op not in _FORM:
        raise ValueError(f"unknown instruction {op!r}; expected one of {OPS}")
    if op in ("shl", "shr"):
        return rng.randint(1, 3)
    if op == "mul":
        return rng.randrange(3, 16, 2)
    if op in ("addx", "xorx"):
        return 0
    if op == "and":
        return 255 ^ (1 << rng.randrange(8)) ^ (rng.randrange(2) << rng.randrange(8))
    return rng.randrange(16)


def random_program(length: int, rng: random.Random) -> tuple:
    length = check_int("length", length, min=1)
    return tuple((op, random_arg(op, rng)) for op in (rng.choice(OPS) for _ in range(length)))


def render(program, name: str = "f") -> str:
    # straight-line Python on one byte a (a = x at the start); it runs only in the sandbox, never in this process
    lines = [f"def {name}(x):", "    a = x"]
    for op, c in program:
        if op not in _FORM:
            raise ValueError(f"unknown instruction {op!r}; expected one of {OPS}")
        lines.append("    a = " + _FORM[op].format(c=int(c)))
    return "\n".join(lines + ["    return a"])


def apply_edit(program, edit, rng: random.Random, max_len: int = 8) -> tuple:
    # one edit e in E: insert / replace an instruction of op e (a random constant) at a random place, delete one,
    # or tweak a constant (a fresh value, or one bit flipped); insert at max_len replaces, delete of the last tweaks
    kind, op = edit
    if kind not in ("insert", "replace", "delete", "tweak") or (kind in ("insert", "replace")) != (op in _FORM):
        raise ValueError(f"unknown edit {edit!r}; expected one of EDITS")
    if not program:
        raise ValueError("apply_edit needs a program of at least one instruction")
    prog = list(program)
    if kind == "insert" and len(prog) >= max_len:
        kind = "replace"
    if kind == "delete" and len(prog) <= 1:
        kind = "tweak"
    if kind == "insert":
        prog.insert(rng.randint(0, len(prog)), (op, random_arg(op, rng)))
    elif kind == "replace":
        prog[rng.randrange(len(prog))] = (op, random_arg(op, rng))
    elif kind == "delete":
        del prog[rng.randrange(len(prog))]
    else:
        slots = [i for i, (o, _) in enumerate(prog) if o not in ("addx", "xorx")]
        if slots:
            i = rng.choice(slots)
            o, c = prog[i]
            if o in ("shl", "shr", "mul") or rng.random() < 0.5:
                c = random_arg(o, rng)
            else:
                c ^= 1 << rng.randrange(8 if o == "and" else 4)
            prog[i] = (o, c)
    return tuple(prog)


def run_programs(programs, xs, timeout_s: float = 30.0) -> list:
    # ONE sandbox call runs every distinct program on every input: out[i][j] = program_i(xs[j]), None if it raised
    unique = list(dict.fromkeys(tuple(p) for p in programs))
    if not unique:
        return []
    source = "\n".join(render(p, f"p{i}") for i, p in enumerate(unique))
    source += (f"\nP = [{', '.join(f'p{i}' for i in range(len(unique)))}]\n"
               "def run(xs):\n    out = []\n    for p in P:\n        try:\n            out.append([p(x) for x in xs])\n"
               "        except Exception:\n            out.append(None)\n    return out\n")
    ok, value = call_function(source, "run", [list(xs)], timeout_s=timeout_s,
                              max_output=1000 + 6 * len(unique) * (len(xs) + 1))
    if not ok:
        raise RuntimeError(f"the sandbox failed on a batch of {len(unique)} programs: {value}")
    table = dict(zip(unique, value))
    return [table[tuple(p)] for p in programs]


def bit_score(outputs, target) -> float:
    # s = (1/n) sum_j (8 - popcount((y_j xor t_j) & 255)) / 8: the share of output bits right; 0 if the program failed
    if outputs is None or len(outputs) != len(target):
        return 0.0
    if not target:
        raise ValueError("bit_score needs at least one target output")
    return sum(8 - bin((int(y) ^ int(t)) & 255).count("1") for y, t in zip(outputs, target)) / (8 * len(target))


def descriptor(program, score: float, bins: int = 4, max_len: int = 8) -> tuple:
    # the MAP-Elites cell, LoongFlow's feature dims (complexity, diversity, score) in `bins` bins each:
    # (length, distinct ops, score)
    n, d = len(program), len({op for op, _ in program})
    return (min(bins - 1, (n - 1) * bins // max_len), min(bins - 1, (d - 1) * bins // max_len),
            min(bins - 1, int(score * bins)))


class CreditMemory:
    """The summary of plan-execute-summarize: the gain each edit e brought its parents, G_e = sum max(0, s_child -
    s_parent) over its n_e uses.  q_e = (G_e + kappa g) / (n_e + kappa), g = sum G / sum n (shrunk mean gain);
    p(e) = (1 - eps) softmax((q / mean q) / tau)_e + eps / |E|.
    mode "directed": that p; "blind": p(e) = 1 / |E|; "shuffled" (the control): q permuted across edits at every
    draw (the same peakedness, no credit); "fixed": p from given weights (the oracle)."""

    MODES = ("directed", "blind", "shuffled", "fixed")

    def __init__(self, n_edits: int, mode: str = "directed", tau: float = 0.25, eps: float = 0.2,
                 kappa: float = 4.0, weights=None):
        self.n = check_int("n_edits", n_edits, min=1)
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {self.MODES}; got {mode!r}")
        self.mode = mode
        self.tau = check_float("tau", tau, gt=0)
        self.eps = check_float("eps", eps, min=0, max=1)
        self.kappa = check_float("kappa", kappa, min=0)
        if (mode == "fixed") != (weights is not None):
            raise ValueError("weights are given exactly when mode is 'fixed'")
        if weights is not None:
            weights = [float(w) for w in weights]
            if len(weights) != self.n or min(weights) < 0 or sum(weights) <= 0:
                raise ValueError(f"weights must be {self.n} non-negative numbers with a positive sum")
        self.weights = weights
        self.gains = [0.0] * self.n
        self.uses = [0] * self.n

    def credit(self) -> list[float]:
        total = sum(self.uses)
        g = sum(self.gains) / total if total else 0.0
        return [(G + self.kappa * g) / (u + self.kappa) if u + self.kappa > 0 else g
                for G, u in zip(self.gains, self.uses)]

    def probs(self, rng: random.Random | None = None) -> list[float]:
        if self.mode == "blind":
            return [1.0 / self.n] * self.n
        if self.mode == "fixed":
            s = sum(self.weights)
            return [(1 - self.eps) * w / s + self.eps / self.n for w in self.weights]
        q = self.credit()
        mean = sum(q) / self.n
        q = [v / mean if mean > 0 else 0.0 for v in q]       # q / mean q: scale-free in the score's units
        if self.mode == "shuffled":
            (rng or random.Random(0)).shuffle(q)
        top = max(q)
        z = [math.exp((v - top) / self.tau) for v in q]
        s = sum(z)
        return [(1 - self.eps) * v / s + self.eps / self.n for v in z]

    def update(self, edit: int, parent_score: float, child_score: float) -> None:
        # summarize: G_e += max(0, s_child - s_parent), n_e += 1
        if not 0 <= edit < self.n:
            raise ValueError(f"edit index {edit} outside 0..{self.n - 1}")
        self.uses[edit] += 1
        self.gains[edit] += max(0.0, child_score - parent_score)

    def draw(self, rng: random.Random) -> int:
        return rng.choices(range(self.n), weights=self.probs(rng))[0]


class Islands:
    """LoongFlow's evolution memory: m islands, each a MAP-Elites archive (one elite per descriptor cell).
    Per child: plan (a parent from its island by LoongFlow's selection, an edit from the memory), execute (the edit;
    the sandbox scores it), summarize (credit the edit, place the child). Every `migration_interval` evaluations
    the top `migration_rate` of each island copies to the next island of the ring. ask() / tell(scores)."""

    def __init__(self, init, memory: CreditMemory, rng: random.Random, islands: int = 3, children: int = 10,
                 bins: int = 4, max_len: int = 8, migration_interval: int = 10, migration_rate: float = 0.2,
                 temperature: float = 1.0, exploration: float = 0.2, elites: int = 8):
        self.m = check_int("islands", islands, min=1)
        self.children = check_int("children", children, min=1)
        self.bins, self.max_len = check_int("bins", bins, min=1), check_int("max_len", max_len, min=1)
        self.migration_interval = check_int("migration_interval", migration_interval, min=1)
        self.migration_rate = check_float("migration_rate", migration_rate, min=0, max=1)
        self.temperature = check_float("temperature", temperature, gt=0)
        self.exploration = check_float("exploration", exploration, min=0, max=1)
        self.n_elites = check_int("elites", elites, min=1)
        self.memory, self.rng = memory, rng
        self.archives: list[dict] = [{} for _ in range(self.m)]
        self.pending = [(tuple(p), None, None, i % self.m) for i, p in enumerate(init)]
        if not self.pending:
            raise ValueError("Islands needs at least one initial program")
        self.evaluated, self.since_migration, self.history = 0, 0, []

    def place(self, island: int, program, score: float) -> bool:
        # MAP-Elites: the child takes its cell when the cell is empty or it scores strictly higher
        cell = descriptor(program, score, self.bins, self.max_len)
        old = self.archives[island].get(cell)
        if old is None or score > old[1]:
            self.archives[island][cell] = (program, score)
            return True
        return False

    def parent(self, island: int):
        # plan: with prob. `exploration` a uniform member of the island; else 3 of the global elites and 2 other
        # members of the island, one drawn with weight exp((s - s_max) / T) (LoongFlow's Boltzmann selection)
        members = sorted(self.archives[island].values()) or sorted(v for a in self.archives for v in a.values())
        if self.rng.random() < self.exploration:
            return self.rng.choice(members)
        elites = sorted({v for a in self.archives for v in a.values()}, key=lambda v: (-v[1], v[0]))[:self.n_elites]
        others = [v for v in members if v not in elites]
        cands = self.rng.sample(elites, min(3, len(elites))) + self.rng.sample(others, min(2, len(others)))
        top = max(s for _, s in cands)
        return self.rng.choices(cands, weights=[math.exp((s - top) / self.temperature) for _, s in cands])[0]

    def ask(self) -> list:
        if not self.pending:
            for k in range(self.children):
                island = (self.evaluated + k) % self.m
                program, score = self.parent(island)
                e = self.memory.draw(self.rng)
                self.pending.append((apply_edit(program, EDITS[e], self.rng, self.max_len), score, e, island))
        return [p for p, _, _, _ in self.pending]

    def tell(self, scores) -> None:
        if len(scores) != len(self.pending):
            raise ValueError(f"tell needs {len(self.pending)} scores; got {len(scores)}")
        for (program, parent_score, e, island), s in zip(self.pending, scores):
            if e is not None:
                self.memory.update(e, parent_score, s)
            self.place(island, program, s)
            self.history.append((program, s))
        self.evaluated += len(scores)
        self.since_migration += len(scores)
        self.pending = []
        if self.m > 1 and self.since_migration >= self.migration_interval:
            self.since_migration = 0
            moving = []
            for i, archive in enumerate(self.archives):
                ranked = sorted(archive.values(), key=lambda v: (-v[1], v[0]))
                moving += [((i + 1) % self.m, v) for v in ranked[:math.ceil(self.migration_rate * len(ranked))]]
            for dest, (program, s) in moving:
                self.place(dest, program, s)

    def best(self):
        return max(self.history, key=lambda v: v[1])


class Greedy:
    """The single-population greedy baseline, a (1 + lambda) hill climber: `children` edits of the current best
    a round; a child at least as good replaces it (neutral moves allowed). ask() / tell(scores)."""

    def __init__(self, init, memory: CreditMemory, rng: random.Random, children: int = 10, max_len: int = 8):
        self.children = check_int("children", children, min=1)
        self.max_len = check_int("max_len", max_len, min=1)
        self.memory, self.rng = memory, rng
        self.pending = [(tuple(p), None, None) for p in init]
        if not self.pending:
            raise ValueError("Greedy needs at least one initial program")
        self.current, self.evaluated, self.history = None, 0, []

    def ask(self) -> list:
        if not self.pending:
            program, score = self.current
            for _ in range(self.children):
                e = self.memory.draw(self.rng)
                self.pending.append((apply_edit(program, EDITS[e], self.rng, self.max_len), score, e))
        return [p for p, _, _ in self.pending]

    def tell(self, scores) -> None:
        if len(scores) != len(self.pending):
            raise ValueError(f"tell needs {len(self.pending)} scores; got {len(scores)}")
        for (program, parent_score, e), s in zip(self.pending, scores):
            if e is not None:
                self.memory.update(e, parent_score, s)
            self.history.append((program, s))
            if self.current is None or s >= self.current[1]:
                self.current = (program, s)
        self.evaluated += len(scores)
        self.pending = []

    def best(self):
        return max(self.history, key=lambda v: v[1])


def search(searches, targets, xs, budget: int, on_round=None) -> int:
    # every search in lockstep, each spending exactly `budget` evaluations (an evaluation = one program scored on
    # xs, a repeat included); ONE sandbox call a round runs the new programs of all of them. Returns the calls.
    budget = check_int("budget", budget, min=1)
    if len(searches) != len(targets):
        raise ValueError(f"search needs one target per search; got {len(targets)} for {len(searches)}")
    calls, cache = 0, {}
    while any(s.evaluated < budget for s in searches):
        live = [k for k, s in enumerate(searches) if s.evaluated < budget]
        asked = {}
        for k in live:
            room = budget - searches[k].evaluated
            asked[k] = searches[k].ask()[:room]
            searches[k].pending = searches[k].pending[:room]
        fresh = list(dict.fromkeys(p for k in live for p in asked[k] if p not in cache))
        if fresh:   # a program's outputs are deterministic: a repeat costs its search an evaluation, not a run
            cache.update(zip(fresh, run_programs(fresh, xs)))
            calls += 1
        for k in live:
            searches[k].tell([bit_score(cache[p], targets[k]) for p in asked[k]])
        if on_round is not None:
            on_round(calls, searches)
    return calls
