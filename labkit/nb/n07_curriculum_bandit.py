"""07 · Self-Evolving Curriculum: what to practise next, as a non-stationary bandit: the mechanism that notebooks/07_curriculum_bandit.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import math
import random
from collections import defaultdict
from collections.abc import Hashable, Sequence
from labkit.core.checks import check_float, check_int


__all__ = ["Sampler", "Uniform", "Schedule", "SECBandit", "CURRICULA", "make_sampler",
           "boltzmann", "frontier", "mean_abs_advantage", "arm_of"]


CURRICULA = ("uniform", "easy_to_hard", "hard_to_easy", "sec")


UNSAMPLED = ("zero", "keep")


def boltzmann(q: Sequence[float], tau: float) -> list[float]:
    """p_c = exp(Q_c / tau) / sum exp(Q_c' / tau), computed stably (max subtracted first)."""
    tau = check_float("tau", tau, gt=0)
    if not q:
        raise ValueError("boltzmann needs at least one value")
    top = max(q)
    weights = [math.exp((value - top) / tau) for value in q]
    total = sum(weights)
    return [w / total for w in weights]


def frontier(p: float) -> float:
    """2 sqrt(p (1 - p)): the mean |A| of a binary-reward group with success rate p under
    std-normalised GRPO (population std). 0 at p = 0 or 1, largest (1) at p = 1/2."""
    p = check_float("p", p, min=0, max=1)
    return 2.0 * math.sqrt(p * (1.0 - p))


def arm_of(task) -> tuple[str, int]:
    """The arm a `labkit.core.tasks.Task` belongs to: (category, difficulty)."""
    return (task.category, task.difficulty)


def mean_abs_advantage(tasks, advantages, key=arm_of) -> dict:
    """SEC's reward per arm: the mean absolute advantage over the arm's completions.

    ``tasks`` has one entry per completion (``StepResult.tasks``) and ``advantages`` one value per
    completion (``StepResult.advantages``, a tensor or a sequence). Groups whose rewards are all
    equal have A = 0 and pull their arm's reward down: they taught nothing."""
    values = advantages.tolist() if hasattr(advantages, "tolist") else list(advantages)
    tasks = list(tasks)
    if len(tasks) != len(values):
        raise ValueError(f"need one advantage per completion; got {len(tasks)} tasks and {len(values)} advantages")
    sums, counts = defaultdict(float), defaultdict(int)
    for task, value in zip(tasks, values):
        arm = key(task)
        sums[arm] += abs(float(value))
        counts[arm] += 1
    return {arm: sums[arm] / counts[arm] for arm in sums}


class Sampler:
    """Base class: a distribution over ``arms`` that ``sample`` draws from and ``update`` may
    change. Subclasses implement ``probs()`` (and ``update`` when they learn)."""

    name = "sampler"

    def __init__(self, arms):
        if isinstance(arms, (str, bytes)):
            raise ValueError(f"arms must be a list of arms, not a string; use parse_arms({arms!r})")
        try:
            arms = list(arms)
        except TypeError:
            raise ValueError(f"arms must be a list of arms; got {type(arms).__name__}") from None
        if not arms:
            raise ValueError("a curriculum needs a non-empty list of arms, e.g. parse_arms('carry:0-3')")
        for arm in arms:
            if not isinstance(arm, Hashable):
                raise ValueError(f"arms must be hashable (e.g. ('carry', 2)); got {arm!r}")
        if len(set(arms)) != len(arms):
            duplicate = next(a for i, a in enumerate(arms) if a in arms[:i])
            raise ValueError(f"arms must be distinct; {duplicate!r} appears twice")
        self.arms = arms
        self.steps = 0  # sample() calls so far
        self.prob_history: list[list[float]] = []
        self.count_history: list[list[int]] = []

    def probs(self) -> list[float]:
        """The distribution the next ``sample`` call draws from, one value per arm."""
        raise NotImplementedError

    def _draw(self, n: int, rng: random.Random) -> tuple[list, list[float]]:
        """n arms and the distribution they were drawn from."""
        p = self.probs()
        return (rng.choices(self.arms, weights=p, k=n) if n else []), p

    def sample(self, n: int, rng: random.Random) -> list:
        """``n`` arms, one per prompt of the next step, drawn with ``rng`` (a random.Random)."""
        n = check_int("n", n, min=0)
        if not isinstance(rng, random.Random):
            raise ValueError(f"rng must be a random.Random; got {type(rng).__name__}")
        chosen, p = self._draw(n, rng)
        self.prob_history.append(list(p))
        self.count_history.append([chosen.count(arm) for arm in self.arms])
        self.steps += 1
        return chosen

    def _check_rewards(self, arm_rewards) -> dict:
        if not isinstance(arm_rewards, dict):
            raise ValueError(f"arm_rewards must be a dict arm -> reward; got {type(arm_rewards).__name__}")
        for arm, value in arm_rewards.items():
            if arm not in self.arms:
                raise ValueError(f"unknown arm {arm!r} in arm_rewards; arms: {self.arms}")
            check_float(f"reward of arm {arm!r}", value)
        return {arm: float(value) for arm, value in arm_rewards.items()}

    def update(self, arm_rewards: dict) -> None:
        """Tell the sampler each drawn arm's reward for the last step (a fixed curriculum only
        checks it)."""
        self._check_rewards(arm_rewards)

    def __repr__(self):
        return f"{type(self).__name__}({len(self.arms)} arms, {self.steps} steps)"


class Uniform(Sampler):
    """Every prompt's arm uniformly at random: the usual baseline."""

    name = "uniform"

    def probs(self) -> list[float]:
        return [1.0 / len(self.arms)] * len(self.arms)


class Schedule(Sampler):
    """A fixed curriculum: the arms one after another, each for an equal share of the run.

    It is what sorting the training set by difficulty does: prompt j of step t (n per step) is
    position i = t n + j of a list of ``total_steps * n`` prompts, and comes from the
    ``floor(K i / (total_steps n))``-th of the K arms in visiting order. Steps past ``total_steps``
    stay on the last one. The visiting order is the arms as given (easiest first: easy -> hard),
    or reversed with ``reverse=True`` (hard -> easy); ``arms`` and the histories keep the given
    order either way, so curricula plot alike."""

    name = "schedule"

    def __init__(self, arms, total_steps: int, reverse: bool = False, name: str | None = None):
        super().__init__(arms)
        self.total_steps = check_int("total_steps", total_steps, min=1)
        if not isinstance(reverse, bool):
            raise ValueError(f"reverse must be True or False; got {reverse!r}")
        self.order = list(range(len(self.arms)))[::-1] if reverse else list(range(len(self.arms)))
        if name is not None:
            self.name = name

    def _index(self, step: int, j: int, n: int) -> int:
        """Index in ``arms`` of prompt j of step ``step`` (n prompts per step)."""
        k = len(self.arms)
        return self.order[min(k - 1, (k * (step * n + j)) // (self.total_steps * n))]

    def probs(self, n: int = 1) -> list[float]:
        """The share of each arm in the next step's batch of ``n`` prompts."""
        shares = [0.0] * len(self.arms)
        for j in range(n):
            shares[self._index(self.steps, j, n)] += 1.0 / n
        return shares

    def _draw(self, n: int, rng: random.Random) -> tuple[list, list[float]]:
        return [self.arms[self._index(self.steps, j, n)] for j in range(n)], self.probs(max(n, 1))


class SECBandit(Sampler):
    r"""Self-Evolving Curriculum (paper ``sec``; notebook 07): a non-stationary bandit over arms.

    Sampling: each prompt's arm from p(c) = softmax(Q / tau).
    Update after a step with rewards r_c (``mean_abs_advantage``):
    Q_c <- alpha r_c + (1 - alpha) Q_c for the drawn arms, and for the others
    Q_c <- (1 - alpha) Q_c (``unsampled="zero"``, as the authors' code does) or unchanged
    (``unsampled="keep"``)."""

    name = "sec"

    def __init__(self, arms, alpha: float = 0.5, tau: float = 1.0, q0: float = 0.0,
                 unsampled: str = "zero"):
        super().__init__(arms)
        self.alpha = check_float("alpha", check_float("alpha", alpha, gt=0), max=1)  # "> 0" named first
        self.tau = check_float("tau", tau, gt=0)
        q0 = check_float("q0", q0)
        if unsampled not in UNSAMPLED:
            raise ValueError(f"unsampled must be one of {', '.join(UNSAMPLED)}; got {unsampled!r}")
        self.unsampled = unsampled
        self.q = [q0] * len(self.arms)
        self.q_history: list[list[float]] = [list(self.q)]
        self.reward_history: list[dict] = []

    def probs(self) -> list[float]:
        return boltzmann(self.q, self.tau)

    def update(self, arm_rewards: dict) -> None:
        rewards = self._check_rewards(arm_rewards)
        for i, arm in enumerate(self.arms):
            if arm in rewards:
                r = rewards[arm]
            elif self.unsampled == "zero":
                r = 0.0
            else:
                continue
            self.q[i] = self.alpha * r + (1.0 - self.alpha) * self.q[i]  # TD(0)
        self.q_history.append(list(self.q))
        self.reward_history.append(rewards)

    def q_of(self) -> dict:
        """Q per arm, as a dict."""
        return dict(zip(self.arms, self.q))


def make_sampler(name: str, arms, total_steps: int | None = None, **kwargs) -> Sampler:
    """A curriculum by name: ``uniform``, ``easy_to_hard`` (arms as given, easiest first),
    ``hard_to_easy`` (the reverse), or ``sec`` (kwargs: alpha, tau, q0, unsampled).
    The schedules need ``total_steps``."""
    if name not in CURRICULA:
        raise ValueError(f"unknown curriculum {name!r}; accepted: {', '.join(CURRICULA)}")
    if name == "sec":
        return SECBandit(arms, **kwargs)
    if kwargs:
        raise ValueError(f"curriculum {name!r} takes no options; got {', '.join(sorted(kwargs))}")
    if name == "uniform":
        return Uniform(arms)
    if total_steps is None:
        raise ValueError(f"curriculum {name!r} needs total_steps (the length of the run)")
    return Schedule(arms, total_steps, reverse=name == "hard_to_easy", name=name)
