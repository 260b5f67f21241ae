"""Redcode (an ICWS'94 subset) parsed into instructions the MARS in `mars.py` interprets.

A warrior is data: `parse(text)` turns source into a `Warrior` (a tuple of `Instruction`s and a
start offset); nothing in it is ever executed by Python. Accepted:

    [label[:]] OPCODE[.MOD] [mode]expr[, [mode]expr]   [; comment]
    ORG expr | END [expr] | label EQU expr | ;name NAME / ;author ...

opcodes DAT MOV ADD SUB MUL DIV MOD JMP JMZ JMN DJN SPL SLT SEQ CMP SNE NOP; modifiers
.A .B .AB .BA .F .X .I ('94 defaults when absent); modes # $ @ < > * { } ($ when absent);
expressions are integers, labels and EQU names joined by + - * / (integer, left to right, * and /
before + and -), no parentheses. A bad line raises ValueError naming the line and what is wrong.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

OPCODES = ("DAT", "MOV", "ADD", "SUB", "MUL", "DIV", "MOD", "JMP", "JMZ", "JMN", "DJN", "SPL",
           "SLT", "SEQ", "SNE", "NOP")
OP = {name: i for i, name in enumerate(OPCODES)}
OP["CMP"] = OP["SEQ"]
MODIFIERS = ("A", "B", "AB", "BA", "F", "X", "I")
MOD = {name: i for i, name in enumerate(MODIFIERS)}
MODES = "#$@<>*{}"
MODE = {c: i for i, c in enumerate(MODES)}

__all__ = ["OPCODES", "MODIFIERS", "MODES", "Instruction", "Warrior", "parse", "default_modifier",
           "MAX_LENGTH"]

MAX_LENGTH = 100          # a parse-time bound; the MARS settings hold the battle's own (20 on the tiny hill)


@dataclass(frozen=True)
class Instruction:
    op: int        # index into OPCODES
    mod: int       # index into MODIFIERS
    amode: int     # index into MODES
    a: int
    bmode: int
    b: int

    def text(self) -> str:
        am = MODES[self.amode]
        bm = MODES[self.bmode]
        return f"{OPCODES[self.op]}.{MODIFIERS[self.mod]} {am}{self.a}, {bm}{self.b}"


@dataclass(frozen=True)
class Warrior:
    name: str
    instructions: tuple
    start: int = 0

    def __len__(self) -> int:
        return len(self.instructions)

    def text(self) -> str:
        """Canonical source (every modifier and mode spelled out); parse(text()) == self."""
        lines = [f";name {self.name}", f"ORG {self.start}"]
        return "\n".join(lines + [i.text() for i in self.instructions]) + "\n"


def default_modifier(op: str, amode: str, bmode: str) -> str:
    """The ICWS'94 default modifier of an opcode given its two modes."""
    if op in ("DAT", "NOP"):
        return "F"
    if op in ("MOV", "SEQ", "SNE", "CMP"):
        return "AB" if amode == "#" else ("B" if bmode == "#" else "I")
    if op in ("ADD", "SUB", "MUL", "DIV", "MOD"):
        return "AB" if amode == "#" else ("B" if bmode == "#" else "F")
    if op == "SLT":
        return "AB" if amode == "#" else "B"
    return "B"    # JMP JMZ JMN DJN SPL


_LABEL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*$")
_TOKEN = re.compile(r"\s*(\d+|[A-Za-z_][A-Za-z0-9_]*|[-+*/])")


def _expr(text: str, symbols: dict, here: int, lineno: int) -> int:
    """Integer value of an expression: labels are relative to the current line."""
    s = text.strip()
    if not s:
        raise ValueError(f"line {lineno}: empty operand")
    pos, tokens = 0, []
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m:
            raise ValueError(f"line {lineno}: cannot read expression {text.strip()!r} "
                             "(integers, labels and + - * / only)")
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(s) and s[pos].isspace():
            pos += 1
    # unary signs, then terms of * and /, then + and -
    i, sign = 0, 1

    def atom(tok):
        if tok.isdigit():
            return int(tok)
        key = tok.upper()
        if key in symbols:
            kind, value = symbols[key]
            return value - here if kind == "label" else value
        raise ValueError(f"line {lineno}: unknown label {tok!r}")

    expect_value = True
    term = None
    pending = None
    result_terms = []
    while i < len(tokens):
        tok = tokens[i]
        if expect_value:
            if tok in "+-" and len(tok) == 1:
                sign = -sign if tok == "-" else sign
                i += 1
                continue
            if tok in "*/":
                raise ValueError(f"line {lineno}: misplaced {tok!r} in {text.strip()!r}")
            v = sign * atom(tok)
            sign = 1
            if pending is None:
                term = v
            elif pending == "*":
                term = term * v
            else:
                if v == 0:
                    raise ValueError(f"line {lineno}: division by zero in {text.strip()!r}")
                term = int(term / v)
            expect_value = False
        else:
            if tok in "*/":
                pending = tok
            elif tok in "+-":
                result_terms.append(term)
                pending = None
                sign = -1 if tok == "-" else 1
            else:
                raise ValueError(f"line {lineno}: missing operator before {tok!r}")
            expect_value = True
        i += 1
    if expect_value:
        raise ValueError(f"line {lineno}: expression {text.strip()!r} ends with an operator")
    result_terms.append(term)
    return sum(result_terms)


def _operand(text: str, lineno: int):
    s = text.strip()
    if not s:
        raise ValueError(f"line {lineno}: empty operand")
    if s[0] in MODES:
        return s[0], s[1:]
    return "$", s


def parse(text: str, name: str | None = None) -> Warrior:
    """Parse Redcode source into a Warrior; ValueError (one line) on anything outside the subset."""
    if not isinstance(text, str):
        raise TypeError(f"warrior source must be a str; got {type(text).__name__}")
    wname = name
    rows, symbols, org = [], {}, None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line, _, comment = raw.partition(";")
        if comment.lower().startswith("name") and wname is None:
            wname = comment[4:].strip() or None
        line = line.strip()
        if not line:
            continue
        parts = line.split(None, 1)
        head = parts[0].rstrip(":")
        labels = []
        while head.split(".")[0].upper() not in OP and head.upper() not in ("ORG", "END", "EQU"):
            if not _LABEL.match(head):
                raise ValueError(f"line {lineno}: {parts[0]!r} is neither an opcode "
                                 f"({', '.join(OPCODES)}) nor a label")
            labels.append(head.upper())
            if len(parts) < 2:
                raise ValueError(f"line {lineno}: label {head!r} without an instruction")
            parts = parts[1].split(None, 1)
            head = parts[0].rstrip(":")
        rest = parts[1] if len(parts) > 1 else ""
        word = head.upper()
        if word == "EQU":
            if len(labels) != 1:
                raise ValueError(f"line {lineno}: EQU needs exactly one name")
            symbols[labels[0]] = ("equ", _expr(rest, symbols, 0, lineno))
            continue
        for lab in labels:
            if lab in symbols:
                raise ValueError(f"line {lineno}: label {lab!r} defined twice")
            symbols[lab] = ("label", len(rows))
        if word == "ORG":
            org = (rest, lineno)
            continue
        if word == "END":
            if rest.strip():
                org = (rest, lineno)
            break
        op, _, mod = head.partition(".")
        op = op.upper()
        if mod and mod.upper() not in MOD:
            raise ValueError(f"line {lineno}: unknown modifier .{mod} (accepted: "
                             f"{', '.join('.' + m for m in MODIFIERS)})")
        rows.append((lineno, op, mod.upper(), rest))
    if not rows:
        raise ValueError("warrior has no instructions")
    if len(rows) > MAX_LENGTH:
        raise ValueError(f"warrior has {len(rows)} instructions; at most {MAX_LENGTH} accepted")
    out = []
    for here, (lineno, op, mod, rest) in enumerate(rows):
        ops = [o for o in rest.split(",")] if rest.strip() else []
        if len(ops) > 2:
            raise ValueError(f"line {lineno}: {op} takes at most 2 operands; got {len(ops)}")
        if not ops and op != "NOP":
            raise ValueError(f"line {lineno}: {op} needs an operand")
        if len(ops) == 1:
            ops = ["#0", ops[0]] if op == "DAT" else [ops[0], "$0"]
        elif not ops:
            ops = ["$0", "$0"]
        (am, ae), (bm, be) = _operand(ops[0], lineno), _operand(ops[1], lineno)
        a, b = _expr(ae, symbols, here, lineno), _expr(be, symbols, here, lineno)
        mod = mod or default_modifier(op, am, bm)
        out.append(Instruction(OP[op], MOD[mod], MODE[am], a, MODE[bm], b))
    start = 0
    if org is not None:
        start = _expr(org[0], symbols, 0, org[1])
        if not 0 <= start < len(out):
            raise ValueError(f"line {org[1]}: start {start} outside the warrior (0..{len(out) - 1})")
    return Warrior(wname or "anonymous", tuple(out), start)
