r"""Synthetic text-screen apps with validators (notebook 30; notebook 31 builds a world model on them).

A tiny stand-in for a desktop (OSWorld): four apps made of pages of numbered widgets, rendered as
short text. Three apps are for training, ``mail`` is held out (same widget grammar, new labels, new
verbs). Everything is deterministic per seed and pure where it can be (states are plain JSON dicts).

A screen (``render(state)``)::

    Settings / Network          <- header: the app's title, then " / " and the page (home: the title alone)
    1 [x] Wifi                  <- toggle (on);  "[ ]" when off
    2 > Display                 <- nav: click goes to that page (only on the home page)
    3 Name: [ana]               <- field: its draft value in brackets ("[]" empty); type into it
    4 (Save)                    <- button: commits the page's drafts (Save/Update/Send) or removes
                                   the selected item (Delete/Archive)
    5 - report.txt              <- item; "5 * report.txt" when selected
    6 < Back                    <- back to the home page

Actions (``parse_action``): ``"click N"`` or ``"type N word"`` (N = a widget number on the screen,
word = [A-Za-z0-9_.-]+). A malformed or impossible action is a no-op with an error
(``transition`` returns it; the env puts it in ``info["error"]``); it still costs a turn.

A task is an instruction and a validator over the final app state. Every task works on one page,
with ``difficulty`` = 1..3 goals on it; an episode starts on the home page::

    in Network, turn on Wifi, turn off VPN
    in Personal, set Name to "ana", set Phone to "kiwi", then save
    in Documents, delete report.txt
    in Inbox, archive lunch                         (mail, held out)

The validator (``satisfied(state, task)``): every goal holds (toggles at their value, fields
*committed* with the value, items removed) and nothing else changed from the task's initial state
(other toggles, committed fields, items). Deleting a wrong item cannot be undone.

API::

    APPS, TRAIN_APPS, HELD_OUT, KINDS
    sample_task(app, difficulty, rng) -> Task      # Task.meta: app, instruction, goals, init, page, max_turns
    make_tasks(apps, difficulty, n, seed) -> [Task] # difficulty: int or (lo, hi); same seed, same tasks
    initial_state(task) -> state (a fresh deep copy of task.meta["init"])
    widgets(state) -> [Widget(kind, key, label, target)]   # in screen order, numbered from 1
    render(state) -> str                            # the screen text
    parse_screen(text) -> (header, [(n, kind, label, value)])   # value: bool (toggle), str (field), bool selected (item), None
    parse_action(text) -> ("click", n, None) | ("type", n, word) | None
    transition(state, action) -> (new_state, error | None)        # pure; error: "malformed" | "invalid" | "noop"
    satisfied(state, task) -> bool                  # the validator
    distance(state, task) -> int | None             # the fewest steps left to satisfy it (None: impossible)
    expert_action(state, task) -> str | None        # one action that lowers the distance by one (oracle)
    candidate_actions(state, task) -> [str]         # every click, and typing of the instruction's quoted words
    ScreenEnv(apps=TRAIN_APPS, difficulty=(1, 3), slack=2)      # a labkit.core.gym.TextEnv
    start_envs(tasks) -> [ScreenEnv]                # one env per task, started (batched play)

``ScreenEnv`` follows ``TextEnv``: ``reset(seed)`` / ``start(task)`` -> observation,
``step(action)`` -> (observation, reward, done, info). The observation is append-only: the prompt is
``instruction + "\n" + screen + "\n> "`` and each step appends ``action + "\n" + new screen + "\n> "``;
``env.screen`` is the current screen alone, ``env.state`` the app state, ``env.instruction`` the
instruction. Reward 1 and done when the validator holds; done with reward 0 when the turns run out
(``task.meta["max_turns"]`` = the optimal number of steps + slack; ``info["error"] == "turns"``).
``info``: ``screen``, ``error`` (only when the action was a no-op), ``distance`` (the oracle's steps left, None if impossible).
"""
from __future__ import annotations

import copy
import random
import re
from dataclasses import dataclass

from labkit.core.checks import check_int
from labkit.core.gym import TextEnv
from labkit.core.tasks import Task

__all__ = ["APPS", "TRAIN_APPS", "HELD_OUT", "KINDS", "Widget", "sample_task", "make_tasks", "initial_state",
           "widgets", "render", "parse_screen", "parse_action", "transition", "satisfied", "distance",
           "expert_action", "candidate_actions", "ScreenEnv", "start_envs", "WORDS"]

KINDS = ("nav", "back", "toggle", "field", "button", "item")
WORDS = ("ana", "bob", "rome", "oslo", "lima", "kiwi", "blue", "zed", "max", "ivy", "jade", "fox")

# app -> title, pages. A page: ("toggles", [(key, label)]) | ("fields", [(key, label)], commit label)
# | ("items", [candidate labels], remove label, how many shown)
_SPEC = {
    "settings": ("Settings", {
        "Network": ("toggles", [("wifi", "Wifi"), ("bt", "Bluetooth"), ("air", "Airplane mode"), ("vpn", "VPN")]),
        "Display": ("toggles", [("dark", "Dark mode"), ("night", "Night light"), ("large", "Large text"),
                                ("rotate", "Auto rotate")]),
        "Sound": ("fields", [("ring", "Ringtone"), ("alarm", "Alarm"), ("note", "Notice")], "Save"),
    }),
    "form": ("Profile", {
        "Personal": ("fields", [("name", "Name"), ("email", "Email"), ("phone", "Phone")], "Save"),
        "Address": ("fields", [("city", "City"), ("street", "Street"), ("zip", "Zip")], "Update"),
        "Privacy": ("toggles", [("public", "Public profile"), ("news", "Newsletter"), ("ads", "Ads"),
                                ("track", "Tracking")]),
    }),
    "files": ("Files", {
        "Documents": ("items", ["report.txt", "notes.txt", "budget.xls", "todo.md", "draft.doc", "plan.pdf"],
                      "Delete", 4),
        "Pictures": ("items", ["cat.png", "beach.jpg", "logo.svg", "map.png", "sun.jpg", "face.png"], "Delete", 4),
        "Options": ("toggles", [("hidden", "Show hidden"), ("date", "Sort by date"), ("thumbs", "Thumbnails")]),
    }),
    "mail": ("Mail", {
        "Inbox": ("items", ["lunch", "invoice", "hello", "meeting", "offer", "party"], "Archive", 4),
        "Compose": ("fields", [("to", "To"), ("subject", "Subject")], "Send"),
        "Options": ("toggles", [("sig", "Signature"), ("reply", "Auto reply"), ("notify", "Notifications")]),
    }),
}
APPS = tuple(_SPEC)
TRAIN_APPS = ("settings", "form", "files")
HELD_OUT = ("mail",)

_ACTION = re.compile(r"click ([1-9][0-9]?)|type ([1-9][0-9]?) ([A-Za-z0-9_.-]+)")
_LINE = re.compile(r"([1-9][0-9]?) (?:(\[[x ]\]) (.+)|> (.+)|< (Back)|\((.+)\)|([-*]) (.+)|([^:]+): \[(.*)\])")


@dataclass(frozen=True)
class Widget:
    """One widget on a screen: kind (KINDS), key (state key; item: its label), label, target (nav: the page)."""
    kind: str
    key: str
    label: str
    target: str | None = None


def _check_app(app):
    if app not in _SPEC:
        raise ValueError(f"unknown app {app!r}; choose one of {', '.join(APPS)}")
    return app


def _page_spec(state, page=None):
    return _SPEC[state["app"]][1][page or state["page"]]


# ---------------------------------------------------------------- tasks


def sample_task(app: str, difficulty: int, rng: random.Random, slack: int = 2) -> Task:
    """One task of `app` with `difficulty` goals (1..3) on one page, drawn with `rng`."""
    _check_app(app)
    difficulty = check_int("difficulty", difficulty, min=1, max=3)
    slack = check_int("slack", slack, min=0)
    title, pages = _SPEC[app]
    names = list(pages)
    state = {"app": app, "page": "home", "toggles": {}, "drafts": {}, "fields": {}, "items": {}, "selected": {},
             "order": {"home": rng.sample(names, len(names))}}
    for name in names:
        spec = pages[name]
        if spec[0] == "toggles":
            for key, _ in spec[1]:
                state["toggles"][key] = rng.random() < 0.5
            keys = [k for k, _ in spec[1]]
        elif spec[0] == "fields":
            for key, _ in spec[1]:
                state["fields"][key] = rng.choice(WORDS)
                state["drafts"][key] = state["fields"][key]
            keys = [k for k, _ in spec[1]] + ["commit"]
        else:
            shown = rng.sample(spec[1], spec[3])
            state["items"][name] = shown
            state["selected"][name] = None
            keys = list(shown) + ["remove"]
        keys = keys + ["back"]
        state["order"][name] = rng.sample(keys, len(keys))
    page = rng.choice(names)
    spec = pages[page]
    goals, clauses = [], []
    if spec[0] == "toggles":
        for key, label in rng.sample(spec[1], min(difficulty, len(spec[1]))):
            value = not state["toggles"][key]
            goals.append(["toggle", key, value])
            clauses.append(f"turn {'on' if value else 'off'} {label}")
    elif spec[0] == "fields":
        for key, label in rng.sample(spec[1], min(difficulty, len(spec[1]))):
            word = rng.choice([w for w in WORDS if w != state["fields"][key]])
            goals.append(["field", key, word])
            clauses.append(f'set {label} to "{word}"')
        clauses.append(f"then {spec[2].lower()}")
    else:
        for label in rng.sample(state["items"][page], min(difficulty, len(state["items"][page]))):
            goals.append(["remove", page, label])
            clauses.append(f"{spec[2].lower()} {label}")
    instruction = f"in {page}, " + ", ".join(clauses)
    meta = {"app": app, "page": page, "instruction": instruction, "goals": goals, "init": state}
    task = Task(prompt="", answer="", category=app, difficulty=difficulty, world="screens", meta=meta)
    plan, s = [], initial_state(task)
    while not satisfied(s, task):
        action = expert_action(s, task)
        plan.append(action)
        s, _ = transition(s, action)
    meta["max_turns"] = len(plan) + slack
    return Task(prompt=f"{instruction}\n{render(state)}\n> ", answer=";".join(plan), category=app,
                difficulty=difficulty, world="screens", meta=meta)


def make_tasks(apps, difficulty, n: int, seed: int, slack: int = 2) -> list[Task]:
    """n tasks over `apps` (a name or a list) with difficulty an int or an inclusive (lo, hi); same seed, same tasks."""
    apps = [apps] if isinstance(apps, str) else list(apps)
    if not apps:
        raise ValueError("make_tasks needs at least one app")
    for app in apps:
        _check_app(app)
    lo, hi = (difficulty, difficulty) if isinstance(difficulty, int) else tuple(difficulty)
    check_int("difficulty", lo, min=1, max=3), check_int("difficulty", hi, min=lo, max=3)
    n = check_int("n", n, min=0)
    rng = random.Random(f"screens:{seed}")
    return [sample_task(rng.choice(apps), rng.randint(lo, hi), rng, slack) for _ in range(n)]


def _copy(state: dict) -> dict:
    """A copy that shares only the widget order (never changed after sampling)."""
    return {**state, "toggles": dict(state["toggles"]), "drafts": dict(state["drafts"]),
            "fields": dict(state["fields"]), "items": {p: list(v) for p, v in state["items"].items()},
            "selected": dict(state["selected"])}


def initial_state(task: Task) -> dict:
    """A fresh copy of the task's initial app state."""
    return copy.deepcopy(task.meta["init"])


# ---------------------------------------------------------------- screens


def widgets(state: dict) -> list[Widget]:
    """The widgets of the current page in screen order (widget n is widgets(state)[n - 1])."""
    title, pages = _SPEC[state["app"]]
    page = state["page"]
    if page == "home":
        return [Widget("nav", name, name, name) for name in state["order"]["home"]]
    spec = pages[page]
    labels = dict(spec[1]) if spec[0] in ("toggles", "fields") else {}
    out = []
    for key in state["order"][page]:
        if key == "back":
            out.append(Widget("back", "back", "Back"))
        elif key == "commit":
            out.append(Widget("button", "commit", spec[2]))
        elif key == "remove":
            out.append(Widget("button", "remove", spec[2]))
        elif spec[0] == "toggles":
            out.append(Widget("toggle", key, labels[key]))
        elif spec[0] == "fields":
            out.append(Widget("field", key, labels[key]))
        elif key in state["items"][page]:
            out.append(Widget("item", key, key))
    return out


def render(state: dict) -> str:
    """The screen as text (see the module docstring)."""
    title = _SPEC[state["app"]][0]
    page = state["page"]
    lines = [title if page == "home" else f"{title} / {page}"]
    for n, w in enumerate(widgets(state), 1):
        if w.kind == "nav":
            lines.append(f"{n} > {w.label}")
        elif w.kind == "back":
            lines.append(f"{n} < Back")
        elif w.kind == "toggle":
            lines.append(f"{n} [{'x' if state['toggles'][w.key] else ' '}] {w.label}")
        elif w.kind == "field":
            lines.append(f"{n} {w.label}: [{state['drafts'][w.key]}]")
        elif w.kind == "button":
            lines.append(f"{n} ({w.label})")
        else:
            lines.append(f"{n} {'*' if state['selected'][page] == w.key else '-'} {w.label}")
    return "\n".join(lines)


def parse_screen(text: str):
    """(header, [(n, kind, label, value)]) from a screen's text; value: toggle on/off, field draft,
    item selected or not, None for nav/back/button. Lines that are not widgets are skipped."""
    if not isinstance(text, str):
        raise ValueError(f"parse_screen needs the screen text; got {text!r}")
    lines = text.split("\n")
    out = []
    for line in lines[1:]:
        m = _LINE.fullmatch(line)
        if m is None:
            continue
        n = int(m.group(1))
        if m.group(2):
            out.append((n, "toggle", m.group(3), m.group(2) == "[x]"))
        elif m.group(4):
            out.append((n, "nav", m.group(4), None))
        elif m.group(5):
            out.append((n, "back", "Back", None))
        elif m.group(6):
            out.append((n, "button", m.group(6), None))
        elif m.group(7):
            out.append((n, "item", m.group(8), m.group(7) == "*"))
        else:
            out.append((n, "field", m.group(9), m.group(10)))
    return lines[0] if lines else "", out


# ---------------------------------------------------------------- dynamics


def parse_action(text):
    """("click", n, None) | ("type", n, word) | None for anything else."""
    if not isinstance(text, str):
        return None
    m = _ACTION.fullmatch(text.strip())
    if m is None:
        return None
    if m.group(1):
        return ("click", int(m.group(1)), None)
    return ("type", int(m.group(2)), m.group(3))


def transition(state: dict, action: str):
    """(the next state, error or None); the input state is never changed. Errors (the state is kept):
    "malformed" (not an action), "invalid" (no widget N, typing into a non-field), "noop" (clicking a
    field, removing with nothing selected)."""
    parsed = parse_action(action)
    if parsed is None:
        return state, "malformed"
    verb, n, word = parsed
    ws = widgets(state)
    if not 1 <= n <= len(ws):
        return state, "invalid"
    w = ws[n - 1]
    if verb == "type":
        if w.kind != "field":
            return state, "invalid"
        new = _copy(state)
        new["drafts"][w.key] = word
        return new, None
    if w.kind == "field":
        return state, "noop"
    new = _copy(state)
    page = state["page"]
    if w.kind == "nav":
        new["page"] = w.target
    elif w.kind == "back":
        new["page"] = "home"
    elif w.kind == "toggle":
        new["toggles"][w.key] = not state["toggles"][w.key]
    elif w.kind == "item":
        new["selected"][page] = w.key
    elif w.key == "commit":
        for key, _ in _page_spec(state)[1]:
            new["fields"][key] = state["drafts"][key]
    else:   # remove
        chosen = state["selected"][page]
        if chosen is None:
            return state, "noop"
        new["items"][page] = [i for i in state["items"][page] if i != chosen]
        new["selected"][page] = None
    return new, None


def _wanted(task):
    """The validator's view of the goal: toggles, committed fields, and items of every page."""
    init = task.meta["init"]
    toggles, fields = dict(init["toggles"]), dict(init["fields"])
    items = {p: list(v) for p, v in init["items"].items()}
    for kind, a, b in task.meta["goals"]:
        if kind == "toggle":
            toggles[a] = b
        elif kind == "field":
            fields[a] = b
        else:
            items[a] = [i for i in items[a] if i != b]
    return toggles, fields, items


def satisfied(state: dict, task: Task) -> bool:
    """The task's validator: every goal holds and nothing else changed from the initial state."""
    toggles, fields, items = _wanted(task)
    return state["toggles"] == toggles and state["fields"] == fields and state["items"] == items


def distance(state: dict, task: Task) -> int | None:
    """The fewest actions left until `satisfied` (None when impossible: a wrong item was removed)."""
    toggles, fields, items = _wanted(task)
    pages = _SPEC[state["app"]][1]
    work = {}
    for name, spec in pages.items():
        if spec[0] == "toggles":
            cost = sum(state["toggles"][k] != toggles[k] for k, _ in spec[1])
        elif spec[0] == "fields":
            keys = [k for k, _ in spec[1]]
            commit = any(state["fields"][k] != fields[k] for k in keys)
            cost = (sum(state["drafts"][k] != fields[k] for k in keys) + 1) if commit else 0
        else:
            have, want = state["items"][name], items[name]
            if any(i not in have for i in want):
                return None
            extra = [i for i in have if i not in want]
            cost = 2 * len(extra) - (state["selected"][name] in extra)
        if cost:
            work[name] = cost
    if not work:
        return 0
    k, here = len(work), state["page"]
    moves = 2 * (k - 1) if here in work else (2 * k - 1 if here == "home" else 2 * k)
    return moves + sum(work.values())


def candidate_actions(state: dict, task: Task) -> list[str]:
    """Every click on the screen, and typing each quoted word of the instruction into each field."""
    words = re.findall(r'"([^"]+)"', task.meta["instruction"])
    out = []
    for n, w in enumerate(widgets(state), 1):
        out.append(f"click {n}")
        if w.kind == "field":
            out.extend(f"type {n} {word}" for word in dict.fromkeys(words))
    return out


def expert_action(state: dict, task: Task) -> str | None:
    """An action that lowers `distance` by one (None when satisfied or impossible). Also tries typing
    the initial committed values, so it repairs a wrongly committed field."""
    d = distance(state, task)
    if not d:
        return None
    actions = candidate_actions(state, task)
    for n, w in enumerate(widgets(state), 1):
        if w.kind == "field":
            actions.append(f"type {n} {task.meta['init']['fields'][w.key]}")
    for action in actions:
        new, error = transition(state, action)
        if error is None and distance(new, task) == d - 1:
            return action
    return None


# ---------------------------------------------------------------- the gym


class ScreenEnv(TextEnv):
    """The screen apps as a TextEnv (see the module docstring)."""

    name = "screens"

    def __init__(self, apps=TRAIN_APPS, difficulty=(1, 3), slack: int = 2):
        super().__init__()
        self.apps = [apps] if isinstance(apps, str) else list(apps)
        if not self.apps:
            raise ValueError("ScreenEnv needs at least one app")
        for app in self.apps:
            _check_app(app)
        lo, hi = (difficulty, difficulty) if isinstance(difficulty, int) else tuple(difficulty)
        self.difficulty = (check_int("difficulty", lo, min=1, max=3), check_int("difficulty", hi, min=lo, max=3))
        self.slack = check_int("slack", slack, min=0)
        self.state: dict | None = None

    def sample(self, rng):
        return sample_task(rng.choice(self.apps), rng.randint(*self.difficulty), rng, self.slack)

    def start(self, task):
        if not isinstance(task, Task) or task.world != "screens":
            raise ValueError(f"ScreenEnv.start needs a screens Task; got {task!r}")
        return super().start(task)

    def _begin(self):
        self.state = initial_state(self.task)
        self.max_turns = self.task.meta["max_turns"]

    @property
    def screen(self) -> str:
        return render(self.state)

    @property
    def instruction(self) -> str:
        return self.task.meta["instruction"]

    def _act(self, action):
        self.state, error = transition(self.state, action)
        screen = render(self.state)
        self.echo = "\n" + screen + "\n> "
        info = {"screen": screen, "distance": distance(self.state, self.task)}
        if error is not None:
            info["error"] = error
        if satisfied(self.state, self.task):
            return 1.0, True, {**info, "correct": True}
        return 0.0, False, info


def start_envs(tasks: list[Task]) -> list[ScreenEnv]:
    """One ScreenEnv per task, each started on it (its turns are the task's own max_turns)."""
    out = []
    for task in tasks:
        env = ScreenEnv(apps=task.meta["app"])
        env.start(task)
        out.append(env)
    return out
