"""22 · Value-aware memory: a frozen agent improves by learning which memories help: the mechanism that notebooks/22_value_aware_memory.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import math
import random
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
import numpy as np


__all__ = ["Entry", "Candidate", "Memory", "FamilyBandit", "ngram_embedding", "zscore"]


def ngram_embedding(text: str, dim: int = 256, n: Sequence[int] = (2, 3)) -> np.ndarray:
    """L2-normalised counts of the character n-grams of ``text`` hashed (crc32) into ``dim`` bins."""
    if not isinstance(text, str):
        raise TypeError(f"ngram_embedding needs a str; got {type(text).__name__}")
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive int; got {dim!r}")
    v = np.zeros(dim, dtype=np.float64)
    padded = f" {text} "
    for size in n:
        for i in range(len(padded) - size + 1):
            v[zlib.crc32(padded[i:i + size].encode()) % dim] += 1.0
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


def zscore(x) -> np.ndarray:
    """(x - mean) / std over the given values; all zeros when the std is 0 (or one value)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x
    std = x.std()
    return (x - x.mean()) / std if std > 1e-12 else np.zeros_like(x)


@dataclass
class Entry:
    key: np.ndarray
    content: Any
    q: float
    count: int = 1
    uses: int = 0
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Candidate:
    """A retrieved entry: its index in the memory, similarity to the query, Q and ranking score."""
    index: int
    sim: float
    q: float
    score: float


class Memory:
    """Episodic memory with learned utilities; see the module docstring (notebook 22)."""

    def __init__(self, dim: int, q_init: float = 0.5, merge_threshold: float = 0.95):
        if not isinstance(dim, int) or isinstance(dim, bool) or dim < 1:
            raise ValueError(f"dim must be a positive int; got {dim!r}")
        if not np.isfinite(q_init):
            raise ValueError(f"q_init must be finite; got {q_init!r}")
        if not 0 < merge_threshold <= 1:
            raise ValueError(f"merge_threshold must be in (0, 1]; got {merge_threshold!r}")
        self.dim, self.q_init, self.merge_threshold = dim, float(q_init), float(merge_threshold)
        self.entries: list[Entry] = []
        self._keys = np.zeros((0, dim))

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def q(self) -> np.ndarray:
        return np.array([e.q for e in self.entries])

    # -- keys
    def _key(self, key) -> np.ndarray:
        k = np.asarray(key, dtype=np.float64).reshape(-1)
        if k.shape != (self.dim,):
            raise ValueError(f"key must have {self.dim} values; got shape {np.shape(key)}")
        if not np.all(np.isfinite(k)):
            raise ValueError("key must be finite")
        norm = np.linalg.norm(k)
        if norm == 0:
            raise ValueError("key must not be all zeros")
        return k / norm

    def similarity(self, query) -> np.ndarray:
        """Cosine similarity of the query to every entry's key."""
        return self._keys @ self._key(query)

    # -- writing
    def write(self, key, content, q: float | None = None, merge: bool = True, **meta) -> int:
        """Add an entry (Q = ``q`` or ``q_init``) or merge it into a near-identical one with the
        same content; returns the entry's index."""
        k = self._key(key)
        if q is not None and not np.isfinite(q):
            raise ValueError(f"q must be finite; got {q!r}")
        if merge and self.entries:
            sims = self._keys @ k
            for i in np.argsort(-sims):
                if sims[i] < self.merge_threshold:
                    break
                e = self.entries[i]
                if e.content == content:
                    e.count += 1
                    merged = e.key * (e.count - 1) + k          # running mean of the keys
                    e.key = merged / np.linalg.norm(merged)
                    self._keys[i] = e.key
                    e.meta.update(meta)
                    return int(i)
        self.entries.append(Entry(k, content, self.q_init if q is None else float(q), meta=dict(meta)))
        self._keys = np.vstack([self._keys, k[None]])
        return len(self.entries) - 1

    # -- reading
    def _phase_a(self, query, k1: int, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        if not isinstance(k1, int) or k1 < 1:
            raise ValueError(f"k1 must be a positive int; got {k1!r}")
        if not -1 <= threshold <= 1:
            raise ValueError(f"threshold must be in [-1, 1]; got {threshold!r}")
        sims = self.similarity(query)
        order = np.argsort(-sims, kind="stable")
        order = order[sims[order] >= threshold][:k1]
        return order, sims[order]

    def retrieve(self, query, k: int = 1, threshold: float = -1.0) -> list[Candidate]:
        """The top ``k`` entries by similarity (at least ``threshold``); score = similarity."""
        idx, sims = self._phase_a(query, k, threshold)
        return [Candidate(int(i), float(s), self.entries[i].q, float(s)) for i, s in zip(idx, sims)]

    def two_phase(self, query, k1: int = 10, k2: int = 5, threshold: float = 0.5,
                  lam: float = 0.5) -> list[Candidate]:
        """MemRL: top ``k1`` with sim >= threshold, ranked by (1-lam) z(sim) + lam z(Q), top ``k2``."""
        if not isinstance(k2, int) or k2 < 1:
            raise ValueError(f"k2 must be a positive int; got {k2!r}")
        if not 0 <= lam <= 1:
            raise ValueError(f"lam must be in [0, 1]; got {lam!r}")
        idx, sims = self._phase_a(query, k1, threshold)
        if len(idx) == 0:
            return []
        qs = np.array([self.entries[i].q for i in idx])
        score = (1 - lam) * zscore(sims) + lam * zscore(qs)
        order = np.argsort(-score, kind="stable")[:k2]
        return [Candidate(int(idx[j]), float(sims[j]), float(qs[j]), float(score[j])) for j in order]

    def select(self, query, scorer: Callable[[np.ndarray, list[Candidate]], Sequence[float]],
               k1: int = 10, threshold: float = 0.5, k: int = 1) -> list[Candidate]:
        """A learned selector over the phase-A candidates: ``scorer(query, candidates)`` returns one
        score per candidate (e.g. AgentFly's P(case helps | task, case)); the top ``k`` are returned."""
        idx, sims = self._phase_a(query, k1, threshold)
        if len(idx) == 0:
            return []
        cands = [Candidate(int(i), float(s), self.entries[i].q, float(s)) for i, s in zip(idx, sims)]
        scores = np.asarray(scorer(self._key(query), cands), dtype=np.float64).reshape(-1)
        if scores.shape != (len(cands),) or not np.all(np.isfinite(scores)):
            raise ValueError(f"scorer must return {len(cands)} finite scores; got shape {scores.shape}")
        order = np.argsort(-scores, kind="stable")[:k]
        return [Candidate(c.index, c.sim, c.q, float(scores[j])) for j, c in ((j, cands[j]) for j in order)]

    # -- learning
    def update(self, indices, reward: float, alpha: float = 0.3) -> list[float]:
        """Q <- Q + alpha (r - Q) for each used entry; returns the new Q values."""
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1]; got {alpha!r}")
        if not np.isfinite(reward):
            raise ValueError(f"reward must be finite; got {reward!r}")
        if isinstance(indices, (int, np.integer)):
            indices = [indices]
        out = []
        for i in indices:
            if not isinstance(i, (int, np.integer)) or not 0 <= i < len(self.entries):
                raise IndexError(f"no memory entry {i!r} (memory has {len(self.entries)})")
            e = self.entries[i]
            e.q += alpha * (float(reward) - e.q)
            e.uses += 1
            out.append(e.q)
        return out


class FamilyBandit:
    """One Bernoulli bandit per family over the same ``arms`` (notebook 22's memoryless baseline).

    ``rule="thompson"``: draw p_a ~ Beta(1 + successes_a, 1 + failures_a) and play the argmax (no
    knob to tune). ``rule="ucb"``: UCB1, every arm once in order, then the argmax of
    mean_a + c sqrt(ln n / n_a). ``select(family, rng)`` picks an arm, ``update(family, arm, r)``
    records a reward in [0, 1]; families are any hashable values and start untried."""

    RULES = ("thompson", "ucb")

    def __init__(self, arms: Sequence, rule: str = "thompson", c: float = math.sqrt(2)):
        arms = list(arms)
        if not arms or len(set(arms)) != len(arms):
            raise ValueError(f"arms must be a non-empty sequence of distinct values; got {arms!r}")
        if rule not in self.RULES:
            raise ValueError(f"rule must be one of {', '.join(self.RULES)}; got {rule!r}")
        if isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c < 0:
            raise ValueError(f"c must be a finite number >= 0; got {c!r}")
        self.arms, self.rule, self.c = arms, rule, float(c)
        self.pulls: dict = {}      # family -> [pulls per arm]
        self.wins: dict = {}       # family -> [summed reward per arm]

    def _stats(self, family):
        if family not in self.pulls:
            self.pulls[family] = [0] * len(self.arms)
            self.wins[family] = [0.0] * len(self.arms)
        return self.pulls[family], self.wins[family]

    def select(self, family, rng: random.Random):
        """The arm to play for ``family`` (``rng``: a ``random.Random``, for Thompson's draws)."""
        if not isinstance(rng, random.Random):
            raise TypeError(f"rng must be a random.Random; got {type(rng).__name__}")
        pulls, wins = self._stats(family)
        if self.rule == "thompson":
            draws = [rng.betavariate(1.0 + w, 1.0 + n - w) for n, w in zip(pulls, wins)]
            return self.arms[max(range(len(draws)), key=draws.__getitem__)]
        for i, n in enumerate(pulls):
            if n == 0:
                return self.arms[i]
        total = sum(pulls)
        scores = [w / n + self.c * math.sqrt(math.log(total) / n) for n, w in zip(pulls, wins)]
        return self.arms[max(range(len(scores)), key=scores.__getitem__)]

    def update(self, family, arm, reward: float) -> None:
        if arm not in self.arms:
            raise ValueError(f"unknown arm {arm!r}; arms: {self.arms!r}")
        if isinstance(reward, bool) or not isinstance(reward, (int, float, np.floating, np.integer)) \
                or not 0 <= reward <= 1:
            raise ValueError(f"reward must be a number in [0, 1]; got {reward!r}")
        pulls, wins = self._stats(family)
        i = self.arms.index(arm)
        pulls[i] += 1
        wins[i] += float(reward)

    def means(self, family) -> list[float]:
        """Mean reward per arm for ``family`` (NaN for an arm never played)."""
        pulls, wins = self._stats(family)
        return [w / n if n else float("nan") for n, w in zip(pulls, wins)]
