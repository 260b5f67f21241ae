"""23 · Experience distillation: scored principles and evolving memory skills: the mechanism that notebooks/23_experience_distillation.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import math
from dataclasses import dataclass
import numpy as np
import torch
from torch import nn

__all__ = ["Family", "Task", "make_families", "make_tasks", "CaseMemory", "Principle", "PrincipleBank",
           "laplace_score", "distill", "SkillController", "designer_propose", "FEATURE_SLOT"]

FEATURE_SLOT = 4   # slots 0-3: the family's surface tokens; 4: its feature; 5-6: per-task noise


@dataclass(frozen=True)
class Family:
    """A task family: its surface tokens (slots 0-3), its feature token and its solving action."""
    index: int
    surface: tuple
    feature: int
    action: int


@dataclass(frozen=True)
class Task:
    tokens: tuple          # one token per slot (7 slots)
    family: int
    answer: int            # the action that solves it


def make_families(n, rng, *, surface_vocab=4, features=6, actions=4, shared=True, rule=None,
                  start=0):
    """``n`` families; with ``shared`` the action is ``rule[feature]`` (one hidden rule for every family, the
    transferable feature); without it each family's action is drawn at random (the control: no shared feature)."""
    if n < 1 or surface_vocab < 1 or features < 1 or actions < 2:
        raise ValueError(f"make_families: need n >= 1, surface_vocab >= 1, features >= 1, actions >= 2; "
                         f"got {n}, {surface_vocab}, {features}, {actions}")
    if shared and (rule is None or len(rule) != features):
        raise ValueError(f"make_families: a shared world needs rule, one action per feature ({features})")
    out = []
    for i in range(n):
        surface = tuple(int(rng.integers(surface_vocab)) for _ in range(4))
        feature = int(rng.integers(features))
        action = int(rule[feature]) if shared else int(rng.integers(actions))
        out.append(Family(start + i, surface, feature, action))
    return out


def make_tasks(family, n, rng, noise_vocab=20):
    """``n`` tasks of ``family``: its surface and feature tokens, two fresh noise tokens each."""
    return [Task(family.surface + (family.feature,) + tuple(int(rng.integers(noise_vocab)) for _ in range(2)),
                 family.index, family.action) for _ in range(n)]


class CaseMemory:
    """Raw cases: every trajectory stored as (tokens, family, solving action), nothing abstracted.

    ``vote(tokens, slots)`` is similarity retrieval on the chosen slots (similarity = how many of them
    match), the ``k`` most similar cases with similarity > 0 (the oldest first among equals), and a vote
    of their actions weighted by similarity."""

    def __init__(self, slots=7):
        self.slots = slots
        self.tokens = np.zeros((0, slots), dtype=np.int64)
        self.actions = np.zeros(0, dtype=np.int64)
        self.families = np.zeros(0, dtype=np.int64)

    def __len__(self):
        return len(self.actions)

    def add(self, tokens, family, action):
        t = np.asarray(tokens, dtype=np.int64).reshape(1, -1)
        if t.shape[1] != self.slots:
            raise ValueError(f"CaseMemory.add: tokens must have {self.slots} slots; got {t.shape[1]}")
        self.tokens = np.concatenate([self.tokens, t])
        self.actions = np.append(self.actions, int(action))
        self.families = np.append(self.families, int(family))

    def vote(self, tokens, slots=None, k=5, upto=None, n_actions=4):
        """(action, confidence, support): the weighted-vote winner (None if no case matches), its share
        of the vote, and how many cases voted. ``upto``: only the first ``upto`` cases (a past memory)."""
        if k < 1:
            raise ValueError(f"CaseMemory.vote: k must be >= 1; got {k}")
        slots = list(range(self.slots)) if slots is None else list(slots)
        n = len(self) if upto is None else min(int(upto), len(self))
        if n == 0 or not slots:
            return None, 0.0, 0
        q = np.asarray(tokens, dtype=np.int64)
        sim = (self.tokens[:n][:, slots] == q[slots]).sum(1)
        order = np.argsort(-sim, kind="stable")[:k]
        order = order[sim[order] > 0]
        if order.size == 0:
            return None, 0.0, 0
        weights = np.bincount(self.actions[:n][order], weights=sim[order].astype(float), minlength=n_actions)
        best = int(np.argmax(weights))
        return best, float(weights[best] / weights.sum()), int(order.size)


def laplace_score(successes, uses):
    """EvolveR's principle score, the Laplace-smoothed success rate (s + 1) / (u + 2)."""
    if uses < 0 or successes < 0 or successes > uses:
        raise ValueError(f"laplace_score: need 0 <= successes <= uses; got {successes}, {uses}")
    return (successes + 1) / (uses + 2)


@dataclass
class Principle:
    """A distilled principle: "when slot ``slot`` shows ``token``, do ``action``", with its use record."""
    slot: int
    token: int
    action: int
    uses: int = 0
    successes: int = 0

    @property
    def score(self):
        return laplace_score(self.successes, self.uses)


def distill(trajectories, min_families=2, min_consistency=0.8, n_actions=4):
    """Offline self-distillation: abstract (slot, token) -> action principles from solved trajectories.

    ``trajectories``: (tokens, family, solving action). A principle is proposed for a (slot, token) when
    one action solved at least ``min_consistency`` of the trajectories that show it (consistent) and did
    so in at least ``min_families`` different families (abstract: it is not one family's surface form).
    Returns [(slot, token, action)] sorted."""
    if min_families < 1 or not 0 < min_consistency <= 1:
        raise ValueError(f"distill: need min_families >= 1 and 0 < min_consistency <= 1; got "
                         f"{min_families}, {min_consistency}")
    counts, fams = {}, {}
    for tokens, family, action in trajectories:
        for slot, token in enumerate(tokens):
            key = (slot, int(token))
            counts.setdefault(key, np.zeros(n_actions, dtype=np.int64))[action] += 1
            fams.setdefault((key, int(action)), set()).add(int(family))
    out = []
    for key, c in counts.items():
        a = int(np.argmax(c))
        # consistency: P(action | slot shows token) >= min_consistency; abstraction: >= min_families families
        if c[a] / c.sum() >= min_consistency and len(fams[(key, a)]) >= min_families:
            out.append((key[0], key[1], a))
    return sorted(out)


class PrincipleBank:
    """EvolveR's experience base of principles: merge on add, retrieve by match then score, update by
    use and success, clean the ones whose score fell under a threshold."""

    def __init__(self):
        self.principles: dict = {}

    def __len__(self):
        return len(self.principles)

    def add(self, keys):
        """Add (slot, token, action) principles; one already there is kept with its record (merged)."""
        new = 0
        for slot, token, action in keys:
            if (slot, token, action) not in self.principles:
                self.principles[(slot, token, action)] = Principle(slot, token, action)
                new += 1
        return new

    def retrieve(self, tokens, k=3):
        """The ``k`` principles whose (slot, token) the task shows, highest score first (oldest first among equals)."""
        if k < 1:
            raise ValueError(f"PrincipleBank.retrieve: k must be >= 1; got {k}")
        hits = [p for p in self.principles.values() if tokens[p.slot] == p.token]
        return sorted(hits, key=lambda p: -p.score)[:k]

    def update(self, principles, success):
        """u <- u + 1 and s <- s + success for each principle given; returns their new scores."""
        for p in principles:
            p.uses += 1
            p.successes += int(bool(success))
        return [p.score for p in principles]

    def clean(self, threshold=0.3):
        """Delete the principles with score < ``threshold``; returns how many went."""
        gone = [key for key, p in self.principles.items() if p.score < threshold]
        for key in gone:
            del self.principles[key]
        return len(gone)


class SkillController(nn.Module):
    """MemSkill's controller, small: a softmax over the skill set, logit_k = b_k + w * conf_k, where
    conf_k is skill k's vote share on this task (0 when its retrieval finds nothing). Trained by
    REINFORCE with a running baseline and an entropy bonus; ``add_skill`` grows the set."""

    def __init__(self, n_skills, lr=0.3, entropy_coef=0.01, baseline_decay=0.9):
        super().__init__()
        if n_skills < 1:
            raise ValueError(f"SkillController: n_skills must be >= 1; got {n_skills}")
        self.b = nn.Parameter(torch.zeros(n_skills))
        self.w = nn.Parameter(torch.zeros(()))
        self.lr, self.entropy_coef, self.decay, self.baseline = lr, entropy_coef, baseline_decay, 0.0

    @property
    def n_skills(self):
        return self.b.numel()

    def logits(self, conf):
        conf = torch.as_tensor(conf, dtype=torch.float32)
        if conf.shape != (self.n_skills,):
            raise ValueError(f"SkillController: conf must have {self.n_skills} values; got {tuple(conf.shape)}")
        return self.b + self.w * conf

    def add_skill(self, p_min=0.3):
        """A new skill whose initial probability (at conf 0) is ``p_min`` (MemSkill's new-action bias)."""
        if not 0 < p_min < 1:
            raise ValueError(f"add_skill: p_min must be in (0, 1); got {p_min}")
        with torch.no_grad():
            b_new = math.log(p_min / (1 - p_min)) + torch.logsumexp(self.b, 0)
            self.b = nn.Parameter(torch.cat([self.b.detach(), b_new.reshape(1)]))

    def act(self, conf, generator=None, greedy=False):
        logits = self.logits(conf)
        if greedy:
            return int(torch.argmax(logits))
        return int(torch.multinomial(logits.softmax(0), 1, generator=generator))

    def update(self, conf, skill, reward):
        """One REINFORCE step: grad of (r - baseline) log pi(skill) + entropy_coef * H(pi)."""
        logp = self.logits(conf).log_softmax(0)
        advantage = float(reward) - self.baseline
        objective = advantage * logp[skill] - self.entropy_coef * (logp.exp() * logp).sum()
        self.zero_grad()
        objective.backward()
        with torch.no_grad():
            for p in (self.b, self.w):
                p += self.lr * p.grad
        self.baseline = self.decay * self.baseline + (1 - self.decay) * float(reward)
        return advantage


def designer_propose(failures, memory, candidates, k=5, n_actions=4):
    """MemSkill's designer, small: review the hard cases and propose the one new skill that fixes most.

    ``failures``: (tokens, answer, upto) for tasks the agent failed, ``upto`` = the memory size when it
    met them; ``candidates``: {name: slots} of skills not yet in the set. Each candidate is replayed on
    every hard case with the memory of that moment; the best is proposed when it fixes more than a guess
    (1 / n_actions). Returns (name or None, {name: fix rate})."""
    if not failures or not candidates:
        return None, {}
    rates = {}
    for name, slots in candidates.items():
        fixed = [memory.vote(t, slots, k=k, upto=upto, n_actions=n_actions)[0] == answer
                 for t, answer, upto in failures]
        rates[name] = float(np.mean(fixed))
    best = max(rates, key=lambda n: rates[n])       # the first among equals
    return (best if rates[best] > 1 / n_actions else None), rates
