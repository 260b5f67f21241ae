"""25 · Tool evolution: tools a tiny model synthesises, merged into a library and reused (Yunjue Agent): the mechanism that notebooks/25_tool_evolution.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import re
from collections import defaultdict
from dataclasses import dataclass, field
import torch
from labkit.core.checks import check_bool, check_choice, check_int
from labkit.core.sandbox import call_function


# The tool grammar: a tool is 1..3 instructions on one byte a (a = x at the start), written "add 3; mul 5".
# 59 instructions: add c (1..15), mul c (odd 3..15), xor c (1..15), clr b / set b (clear / set bit b), shr k / shl k (1..3)
INSTRUCTIONS = tuple([("add", c) for c in range(1, 16)] + [("mul", c) for c in range(3, 16, 2)]
                     + [("xor", c) for c in range(1, 16)] + [("clr", b) for b in range(8)]
                     + [("set", b) for b in range(8)] + [("shr", k) for k in (1, 2, 3)] + [("shl", k) for k in (1, 2, 3)])
MAX_LEN = 3
_INDEX = {ins: i for i, ins in enumerate(INSTRUCTIONS)}
_FORM = {"add": "(a + {c}) & 255", "mul": "(a * {c}) & 255", "xor": "a ^ {c}", "clr": "a & {clear}",
         "set": "a | {bit}", "shr": "a >> {c}", "shl": "(a << {c}) & 255"}
_STATEMENT = re.compile(r"(add|mul|xor|clr|set|shr|shl) ([0-9]{1,2})")


def tool_text(program) -> str:
    # the source the synthesizer writes: instruction indices -> "add 3; mul 5"
    return "; ".join(f"{op} {c}" for op, c in (INSTRUCTIONS[i] for i in program))


def parse_tool(text, max_len: int = MAX_LEN):
    # the grammar's parser (model output is data): "add 3; mul 5" -> (2, 16); anything outside the grammar -> None
    if not isinstance(text, str):
        return None
    parts = [p.strip() for p in text.split(";")]
    if not 1 <= len(parts) <= max_len:
        return None
    program = []
    for part in parts:
        m = _STATEMENT.fullmatch(part)
        i = _INDEX.get((m.group(1), int(m.group(2)))) if m else None
        if i is None:
            return None
        program.append(i)
    return tuple(program)


def render(program, name: str = "tool") -> str:
    # a parsed tool compiled to a short Python function; it runs only in the sandbox, never in this process
    lines = [f"def {name}(x):", "    a = x"]
    for i in program:
        op, c = INSTRUCTIONS[i]
        lines.append("    a = " + _FORM[op].format(c=c, clear=255 ^ (1 << c), bit=1 << c))
    return "\n".join(lines + ["    return a"])


class ToolRunner:
    """Runs tools in `labkit.core.sandbox`, never in this process. A tool is a function of one byte, so its 256
    outputs are its whole behaviour: every distinct tool runs once on every byte, the new tools of a round in ONE
    sandbox call (chunks of `chunk`), and a cache answers repeats. `outputs(programs)` -> one 256-tuple per tool
    (None where the tool raised). `calls` counts the sandbox calls."""

    def __init__(self, chunk: int = 400, timeout_s: float = 60.0, memory_mb: int = 512):
        self.chunk = check_int("chunk", chunk, min=1)
        self.timeout_s, self.memory_mb = float(timeout_s), int(memory_mb)
        self.cache: dict = {}
        self.calls = 0

    def outputs(self, programs) -> list:
        programs = [tuple(p) for p in programs]
        fresh = [p for p in dict.fromkeys(programs) if p not in self.cache]
        for k in range(0, len(fresh), self.chunk):
            part = fresh[k:k + self.chunk]
            source = "\n".join(render(p, f"t{i}") for i, p in enumerate(part))
            source += (f"\nT = [{', '.join(f't{i}' for i in range(len(part)))}]\n"
                       "def run():\n    out = []\n    for t in T:\n        try:\n"
                       "            out.append([t(x) for x in range(256)])\n        except Exception:\n"
                       "            out.append(None)\n    return out\n")
            ok, value = call_function(source, "run", [], timeout_s=self.timeout_s, memory_mb=self.memory_mb,
                                      max_output=4000 + 1400 * len(part))
            if not ok:
                raise RuntimeError(f"the sandbox failed on a batch of {len(part)} tools: {value}")
            self.calls += 1
            self.cache.update((p, None if v is None else tuple(v)) for p, v in zip(part, value))
        return [self.cache[p] for p in programs]


def passes(outputs, xs, ys) -> bool:
    # the binary check: the tool ran and maps every x_j to y_j
    return outputs is not None and all(outputs[x] == y for x, y in zip(xs, ys))


def features(xs, ys):
    # the examples the synthesizer reads: bits of x, y, x xor y and (y - x) mod 256 per example, then their mean
    xs, ys = torch.as_tensor(xs), torch.as_tensor(ys)
    bits = lambda v: ((v[..., None] >> torch.arange(8)) & 1).float()
    f = torch.cat([bits(xs), bits(ys), bits(xs ^ ys), bits((ys - xs) & 255)], -1)
    return torch.cat([f.flatten(1), f.mean(1)], 1)


class Synthesizer(torch.nn.Module):
    """The tiny tool writer: an MLP over the task's visible examples that writes a tool in the grammar,
    pi(tool | examples) = p(L) prod_{j<L} p(i_j) (length and instructions drawn independently given the examples)."""

    def __init__(self, visible: int = 3, hidden: int = 256):
        super().__init__()
        self.visible = check_int("visible", visible, min=1)
        hidden = check_int("hidden", hidden, min=1)
        self.body = torch.nn.Sequential(torch.nn.Linear(32 * (self.visible + 1), hidden), torch.nn.ReLU(),
                                        torch.nn.Linear(hidden, hidden), torch.nn.ReLU())
        self.length = torch.nn.Linear(hidden, MAX_LEN)
        self.instruction = torch.nn.Linear(hidden, MAX_LEN * len(INSTRUCTIONS))

    def forward(self, xs, ys):
        z = self.body(features(xs, ys))
        return self.length(z), self.instruction(z).view(-1, MAX_LEN, len(INSTRUCTIONS))


def compose(table, programs, lengths, xs):
    # the grammar's semantics from the primitives' table the sandbox measured (table[i][x] = instruction i on x):
    # pretraining data for OUR random tools only; a tool the model writes always runs in the sandbox
    a = torch.as_tensor(xs).clone()
    for j in range(programs.shape[1]):
        a = torch.where((j < lengths)[:, None], table[programs[:, j]].gather(1, a), a)
    return a


def pretrain_synthesizer(model, table, steps: int, batch: int = 256, lr: float = 3e-3, generator=None) -> list:
    # supervised on random tools of the grammar (L ~ U{1..3}, i_j ~ U): loss = -log p(L) - sum_{j<L} log p(i_j)
    steps, batch = check_int("steps", steps, min=0), check_int("batch", batch, min=1)
    table = torch.as_tensor(table)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        lengths = torch.randint(1, MAX_LEN + 1, (batch,), generator=generator)
        programs = torch.randint(0, len(INSTRUCTIONS), (batch, MAX_LEN), generator=generator)
        xs = torch.randint(0, 256, (batch, model.visible), generator=generator)
        len_logits, ins_logits = model(xs, compose(table, programs, lengths, xs))
        mask = (torch.arange(MAX_LEN)[None] < lengths[:, None]).float()
        nll = torch.nn.functional.cross_entropy(ins_logits.reshape(-1, len(INSTRUCTIONS)), programs.reshape(-1),
                                                reduction="none").view(batch, MAX_LEN)
        loss = torch.nn.functional.cross_entropy(len_logits, lengths - 1) + (nll * mask).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def synthesize(model, xs, ys, n: int, generator=None) -> list:
    # n synthesis calls per task: each samples a tool's source text at T = 1 and parses it (None: outside the grammar)
    n = check_int("n", n, min=1)
    len_logits, ins_logits = model(xs, ys)
    lengths = torch.multinomial(len_logits.softmax(-1), n, replacement=True, generator=generator) + 1
    probs = ins_logits.softmax(-1)                                            # (T, MAX_LEN, I)
    ins = torch.multinomial(probs.reshape(-1, len(INSTRUCTIONS)), n, replacement=True, generator=generator)
    ins = ins.view(len(lengths), MAX_LEN, n)
    return [[parse_tool(tool_text(ins[t, :lengths[t, s], s].tolist())) for s in range(n)]
            for t in range(len(lengths))]


@dataclass(frozen=True)
class ToolTask:
    """A query that needs a tool: `need` names the tool (its library key, as Yunjue names tools by what they do),
    (xs, ys) the visible examples the agent checks a tool on, (held_xs, held_ys) the held labels (measurement only)."""
    need: int
    xs: tuple
    ys: tuple
    held_xs: tuple
    held_ys: tuple


def make_stream(need_outputs, tasks_per_need: int, visible: int, held: int, rng) -> list:
    # the task stream: every need `tasks_per_need` times in a random order, each task with its own `visible` bytes
    # and `held` other bytes, labelled by the need's true tool (need_outputs[n][x], run in the sandbox)
    tasks_per_need = check_int("tasks_per_need", tasks_per_need, min=1)
    visible, held = check_int("visible", visible, min=1), check_int("held", held, min=1)
    if visible + held > 256:
        raise ValueError(f"visible + held must be at most 256 bytes; got {visible + held}")
    order = [n for n in range(len(need_outputs)) for _ in range(tasks_per_need)]
    rng.shuffle(order)
    tasks = []
    for n in order:
        xs = rng.sample(range(256), visible + held)
        out = need_outputs[n]
        tasks.append(ToolTask(n, tuple(xs[:visible]), tuple(out[x] for x in xs[:visible]),
                              tuple(xs[visible:]), tuple(out[x] for x in xs[visible:])))
    return tasks


MERGES = ("naive", "verified")


def merge(entry, new_tools, examples, outputs, mode: str = "naive"):
    # one library name after a batch. naive (the authors' default): the smallest of the batch's new tools replaces
    # the entry; verified: the smallest of entry + new tools that passes every visible example seen under the name,
    # else the one passing most (ties: the smaller, then the earlier)
    mode = check_choice("mode", mode, MERGES)
    if not new_tools:
        return entry
    if mode == "naive":
        return min(new_tools, key=len)
    pool = list(dict.fromkeys(([entry] if entry is not None else []) + list(new_tools)))
    outs = outputs(pool)
    hits = [sum(o is not None and o[x] == y for x, y in examples) for o in outs]
    best = min(range(len(pool)), key=lambda k: (-hits[k], len(pool[k]), k))
    return pool[best]


def split_budget(pool: int, caps) -> list:
    # the batch's synthesis calls shared out: as equal as possible (the earlier tasks take the remainder),
    # none above its cap (the length of its stream); what a cap leaves goes to the others
    pool = check_int("pool", pool, min=0)
    caps = [check_int("cap", c, min=0) for c in caps]
    share = [0] * len(caps)
    while pool > 0:
        open_ = [k for k, c in enumerate(caps) if share[k] < c]
        if not open_:
            break
        each, extra = divmod(pool, len(open_))
        for r, k in enumerate(open_):
            give = min(caps[k] - share[k], each + (r < extra))
            share[k] += give
            pool -= give
    return share


LIBRARIES = ("none", "merged", "shuffled")


@dataclass
class Evolution:
    """One pass over the stream. Per task: the accepted tool (None: none passed), where it came from ("library",
    "synth" or None) and the synthesis calls it spent; per batch: the library's size and the authors' evolution
    loss EGL = (tools created so far) / (tasks so far)."""
    tools: list = field(default_factory=list)
    source: list = field(default_factory=list)
    calls: list = field(default_factory=list)
    egl: list = field(default_factory=list)
    library_size: list = field(default_factory=list)
    library: dict = field(default_factory=dict)


def evolve(tasks, streams, runner, budget: int, batch_size: int = 5, library: str = "merged", merge_mode: str = "naive",
           permutation=None, recheck: bool = True) -> Evolution:
    # Parallel batch evolution over the stream, at `budget` synthesis calls per task in every arm (calls a task does
    # not spend carry to the next tasks). Per batch: (1) each task tries the library's tool under its name (the
    # library as it was at the batch start) on its visible examples; (2) the rest share the batch's calls, each
    # taking tools from its stream until one passes its visible checks; (3) the batch's new tools merge into the
    # library. library: "none" (per-task synthesis), "merged", "shuffled" (the control: a task is served the entry
    # of need permutation[need], so the library's content is the same but it reaches the wrong tasks).
    # recheck=False (an ablation): a library tool is used without running it on the task's examples first
    budget, batch_size = check_int("budget", budget, min=1), check_int("batch_size", batch_size, min=1)
    library = check_choice("library", library, LIBRARIES)
    merge_mode = check_choice("merge_mode", merge_mode, MERGES)
    recheck = check_bool("recheck", recheck)
    if len(streams) != len(tasks):
        raise ValueError(f"evolve needs one stream of tools per task; got {len(streams)} for {len(tasks)}")
    if (library == "shuffled") != (permutation is not None):
        raise ValueError("permutation is given exactly when library is 'shuffled'")
    evo = Evolution(tools=[None] * len(tasks), source=[None] * len(tasks), calls=[0] * len(tasks))
    lib, seen, carry, created = {}, defaultdict(list), 0, 0
    for start in range(0, len(tasks), batch_size):
        batch = list(range(start, min(start + batch_size, len(tasks))))
        if library != "none":
            keys = [tasks[i].need if library == "merged" else permutation[tasks[i].need] for i in batch]
            entries = [lib.get(k) for k in keys]
            outs = runner.outputs([e for e in entries if e is not None])
            it = iter(outs)
            for i, e in zip(batch, entries):
                if e is not None and (passes(next(it), tasks[i].xs, tasks[i].ys) or not recheck):
                    evo.tools[i], evo.source[i] = e, "library"
        rest = [i for i in batch if evo.tools[i] is None]
        pool = carry + budget * len(batch)
        shares = split_budget(pool, [len(streams[i]) for i in rest])
        drawn = [[p for p in streams[i][:a]] for i, a in zip(rest, shares)]
        table = dict(zip((p for d in drawn for p in d if p is not None),
                         runner.outputs([p for d in drawn for p in d if p is not None])))
        new = defaultdict(list)
        for i, d in zip(rest, drawn):
            hit = next((j for j, p in enumerate(d) if p is not None and passes(table[p], tasks[i].xs, tasks[i].ys)),
                       None)
            evo.calls[i] = len(d) if hit is None else hit + 1
            if hit is not None:
                evo.tools[i], evo.source[i] = d[hit], "synth"
                new[tasks[i].need].append(d[hit])
                created += 1
        carry = pool - sum(evo.calls[i] for i in rest)
        if library != "none":
            for i in batch:
                seen[tasks[i].need].extend(zip(tasks[i].xs, tasks[i].ys))
            for need, tools in new.items():
                lib[need] = merge(lib.get(need), tools, seen[need], runner.outputs, merge_mode)
        evo.egl.append(created / (batch[-1] + 1))
        evo.library_size.append(len(lib))
    evo.library = dict(lib)
    return evo


def held_right(evo: Evolution, tasks, runner) -> list:
    # per task, with the held labels: True where the accepted tool is right on every held byte (None: none accepted)
    accepted = [i for i, t in enumerate(evo.tools) if t is not None]
    out = [None] * len(tasks)
    for i, o in zip(accepted, runner.outputs([evo.tools[i] for i in accepted])):
        out[i] = passes(o, tasks[i].held_xs, tasks[i].held_ys)
    return out


def score(evo: Evolution, tasks, runner) -> dict:
    # solve = share of tasks whose accepted tool is right on the held labels;
    # false_accept_rate = (accepted and wrong on a held byte) / accepted (0 when nothing was accepted)
    right = [r for r in held_right(evo, tasks, runner) if r is not None]
    n = max(len(tasks), 1)
    return {"solve": sum(right) / n, "accept": len(right) / n,
            "false_accept_rate": (len(right) - sum(right)) / len(right) if right else 0.0,
            "reuse": sum(s == "library" for s in evo.source) / n, "calls": sum(evo.calls),
            "egl": evo.egl[-1] if evo.egl else 0.0}
