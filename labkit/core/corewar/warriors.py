"""Classic warriors written for this lab (core 800), in two disjoint sets.

FAMILIES are the designs the `redcode` mixture teaches the generator, each a template with
random parameters; TRAIN holds one fixed instance of each (the DRQ notebook's first opponent
comes from here). HELDOUT holds designs that are NOT among the templates (a stone with a
decrement stream, a JMZ scanner, a forward core clear, an SPL-carpet bomber, a DJN-stream
bomber, a two-imp launcher): the generality measure only ever sees those.
"""
from __future__ import annotations

import random

from labkit.core.corewar.redcode import Warrior, parse

__all__ = ["FAMILIES", "TRAIN", "HELDOUT", "family_source", "warrior"]

FAMILIES = ("imp", "dwarf", "scanner", "paper", "vampire")


def family_source(family: str, rng: random.Random) -> str:
    """Source of a `family` warrior with random parameters (the mixture's templates)."""
    r = rng.randint
    if family == "imp":
        return "mov.i 0, 1" if rng.random() < 0.6 else f"spl {r(1, 2)}\nmov.i 0, 1\nmov.i 0, 1"
    if family == "dwarf":
        s = rng.choice((4, 5, 8, 12, 16, 20, 28, 36))
        return f"add #{s}, 3\nmov 2, @2\njmp -2\ndat #0, #0"
    if family == "scanner":
        s, gap = r(6, 40), r(3, 12)
        return (f"dat #{s}, #{s}\nadd.f -1, 1\nseq.i {s + 10}, {s + 10 + gap}\njmp 2\njmp -3\n"
                f"mov.i 3, @-3\nmov.i 2, *-4\njmp -6\ndat #0, #0\nORG 1")
    if family == "paper":
        n, dest, hop = r(7, 12), r(60, 300), r(100, 700)
        return (f"dat #0, #0\nmov #{n}, -1\nmov @-2, <5\ndjn -1, -3\nspl @3\nadd #{hop}, 2\n"
                f"jmz -5, -6\ndat #0, #{dest}\nORG 1")
    if family == "vampire":
        s = rng.choice((3, 5, 7, 9, 11, 13, 17))
        return f"add.f 4, 3\nmov.i 2, @2\njmp -2\njmp 2, {s}\ndat #-{s}, #{s}\ndat #0, #0"
    raise ValueError(f"family must be one of {', '.join(FAMILIES)}; got {family!r}")


_TRAIN_SRC = {
    "imp": "mov.i 0, 1",
    "dwarf": "add #4, 3\nmov 2, @2\njmp -2\ndat #0, #0",
    "scanner": ("dat #12, #12\nadd.f -1, 1\nseq.i 22, 28\njmp 2\njmp -3\nmov.i 3, @-3\n"
                "mov.i 2, *-4\njmp -6\ndat #0, #0\nORG 1"),
    "paper": ("dat #0, #0\nmov #8, -1\nmov @-2, <5\ndjn -1, -3\nspl @3\nadd #153, 2\njmz -5, -6\n"
              "dat #0, #83\nORG 1"),
    "vampire": "add.f 4, 3\nmov.i 2, @2\njmp -2\njmp 2, 5\ndat #-5, #5\ndat #0, #0",
}

_HELDOUT_SRC = {
    "stone": """;name stone
        spl 0
loop    add #95, ptr
        mov bomb, @ptr
        djn loop, <-50
ptr     dat #0, #0
bomb    dat #0, #0""",
    "bscanner": """;name bscanner
loop    add #7, ptr
ptr     jmz.f loop, 20
        mov bomb, @ptr
        jmp loop
bomb    dat #0, #0""",
    "clear": """;name clear
ptr     dat #0, #10
start   spl 0
        mov bomb, >ptr
        jmp -1
bomb    dat #0, #0
        ORG start""",
    "carpet": """;name carpet
step    EQU 37
start   add #step, tgt
        mov sp, @tgt
        mov sp, <tgt
        jmp start
tgt     dat #0, #0
sp      spl 0, 0""",
    "djnstream": """;name djnstream
loop    mov bomb, <tgt
        mov bomb, @tgt
        djn.b loop, <tgt
        jmp loop
tgt     dat #0, #-10
bomb    dat #0, #0""",
    "twoimp": """;name twoimp
        spl imp2
imp1    mov.i 0, 1
imp2    mov.i 0, 1""",
}


def warrior(name: str) -> Warrior:
    """A fixed classic by name (TRAIN or HELDOUT)."""
    if name in _TRAIN_SRC:
        return parse(_TRAIN_SRC[name], name=name)
    if name in _HELDOUT_SRC:
        return parse(_HELDOUT_SRC[name], name=name)
    raise ValueError(f"unknown classic {name!r}; known: {', '.join(list(_TRAIN_SRC) + list(_HELDOUT_SRC))}")


TRAIN = {k: warrior(k) for k in _TRAIN_SRC}
HELDOUT = {k: warrior(k) for k in _HELDOUT_SRC}
