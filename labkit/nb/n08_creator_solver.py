"""08 · Creator and solver: evolving the prompts a solver trains on (eva, Agent0): the mechanism that notebooks/08_creator_solver.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import random
import torch
from labkit.core.checks import check_float, check_int
from labkit.core.grpo import grpo_advantages, subset, update
from labkit.core.proposer import (OPERATORS, group_advantages, parse_task, repetition_penalty, sample_votes,
                                  uncertainty_reward)


SYMBOL = {category: op for op, category in OPERATORS.items()}   # "add" -> "+"


def random_task(op: str, width: int, rng: random.Random, exclude=frozenset()):
    # a task of the grammar with fresh digits: both operands `width` digits (0-9 for width 1), not a held-out prompt
    if op not in OPERATORS:
        raise ValueError(f"op must be one of {', '.join(OPERATORS)}; got {op!r}")
    width = check_int("width", width, min=1, max=8)
    for _ in range(1000):
        a, b = ([rng.randrange(10) if width == 1 else rng.randrange(10 ** (width - 1), 10 ** width) for _ in range(2)])
        task = parse_task(f"{a}{op}{b}=", exclude=exclude)
        if task is not None:
            return task
    raise ValueError(f"no task of width {width} outside the excluded prompts")


def in_band(p_hat: float, delta: float) -> bool:
    # D = {x : |p_hat(x) - 1/2| <= delta}   (Agent0 Eq. 7; delta = 0.25 keeps p_hat in [0.25, 0.75])
    return abs(p_hat - 0.5) <= delta + 1e-9


def adpo_advantages(rewards, p_hats, k: int, delta: float = 0.25):
    # A_i = (r_i - mean r) / (std r + eps) per group of k (GRPO); kept: groups with |p_hat - 1/2| <= delta;
    # A~_i = A_i * s(x), s(x) = p_hat(x) / mean of p_hat over the kept groups (increasing in p_hat, mean 1)
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    p = torch.as_tensor(p_hats, dtype=torch.float32)
    delta = check_float("delta", delta, min=0.0, max=0.5)
    if p.ndim != 1 or rewards.ndim != 1 or rewards.numel() != k * p.numel() or ((p < 0) | (p > 1)).any():
        raise ValueError(f"need k = {k} rewards per p_hat in [0, 1]; got {rewards.numel()} rewards, {p.numel()} p_hats")
    advantages = grpo_advantages(rewards, k)
    kept = [g for g in range(len(p)) if in_band(float(p[g]), delta)]
    if not kept:
        return torch.zeros_like(advantages), []
    scale = p / p[kept].mean()
    return advantages * scale.repeat_interleave(k), [g * k + j for g in kept for j in range(k)]


def creator_rewards(valid, p_hats, repetition, lam_unc: float = 1.0) -> list:
    # R_C(x) = R_format(x) * max(0, lam_unc * R_unc(x) - R_rep(x)),  R_unc = 1 - 2 |p_hat - 1/2|  (no tool term)
    valid, p_hats, repetition = list(valid), list(p_hats), list(repetition)
    if not len(valid) == len(p_hats) == len(repetition):
        raise ValueError(f"need one validity, p_hat and penalty per task; got {len(valid)}, {len(p_hats)}, "
                         f"{len(repetition)}")
    return [max(0.0, lam_unc * uncertainty_reward(p) - rep) if ok else 0.0
            for ok, p, rep in zip(valid, p_hats, repetition)]


def informativeness(rewards) -> float:
    # info(x) = max_i r(x, y_i) - min_i r(x, y_i): eva's reward gap between the best and the worst response
    rewards = [float(r) for r in rewards]
    if not rewards:
        raise ValueError("informativeness needs the rewards of at least one response")
    return max(rewards) - min(rewards)


def eva_select(info, n: int, rng: random.Random, signal: bool = True) -> list:
    # n prompts without replacement, w(x) = (info(x) - min info) / (max info - min info)  (authors' adaptive_sample,
    # importance_weighted); signal=False or all info equal: uniform. Weights run out: the rest uniformly.
    info = [float(v) for v in info]
    n = check_int("n", n, min=0, max=len(info))
    lo, hi = (min(info), max(info)) if info else (0.0, 0.0)
    weights = [(v - lo) / (hi - lo) if signal and hi > lo else 1.0 for v in info]
    pool, chosen = list(range(len(info))), []
    for _ in range(n):
        w = [weights[i] for i in pool]
        pick = rng.choices(range(len(pool)), weights=w)[0] if sum(w) > 0 else rng.randrange(len(pool))
        chosen.append(pool.pop(pick))
    return chosen


MUTATIONS = ("digits", "wider", "narrower", "operator")


def mutate(task, rng: random.Random, max_width: int = 3, exclude=frozenset()):
    # one evolution of a task (EvolInstruct's role): new digits, one digit wider, one narrower, or another operator
    op, width = SYMBOL[task.category], len(str(abs(task.meta["a"])))
    kind = rng.choice(MUTATIONS)
    if kind == "wider":
        width = min(max_width, width + 1)
    elif kind == "narrower":
        width = max(1, width - 1)
    elif kind == "operator":
        op = rng.choice([o for o in OPERATORS if o != op])
    return random_task(op, width, rng, exclude)


ARMS = ("static", "uniform", "eva", "agent0", "easy_to_hard")


def creator_write(creator, n: int, generator=None, exclude=frozenset(), max_rounds: int = 50):
    # the creator writes batches of n until n proposals parse; returns (texts, log-probs, tasks or None per text)
    texts, logps, parsed = [], [], []
    for _ in range(max_rounds):
        proposals = creator.sample(n, generator=generator)
        for i, text in enumerate(proposals.texts):
            texts.append(text)
            logps.append(proposals.logprobs[i])
            parsed.append(parse_task(text, exclude=exclude))
            if sum(t is not None for t in parsed) == n:
                return texts, torch.stack(logps), parsed
    raise RuntimeError(f"the creator wrote fewer than {n} valid tasks in {max_rounds * n} proposals")


def train_arm(arm, solver, optimizer, cfg, steps: int, n: int, rng: random.Random, generator, static_pool,
              max_width: int = 3, delta: float = 0.25, exclude=frozenset(), creator=None, creator_opt=None,
              sample_frac: float = 0.25, evolutions: int = 4, rep_scale: float = 1.0, on_step=None) -> list:
    """Train `solver` in place for `steps` steps of n tasks x cfg.group_size answers on majority-vote
    pseudo-labels, choosing the tasks as `arm` does. Returns one dict of measurements per step."""
    if arm not in ARMS:
        raise ValueError(f"unknown arm {arm!r}; accepted: {', '.join(ARMS)}")
    if arm == "agent0" and (creator is None or creator_opt is None):
        raise ValueError("the agent0 arm needs a creator and its optimiser")
    k = cfg.group_size
    population = rng.sample(static_pool, n)
    history = []
    for step in range(steps):
        valid_rate = None
        if arm == "static":
            tasks = rng.sample(static_pool, n)
        elif arm in ("uniform", "eva"):
            tasks = population
        elif arm == "easy_to_hard":
            width = 1 + step * max_width // steps
            tasks = [random_task(rng.choice(list(OPERATORS)), width, rng, exclude) for _ in range(n)]
        else:
            texts, logps, parsed = creator_write(creator, n, generator, exclude)
            tasks = [t for t in parsed if t is not None]
            valid_rate = len(tasks) / len(texts)
        batch, groups = sample_votes(solver, tasks, k, generator, cfg.max_new_tokens)
        rewards = torch.tensor([r for g in groups for r in g.rewards])
        p_hats = [g.p_hat for g in groups]
        if arm == "agent0":
            # the creator's step: R_C for every text it wrote (invalid ones get 0), GRPO over the batch
            solved = iter(p_hats)
            p_text = [next(solved) if t is not None else None for t in parsed]
            R = creator_rewards([t is not None for t in parsed], p_text, repetition_penalty(texts, rep_scale))
            A = group_advantages(torch.tensor(R), [0] * len(R))
            creator_opt.zero_grad()
            (-(A * logps).mean()).backward()
            creator_opt.step()
            advantages, rows = adpo_advantages(rewards, p_hats, k, delta)
        else:
            advantages, rows = grpo_advantages(rewards, k), list(range(len(rewards)))
        if rows:
            index = torch.tensor(rows, device=batch.input_ids.device)
            update(solver, optimizer, subset(batch, index), advantages[rows].to(batch.logprobs.device), cfg)
        trained = sorted({r // k for r in rows if len(set(groups[r // k].rewards)) > 1})
        history.append({
            "frac_informative": sum(in_band(p, delta) for p in p_hats) / len(groups),
            "pseudo_label_acc": sum(g.right for g in groups) / len(groups),
            "trained_label_acc": sum(groups[g].right for g in trained) / len(trained) if trained else float("nan"),
            "trained_groups": len(trained),
            "pseudo_reward": rewards.mean().item(),
            "width": sum(t.difficulty for t in tasks) / len(tasks),
            "valid_rate": valid_rate,
            "rollouts": len(batch),
        })
        if on_step is not None:
            on_step(step, history[-1])
        if arm in ("uniform", "eva"):
            # eva: pick the informative quarter (uniform: any quarter), evolve each, mix half children, half buffer
            parents = eva_select([informativeness(g.rewards) for g in groups], max(1, round(sample_frac * n)), rng,
                                 signal=arm == "eva")
            children = [mutate(tasks[i], rng, max_width, exclude) for i in parents for _ in range(evolutions)]
            m = min(n // 2, len(children))
            population = rng.sample(children, m) + rng.sample(tasks, n - m)
    return history
