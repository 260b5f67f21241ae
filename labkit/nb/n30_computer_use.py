"""30 · Computer use: learning from step judgements and from the capability boundary: the mechanism that notebooks/30_computer_use.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import re
import torch
from torch import nn
from labkit.core import screens as S

__all__ = ["parse_instruction", "featurize", "N_FEATURES", "ScreenPolicy", "Step", "Episode", "play", "judge_step",
           "outcome_loss", "step_grpo_loss", "failure_imitation_loss", "corrections", "correction_loss",
           "boundary_pick", "family", "judge_episode"]


_CLAUSE_ON = re.compile(r"turn (on|off) (.+)")
_CLAUSE_SET = re.compile(r'set (.+) to "([^"]+)"')
KIND_INDEX = {k: i for i, k in enumerate(S.KINDS)}
N_FEATURES = 22


def parse_instruction(text: str) -> dict:
    """The instruction's parts: the target page, toggles wanted on / off, field values, other words (verbs, items)."""
    m = re.match(r"in ([^,]+), (.*)", text) if isinstance(text, str) else None
    if m is None:
        raise ValueError(f"parse_instruction: not an instruction {text!r}")
    out = {"page": m.group(1), "on": set(), "off": set(), "set": {}, "words": set()}
    for clause in m.group(2).split(", "):
        if (c := _CLAUSE_ON.fullmatch(clause)):
            out[c.group(1)].add(c.group(2))
        elif (c := _CLAUSE_SET.fullmatch(clause)):
            out["set"][c.group(1)] = c.group(2)
        else:
            out["words"].update(clause.lower().split())
    return out


def featurize(instruction: dict, screen: str):
    """(actions, features (C, N_FEATURES)): every candidate action on the screen (each click; typing each
    quoted word into each field) and what the text says about it: the widget's kind, whether its label is
    named by the instruction, its value against the wanted one. No app's labels are features, so what is
    learned on the training apps can carry to a held-out one."""
    header, ws = S.parse_screen(screen)
    on_page = header.endswith(" / " + instruction["page"])
    selected = [label for _, kind, label, value in ws if kind == "item" and value]
    sel_in = any(s.lower() in instruction["words"] for s in selected)
    sel_out = any(s.lower() not in instruction["words"] for s in selected)
    drafts_off = sum(1 for _, kind, label, value in ws
                     if kind == "field" and label in instruction["set"] and value != instruction["set"][label])
    actions, rows = [], []
    for n, kind, label, value in ws:
        base = [0.0] * N_FEATURES
        base[KIND_INDEX[kind]] = 1.0                      # 0-5 the kind
        base[7] = float(on_page)                          # on the instruction's page
        base[21] = 1.0                                    # bias
        if kind == "nav":
            base[8] = float(label == instruction["page"])
        elif kind == "toggle":                            # wanted on, wanted off, is on
            base[9], base[10], base[11] = float(label in instruction["on"]), float(label in instruction["off"]), float(value)
        elif kind == "field":                             # named, draft already right
            base[12] = float(label in instruction["set"])
            base[13] = float(instruction["set"].get(label) == value)
        elif kind == "button":                            # named; a named / unnamed item selected; drafts still wrong
            base[15] = float(label.lower() in instruction["words"])
            base[16], base[17], base[18] = float(sel_in), float(sel_out), float(drafts_off > 0)
        elif kind == "item":                              # named, selected
            base[19], base[20] = float(label.lower() in instruction["words"]), float(value)
        actions.append(f"click {n}")
        rows.append(base)
        if kind == "field":
            for word in dict.fromkeys(instruction["set"].values()):
                row = list(base)
                row[6] = 1.0                              # a typing action
                row[14] = float(instruction["set"].get(label) == word)   # the word the instruction wants here
                actions.append(f"type {n} {word}")
                rows.append(row)
    return actions, torch.tensor(rows)


class ScreenPolicy(nn.Module):
    """pi(a | instruction, screen): an MLP scores each candidate action's features; softmax over the screen's candidates."""

    def __init__(self, hidden: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.Tanh(), nn.Linear(hidden, 1))
        nn.init.zeros_(self.net[2].weight)
        nn.init.zeros_(self.net[2].bias)     # the untrained policy is uniform over the candidates

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log pi over candidates: feats (N, C, F), mask (N, C) True where a candidate exists -> (N, C)."""
        logits = self.net(feats).squeeze(-1).masked_fill(~mask, float("-inf"))
        return logits.log_softmax(-1)


class Step:
    """One step: the candidates' features, the chosen index and action, the screens before and after, the
    oracle's distances (for measuring the judge only), the candidate actions and the app state before."""
    __slots__ = ("feats", "index", "action", "before", "after", "d_before", "d_after", "actions", "state")

    def __init__(self, feats, index, action, before, after, d_before, d_after, actions=None, state=None):
        self.feats, self.index, self.action, self.actions, self.state = feats, index, action, actions, state
        self.before, self.after, self.d_before, self.d_after = before, after, d_before, d_after

    @property
    def progress(self) -> bool:
        """The oracle's step label: the fewest steps left went down."""
        return self.d_after is not None and self.d_before is not None and self.d_after < self.d_before


class Episode:
    def __init__(self, task):
        self.task, self.steps, self.success = task, [], False


def _pad(feats_list):
    c = max(f.shape[0] for f in feats_list)
    feats = torch.zeros(len(feats_list), c, N_FEATURES)
    mask = torch.zeros(len(feats_list), c, dtype=torch.bool)
    for i, f in enumerate(feats_list):
        feats[i, :f.shape[0]] = f
        mask[i, :f.shape[0]] = True
    return feats, mask


@torch.no_grad()
def play(policy, tasks, generator, greedy=False):
    """Play every task to its end (S.ScreenEnv), all live episodes in one policy call per step. -> [Episode]."""
    envs = S.start_envs(tasks)
    parsed = [parse_instruction(t.meta["instruction"]) for t in tasks]
    episodes = [Episode(t) for t in tasks]
    dist = [S.distance(e.state, t) for e, t in zip(envs, tasks)]
    while True:
        live = [i for i, e in enumerate(envs) if not e.done]
        if not live:
            return episodes
        cands = [featurize(parsed[i], envs[i].screen) for i in live]
        feats, mask = _pad([f for _, f in cands])
        logp = policy(feats, mask)
        idx = logp.argmax(-1) if greedy else torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1)
        for j, i in enumerate(live):
            k = int(idx[j])
            action = cands[j][0][k]
            before, state = envs[i].screen, envs[i].state
            _, reward, _, info = envs[i].step(action)
            episodes[i].steps.append(Step(cands[j][1], k, action, before, info["screen"], dist[i], info["distance"],
                                          cands[j][0], state))
            dist[i] = info["distance"]
            episodes[i].success = reward > 0


def judge_step(instruction: dict, before: str, action: str, after: str, seen=()) -> bool:
    """The World State Model over text: was this step right? It reads the instruction, the screen before,
    the action, the screen after and the screens the trajectory showed earlier (`seen`), never the app state.
    A step that changes the screen back to one already seen is redundant (wrong); a commit changes nothing
    on the screen, so it is judged by whether the drafts it commits match the instruction."""
    if after != before and after in seen:
        return False
    hb, wb = S.parse_screen(before)
    ha, wa = S.parse_screen(after)
    target = instruction["page"]
    parsed = S.parse_action(action)
    if parsed is None or not 1 <= parsed[1] <= len(wb):
        return False
    widget = wb[parsed[1] - 1]
    if hb != ha:        # navigation: onto the target page, or home from another page
        return ha.endswith(" / " + target) or (" / " not in ha and not hb.endswith(" / " + target))
    if widget[1] == "button":
        if widget[2].lower() not in instruction["words"]:
            return False
        if any(k == "field" for _, k, _, _ in wb):      # commit: every named field's draft is the wanted word
            return all(v == instruction["set"].get(lbl, v) for _, k, lbl, v in wb if k == "field")
        gone = [x for x in wb if x[1] == "item" and x[2] not in {y[2] for y in wa}]
        return bool(gone) and all(x[2].lower() in instruction["words"] for x in gone)   # remove: a named item went away
    if before == after:  # a no-op
        return False
    kept = {y[2] for y in wa}
    for x in wb:         # an item went away: it must be named
        if x[2] not in kept and x[2].lower() not in instruction["words"]:
            return False
    for x, y in zip(wb, wa):
        if x == y:
            continue
        _, kind, label, value = y
        if kind == "toggle" and not ((value and label in instruction["on"]) or (not value and label in instruction["off"])):
            return False
        if kind == "field" and instruction["set"].get(label) != value:
            return False
        if kind == "item" and value and label.lower() not in instruction["words"]:
            return False
    return True


def judge_episode(episode) -> list:
    """The judge's label of every step of an episode, each step judged with the screens seen before it."""
    instruction = parse_instruction(episode.task.meta["instruction"])
    seen, labels = set(), []
    for s in episode.steps:
        seen.add(s.before)
        labels.append(judge_step(instruction, s.before, s.action, s.after, seen))
    return labels


def _logp_of(policy, steps):
    feats, mask = _pad([s.feats for s in steps])
    return policy(feats, mask)


def outcome_loss(policy, episodes, group: int):
    """Outcome-only GRPO over consecutive groups of `group` episodes of one task."""
    if not episodes or len(episodes) % group:
        raise ValueError(f"outcome_loss: {len(episodes)} episodes are not whole groups of {group}")
    rewards = torch.tensor([float(e.success) for e in episodes]).view(-1, group)
    # A_i = (R_i - mean_j R_j) / (std_j R_j + eps)
    adv = ((rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)).flatten()
    steps = [s for e in episodes for s in e.steps]
    # L_out = -(1/G) sum_i (A_i / T_i) sum_t log pi(a_it | s_it)
    weights = torch.tensor([float(adv[i]) / len(e.steps) for i, e in enumerate(episodes) for _ in e.steps])
    logp = _logp_of(policy, steps)
    chosen = logp[torch.arange(len(steps)), torch.tensor([s.index for s in steps])]
    return -(weights * chosen).sum() / len(episodes)


def step_grpo_loss(policy, steps, samples: int, generator=None):
    """SEAgent's GRPO on judged-right steps: the judged action is the answer of a K-sample group."""
    if samples < 2:
        raise ValueError(f"step_grpo_loss: samples must be >= 2 (a group); got {samples}")
    if not steps:
        return torch.zeros(())
    logp = _logp_of(policy, steps)
    with torch.no_grad():
        draws = torch.multinomial(logp.exp(), samples, replacement=True, generator=generator)      # a_k ~ pi(.|s_t)
        # r_k = [a_k == a_t];  A_k = (r_k - mean r) / (std r + eps)
        r = (draws == torch.tensor([s.index for s in steps])[:, None]).float()
        adv = (r - r.mean(1, keepdim=True)) / (r.std(1, keepdim=True) + 1e-4)
    # L_GRPO = -E_t (1/K) sum_k A_k log pi(a_k | s_t)
    return -(adv * logp.gather(1, draws)).mean()


def failure_imitation_loss(policy, steps):
    """SEAgent's adversarial imitation of failure actions: push pi away from the judged-wrong action."""
    if not steps:
        return torch.zeros(())
    logp = _logp_of(policy, steps)
    p = logp[torch.arange(len(steps)), torch.tensor([s.index for s in steps])].exp()
    # L_AI = -E_t log(1 - pi(a_t | s_t))
    return -torch.log1p(-p.clamp(max=1 - 1e-6)).mean()


def family(task) -> tuple:
    """A task family for EvoCUA's boundary: (app, difficulty)."""
    return (task.category, task.difficulty)


def boundary_pick(tasks, stats: dict, k: int) -> list:
    """EvoCUA's capability boundary: the k candidate tasks whose family's pass rate
    p = (s + 1) / (n + 2) (stats[family] = (s, n); unseen: (0, 0)) has the largest p (1 - p);
    ties keep the earlier candidate; returned in candidate order."""
    if not 0 <= k <= len(tasks):
        raise ValueError(f"boundary_pick: k must be in 0..{len(tasks)}; got {k}")

    def score(task):
        s, n = stats.get(family(task), (0, 0))
        p = (s + 1) / (n + 2)
        return p * (1 - p)

    order = sorted(range(len(tasks)), key=lambda i: (-score(tasks[i]), i))
    return [tasks[i] for i in sorted(order[:k])]


@torch.no_grad()
def corrections(policy, episodes, judge=None):
    """EvoCUA's learning from failures: in each failed episode, the first step the judge calls wrong; from the
    app state before it (a sandbox replay) the candidate actions are tried in the order of pi, and the first one
    the judge calls right is the correction. -> ([(step, corrected index)], sandbox steps spent)."""
    judge = judge or judge_step
    out, spent = [], 0
    for e in episodes:
        if e.success:
            continue
        instr = parse_instruction(e.task.meta["instruction"])
        seen = set()
        for s in e.steps:
            seen.add(s.before)
            if judge(instr, s.before, s.action, s.after, seen):
                continue
            logp = policy(s.feats[None], torch.ones(1, s.feats.shape[0], dtype=torch.bool))[0]
            for k in logp.argsort(descending=True, stable=True).tolist():
                new, _ = S.transition(s.state, s.actions[k])
                spent += 1
                if judge(instr, s.before, s.actions[k], S.render(new), seen):
                    out.append((s, k))
                    break
            break
    return out, spent


def correction_loss(policy, pairs):
    """Supervised learning on the corrected actions: L_corr = -log pi(a+ | s_t*)."""
    if not pairs:
        return torch.zeros(())
    logp = _logp_of(policy, [s for s, _ in pairs])
    return -logp[torch.arange(len(pairs)), torch.tensor([k for _, k in pairs])].mean()
