"""03 · Polychromic objectives: reward sets of answers that are right *and* different: the mechanism that notebooks/03_polychromic.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import itertools
import math
import random
import time
from dataclasses import dataclass, field
from typing import Callable
import torch
from labkit.core.evaluate import pass_at_k
from labkit.core.policy import Policy
from labkit.core.grpo import RLConfig, masked_mean, ppo_clip_loss, update
from labkit.core.sampling import Rollout, concat_rollouts, rollout
from labkit.core.tasks import Task, verify
from labkit.core.tasks.base import clean_completion
from labkit.core.tasks.countdown import tokenize as countdown_tokens

# ---------------------------------------------------------------------------------------------
# Which completions are "the same answer"


def countdown_key(expression: str) -> str | None:
    """A countdown expression up to the reorderings that do not change the arithmetic.

    The expression is a sum of signed products (no parentheses, * before + and -), so it is
    fixed by the multiset of its + terms and the multiset of its - terms, each term a multiset
    of factors: "3*5+7", "7+5*3" and "5*3+7" share the key "3*5+7"; "6-5" and "2-6+5" (the
    same value) do not. None when the text is not a well-formed expression."""
    text = clean_completion(expression)
    parsed = None if text is None else countdown_tokens(text)
    if parsed is None:
        return None
    numbers, operators = parsed
    terms, sign, factors = [], "+", [numbers[0]]
    for operator, number in zip(operators, numbers[1:]):
        if operator == "*":
            factors.append(number)
        else:
            terms.append((sign, tuple(sorted(factors))))
            sign, factors = operator, [number]
    terms.append((sign, tuple(sorted(factors))))
    plus = sorted(f for s, f in terms if s == "+")
    minus = sorted(f for s, f in terms if s == "-")
    product = lambda f: "*".join(map(str, f))
    return "+".join(map(product, plus)) + "".join("-" + product(f) for f in minus)


def answer_key(task: Task, completion: str) -> str:
    """The class of a completion for the diversity function: countdown expressions up to
    reordering (`countdown_key`), other worlds the verifier's parse; text that does not parse
    is its own class (its stripped text), so two different malformed strings are two classes."""
    if task.world == "countdown":
        key = countdown_key(completion)
    else:
        key = verify(task, completion).parsed
    return key if key is not None else "?" + completion.strip()

# ---------------------------------------------------------------------------------------------
# The set objective and its advantage


def diversity(keys: list) -> float:
    """d(s, tau_1..tau_n) = (number of distinct classes in the set) / n, in [1/n, 1]."""
    if not keys:
        raise ValueError("diversity needs a non-empty set")
    return len(set(keys)) / len(keys)


def polychromic_objective(rewards, keys: list) -> float:
    """f_poly(s, tau_1..tau_n) = (1/n sum_i R(tau_i)) * d(s, tau_1..tau_n)."""
    rewards = [float(r) for r in rewards]
    if len(rewards) != len(keys) or not rewards:
        raise ValueError(f"need one key per reward and a non-empty set; got {len(rewards)} rewards, {len(keys)} keys")
    return sum(rewards) / len(rewards) * diversity(keys)


def set_indices(n_trajectories: int, set_size: int, max_sets: int | None = None,
                rng: random.Random | None = None) -> list[tuple[int, ...]]:
    """The M sets formed from N trajectories of one state: all C(N, n) of them, or `max_sets`
    distinct ones drawn with `rng` when that is fewer (sorted, so the result is reproducible)."""
    if not 2 <= set_size <= n_trajectories:
        raise ValueError(f"need 2 <= set_size <= trajectories per state; got set_size={set_size}, "
                         f"{n_trajectories} trajectories")
    if max_sets is not None and max_sets < 1:
        raise ValueError(f"max_sets must be >= 1 or None (all sets); got {max_sets}")
    total = math.comb(n_trajectories, set_size)
    if max_sets is None or max_sets >= total:
        return list(itertools.combinations(range(n_trajectories), set_size))
    rng = rng or random.Random(0)
    chosen = set()
    while len(chosen) < max_sets:
        chosen.add(tuple(sorted(rng.sample(range(n_trajectories), set_size))))
    return sorted(chosen)


def marginal_advantages(rewards, keys: list, sets: list[tuple[int, ...]],
                        objective: Callable = polychromic_objective) -> torch.Tensor:
    """A(s, tau_i) = mean_{g : tau_i in g} f(s, g) - mean_g f(s, g), one value per trajectory of
    the state (0 for a trajectory in no set). With all C(N, n) sets the values sum to 0."""
    rewards = torch.as_tensor(rewards, dtype=torch.float32).flatten()
    if len(keys) != rewards.numel():
        raise ValueError(f"need one key per trajectory; got {rewards.numel()} rewards, {len(keys)} keys")
    if not sets:
        raise ValueError("marginal_advantages needs at least one set")
    scores = torch.tensor([objective(rewards[list(g)].tolist(), [keys[i] for i in g]) for g in sets])
    # V(s) = mean_g f(s, g): the baseline every trajectory of the state shares
    baseline = scores.mean()
    total, count = torch.zeros(rewards.numel()), torch.zeros(rewards.numel())
    for g, score in zip(sets, scores):
        total[list(g)] += score
        count[list(g)] += 1
    # A_i = mean_{g containing i} f(s, g) - V(s)
    return torch.where(count > 0, total / count.clamp(min=1) - baseline, torch.zeros_like(total))

# ---------------------------------------------------------------------------------------------
# Vine sampling


@dataclass
class VineConfig:
    states: int = 1  # intermediate rollout states per prompt (cuts of root completions)
    vines: int = 8  # continuations sampled from each intermediate state
    set_size: int = 4  # n, trajectories per set
    max_sets: int | None = None  # M per state; None = all C(N, n) sets
    scale_advantages: bool = True  # divide by the batch std of the advantages, as PPO does

    def __post_init__(self):
        if self.states < 0 or self.vines < 2 or self.set_size < 2 or self.set_size > self.vines:
            raise ValueError(f"VineConfig needs states >= 0, vines >= 2 and 2 <= set_size <= vines; "
                             f"got states={self.states}, vines={self.vines}, set_size={self.set_size}")
        if self.max_sets is not None and self.max_sets < 1:
            raise ValueError(f"VineConfig.max_sets must be >= 1 or None; got {self.max_sets}")

    def rollouts_per_prompt(self, root: int) -> int:
        return root + self.states * self.vines


@dataclass
class VineTree:
    """Root completions and their vines in one batch. Row r is trajectory r: `batch` holds its
    actions (a vine's prompt is the task prompt plus the prefix it continues, so its
    completion_mask covers only its own tokens), `texts` the full completion to verify."""

    batch: Rollout
    tasks: list[Task]  # per row
    texts: list[str]  # per row: prefix + own completion
    states: list[list[int]] = field(default_factory=list)  # rows of each state's trajectories
    cuts: list[int] = field(default_factory=list)  # per state: tokens of the prefix (0 = the prompt)
    root_states: int = 0  # the first root_states states are the prompts themselves (s_0)


def vine_sample(policy: Policy, tasks: list[Task], root: int, vine: VineConfig, max_new_tokens: int = 16,
                temperature: float = 1.0, top_p: float = 1.0, generator: torch.Generator | None = None,
                rng: random.Random | None = None) -> VineTree:
    """The vine tree: `root` completions per task from the prompt (state s_0), then for each of
    `vine.states` intermediate states per task (a root completion, chosen at random, cut after
    t tokens, t uniform in 1..len-1) `vine.vines` continuations. Rollouts per task:
    root + states * vines; a vine's length budget is what its prefix left of `max_new_tokens`."""
    if not tasks:
        raise ValueError("vine_sample needs at least one task")
    if root < 2:
        raise ValueError(f"need at least 2 root completions per task; got {root}")
    rng = rng or random.Random(0)
    tokenizer = policy.tokenizer
    owners = [t for t in tasks for _ in range(root)]
    trunk = rollout(policy, [t.prompt for t in owners], max_new_tokens, temperature, top_p, generator)
    states = [list(range(i * root, (i + 1) * root)) for i in range(len(tasks))]
    cuts = [0] * len(tasks)
    if vine.states == 0:
        return VineTree(trunk, owners, list(trunk.completions), states, cuts, len(tasks))
    lengths = trunk.lengths.long().tolist()
    vine_prompts, prefixes, vine_owners = [], [], []
    for i, task in enumerate(tasks):
        rows = list(range(i * root, (i + 1) * root))
        branchable = [r for r in rows if lengths[r] >= 2] or rows
        for _ in range(vine.states):
            r = rng.choice(branchable)
            t = rng.randint(1, lengths[r] - 1) if lengths[r] >= 2 else 0  # an intermediate state s_t
            prefix = tokenizer.decode(trunk.completion_ids[r, :t], skip_special_tokens=True)
            cuts.append(t)
            for _ in range(vine.vines):
                vine_prompts.append(task.prompt + prefix)
                prefixes.append(prefix)
                vine_owners.append(task)
    budget = max_new_tokens - min(cuts[len(tasks):])
    vines = rollout(policy, vine_prompts, max(budget, 1), temperature, top_p, generator)
    start = len(owners)
    states += [list(range(start + j * vine.vines, start + (j + 1) * vine.vines))
               for j in range(len(tasks) * vine.states)]
    batch = concat_rollouts([trunk, vines], tokenizer.pad_token_id)
    texts = list(trunk.completions) + [p + c for p, c in zip(prefixes, vines.completions)]
    return VineTree(batch, owners + vine_owners, texts, states, cuts, len(tasks))

# ---------------------------------------------------------------------------------------------
# One step of polychromic PPO


@dataclass
class PolyStepResult:
    metrics: dict
    tree: VineTree
    rewards: torch.Tensor
    advantages: torch.Tensor


def polychromic_advantages(tree: VineTree, rewards: torch.Tensor, keys: list, vine: VineConfig,
                           rng: random.Random | None = None) -> tuple[torch.Tensor, dict]:
    """Marginal polychromic advantages of every row, state by state, then (optionally) divided
    by their batch std. Also returns per-state statistics for the metrics."""
    advantages = torch.zeros(len(keys))
    f_means, d_means, flat = [], [], []
    for rows in tree.states:
        sets = set_indices(len(rows), vine.set_size, vine.max_sets, rng)
        state_rewards, state_keys = rewards[rows], [keys[r] for r in rows]
        advantages[rows] = marginal_advantages(state_rewards, state_keys, sets)
        f_means.append(sum(polychromic_objective(state_rewards[list(g)].tolist(), [state_keys[i] for i in g])
                           for g in sets) / len(sets))
        d_means.append(diversity(state_keys))
        flat.append(bool(advantages[rows].abs().max() < 1e-9))
    if vine.scale_advantages:
        std = advantages.std()
        if std > 1e-9:
            advantages = advantages / std
    roots = tree.root_states or len(flat)
    stats = {"f_poly": sum(f_means) / len(f_means), "diversity": sum(d_means) / len(d_means),
             "frac_zero_adv": sum(flat) / len(flat), "frac_zero_adv_root": sum(flat[:roots]) / roots}
    return advantages, stats


def polychromic_step(policy: Policy, optimizer: torch.optim.Optimizer, tasks: list[Task], cfg: RLConfig,
                     vine: VineConfig, loss_fn: Callable = ppo_clip_loss, key_fn: Callable = answer_key,
                     generator: torch.Generator | None = None, rng: random.Random | None = None) -> PolyStepResult:
    """Vine-sample cfg.group_size root completions per task (plus vine.states x vine.vines vines),
    verify the full completions, give each trajectory its marginal polychromic advantage at its
    state, and update with the substrate's PPO-clip `update`. Metrics use grpo_step's names where
    they mean the same (reward/mean, acc, entropy, frac_zero_std over the root groups) plus
    f_poly, diversity, frac_zero_adv (states whose trajectories all get 0; _root: of the prompts'
    own groups, comparable with frac_zero_std), distinct_correct."""
    started = time.perf_counter()
    rng = rng or random.Random(0)
    tree = vine_sample(policy, tasks, cfg.group_size, vine, cfg.max_new_tokens, cfg.temperature,
                       cfg.top_p, generator, rng)
    rolled = time.perf_counter()
    verdicts = [verify(t, text) for t, text in zip(tree.tasks, tree.texts)]
    rewards = torch.tensor([v.reward for v in verdicts])
    keys = [key_fn(t, text) for t, text in zip(tree.tasks, tree.texts)]
    advantages, stats = polychromic_advantages(tree, rewards, keys, vine, rng)
    metrics = update(policy, optimizer, tree.batch, advantages.to(tree.batch.logprobs.device), cfg, loss_fn)
    root_rows = len(tasks) * cfg.group_size
    grouped = rewards[:root_rows].view(-1, cfg.group_size)
    per_task = {}
    for t, k, v in zip(tree.tasks, keys, verdicts):
        per_task.setdefault(t.prompt, set())
        if v.correct:
            per_task[t.prompt].add(k)
    metrics.update(stats)
    metrics.update({
        "reward/mean": rewards.mean().item(),
        "acc": rewards[:root_rows].mean().item(),  # root completions: samples from the prompt
        "entropy": masked_mean(tree.batch.entropies, tree.batch.completion_mask).item(),
        "len/mean": tree.batch.lengths.float().mean().item(),
        "frac_zero_std": (grouped.std(dim=1) == 0).float().mean().item(),
        "distinct_correct": sum(len(s) for s in per_task.values()) / len(per_task),
        "rollouts": len(tree.texts),
        "time/rollout": rolled - started,
        "time/step": time.perf_counter() - started,
    })
    return PolyStepResult(metrics, tree, rewards, advantages)

# ---------------------------------------------------------------------------------------------
# Evaluation over k samples per task


@dataclass
class SetEvaluation:
    tasks: list[Task]
    samples: int  # k completions per task
    correct: list[int]  # correct completions per task
    distinct: list[int]  # distinct correct answers (by answer_key) per task

    @property
    def distinct_correct(self) -> float:
        """Mean number of distinct correct answers among the k samples of a task."""
        return sum(self.distinct) / len(self.tasks)

    @property
    def pass1(self) -> float:
        return sum(self.correct) / (len(self.tasks) * self.samples)

    def pass_at(self, k: int) -> float:
        return sum(pass_at_k(self.samples, c, k) for c in self.correct) / len(self.tasks)

    def by_difficulty(self) -> dict[int, dict[str, float]]:
        out = {}
        for d in sorted({t.difficulty for t in self.tasks}):
            idx = [i for i, t in enumerate(self.tasks) if t.difficulty == d]
            sub = SetEvaluation([self.tasks[i] for i in idx], self.samples,
                                [self.correct[i] for i in idx], [self.distinct[i] for i in idx])
            out[d] = {"distinct_correct": sub.distinct_correct, "passk": sub.pass_at(self.samples),
                      "pass1": sub.pass1}
        return out


@torch.no_grad()
def evaluate_sets(policy: Policy, tasks: list[Task], k: int, temperature: float = 1.0,
                  max_new_tokens: int = 16, key_fn: Callable = answer_key, batch_size: int = 512,
                  generator: torch.Generator | None = None) -> SetEvaluation:
    """Sample k completions per task and count, per task, the correct ones and the distinct
    correct answers among them (two completions are one answer when key_fn says so)."""
    if not tasks:
        raise ValueError("evaluate_sets needs at least one task")
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    owners = [t for t in tasks for _ in range(k)]
    correct, answers = [0] * len(tasks), [set() for _ in tasks]
    for start in range(0, len(owners), batch_size):
        part = owners[start:start + batch_size]
        batch = rollout(policy, [t.prompt for t in part], max_new_tokens, temperature, generator=generator)
        for offset, (task, text) in enumerate(zip(part, batch.completions)):
            if verify(task, text).correct:
                index = (start + offset) // k
                correct[index] += 1
                answers[index].add(key_fn(task, text))
    return SetEvaluation(list(tasks), k, correct, [len(a) for a in answers])
