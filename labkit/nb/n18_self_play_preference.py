"""18 · Self-play preference optimisation: preferences as a game, not a reward: the mechanism that notebooks/18_self_play_preference.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import math
import re
import time
from collections import Counter
from typing import Callable, Sequence
import torch
import torch.nn.functional as F
from labkit.core.policy import Policy
from labkit.core.grpo import RLConfig, grpo_advantages, masked_mean, ppo_clip_loss, subset, update
from labkit.core.sampling import Rollout, completion_logprobs, rollout
from labkit.core.tasks import Task


STYLES = ("plain", "paren", "hash")


OTHER = "other"


_STYLE_PATTERNS = {"plain": re.compile(r"-?\d+"), "paren": re.compile(r"\((-?\d+)\)"),
                   "hash": re.compile(r"#(-?\d+)")}


WORST_QUALITY = -10.0  # quality of an unreadable answer: below any readable one that is off by < e^10


def style_of(text: str) -> str:
    """The surface form of `text`: one of STYLES, or "other"."""
    if not isinstance(text, str):
        raise ValueError(f"style_of needs a string; got {type(text).__name__}")
    for name, pattern in _STYLE_PATTERNS.items():
        if pattern.fullmatch(text):
            return name
    return OTHER


def answer_value(text: str) -> int | None:
    """The integer an answer states in any of the three styles, or None."""
    for pattern in _STYLE_PATTERNS.values():
        match = pattern.fullmatch(text)
        if match:
            return int(match.group(match.lastindex or 0))
    return None


def quality(task: Task, text: str) -> float:
    """q(y) = -log(1 + |value(y) - answer|), floored at WORST_QUALITY (also for unreadable answers)."""
    value = answer_value(text)
    if value is None:
        return WORST_QUALITY
    return max(-math.log1p(abs(value - int(task.answer))), WORST_QUALITY)


def style_mix(texts: Sequence[str]) -> dict[str, float]:
    """Share of each style (and "other") among `texts`."""
    if not texts:
        raise ValueError("style_mix needs at least one completion")
    counts = Counter(style_of(t) for t in texts)
    return {name: counts[name] / len(texts) for name in STYLES + (OTHER,)}


def total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    """TV(p, q) = 1/2 sum_k |p_k - q_k| over the union of keys (a missing key has mass 0)."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))

# ---------------------------------------------------------------------------------------------
# Oracles


class BradleyTerryOracle:
    """Noisy Bradley-Terry preferences on answer quality: P(y > y') = sigmoid(beta (q(y) - q(y')))."""

    def __init__(self, beta: float = 2.0):
        if not (isinstance(beta, (int, float)) and beta > 0 and math.isfinite(beta)):
            raise ValueError(f"BradleyTerryOracle beta must be a finite number > 0; got {beta!r}")
        self.beta = float(beta)

    def prob(self, task: Task, y: str, y_other: str) -> float:
        return 1.0 / (1.0 + math.exp(-self.beta * (quality(task, y) - quality(task, y_other))))

    def compare(self, task: Task, y: str, y_other: str, generator: torch.Generator | None = None) -> float:
        """A noisy rater's verdict: 1.0 if y wins, 0.0 if y' wins, drawn with P(y > y')."""
        return float(torch.rand((), generator=generator).item() < self.prob(task, y, y_other))


class CyclicStyleOracle:
    """Majority vote of three raters whose style rankings form a Condorcet cycle.

    rater 1: plain > paren > hash;  rater 2: paren > hash > plain;  rater 3: hash > plain > paren.
    Each pair of styles is decided 2 to 1, so P(plain > paren) = P(paren > hash) = P(hash > plain) = 1.
    Same style: 1/2. "other" is last for every rater. The answer's value plays no part."""

    RATERS = (("plain", "paren", "hash"), ("paren", "hash", "plain"), ("hash", "plain", "paren"))

    def style_prob(self, a: str, b: str) -> float:
        """P(style a > style b) under the majority of the three raters."""
        for s in (a, b):
            if s not in STYLES + (OTHER,):
                raise ValueError(f"unknown style {s!r}; accepted: {', '.join(STYLES + (OTHER,))}")
        if a == b:
            return 0.5
        votes = sum(self._rank(r, a) < self._rank(r, b) for r in self.RATERS)
        return 1.0 if votes >= 2 else 0.0

    @staticmethod
    def _rank(ranking: tuple, style: str) -> int:
        return ranking.index(style) if style in ranking else len(ranking)

    def matrix(self, styles: Sequence[str] = STYLES) -> torch.Tensor:
        """The preference matrix M_ab = P(a > b) over `styles`."""
        return torch.tensor([[self.style_prob(a, b) for b in styles] for a in styles])

    def prob(self, task: Task, y: str, y_other: str) -> float:
        return self.style_prob(style_of(y), style_of(y_other))

    def compare(self, task: Task, y: str, y_other: str, generator: torch.Generator | None = None) -> float:
        """The majority's verdict (ties, i.e. the same style, are a fair coin)."""
        p = self.prob(task, y, y_other)
        return p if p != 0.5 else float(torch.rand((), generator=generator).item() < 0.5)


def minimax_mixture(matrix: torch.Tensor) -> torch.Tensor:
    """The minimax (von Neumann) winner of the symmetric zero-sum game with payoff M - 1/2:
    the mixture x maximising min_b sum_a x_a (M_ab - 1/2), solved as a linear programme.

    M must be square with M + M^T = 1 (a preference matrix). For a cycle a > b > c > a with
    margins P(a>b)=1/2+u, P(b>c)=1/2+v, P(c>a)=1/2+w the answer is (v, w, u) / (u + v + w)."""
    from scipy.optimize import linprog

    m = torch.as_tensor(matrix, dtype=torch.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 1:
        raise ValueError(f"minimax_mixture needs a square preference matrix; got shape {tuple(m.shape)}")
    if not torch.allclose(m + m.T, torch.ones_like(m), atol=1e-9):
        raise ValueError("minimax_mixture needs M_ab + M_ba = 1 for every pair (a preference matrix)")
    n = m.shape[0]
    payoff = (m - 0.5).numpy()
    # variables (x_1..x_n, v): maximise v  s.t.  v <= sum_a x_a payoff[a, b] for every b, sum x = 1, x >= 0
    cost = [0.0] * n + [-1.0]
    a_ub = [[-payoff[a, b] for a in range(n)] + [1.0] for b in range(n)]
    result = linprog(cost, A_ub=a_ub, b_ub=[0.0] * n, A_eq=[[1.0] * n + [0.0]], b_eq=[1.0],
                     bounds=[(0, None)] * n + [(None, None)], method="highs")
    if not result.success:
        raise RuntimeError(f"minimax_mixture: the linear programme failed ({result.message})")
    x = torch.tensor(result.x[:n]).clamp(min=0)
    return (x / x.sum()).float()

# ---------------------------------------------------------------------------------------------
# Counting preference queries (the budget that methods compared in one experiment must share)


class CountingOracle:
    """Wraps an oracle and counts the preference queries asked of it.

    One query is one unordered pair: `prob(task, y, y')` (the probability that y wins) or
    `compare(task, y, y', generator)` (one rater's verdict); P(y' > y) = 1 - P(y > y') comes free.
    A K x K `preference_matrix` therefore costs K (K - 1) / 2 queries (`matrix_queries`)."""

    def __init__(self, oracle):
        if not (callable(getattr(oracle, "prob", None)) and callable(getattr(oracle, "compare", None))):
            raise ValueError(f"CountingOracle needs an oracle with prob() and compare(); got {type(oracle).__name__}")
        if isinstance(oracle, CountingOracle):
            raise ValueError("CountingOracle: the oracle is already counted (wrap the plain oracle once)")
        self.oracle = oracle
        self.queries = 0

    def prob(self, task: Task, y: str, y_other: str) -> float:
        self.queries += 1
        return self.oracle.prob(task, y, y_other)

    def compare(self, task: Task, y: str, y_other: str, generator: torch.Generator | None = None) -> float:
        self.queries += 1
        return self.oracle.compare(task, y, y_other, generator)


def matrix_queries(k: int) -> int:
    """Preference queries of one K x K matrix over K samples: the K (K - 1) / 2 unordered pairs."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"matrix_queries needs an integer K >= 2; got {k!r}")
    return k * (k - 1) // 2


def mean_mix(mixes: Sequence[dict[str, float]]) -> dict[str, float]:
    """The style mix of the average of several iterates: the mean of their mixes, style by style
    (a missing style has share 0)."""
    mixes = list(mixes)
    if not mixes:
        raise ValueError("mean_mix needs at least one mix")
    seen = {k for m in mixes for k in m}
    keys = [k for k in STYLES + (OTHER,) if k in seen] + sorted(seen - set(STYLES + (OTHER,)))
    return {k: sum(m.get(k, 0.0) for m in mixes) / len(mixes) for k in keys}

# ---------------------------------------------------------------------------------------------
# From an oracle to per-sample targets


def preference_matrix(oracle, task: Task, completions: Sequence[str]) -> torch.Tensor:
    """P_ij = P(y_i > y_j | task) for the K completions of one prompt (P_ii = 1/2)."""
    k = len(completions)
    if k < 2:
        raise ValueError(f"preference_matrix needs at least 2 completions; got {k}")
    p = torch.full((k, k), 0.5)
    for i in range(k):
        for j in range(i + 1, k):
            p[i, j] = oracle.prob(task, completions[i], completions[j])
            p[j, i] = 1.0 - p[i, j]
    return p


def win_rate_vs_policy(p: torch.Tensor) -> torch.Tensor:
    """SPPO's estimate P^(y_i > pi_t) = (1/K) sum_j P(y_i > y_j), j over all K samples of pi_t
    (the authors' code includes j = i, which adds 1/(2K))."""
    return p.mean(dim=1)


def win_proportion(p: torch.Tensor) -> torch.Tensor:
    """SPO's reward: the share of the other samples of the group that y_i beats,
    r_i = 1/(K-1) sum_{j != i} P(y_i > y_j)."""
    k = p.shape[0]
    return (p.sum(dim=1) - p.diagonal()) / (k - 1)


def self_play_pairs(oracle, tasks: Sequence[Task], completions: Sequence[str], k: int
                    ) -> tuple[torch.Tensor, list[int], list[int]]:
    """One SPPO iteration's data, as the authors' scripts build it: for each task's K consecutive
    completions, P^(y_i > pi_t) = mean_j P(y_i > y_j) over all K (self included), and the rows of
    the group's best and worst sample by P^ (the first one on ties). A group whose K samples all
    have the same P^ gives no pair (the oracle does not tell them apart).

    Returns (p_hat of every row, winner rows, loser rows); costs len(tasks) * K (K - 1) / 2 queries."""
    if isinstance(k, bool) or not isinstance(k, int) or k < 2:
        raise ValueError(f"self_play_pairs needs an integer K >= 2; got {k!r}")
    if len(tasks) * k != len(completions):
        raise ValueError(f"self_play_pairs needs len(tasks) * K completions; got {len(completions)} for "
                         f"{len(tasks)} tasks and K = {k}")
    p_hat = torch.zeros(len(completions))
    winners, losers = [], []
    for g, task in enumerate(tasks):
        group = win_rate_vs_policy(preference_matrix(oracle, task, completions[g * k:(g + 1) * k]))
        p_hat[g * k:(g + 1) * k] = group
        if group.max() > group.min():
            winners.append(g * k + int(group.argmax()))
            losers.append(g * k + int(group.argmin()))
    return p_hat, winners, losers


def spo_rewards(oracle, task: Task, completions: Sequence[str]) -> list[float]:
    """A group's SPO rewards under `oracle` (the group reward function of `group_reward_step`)."""
    return win_proportion(preference_matrix(oracle, task, completions)).tolist()

# ---------------------------------------------------------------------------------------------
# Sequence-level losses (log-probabilities summed over a completion's tokens)


def sequence_logprob(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """log pi(y | x) = sum_t log pi(y_t | x, y_<t) over the completion tokens: (B, T) -> (B,)."""
    return (logp * mask).sum(-1)


def sppo_loss(logp: torch.Tensor, ref_logp: torch.Tensor, p_hat: torch.Tensor, eta: float) -> torch.Tensor:
    """SPPO (Wu et al., 2024), per sequence, averaged:
    L = ( log(pi_theta(y)/pi_t(y)) - eta (P^(y > pi_t) - 1/2) )^2."""
    if not eta > 0:
        raise ValueError(f"sppo_loss needs eta > 0; got {eta!r}")
    if not logp.shape == ref_logp.shape == p_hat.shape:
        raise ValueError(f"sppo_loss needs equal shapes; got {tuple(logp.shape)}, {tuple(ref_logp.shape)}, "
                         f"{tuple(p_hat.shape)}")
    target = eta * (p_hat - 0.5)
    return ((logp - ref_logp) - target).pow(2).mean()


def dpo_loss(logp_w: torch.Tensor, logp_l: torch.Tensor, ref_w: torch.Tensor, ref_l: torch.Tensor,
             beta: float) -> torch.Tensor:
    """DPO (Rafailov et al., 2023), averaged over pairs:
    L = -log sigmoid( beta [ log(pi(y_w)/pi_ref(y_w)) - log(pi(y_l)/pi_ref(y_l)) ] )."""
    if not beta > 0:
        raise ValueError(f"dpo_loss needs beta > 0; got {beta!r}")
    if not logp_w.shape == logp_l.shape == ref_w.shape == ref_l.shape:
        raise ValueError("dpo_loss needs four tensors of one shape")
    return -F.logsigmoid(beta * ((logp_w - ref_w) - (logp_l - ref_l))).mean()


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Pearson correlation of two 1-d tensors (0.0 when either is constant)."""
    x, y = x.double().flatten(), y.double().flatten()
    if x.numel() != y.numel() or x.numel() < 2:
        raise ValueError(f"pearson needs two tensors of >= 2 equal elements; got {x.numel()} and {y.numel()}")
    x, y = x - x.mean(), y - y.mean()
    denominator = (x.norm() * y.norm()).item()
    return 0.0 if denominator == 0 else float((x @ y).item() / denominator)


def train_on_rows(policy: Policy, optimizer: torch.optim.Optimizer, batch: Rollout, loss_of: Callable,
                  epochs: int, minibatch: int, paired: bool = False, max_grad_norm: float = 1.0,
                  generator: torch.Generator | None = None) -> list[float]:
    """Minimise loss_of(seq_logp, items) over minibatches of `minibatch` items, `epochs` passes.

    Items are the rows of `batch`; with paired=True the batch holds 2N rows where row i and row
    N + i are a pair (winner, loser), an item is a pair and seq_logp is (2b,): the b winners, then
    the b losers. `items` index the batch (paired: the pairs), so the loss can look up targets."""
    if epochs < 1 or minibatch < 1:
        raise ValueError(f"need epochs >= 1 and minibatch >= 1; got {epochs}, {minibatch}")
    if paired and len(batch) % 2:
        raise ValueError(f"a paired batch needs an even number of rows; got {len(batch)}")
    n = len(batch) // 2 if paired else len(batch)
    model = policy.model
    model.train()
    losses = []
    for _ in range(epochs):
        for items in torch.randperm(n, generator=generator).split(minibatch):
            rows = torch.cat([items, items + n]) if paired else items
            part = subset(batch, rows.to(batch.input_ids.device))
            logp = sequence_logprob(completion_logprobs(model, part), part.completion_mask)
            loss = loss_of(logp, items)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
            losses.append(loss.item())
    return losses


@torch.no_grad()
def sequence_logprobs_of(policy: Policy, batch: Rollout, minibatch: int = 256) -> torch.Tensor:
    """log pi(y | x) of every row of `batch` under `policy` (no gradient)."""
    model = policy.model
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(batch), minibatch):
        part = subset(batch, torch.arange(start, min(start + minibatch, len(batch)), device=batch.input_ids.device))
        out.append(sequence_logprob(completion_logprobs(model, part), part.completion_mask).cpu())
    model.train(was_training)
    return torch.cat(out)

# ---------------------------------------------------------------------------------------------
# A scalar Bradley-Terry reward model fitted to pairwise outcomes


class BradleyTerryRewardModel:
    """r(y) = w . phi(y), phi = counts of each printable character of y (a bag of characters),
    fitted by maximum likelihood on P(y_a > y_b) = sigmoid(r(y_a) - r(y_b)) with an L2 penalty.

    A scalar score per completion: whatever it learns, it ranks completions transitively."""

    ALPHABET = "".join(chr(c) for c in range(32, 127))

    def __init__(self, l2: float = 1e-3):
        if not l2 >= 0:
            raise ValueError(f"BradleyTerryRewardModel l2 must be >= 0; got {l2!r}")
        self.l2 = float(l2)
        self.weights = torch.zeros(len(self.ALPHABET))
        self._index = {ch: i for i, ch in enumerate(self.ALPHABET)}

    def features(self, texts: Sequence[str]) -> torch.Tensor:
        phi = torch.zeros(len(texts), len(self.ALPHABET))
        for row, text in enumerate(texts):
            for ch in text:
                if ch in self._index:
                    phi[row, self._index[ch]] += 1.0
        return phi

    def fit(self, winners: Sequence[str], losers: Sequence[str], steps: int = 200) -> "BradleyTerryRewardModel":
        """Maximum likelihood on pairs (winner_i beat loser_i): min -mean log sigmoid(r_w - r_l) + l2 |w|^2."""
        if len(winners) != len(losers) or not winners:
            raise ValueError(f"fit needs equally many winners and losers (>= 1); got {len(winners)}, {len(losers)}")
        diff = self.features(winners) - self.features(losers)
        w = torch.zeros(diff.shape[1], dtype=torch.float64, requires_grad=True)
        diff = diff.double()
        optimizer = torch.optim.LBFGS([w], max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = -F.logsigmoid(diff @ w).mean() + self.l2 * w.pow(2).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        self.weights = w.detach().float()
        return self

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        return self.features(texts) @ self.weights

    def accuracy(self, winners: Sequence[str], losers: Sequence[str]) -> float:
        """Share of pairs the model orders like the rater (ties count half)."""
        d = self(winners) - self(losers)
        return float(((d > 0).float() + 0.5 * (d == 0).float()).mean())


def oracle_pairs(oracle, tasks: Sequence[Task], completions: Sequence[str], group_size: int,
                 generator: torch.Generator | None = None, pairs: str = "adjacent") -> tuple[list[str], list[str]]:
    """Pairwise outcomes for fitting a reward model, each pair compared once by `oracle.compare`;
    returns (winners, losers). Within each group of `group_size` completions of one task:

    pairs="adjacent": (0,1), (2,3), ...: floor(K/2) comparisons per group, each sample used once;
    pairs="all":      every unordered pair (i < j): K (K - 1) / 2 comparisons per group, the queries
                      of the group's preference matrix (`matrix_queries`)."""
    if len(tasks) * group_size != len(completions) or group_size < 2:
        raise ValueError("oracle_pairs needs len(tasks) * group_size completions and group_size >= 2")
    if pairs not in ("adjacent", "all"):
        raise ValueError(f"oracle_pairs: pairs must be 'adjacent' or 'all'; got {pairs!r}")
    if pairs == "all":
        index = [(i, j) for i in range(group_size) for j in range(i + 1, group_size)]
    else:
        index = [(i, i + 1) for i in range(0, group_size - 1, 2)]
    winners, losers = [], []
    for g, task in enumerate(tasks):
        group = completions[g * group_size:(g + 1) * group_size]
        for i, j in index:
            a, b = group[i], group[j]
            first_wins = oracle.compare(task, a, b, generator) == 1.0
            winners.append(a if first_wins else b)
            losers.append(b if first_wins else a)
    return winners, losers

# ---------------------------------------------------------------------------------------------
# A policy-gradient step whose reward of a completion depends on the other completions of its group


def group_reward_step(policy: Policy, optimizer: torch.optim.Optimizer, tasks: list[Task], cfg: RLConfig,
                      group_reward_fn: Callable, advantage_fn: Callable = grpo_advantages,
                      loss_fn: Callable = ppo_clip_loss, ref_model=None,
                      generator: torch.Generator | None = None) -> tuple[dict, Rollout, torch.Tensor]:
    """Like `labkit.core.grpo.grpo_step`, but rewards come per group: group_reward_fn(task, completions) -> K floats
    (SPO: each completion's win proportion against the others). Returns (metrics, batch, rewards)."""
    started = time.perf_counter()
    k = cfg.group_size
    owners = [t for t in tasks for _ in range(k)]
    batch = rollout(policy, [t.prompt for t in owners], cfg.max_new_tokens, cfg.temperature, cfg.top_p, generator)
    rewards = []
    for g, task in enumerate(tasks):
        values = list(group_reward_fn(task, batch.completions[g * k:(g + 1) * k]))
        if len(values) != k:
            raise ValueError(f"group_reward_fn returned {len(values)} rewards for a group of {k}")
        rewards += values
    rewards = torch.tensor(rewards, dtype=torch.float32)
    advantages = advantage_fn(rewards, k).to(batch.logprobs.device)
    metrics = update(policy, optimizer, batch, advantages, cfg, loss_fn, ref_model)
    metrics.update({"reward/mean": rewards.mean().item(),
                    "entropy": masked_mean(batch.entropies, batch.completion_mask).item(),
                    "len/mean": batch.lengths.float().mean().item(),
                    "frac_zero_std": (rewards.view(-1, k).std(dim=1) == 0).float().mean().item(),
                    "time/step": time.perf_counter() - started})
    return metrics, batch, rewards
