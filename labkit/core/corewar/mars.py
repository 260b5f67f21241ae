"""A MARS (Memory Array Redcode Simulator) for two warriors, ICWS'94 semantics, in plain Python.

The core is five parallel int lists (opcode*8+modifier, A-mode, A-field, B-mode, B-field)
each
warrior has a FIFO queue of process counters
each cycle every live warrior executes one
instruction of its oldest process (the first mover alternates between rounds). A process dies on
DAT or on DIV/MOD by zero
a warrior dies with its last process. A round ends when one warrior
is dead or after `cycles` cycles (a tie). Warrior 1 loads at 0, warrior 2 at a seeded random
offset at least `min_distance` away, so a battle is a deterministic function of its seed.

Per round a warrior scores its time-averaged share of the live warriors (the authors' score:
1/n_alive per live cycle, averaged over the cycle cap): 0.5 for a tie, towards 1 for a fast win.
"""
from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass

from labkit.core.corewar.redcode import MODIFIERS, OPCODES, Warrior

__all__ = ["Settings", "TINY_HILL", "RoundResult", "BattleResult", "run_round", "battle", "load"]

(DAT, MOV, ADD, SUB, MUL, DIV, MODO, JMP, JMZ, JMN, DJN, SPL, SLT, SEQ, SNE, NOP) = range(16)
(M_A, M_B, M_AB, M_BA, M_F, M_X, M_I) = range(7)
(IMM, DIR, BIND, BPRE, BPOST, AIND, APRE, APOST) = range(8)   # '#$@<>*{}'
assert len(OPCODES) == 16 and len(MODIFIERS) == 7


@dataclass(frozen=True)
class Settings:
    """The hill: core size, cycle cap (per warrior), process cap, max length, min separation."""
    core: int = 800
    cycles: int = 8000
    processes: int = 800
    length: int = 20
    min_distance: int = 20

    def __post_init__(self):
        for k in ("core", "cycles", "processes", "length", "min_distance"):
            v = getattr(self, k)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"Settings.{k} must be a positive int; got {v!r}")
        if 2 * max(self.min_distance, self.length) > self.core:
            raise ValueError(f"core {self.core} too small for two warriors of length {self.length} "
                             f"at distance {self.min_distance}")


TINY_HILL = Settings()    # the ICWS "tiny" hill: 800 / 8000 / 800 / 20 / 20


@dataclass(frozen=True)
class RoundResult:
    winner: int          # 0 or 1; -1 for a tie (both alive at the cycle cap)
    cycles: int          # cycles played
    score: tuple         # per warrior, time-averaged share of the live warriors
    spawned: tuple       # processes each warrior created (SPL that added a process)
    coverage: tuple      # distinct core cells each warrior wrote


@dataclass(frozen=True)
class BattleResult:
    wins: int
    losses: int
    ties: int
    score: float         # warrior 1's mean round score in [0, 1]
    spawned: float       # warrior 1's mean spawned processes per round
    coverage: float      # warrior 1's mean distinct cells written per round

    @property
    def rounds(self) -> int:
        return self.wins + self.losses + self.ties


def load(warrior: Warrior, settings: Settings) -> list:
    if not isinstance(warrior, Warrior):
        raise TypeError(f"expected a Warrior (labkit.core.corewar.parse); got {type(warrior).__name__}")
    if len(warrior) > settings.length:
        raise ValueError(f"warrior {warrior.name!r} has {len(warrior)} instructions; "
                         f"the hill allows {settings.length}")
    return [(i.op * 8 + i.mod, i.amode, i.a % settings.core, i.bmode, i.b % settings.core)
            for i in warrior.instructions]


def run_round(w1: Warrior, w2: Warrior, settings: Settings = TINY_HILL, position: int | None = None,
              first: int = 0, rng: random.Random | None = None, core_out: list | None = None) -> RoundResult:
    """One round; warrior 2 at `position` (seeded random if None); `first` moves first."""
    M = settings.core
    code1, code2 = load(w1, settings), load(w2, settings)
    sep = max(settings.min_distance, len(code1))
    if position is None:
        position = (rng or random.Random(0)).randint(sep, M - max(settings.min_distance, len(code2)))
    if not sep <= position <= M - len(code2):
        raise ValueError(f"position {position} overlaps warrior 1 or leaves the core")
    OPM = [0] * M            # DAT.F $0, $0 everywhere
    OPM[:] = [DAT * 8 + M_F] * M
    AM, AF, BM, BF = [DIR] * M, [0] * M, [DIR] * M, [0] * M
    for base, code in ((0, code1), (position, code2)):
        for k, (c, am, a, bm, b) in enumerate(code):
            OPM[base + k], AM[base + k], AF[base + k], BM[base + k], BF[base + k] = c, am, a, bm, b
    queues = [deque([w1.start % M]), deque([(position + w2.start) % M])]
    written = [bytearray(M), bytearray(M)]
    spawned = [0, 0]
    maxp = settings.processes
    order = (0, 1) if first == 0 else (1, 0)
    cap = settings.cycles
    cycle = 0
    loser = -1
    while cycle < cap:
        cycle += 1
        for w in order:
            q = queues[w]
            pc = q.popleft()
            wr = written[w]
            c = OPM[pc]
            op, mod = c >> 3, c & 7
            am, a, bm, b = AM[pc], AF[pc], BM[pc], BF[pc]
            # ---- A operand: read pointer ra, A-instruction register (ia_a, ia_b, full copy later)
            if am == IMM:
                ra = pc
            else:
                ra = (pc + a) % M
                if am != DIR:
                    if am == BIND:
                        ra = (ra + BF[ra]) % M
                    elif am == AIND:
                        ra = (ra + AF[ra]) % M
                    elif am == BPRE:
                        t = ra
                        BF[t] = (BF[t] - 1) % M
                        wr[t] = 1
                        ra = (t + BF[t]) % M
                    elif am == APRE:
                        t = ra
                        AF[t] = (AF[t] - 1) % M
                        wr[t] = 1
                        ra = (t + AF[t]) % M
                    elif am == BPOST:
                        t = ra
                        ra = (t + BF[t]) % M
                    else:  # APOST
                        t = ra
                        ra = (t + AF[t]) % M
            ia_a, ia_b = (a, b) if am == IMM else (AF[ra], BF[ra])
            if op == MOV and mod == M_I:
                ia_full = (OPM[ra], AM[ra], AF[ra], BM[ra], BF[ra]) if am != IMM else (c, am, a, bm, b)
            elif op in (SEQ, SNE) and mod == M_I:
                ia_full = (OPM[ra], AM[ra], AF[ra], BM[ra], BF[ra]) if am != IMM else (c, am, a, bm, b)
            if am == BPOST:
                BF[t] = (BF[t] + 1) % M
                wr[t] = 1
            elif am == APOST:
                AF[t] = (AF[t] + 1) % M
                wr[t] = 1
            # ---- B operand: write pointer rb, B-instruction register
            if bm == IMM:
                rb = pc
            else:
                rb = (pc + b) % M
                if bm != DIR:
                    if bm == BIND:
                        rb = (rb + BF[rb]) % M
                    elif bm == AIND:
                        rb = (rb + AF[rb]) % M
                    elif bm == BPRE:
                        u = rb
                        BF[u] = (BF[u] - 1) % M
                        wr[u] = 1
                        rb = (u + BF[u]) % M
                    elif bm == APRE:
                        u = rb
                        AF[u] = (AF[u] - 1) % M
                        wr[u] = 1
                        rb = (u + AF[u]) % M
                    elif bm == BPOST:
                        u = rb
                        rb = (u + BF[u]) % M
                    else:
                        u = rb
                        rb = (u + AF[u]) % M
            if bm == IMM:
                ib_a, ib_b = a, b
            else:
                ib_a, ib_b = AF[rb], BF[rb]
            if op in (SEQ, SNE) and mod == M_I:
                ib_full = (OPM[rb], AM[rb], AF[rb], BM[rb], BF[rb]) if bm != IMM else (c, am, a, bm, b)
            if bm == BPOST:
                BF[u] = (BF[u] + 1) % M
                wr[u] = 1
            elif bm == APOST:
                AF[u] = (AF[u] + 1) % M
                wr[u] = 1
            nxt = (pc + 1) % M
            # ---- execute
            if op == DAT:
                pass                                   # the process dies
            elif op == MOV:
                wr[rb] = 1
                if mod == M_A:
                    AF[rb] = ia_a
                elif mod == M_B:
                    BF[rb] = ia_b
                elif mod == M_AB:
                    BF[rb] = ia_a
                elif mod == M_BA:
                    AF[rb] = ia_b
                elif mod == M_F:
                    AF[rb] = ia_a
                    BF[rb] = ia_b
                elif mod == M_X:
                    AF[rb] = ia_b
                    BF[rb] = ia_a
                else:
                    OPM[rb], AM[rb], AF[rb], BM[rb], BF[rb] = ia_full
                q.append(nxt)
            elif op <= MODO:                           # ADD SUB MUL DIV MOD
                pairs = ((ia_a, ib_a, 0),) if mod == M_A else ((ia_b, ib_b, 1),) if mod == M_B else \
                    ((ia_a, ib_b, 1),) if mod == M_AB else ((ia_b, ib_a, 0),) if mod == M_BA else \
                    ((ia_a, ib_a, 0), (ia_b, ib_b, 1)) if mod in (M_F, M_I) else ((ia_b, ib_a, 0), (ia_a, ib_b, 1))
                alive = True
                wr[rb] = 1
                for x, y, field in pairs:
                    if op == ADD:
                        v = (y + x) % M
                    elif op == SUB:
                        v = (y - x) % M
                    elif op == MUL:
                        v = (y * x) % M
                    elif x == 0:
                        alive = False
                        continue
                    else:
                        v = y // x if op == DIV else y % x
                    if field == 0:
                        AF[rb] = v
                    else:
                        BF[rb] = v
                if alive:
                    q.append(nxt)
            elif op == JMP:
                q.append(ra)
            elif op == JMZ or op == JMN:
                if mod in (M_A, M_BA):
                    zero = ib_a == 0
                elif mod in (M_B, M_AB):
                    zero = ib_b == 0
                else:
                    zero = (ib_a == 0 and ib_b == 0) if op == JMZ else not (ib_a != 0 or ib_b != 0)
                jump = zero if op == JMZ else not zero
                q.append(ra if jump else nxt)
            elif op == DJN:
                wr[rb] = 1
                if mod in (M_A, M_BA):
                    AF[rb] = (AF[rb] - 1) % M
                    ib_a = (ib_a - 1) % M
                    jump = ib_a != 0
                elif mod in (M_B, M_AB):
                    BF[rb] = (BF[rb] - 1) % M
                    ib_b = (ib_b - 1) % M
                    jump = ib_b != 0
                else:
                    AF[rb] = (AF[rb] - 1) % M
                    BF[rb] = (BF[rb] - 1) % M
                    ib_a = (ib_a - 1) % M
                    ib_b = (ib_b - 1) % M
                    jump = ib_a != 0 or ib_b != 0
                q.append(ra if jump else nxt)
            elif op == SPL:
                q.append(nxt)
                if len(q) < maxp:
                    q.append(ra)
                    spawned[w] += 1
            elif op == SLT:
                if mod == M_A:
                    skip = ia_a < ib_a
                elif mod == M_B:
                    skip = ia_b < ib_b
                elif mod == M_AB:
                    skip = ia_a < ib_b
                elif mod == M_BA:
                    skip = ia_b < ib_a
                elif mod == M_X:
                    skip = ia_a < ib_b and ia_b < ib_a
                else:
                    skip = ia_a < ib_a and ia_b < ib_b
                q.append((pc + 2) % M if skip else nxt)
            elif op == SEQ or op == SNE:
                if mod == M_A:
                    eq = ia_a == ib_a
                elif mod == M_B:
                    eq = ia_b == ib_b
                elif mod == M_AB:
                    eq = ia_a == ib_b
                elif mod == M_BA:
                    eq = ia_b == ib_a
                elif mod == M_F:
                    eq = ia_a == ib_a and ia_b == ib_b
                elif mod == M_X:
                    eq = ia_a == ib_b and ia_b == ib_a
                else:
                    eq = ia_full == ib_full
                skip = eq if op == SEQ else not eq
                q.append((pc + 2) % M if skip else nxt)
            else:  # NOP
                q.append(nxt)
            if not q:
                loser = w
                break
        if loser >= 0:
            break
    if core_out is not None:
        core_out[:] = list(zip(OPM, AM, AF, BM, BF))
    cov = (sum(written[0]), sum(written[1]))
    if loser < 0:
        return RoundResult(-1, cycle, (0.5, 0.5), tuple(spawned), cov)
    winner = 1 - loser
    # both alive for `cycle` cycles (0.5 each), the winner alone for the rest of the cap
    s_win = (0.5 * cycle + (cap - cycle)) / cap
    s_lose = 0.5 * cycle / cap
    score = (s_win, s_lose) if winner == 0 else (s_lose, s_win)
    return RoundResult(winner, cycle, score, tuple(spawned), cov)


def battle(w1: Warrior, w2: Warrior, rounds: int = 4, seed: int = 0,
           settings: Settings = TINY_HILL) -> BattleResult:
    """`rounds` rounds of w1 vs w2 from one seed (positions drawn from it, first mover alternating)."""
    if not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds must be a positive int; got {rounds!r}")
    rng = random.Random(seed)
    wins = losses = ties = 0
    score = spawned = coverage = 0.0
    for r in range(rounds):
        res = run_round(w1, w2, settings, rng=rng, first=r % 2)
        wins += res.winner == 0
        losses += res.winner == 1
        ties += res.winner == -1
        score += res.score[0]
        spawned += res.spawned[0]
        coverage += res.coverage[0]
    return BattleResult(wins, losses, ties, score / rounds, spawned / rounds, coverage / rounds)
