"""The redcode mixture (data/models/tiny-redcode, notebook 20): a base that writes and edits warriors.

Notebook 20 (Digital Red Queen) needs a frozen generator that plays the LLM's two roles in DRQ:
write a new warrior, and mutate a given one. Warriors are written in a compact one-line form
(instructions joined by '|', '$' and '94-default modifiers left out, `org N` last when the start
is not 0), so a parent and its edit fit the 128-token context of `tiny`:

    new     prompt "n>"                        completion "add #4,3|mov 2,@2|jmp -2|dat #0,#0"
    mutate  prompt "m" + parent + ">"          completion "0:add #12,3"    (line 0 replaced)

New warriors come from the classic families of labkit.core.corewar.warriors (imp, dwarf,
scanner, paper, vampire) with random parameters. Edits are the kind a Redcode author makes:
mostly a constant tweaked (a step, an offset, a count), sometimes a mode or a modifier changed,
or an opcode swapped for a sibling (add/sub, jmz/jmn, seq/sne, mov/spl...). Parents are family
warriors after 0-3 such edits, so the base also sees edited code. With p_slip a completion has a
format slip (a dropped comma, a stray character): the base's invalid-warrior rate is not zero.
Meant to continue from tiny (`labkit pretrain --mixture redcode --init tiny ...`).
"""
from __future__ import annotations

import random
import re

from labkit.core.corewar import FAMILIES, Warrior, family_source, parse
from labkit.core.corewar.redcode import MODES, MODIFIERS, OPCODES, default_modifier
from labkit.core.tasks import Task, train_seed

DESCRIPTION = ("writing classic Core War warriors (imp, dwarf, scanner, paper, vampire) in a compact "
               "one-line Redcode and editing one line of a given warrior (notebook 20)")

NEW_PROMPT = "n>"
MAX_PARENT_CHARS = 100        # a parent longer than this is not shown (context of 128 tokens)
P_NEW = 0.3                   # share of new-warrior demonstrations in the stream
SIBLINGS = {"add": "sub", "sub": "add", "mul": "add", "div": "mod", "mod": "div", "jmz": "jmn",
            "jmn": "jmz", "djn": "jmn", "seq": "sne", "sne": "seq", "slt": "seq", "mov": "spl",
            "spl": "mov", "jmp": "spl", "dat": "dat", "nop": "jmp"}

__all__ = ["DESCRIPTION", "NEW_PROMPT", "compact", "from_compact", "mutate_prompt", "apply_edit",
           "generated_warrior", "random_edit", "demonstrations", "card_tasks", "card_evaluate"]


def compact_instruction(ins) -> str:
    op = OPCODES[ins.op].lower()
    am, bm = MODES[ins.amode], MODES[ins.bmode]
    mod = MODIFIERS[ins.mod]
    dot = "" if mod == default_modifier(op.upper(), am, bm) else "." + mod.lower()
    a = ("" if am == "$" else am) + str(ins.a)
    b = ("" if bm == "$" else bm) + str(ins.b)
    if op != "dat" and bm == "$" and ins.b == 0:
        return f"{op}{dot} {a}"                  # B defaults to $0
    return f"{op}{dot} {a},{b}"


def compact(w: Warrior) -> str:
    """The one-line form of a warrior (what the base reads and writes)."""
    parts = [compact_instruction(i) for i in w.instructions]
    return "|".join(parts + ([f"org {w.start}"] if w.start else []))


def from_compact(text: str, name: str = "generated") -> Warrior:
    """Parse the one-line form; ValueError (one line) when it is not a warrior."""
    if not isinstance(text, str):
        raise TypeError(f"warrior text must be a str; got {type(text).__name__}")
    if "\n" in text or ";" in text:
        raise ValueError("the compact form has no newlines or comments")
    return parse(text.replace("|", "\n"), name=name)


def mutate_prompt(parent: Warrior | str) -> str:
    text = parent if isinstance(parent, str) else compact(parent)
    if len(text) > MAX_PARENT_CHARS:
        raise ValueError(f"parent is {len(text)} characters in compact form; at most {MAX_PARENT_CHARS} fit")
    return "m" + text + ">"


_EDIT = re.compile(r"(\d{1,2}):([^|]+)$")


def apply_edit(parent: Warrior, edit: str, max_length: int = 20) -> Warrior:
    """The parent with one line replaced as `edit` = "k:instruction" says; ValueError if malformed."""
    m = _EDIT.match(edit.strip()) if isinstance(edit, str) else None
    if not m:
        raise ValueError(f"an edit is 'k:instruction'; got {edit!r}")
    k = int(m.group(1))
    if k >= len(parent):
        raise ValueError(f"edit names line {k}; the parent has {len(parent)} lines")
    line = parse(m.group(2)).instructions
    if len(line) != 1:
        raise ValueError(f"an edit replaces one instruction; got {m.group(2)!r}")
    ins = list(parent.instructions)
    ins[k] = line[0]
    return Warrior(parent.name, tuple(ins[:max_length]), parent.start)


def generated_warrior(prompt: str, completion: str, parents: dict | None = None) -> Warrior:
    """The warrior a completion means: a new one (prompt NEW_PROMPT) or the prompt's parent edited."""
    if prompt == NEW_PROMPT:
        return from_compact(completion.strip())
    parent = from_compact(prompt[1:-1])
    return apply_edit(parent, completion)


def _tweak(v: int, rng: random.Random) -> int:
    u = rng.random()
    if u < 0.5:
        return v + rng.choice((-1, 1)) * rng.randint(1, 6)
    if u < 0.8:
        return rng.randint(-40, 40)
    return v * 2 if v else rng.randint(1, 20)


def random_edit(w: Warrior, rng: random.Random) -> str:
    """One demonstration edit of `w` ("k:instruction"): what the base is taught to propose."""
    k = rng.randrange(len(w))
    ins = w.instructions[k]
    op, am, bm = OPCODES[ins.op].lower(), MODES[ins.amode], MODES[ins.bmode]
    a, b, mod = ins.a, ins.b, MODIFIERS[ins.mod]
    u = rng.random()
    if u < 0.6:                                    # a constant
        if rng.random() < 0.5:
            a = _tweak(a, rng)
        else:
            b = _tweak(b, rng)
    elif u < 0.8:                                  # a mode
        if rng.random() < 0.5:
            am = rng.choice("#$@<>*{}")
        else:
            bm = rng.choice("$@<>*{}")
        mod = default_modifier(op.upper(), am, bm)
    else:                                          # a sibling opcode
        op = SIBLINGS.get(op, op)
        mod = default_modifier(op.upper(), am, bm)
    text = f"{op}.{mod.lower()} {am}{a},{bm}{b}"
    new = parse(text).instructions[0]
    return f"{k}:{compact_instruction(new)}"


def family_warrior(rng: random.Random) -> Warrior:
    return parse(family_source(rng.choice(FAMILIES), rng))


def _slip(text: str, rng: random.Random) -> str:
    u = rng.random()
    if u < 0.4 and "," in text:
        i = text.index(",")
        return text[:i] + " " + text[i + 1:]
    if u < 0.7:
        return text + rng.choice(("|", "#", ","))
    return text.replace("mov", "mv", 1) if "mov" in text else text[:-1]


def _parent(rng: random.Random) -> Warrior:
    w = family_warrior(rng)
    for _ in range(rng.choice((0, 0, 1, 2, 3))):
        w = apply_edit(w, random_edit(w, rng))
    return w


def demonstrations(seed: int, p_wrong: float, p_slip: float):
    """Endless (prompt, completion) pairs: new warriors (P_NEW) and one-line edits of parents."""
    rng = random.Random(train_seed(seed, stream=20))
    while True:
        if rng.random() < P_NEW:
            prompt, completion = NEW_PROMPT, compact(family_warrior(rng))
        else:
            parent = _parent(rng)
            if len(compact(parent)) > MAX_PARENT_CHARS:
                continue
            prompt, completion = mutate_prompt(parent), random_edit(parent, rng)
        if rng.random() < p_slip:
            completion = _slip(completion, rng)
        yield prompt, completion


def card_tasks() -> dict:
    """Held-out prompts: 100 new-warrior prompts and 100 parents to edit (seeds below training's)."""
    rng = random.Random(20)
    tasks = [Task(NEW_PROMPT, "", "new", 1, "redcode") for _ in range(100)]
    while len(tasks) < 200:
        parent = _parent(rng)
        if len(compact(parent)) <= MAX_PARENT_CHARS:
            tasks.append(Task(mutate_prompt(parent), "", "mutate", 1, "redcode"))
    return {"redcode": tasks}


def valid(prompt: str, completion: str) -> bool:
    try:
        w = generated_warrior(prompt, completion)
    except ValueError:
        return False
    return 1 <= len(w) <= 20


def card_evaluate(policy, tasks, samples, temperature):
    """The card's measure: a sample is right when it is a valid warrior (parses, <= 20 lines)."""
    from labkit.core.evaluate import Evaluation
    from labkit.core.sampling import rollout

    prompts = [t.prompt for t in tasks for _ in range(samples)]
    batch = rollout(policy, prompts, max_new_tokens=110, temperature=temperature)
    correct = [0] * len(tasks)
    for i, text in enumerate(batch.completions):
        correct[i // samples] += int(valid(prompts[i], text))
    mask = batch.completion_mask
    entropy = float((batch.entropies * mask).sum() / mask.sum().clamp(min=1))
    return Evaluation(list(tasks), correct, samples, entropy)
