"""31 · World model: an agent that imagines its app: the mechanism that notebooks/31_world_model.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import re
import zlib
from dataclasses import dataclass, field
import torch
from torch import nn
from torch.nn import functional as F
from labkit.core.screens import parse_screen

__all__ = ["BUCKETS", "MAX_LINES", "MAX_CLAUSES", "Bagger", "screen_lines", "clauses", "screen_candidates",
           "screen_judge", "WorldModel", "world_model_loss", "next_screen_accuracy", "Policy", "imitation_loss",
           "greedy_actions", "Trajectory", "play", "imagine", "lookahead"]

BUCKETS = 1024      # hashed character trigrams per text
MAX_LINES = 8       # a screen: its header and up to 7 widgets
MAX_CLAUSES = 5     # "in Page" and up to 4 goals
_ACTION = re.compile(r"(click|type) (\d+)(?: (\S+))?")


def _trigrams(text: str, buckets: int) -> list[int]:
    padded = f"  {text} "
    grams = {padded[i:i + 3] for i in range(len(padded) - 2)}
    return sorted({zlib.crc32(g.encode()) % buckets for g in grams})


class Bagger:
    """Texts -> (ids, offsets) for nn.EmbeddingBag: each text a bag of hashed character trigrams, so that
    a held-out app's new labels share features with the training apps' (a line's words, its [x]/[ ] state
    and its number all become trigrams). Deterministic (crc32, not Python's salted hash); cached per text."""

    def __init__(self, buckets: int = BUCKETS):
        self.buckets, self.cache = buckets, {}

    def __call__(self, texts):
        ids, offsets = [], []
        for t in texts:
            grams = self.cache.get(t)
            if grams is None:
                grams = self.cache[t] = _trigrams(t, self.buckets) if t else [0]
            offsets.append(len(ids))
            ids.extend(grams)
        return torch.tensor(ids, dtype=torch.long), torch.tensor(offsets, dtype=torch.long)


def screen_lines(screen: str) -> list[str]:
    """The screen's lines padded with "" to MAX_LINES (a longer screen is an error)."""
    lines = screen.split("\n")
    if len(lines) > MAX_LINES:
        raise ValueError(f"screen_lines: a screen of {len(lines)} lines; at most {MAX_LINES} are accepted")
    return lines + [""] * (MAX_LINES - len(lines))


def clauses(instruction: str) -> list[str]:
    """The instruction cut at ", " into its clauses, padded with "" to MAX_CLAUSES (extra clauses dropped)."""
    parts = instruction.split(", ")[:MAX_CLAUSES]
    return parts + [""] * (MAX_CLAUSES - len(parts))


_QUOTED = re.compile(r'"([^"]+)"')


def screen_candidates(instruction: str, screen: str) -> list[str]:
    """The actions an agent can take on a screen read as text, in screen order: click every widget
    ("click N"), and after a field's click, type each quoted word of the instruction into it ("type N word",
    words in the instruction's order, each once). Equal to labkit.core.screens.candidate_actions, which reads
    the app's state. Lines that are not widgets are skipped (a screen of none has no actions)."""
    words = list(dict.fromkeys(_QUOTED.findall(instruction)))
    out = []
    for n, kind, _, _ in parse_screen(screen)[1]:
        out.append(f"click {n}")
        if kind == "field":
            out.extend(f"type {n} {w}" for w in words)
    return out


def screen_judge(instruction: str, before: str, action: str, after: str) -> bool:
    """J: does the screen `after` (reached from `before` by `action`) show the instruction done?
    A reading of the screen, not the app's validator: the page is the instruction's, each toggle
    at its value, each field showing its word and the last action a click on the page's commit button
    (the clause "then save"), each removed item gone. What the screen cannot show (committed values of
    other pages, that nothing else changed) is not checked. A screen that does not parse is not done."""
    m = re.match(r"in ([^,]+), (.*)", instruction)
    if m is None:
        return False
    page, goals = m.group(1), m.group(2).split(", ")
    try:
        header, ws = parse_screen(after)
        before_widgets = parse_screen(before)[1]
    except ValueError:
        return False
    if not header.endswith(f" / {page}"):
        return False
    toggles = {label: v for _, kind, label, v in ws if kind == "toggle"}
    fields = {label: v for _, kind, label, v in ws if kind == "field"}
    items = {label for _, kind, label, _ in ws if kind == "item"}
    for goal in goals:
        t = re.fullmatch(r"turn (on|off) (.+)", goal)
        s = re.fullmatch(r'set (.+) to "(.+)"', goal)
        c = re.fullmatch(r"then (\w+)", goal)
        if t:
            if toggles.get(t.group(2)) != (t.group(1) == "on"):
                return False
        elif s:
            if fields.get(s.group(1)) != s.group(2):
                return False
        elif c:                                   # the commit: the action clicked the named button
            act = re.fullmatch(r"click (\d+)", action or "")
            pressed = [label for n, kind, label, _ in before_widgets
                       if act and n == int(act.group(1)) and kind == "button"]
            if not pressed or pressed[0].lower() != c.group(1):
                return False
        else:                                     # "delete report.txt": the item is gone
            parts = goal.split(" ", 1)
            if len(parts) != 2 or parts[1] in items:
                return False
    return True


def _blocks(hidden, layers, heads=4):
    layer = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.0, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


def _parse_action(action: str):
    """(is_type, widget number, typed word) of "click N" / "type N word"; (0, -1, "") for anything else."""
    m = _ACTION.fullmatch(action) if isinstance(action, str) else None
    return (0, -1, "") if m is None else (int(m.group(1) == "type"), int(m.group(2)), m.group(3) or "")


class WorldModel(nn.Module):
    """M(o_{t+1} | o_t, a_t) over screens read as lines. Tokens: the action (its verb and typed word) and the
    MAX_LINES lines of o_t (each a bag of character trigrams, plus its slot and a flag on the line the action
    points at: widget N is line N). Output slot j scores candidate lines c for line j of o_{t+1}:
    logit(c) = <W h_j, f(c)> + copy_j [c = line j of o_t] + shift_j [c = line j+1 of o_t] ("" ends a screen).
    The candidates are the lines seen in training (``vocab``) and the lines of the screens at hand: it can
    copy any line but write only lines it has seen."""

    def __init__(self, hidden: int = 64, layers: int = 2, buckets: int = BUCKETS):
        super().__init__()
        self.bagger = Bagger(buckets)
        self.lines = nn.EmbeddingBag(buckets, hidden, mode="mean")
        self.out_lines = nn.EmbeddingBag(buckets, hidden, mode="mean")
        self.empty = nn.Parameter(0.02 * torch.randn(2, hidden))       # "" as an input line, as an output line
        self.slot = nn.Parameter(0.02 * torch.randn(MAX_LINES + 1, hidden))
        self.verb = nn.Embedding(2, hidden)                             # click, type
        self.target = nn.Parameter(0.02 * torch.randn(hidden))
        self.blocks = _blocks(hidden, layers)
        self.norm = nn.LayerNorm(hidden)
        self.query = nn.Linear(hidden, hidden)
        self.copy = nn.Linear(hidden, 2)
        self.vocab: dict[str, int] = {"": 0}

    def extend_vocab(self, screens) -> None:
        """Add every line of these screens to the lines the model can write."""
        for s in screens:
            for line in s.split("\n"):
                self.vocab.setdefault(line, len(self.vocab))

    def _embed(self, bag, texts, empty):
        ids, offsets = self.bagger(texts)
        e = bag(ids, offsets)
        blank = torch.tensor([t == "" for t in texts])[:, None]
        return torch.where(blank, empty.expand_as(e), e)

    def forward(self, screens: list[str], actions: list[str], extra: list[str] = ()):
        """(logits (B, MAX_LINES, V), candidate lines [V]): V = the vocab, then the new lines of `screens`
        and `extra` (the targets, in training)."""
        if len(screens) != len(actions):
            raise ValueError(f"WorldModel: {len(screens)} screens but {len(actions)} actions")
        rows = [screen_lines(s) for s in screens]
        cand = dict(self.vocab)
        for text in [line for r in rows for line in r] + [line for t in extra for line in t.split("\n")]:
            cand.setdefault(text, len(cand))
        names = list(cand)
        b = len(screens)
        x = self._embed(self.lines, [line for r in rows for line in r], self.empty[0]).view(b, MAX_LINES, -1)
        verbs, targets, words = zip(*(_parse_action(a) for a in actions))
        is_type = torch.tensor(verbs)[:, None]
        act = self.verb(torch.tensor(verbs)) + self._embed(self.lines, list(words), self.empty[0]) * is_type
        flag = torch.tensor(targets)[:, None] == torch.arange(MAX_LINES)[None, :]
        x = x + self.slot[1:] + flag[..., None] * self.target
        h = self.norm(self.blocks(torch.cat([(act + self.slot[0])[:, None], x], 1)))[:, 1:]
        f = self._embed(self.out_lines, names, self.empty[1])                           # (V, H)
        logits = self.query(h) @ f.T                                                    # (B, L, V)
        index = torch.tensor([[cand[line] for line in r] for r in rows])                # (B, L)
        shifted = torch.cat([index[:, 1:], torch.zeros_like(index[:, :1])], 1)          # line j+1 ("" past the end)
        gates = self.copy(h)
        # logit_j(c) += g_copy [c = line j of o_t] + g_shift [c = line j+1 of o_t]
        logits = logits.scatter_add(2, index[..., None], gates[..., :1]).scatter_add(2, shifted[..., None], gates[..., 1:])
        return logits, names

    @torch.no_grad()
    def predict(self, screens: list[str], actions: list[str]) -> list[str]:
        """o_{t+1} = argmax M(. | o_t, a_t), line by line; the screen ends at its first ""."""
        if not screens:
            return []
        logits, names = self(screens, actions)
        out = []
        for row in logits.argmax(-1).tolist():
            lines = []
            for k in row:
                if names[k] == "":
                    break
                lines.append(names[k])
            out.append("\n".join(lines))
        return out


def world_model_loss(model: WorldModel, screens: list[str], actions: list[str], next_screens: list[str]) -> torch.Tensor:
    """L_M = -log M(o_{t+1} | o_t, a_t): the mean cross-entropy over the batch's MAX_LINES line slots of the
    next screens (each padded with "" by screen_lines)."""
    if not len(screens) == len(actions) == len(next_screens) or not screens:
        raise ValueError("world_model_loss: screens, actions and next_screens must be equally long and non-empty")
    logits, names = model(screens, actions, extra=next_screens)
    index = {n: i for i, n in enumerate(names)}
    target = torch.tensor([[index[line] for line in screen_lines(s)] for s in next_screens])
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


def next_screen_accuracy(model: WorldModel, transitions) -> dict:
    """Share of (screen, action, next screen) whose next screen M writes exactly: overall, where the page
    stays ("within", the header is unchanged) and where it changes ("navigation"); and on page changes, the
    share where M at least writes the right header ("navigation_page"). NaN for an empty group."""
    transitions = list(transitions)
    predicted = model.predict([t[0] for t in transitions], [t[1] for t in transitions])
    hits = {"all": [], "within": [], "navigation": [], "navigation_page": []}
    for (before, _, after), guess in zip(transitions, predicted):
        hit = float(guess == after)
        hits["all"].append(hit)
        header = after.split("\n")[0]
        if before.split("\n")[0] == header:
            hits["within"].append(hit)
        else:
            hits["navigation"].append(hit)
            hits["navigation_page"].append(float(guess.split("\n")[0] == header))
    return {k: sum(v) / len(v) if v else float("nan") for k, v in hits.items()}


class Policy(nn.Module):
    """pi(a | instruction, o): tokens are the instruction's clauses and the screen's lines (trigram bags plus
    a slot); each candidate action is scored from the token of the line it acts on, plus the typed word's
    bag for "type". Logits over the screen's candidates (screen_candidates)."""

    def __init__(self, hidden: int = 64, layers: int = 2, buckets: int = BUCKETS):
        super().__init__()
        self.bagger = Bagger(buckets)
        self.bag = nn.EmbeddingBag(buckets, hidden, mode="mean")
        self.empty = nn.Parameter(0.02 * torch.randn(hidden))
        self.slot = nn.Parameter(0.02 * torch.randn(MAX_CLAUSES + MAX_LINES, hidden))
        self.blocks = _blocks(hidden, layers)
        self.norm = nn.LayerNorm(hidden)
        self.click = nn.Linear(hidden, 1)
        self.typed = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def _embed(self, texts):
        ids, offsets = self.bagger(texts)
        e = self.bag(ids, offsets)
        blank = torch.tensor([t == "" for t in texts])[:, None]
        return torch.where(blank, self.empty.expand_as(e), e)

    def forward(self, instructions: list[str], screens: list[str], candidates: list[list[str]]) -> torch.Tensor:
        """(B, C) logits, -inf past each row's candidates (C = the most candidates in the batch)."""
        b = len(screens)
        texts = [t for i, s in zip(instructions, screens) for t in clauses(i) + screen_lines(s)]
        h = self.norm(self.blocks(self._embed(texts).view(b, MAX_CLAUSES + MAX_LINES, -1) + self.slot))
        lines = h[:, MAX_CLAUSES:]
        width = max(1, max(len(c) for c in candidates))
        rows, cols, targets, kinds, words = [], [], [], [], []
        for i, cands in enumerate(candidates):
            for j, a in enumerate(cands):
                is_type, n, word = _parse_action(a)
                if not 1 <= n < MAX_LINES:
                    raise ValueError(f"Policy: {a!r} is not a candidate action (click N / type N word, 1 <= N < {MAX_LINES})")
                rows.append(i), cols.append(j), targets.append(n), kinds.append(bool(is_type)), words.append(word)
        rows_t, targets_t = torch.tensor(rows, dtype=torch.long), torch.tensor(targets, dtype=torch.long)
        on_line = lines[rows_t, targets_t]                                              # the line each acts on
        score = torch.where(torch.tensor(kinds, dtype=torch.bool),
                            self.typed(torch.cat([on_line, self._embed(words)], -1)).squeeze(-1),
                            self.click(on_line).squeeze(-1))
        out = torch.full((b, width), float("-inf"))
        out[rows_t, torch.tensor(cols, dtype=torch.long)] = score
        return out


def imitation_loss(policy: Policy, steps) -> torch.Tensor:
    """L_pi = -mean log pi(a | x, o) over steps (instruction x, screen o, action a); a must be a candidate."""
    steps = list(steps)
    if not steps:
        raise ValueError("imitation_loss: no steps")
    cands = [screen_candidates(x, o) for x, o, _ in steps]
    for (x, o, a), c in zip(steps, cands):
        if a not in c:
            raise ValueError(f"imitation_loss: {a!r} is not a candidate action of its screen")
    logits = policy([x for x, _, _ in steps], [o for _, o, _ in steps], cands)
    return F.cross_entropy(logits, torch.tensor([c.index(a) for (_, _, a), c in zip(steps, cands)]))


@torch.no_grad()
def greedy_actions(policy: Policy, instructions: list[str], screens: list[str]) -> list[str]:
    """argmax_a pi(a | x, o) for each (instruction, screen)."""
    if not screens:
        return []
    cands = [screen_candidates(x, o) for x, o in zip(instructions, screens)]
    best = policy(list(instructions), list(screens), cands).argmax(-1).tolist()
    return [c[k] for c, k in zip(cands, best)]


@dataclass
class Trajectory:
    """One episode, real or imagined: screens[t] -> actions[t] -> screens[t + 1]."""
    instruction: str
    app: str = ""
    screens: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    success: bool = False     # real: the app's validator; imagined: the judge

    def steps(self):
        """(instruction, screen, action) for every step."""
        return [(self.instruction, self.screens[t], a) for t, a in enumerate(self.actions)]

    def transitions(self):
        """(screen, action, next screen) for every step."""
        return [(self.screens[t], a, self.screens[t + 1]) for t, a in enumerate(self.actions)]


def play(choose, tasks) -> list[Trajectory]:
    """Real episodes of `tasks` in the apps (labkit.core.screens), all at once: choose(instructions, screens)
    returns an action for each live episode. Success is the app's validator."""
    from labkit.core.screens import start_envs
    envs = start_envs(list(tasks))
    out = [Trajectory(e.instruction, t.meta["app"], [e.screen]) for e, t in zip(envs, tasks)]
    while live := [k for k, e in enumerate(envs) if not e.done]:
        for k, a in zip(live, choose([out[k].instruction for k in live], [out[k].screens[-1] for k in live])):
            _, reward, _, _ = envs[k].step(a)
            out[k].actions.append(a)
            out[k].screens.append(envs[k].screen)
            out[k].success = reward > 0
    return out


@torch.no_grad()
def imagine(policy: Policy, model: WorldModel, instructions: list[str], starts: list[str], turns: list[int],
            generator: torch.Generator) -> list[Trajectory]:
    """The virtual server: from each real start screen, pi samples actions and M writes the next screens,
    until the judge calls the instruction done (success), the episode's turns run out, or M writes a screen
    with no widget to act on."""
    if not len(instructions) == len(starts) == len(turns):
        raise ValueError("imagine: instructions, starts and turns must be equally long")
    out = [Trajectory(x, "", [o]) for x, o in zip(instructions, starts)]
    live = [k for k in range(len(out)) if turns[k] > 0]
    while live:
        cands = {}
        for k in live:
            try:
                cands[k] = screen_candidates(out[k].instruction, out[k].screens[-1])
            except ValueError:
                pass
        live = [k for k in live if cands.get(k)]
        if not live:
            break
        logits = policy([out[k].instruction for k in live], [out[k].screens[-1] for k in live], [cands[k] for k in live])
        picks = torch.multinomial(logits.softmax(-1), 1, generator=generator).squeeze(1).tolist()
        actions = [cands[k][j] for k, j in zip(live, picks)]
        after = model.predict([out[k].screens[-1] for k in live], actions)
        for k, a, o in zip(live, actions, after):
            out[k].success = screen_judge(out[k].instruction, out[k].screens[-1], a, o)
            out[k].actions.append(a)
            out[k].screens.append(o)
        live = [k for k in live if not out[k].success and len(out[k].actions) < turns[k]]
    return out


def _parses(instruction: str, screen: str) -> bool:
    """Does M's screen offer at least one candidate action?"""
    try:
        return bool(screen_candidates(instruction, screen))
    except ValueError:
        return False


@torch.no_grad()
def lookahead(policy: Policy, model: WorldModel, instructions: list[str], screens: list[str],
              k: int = 3, depth: int = 2, discount: float = 0.9) -> list[str]:
    """World-Model Look-Ahead: for each (instruction x, screen o), the policy's top-k actions, each played
    forward `depth` steps in M (greedy pi after the first action). V(a) = discount**i for the first imagined
    step i (0-based) whose screen the judge calls done, else 0. Returns argmax_a V(a), ties to the policy's
    order, so that without any imagined success the choice is the greedy one."""
    if k < 1 or depth < 1:
        raise ValueError(f"lookahead: k and depth must be >= 1; got k={k}, depth={depth}")
    cands = [screen_candidates(x, o) for x, o in zip(instructions, screens)]
    if not cands:
        return []
    logits = policy(list(instructions), list(screens), cands)
    roots = []                                   # (row, first action) in the policy's order
    for row, c in enumerate(cands):
        for j in logits[row].topk(min(k, len(c))).indices.tolist():
            roots.append((row, c[j]))
    value = [0.0] * len(roots)
    # frontier: (root, instruction, screen, action to imagine)
    frontier = [(r, instructions[row], screens[row], a) for r, (row, a) in enumerate(roots)]
    for i in range(depth):
        after = model.predict([f[2] for f in frontier], [f[3] for f in frontier])
        going = []
        for (r, x, o, a), o_next in zip(frontier, after):
            if screen_judge(x, o, a, o_next):
                value[r] = discount ** i          # V(a) = gamma^i at the first imagined success
            elif i + 1 < depth:
                going.append((r, x, o_next))
        going = [g for g in going if _parses(g[1], g[2])]
        if not going:
            break
        nxt = greedy_actions(policy, [g[1] for g in going], [g[2] for g in going])
        frontier = [(r, x, o, a) for (r, x, o), a in zip(going, nxt)]
    best = {}
    for r, (row, a) in enumerate(roots):         # strict > keeps the earlier (more probable) action on ties
        if row not in best or value[r] > best[row][0]:
            best[row] = (value[r], a)
    return [best[row][1] for row in range(len(cands))]
