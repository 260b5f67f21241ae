from __future__ import annotations
import re
import zlib
import torch
from torch import nn
from torch.nn import functional as F
from labkit.core.screens import parse_screen

__all__ = ["BUCKETS", "MAX_LINES", "MAX_CLAUSES", "Bagger", "screen_lines", "clauses", "screen_candidates",
           "screen_judge", "WorldModel", "Policy", "world_model_loss"]

BUCKETS = 1024      # hashed character trigrams per text
MAX_LINES = 8       # a screen: its header and up to 7 widgets
MAX_CLAUSES = 5     # "in Page" and up to 4 goals


def _trigrams(text: str, buckets: int) -> list[int]:
    padded = f"  {text} "
    grams = {padded[i:i + 3] for i in range(len(padded) - 2)}
    return sorted({zlib.crc32(g.encode()) % buckets for g in grams})


class Bagger:
    """Texts -> (ids, offsets) for nn.EmbeddingBag: each text a bag of hashed character trigrams
    (a line's words, its [x]/[ ] state and its number all become trigrams). Cached per text."""

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
        raise ValueError(f"screen_lines: {len(lines)} lines; at most {MAX_LINES}")
    return lines + [""] * (MAX_LINES - len(lines))


def clauses(instruction: str) -> list[str]:
    """The instruction cut at ", " into its clauses, padded with "" to MAX_CLAUSES."""
    parts = instruction.split(", ")[:MAX_CLAUSES]
    return parts + [""] * (MAX_CLAUSES - len(parts))


_QUOTED = re.compile(r'"([^"]+)"')


def screen_candidates(instruction: str, screen: str) -> list[str]:
    """The actions an agent can take on a screen read as text: click every widget, type each quoted
    word of the instruction into each field (labkit.core.screens.candidate_actions, from the text alone)."""
    words = list(dict.fromkeys(_QUOTED.findall(instruction)))
    out = []
    for n, kind, _, _ in parse_screen(screen)[1]:
        out.append(f"click {n}")
        if kind == "field":
            out.extend(f"type {n} {w}" for w in words)
    return out


def screen_judge(instruction: str, before: str, action: str, after: str) -> bool:
    """Does the screen `after` (reached from `before` by `action`) show the instruction done?
    A reading of the screen, not the app's validator: the page is the instruction's, each toggle
    at its value, each field showing its word and the last action a click on the page's
    commit button (the clause "then save"), each removed item gone. What the screen cannot show
    (committed values of other pages, nothing else changed) is not checked."""
    m = re.match(r"in ([^,]+), (.*)", instruction)
    if m is None:
        return False
    page, goals = m.group(1), m.group(2).split(", ")
    header, ws = parse_screen(after)
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
        elif c:
            act = re.fullmatch(r"click (\d+)", action or "")
            pressed = [label for n, kind, label, _ in parse_screen(before)[1]
                       if act and n == int(act.group(1)) and kind == "button"]
            if not pressed or pressed[0].lower() != c.group(1):
                return False
        else:
            parts = goal.split(" ", 1)
            if len(parts) != 2 or parts[1] in items:
                return False
    return True


def _blocks(hidden, layers, heads=4):
    layer = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.0, batch_first=True, norm_first=True)
    return nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)


class WorldModel(nn.Module):
    """M(o_{t+1} | o_t, a_t) over screens read as lines. Tokens: the action (its verb and typed word)
    and the MAX_LINES lines of o_t (each a bag of character trigrams, its slot, a flag on the line the
    action points at). Each output slot j scores candidate lines c for line j of o_{t+1}:
    logit(c) = <W h_j, f(c)> + copy_j [c = line j of o_t] + shift_j [c = line j+1 of o_t] ("" ends the
    screen), f(c) the trigram embedding of c. The candidates are the lines it has seen (``vocab``)
    and the lines of the current screens: it can copy any line but write only lines it has seen."""

    def __init__(self, hidden=64, layers=2, buckets=BUCKETS):
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

    def extend_vocab(self, texts) -> None:
        for t in texts:
            for line in t.split("\n"):
                self.vocab.setdefault(line, len(self.vocab))

    def _embed(self, bag, texts, empty):
        ids, offsets = self.bagger(texts)
        e = bag(ids, offsets)
        blank = torch.tensor([t == "" for t in texts])[:, None]
        return torch.where(blank, empty.expand_as(e), e)

    def forward(self, screens: list[str], actions: list[str], extra: list[str] = ()):
        """(logits (B, MAX_LINES, V), candidate lines [V]): V = the vocab, then new lines of `screens`/`extra`."""
        rows = [screen_lines(s) for s in screens]
        cand = dict(self.vocab)
        for r in rows:
            for line in r:
                cand.setdefault(line, len(cand))
        for t in extra:
            for line in t.split("\n"):
                cand.setdefault(line, len(cand))
        names = list(cand)
        b = len(screens)
        x = self._embed(self.lines, [line for r in rows for line in r], self.empty[0]).view(b, MAX_LINES, -1)
        verbs, targets, words = [], [], []
        for a in actions:
            m = re.fullmatch(r"(click|type) (\d+)(?: (\S+))?", a)
            verbs.append(int(m is not None and m.group(1) == "type"))
            targets.append(int(m.group(2)) if m else -1)
            words.append(m.group(3) or "" if m else "")
        act = self.verb(torch.tensor(verbs)) + self._embed(self.lines, words, self.empty[0]) * torch.tensor(verbs)[:, None]
        flag = torch.tensor(targets)[:, None] == torch.arange(MAX_LINES)[None, :]    # widget n is line n
        x = x + self.slot[1:] + flag[..., None] * self.target
        h = self.norm(self.blocks(torch.cat([(act + self.slot[0])[:, None], x], 1)))[:, 1:]
        f = self._embed(self.out_lines, names, self.empty[1])                           # (V, H)
        logits = self.query(h) @ f.T                                                    # (B, L, V)
        index = torch.tensor([[cand[line] for line in r] for r in rows])                # (B, L)
        shifted = torch.cat([index[:, 1:], torch.zeros_like(index[:, :1])], 1)          # line j+1 ("" past the end)
        gates = self.copy(h)
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


def world_model_loss(model: WorldModel, screens, actions, next_screens) -> torch.Tensor:
    """-log M(o_{t+1} | o_t, a_t): the cross-entropy of every line slot of the next screen."""
    logits, names = model(screens, actions, extra=next_screens)
    index = {n: i for i, n in enumerate(names)}
    target = torch.tensor([[index[line] for line in screen_lines(s)] for s in next_screens])
    return F.cross_entropy(logits.flatten(0, 1), target.flatten())


class Policy(nn.Module):
    """pi(a | instruction, o): tokens are the instruction's clauses and the screen's lines (trigram
    bags plus a slot); each candidate action is scored from the token of the line it acts on,
    plus the typed word's bag for `type`. Logits over the screen's candidates (screen_candidates)."""

    def __init__(self, hidden=64, layers=2, buckets=BUCKETS):
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
                m = re.fullmatch(r"(click|type) (\d+)(?: (\S+))?", a)
                if m is None or not 1 <= int(m.group(2)) < MAX_LINES:
                    raise ValueError(f"Policy: not a candidate action: {a!r}")
                rows.append(i), cols.append(j), targets.append(int(m.group(2)))
                kinds.append(m.group(1) == "type"), words.append(m.group(3) or "")
        rows_t, targets_t = torch.tensor(rows, dtype=torch.long), torch.tensor(targets, dtype=torch.long)
        hl = lines[rows_t, targets_t]                                                  # the line each acts on
        click = self.click(hl).squeeze(-1)
        typed = self.typed(torch.cat([hl, self._embed(words)], -1)).squeeze(-1)
        score = torch.where(torch.tensor(kinds, dtype=torch.bool), typed, click)
        out = torch.full((b, width), float("-inf"))
        out[rows_t, torch.tensor(cols, dtype=torch.long)] = score
        return out
