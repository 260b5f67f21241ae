"""09 · Data-free self-play: test-time curricula and hop-grouped advantages (TTCS, Dr. Zero): the mechanism that notebooks/09_data_free_self_play.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import random
import torch
from labkit.core.calculator import chain_task, tool_rollout, verify_with_tools
from labkit.core.checks import check_float, check_int
from labkit.core.grpo import grpo_advantages, subset, update
from labkit.core.proposer import OPERATORS, parse_task, pseudo_rewards, sample_votes
from labkit.core.tasks import Task


def variant(task, rng: random.Random, exclude=frozenset()):
    # TTCS's synthesiser, as a rule: a question of the same form as the test question (operator, operand widths)
    # with fresh operands; never a test question itself (exclude)
    if not isinstance(task, Task) or task.category not in OPERATORS.values():
        raise ValueError(f"variant needs an arithmetic Task (add/sub/mul); got {task!r}")
    op = {c: o for o, c in OPERATORS.items()}[task.category]
    widths = [len(str(task.meta["a"])), len(str(task.meta["b"]))]
    for _ in range(1000):
        a, b = [rng.randrange(10) if w == 1 else rng.randrange(10 ** (w - 1), 10 ** w) for w in widths]
        text = f"{a}{op}{b}="
        found = parse_task(text, exclude=exclude)
        if found is not None and text != task.prompt:
            return found
    raise ValueError(f"no variant of {task.prompt!r} outside the excluded prompts")


def consistent(p_hat: float, delta: float) -> bool:
    # TTCS's filter on a synthetic question: keep x if |p_hat(x) - 1/2| <= delta (the solver neither settled nor lost)
    p_hat = check_float("p_hat", p_hat, min=0.0, max=1.0)
    delta = check_float("delta", delta, min=0.0, max=0.5)
    return abs(p_hat - 0.5) <= delta + 1e-9


def self_consistency_targets(voted, train: int, labels=None):
    # TTRL: the label comes from all V votes, the reward of the first M = `train` answers is r_i = 1[o_i = y~]
    # (labels: the label to reward against per question instead, e.g. the true answer of an oracle variant)
    train = check_int("train", train, min=2)
    labels = [v.label for v in voted] if labels is None else list(labels)
    if len(labels) != len(voted):
        raise ValueError(f"need one label per question; got {len(labels)} for {len(voted)}")
    rewards = []
    for v, label in zip(voted, labels):
        if train > len(v.answers):
            raise ValueError(f"train = {train} answers but only {len(v.answers)} votes")
        rewards += pseudo_rewards(v.answers[:train], label)
    return torch.tensor(rewards)


def hop_advantages(rewards, hops, delta: float = 1e-6) -> torch.Tensor:
    # Dr. Zero's HRPO (Eq. 3): A_i = (r_i - mean_{j in I_h} r_j) / sqrt(Var_{j in I_h} r_j + delta),
    # I_h = the questions of the batch with h hops (population variance; a hop group of one gets 0)
    r = torch.as_tensor(rewards, dtype=torch.float32)
    hops = list(hops)
    if r.ndim != 1 or len(hops) != r.numel():
        raise ValueError(f"need one hop count per reward; got {len(hops)} for rewards of shape {tuple(r.shape)}")
    delta = check_float("delta", delta, gt=0.0)
    out = torch.zeros_like(r)
    for h in dict.fromkeys(hops):
        idx = torch.tensor([i for i, x in enumerate(hops) if x == h])
        part = r[idx]
        if len(idx) > 1:
            out[idx] = (part - part.mean()) / torch.sqrt(part.var(unbiased=False) + delta)
    return out


TTC_ARMS = ("ttrl", "ttcs", "oracle")
TOOL_ARMS = ("grpo", "grpo_equal", "hrpo", "batch")


def ttc_step(arm, policy, optimizer, cfg, test_tasks, n, votes, train, delta, rng, generator, exclude):
    # one step of test-time training: n questions x V votes (equal solver rollouts in every arm)
    #   ttrl:   n test questions, all trained on
    #   ttcs:   n/2 test questions + one synthesised variant of each; variants kept if consistent(p_hat, delta)
    #   oracle: ttcs, but the kept variants are rewarded against their true answer (the control's bound)
    if arm not in TTC_ARMS:
        raise ValueError(f"unknown arm {arm!r}; accepted: {', '.join(TTC_ARMS)}")
    if arm == "ttrl":
        tasks = rng.sample(test_tasks, n)
        synthetic = [False] * n
    else:
        real = rng.sample(test_tasks, n // 2)
        tasks = real + [variant(t, rng, exclude) for t in real[:n - n // 2]]
        synthetic = [False] * len(real) + [True] * (n - len(real))
    batch, voted = sample_votes(policy, tasks, votes, generator, cfg.max_new_tokens)
    kept = [g for g, v in enumerate(voted) if not synthetic[g] or consistent(v.p_hat, delta)]
    labels = [t.answer if arm == "oracle" and synthetic[g] else voted[g].label for g, t in enumerate(tasks)]
    stats = {"rollouts": len(batch), "kept_variants": sum(synthetic[g] for g in kept),
             "label_acc": sum(v.right for v in voted) / len(voted),
             "trained_label_acc": sum(labels[g] == tasks[g].answer for g in kept) / max(len(kept), 1),
             "variant_label_acc": None}
    if any(synthetic):
        stats["variant_label_acc"] = sum(voted[g].right for g in range(len(tasks)) if synthetic[g]) / sum(synthetic)
    rows = [g * votes + j for g in kept for j in range(train)]
    rewards = self_consistency_targets([voted[g] for g in kept], train, [labels[g] for g in kept])
    advantages = grpo_advantages(rewards, train)
    if advantages.abs().sum() > 0:
        part = subset(batch, torch.tensor(rows, device=batch.input_ids.device))
        stats.update(update(policy, optimizer, part, advantages.to(part.logprobs.device), cfg))
    return stats


def hop_task(hops: int, digits: int, rng: random.Random, exclude=frozenset()):
    # the lookup world: a 1-hop question asks one table entry ('23*45=': look up [23*45], answer it); a 2-hop one
    # chains a second step on the first's value ('23*45+7='; the tool answers one operation per call)
    hops = check_int("hops", hops, min=1, max=2)
    digits = check_int("digits", digits, min=1, max=4)
    low = 0 if digits == 1 else 10 ** (digits - 1)
    for _ in range(1000):
        a, b = rng.randrange(low, 10 ** digits), rng.randrange(low, 10 ** digits)
        if hops == 1:
            task = Task(prompt=f"{a}*{b}=", answer=str(a * b), category="mul", difficulty=digits, world="arithmetic",
                        meta={"a": a, "b": b, "hops": 1})
        else:
            task = chain_task(a, b, rng.randrange(1, 10))
            task.meta["hops"] = 2
        if task.prompt not in exclude:
            return task
    raise ValueError("no question outside the excluded prompts")


def tool_step(arm, policy, optimizer, cfg, tasks, k, generator, max_calls: int = 2):
    # grpo / grpo_equal: k tool rollouts per question, A = z-score within the question's k answers
    # hrpo:  one rollout per question, A = hop_advantages(r, hops) (Dr. Zero Eq. 3)
    # batch: one rollout per question, one group for the whole batch (the hop signal removed)
    if arm not in TOOL_ARMS:
        raise ValueError(f"unknown arm {arm!r}; accepted: {', '.join(TOOL_ARMS)}")
    k = check_int("k", k, min=1) if arm in ("hrpo", "batch") else check_int("k", k, min=2)
    owners = [t for t in tasks for _ in range(k)]
    batch = tool_rollout(policy, [t.prompt for t in owners], cfg.max_new_tokens, 1.0, generator=generator,
                         max_calls=max_calls, max_operands=2)
    rewards = torch.tensor([float(verify_with_tools(t, c).correct) for t, c in zip(owners, batch.completions)])
    if arm in ("grpo", "grpo_equal"):
        advantages = grpo_advantages(rewards, k)
    else:
        advantages = hop_advantages(rewards, [t.meta["hops"] if arm == "hrpo" else 0 for t in owners])
    stats = {"rollouts": len(owners), "reward": rewards.mean().item(),
             "frac_signal": (advantages.abs() > 1e-6).float().mean().item()}
    if advantages.abs().sum() > 0:
        stats.update(update(policy, optimizer, batch, advantages.to(batch.logprobs.device), cfg))
    return stats
