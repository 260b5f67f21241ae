"""15 · Self-play critic: a sneaky generator against a step critic: the mechanism that notebooks/15_self_play_critic.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import random
from dataclasses import dataclass
import torch
from labkit.bases.mixtures.critic import random_corruption
from labkit.core.chains import (corrupt, critic_prompt, first_wrong_step, harmonic_f1, parse_critic,
                                parse_result, parse_steps, solution, solution_steps, sneaky_prompt, terms_of)
from labkit.core.checks import check_int
from labkit.core.grpo import RLConfig, grpo_advantages, update
from labkit.core.sampling import rollout


ARMS = ("spc", "random", "oracle")  # where the critic's erroneous chains come from
CRITIC_TOKENS, SNEAKY_TOKENS, SOLVE_TOKENS = 6, 6, 48


def critic_reward(named: int | None, truth: int) -> float:
    # r_c = +1 if the critic names the first wrong step exactly (0 = "all right" on a right chain), else -1
    return 1.0 if named is not None and named == truth else -1.0


def sneaky_reward(real_error: bool, named: list, index: int) -> float:
    # r_s = -1 if the step is no error (unreadable, or the right value); else the mean over the critic's
    #       judgements of +1 (fooled: it does not name step `index`) and -1 (caught)
    if not real_error:
        return -1.0
    if not named:
        raise ValueError("sneaky_reward needs at least one critic judgement of the corrupted chain")
    return sum(1.0 if n != index else -1.0 for n in named) / len(named)


@dataclass
class Attacks:
    """The sneaky generator's turn: G corruptions of one step of each right chain."""
    tasks: list            # one per attack (each task repeated G times)
    indices: list          # the step each attack corrupts (1-based)
    chains: list           # the chain the critic sees (the right chain when the attack does not read)
    real: list             # the attack is a real error (reads, and differs from the right result)
    batch: object = None   # the sneaky generator's rollout (None for the random corruptor)


def sneaky_attacks(sneaky, tasks: list, G: int, rng: random.Random, generator=None) -> Attacks:
    # the environment picks a step j ~ U{1..n}; the sneaky writes r ~ pi_s(. | x, s_<j, lhs_j); chain = s_<j, (lhs_j = r), carried on
    G = check_int("G", G, min=1)
    indices = [rng.randint(1, t.difficulty) for t in tasks]
    owners = [t for t in tasks for _ in range(G)]
    idx = [j for j in indices for _ in range(G)]
    batch = rollout(sneaky, [sneaky_prompt(t, j) for t, j in zip(owners, idx)], SNEAKY_TOKENS, 1.0, generator=generator)
    chains, real = [], []
    for t, j, text in zip(owners, idx, batch.completions):
        r = parse_result(text)
        ok = r is not None and r != solution_steps(t)[j - 1].result
        chains.append(corrupt(t, j, r) if r is not None else solution(t))
        real.append(ok)
    return Attacks(owners, idx, chains, real, batch)


def random_attacks(tasks: list, G: int, rng: random.Random) -> Attacks:
    # the control: a uniform step, one digit of its result replaced (the corruptions the base was taught)
    owners = [t for t in tasks for _ in range(check_int("G", G, min=1))]
    picks = [random_corruption(t, rng) for t in owners]
    return Attacks(owners, [j for j, _ in picks], [corrupt(t, j, r) for t, (j, r) in zip(owners, picks)],
                   [True] * len(owners))


def natural_chains(solver, tasks: list, generator=None, temperature: float = 1.0, batch_size: int = 256) -> list:
    # the base's own chains, labelled by the checker: (task, chain, first wrong step); unreadable ones dropped
    out = []
    for i in range(0, len(tasks), batch_size):
        part = tasks[i:i + batch_size]
        texts = rollout(solver, [t.prompt for t in part], SOLVE_TOKENS, temperature, generator=generator).completions
        for t, text in zip(part, texts):
            k = first_wrong_step(t, text)
            if k is not None:
                out.append((t, text.strip(), k))
    return out


def judge_chains(critic, items: list, G: int = 1, generator=None, temperature: float = 1.0):
    # the critic's judgements: G samples per (task, chain); returns the rollout and the steps it names
    prompts = [critic_prompt(t, c) for t, c, *_ in items for _ in range(G)]
    batch = rollout(critic, prompts, CRITIC_TOKENS, temperature, generator=generator)
    owners = [t for t, *_ in items for _ in range(G)]
    return batch, [parse_critic(t, text) for t, text in zip(owners, batch.completions)]


def critic_f1(critic, items: list, generator=None, temperature: float = 1.0, samples: int = 1) -> dict:
    # ProcessBench's F1: harmonic mean of acc on erroneous chains (first wrong step exact) and on right ones
    if not items:
        raise ValueError("critic_f1 needs at least one labelled chain")
    samples = check_int("samples", samples, min=1)
    _, named = judge_chains(critic, items, samples, generator, temperature)
    truths = [k for *_, k in items for _ in range(samples)]
    err = [n == k for k, n in zip(truths, named) if k > 0]
    right = [n == 0 for k, n in zip(truths, named) if k == 0]
    acc_err = sum(err) / len(err) if err else 0.0
    acc_right = sum(right) / len(right) if right else 0.0
    return {"f1": harmonic_f1(acc_err, acc_right), "acc_erroneous": acc_err, "acc_correct": acc_right,
            "n_erroneous": len(err) // samples, "n_correct": len(right) // samples}


def critic_step(critic, optimizer, items: list, cfg: RLConfig, generator=None, ref_model=None) -> dict:
    # one GRPO update of the critic on G judgements of each (task, chain, truth): A = (r - mean_G r) / std_G r
    batch, named = judge_chains(critic, items, cfg.group_size, generator, cfg.temperature)
    truths = [k for *_, k in items for _ in range(cfg.group_size)]
    rewards = torch.tensor([critic_reward(n, k) for n, k in zip(named, truths)])
    # (+ beta KL(pi || pi_ref) to the base when cfg.loss.kl_coef and ref_model are given: the authors' lm_kl_coeff)
    metrics = update(critic, optimizer, batch, grpo_advantages(rewards, cfg.group_size).to(batch.logprobs.device), cfg,
                     ref_model=ref_model)
    metrics["reward/mean"] = rewards.mean().item()
    metrics["acc"] = (rewards > 0).float().mean().item()
    return {"metrics": metrics, "named": named}


def sneaky_step(sneaky, optimizer, attacks: Attacks, named: list, G_critic: int, cfg: RLConfig, ref_model=None) -> dict:
    # one GRPO update of the sneaky generator: each attack's reward from the critic's G_critic judgements of it
    rewards = torch.tensor([sneaky_reward(ok, named[i * G_critic:(i + 1) * G_critic], j)
                            for i, (ok, j) in enumerate(zip(attacks.real, attacks.indices))])
    batch = attacks.batch
    metrics = update(sneaky, optimizer, batch, grpo_advantages(rewards, cfg.group_size).to(batch.logprobs.device), cfg,
                     ref_model=ref_model)
    metrics["reward/mean"] = rewards.mean().item()
    return metrics


KINDS = ("off_by_one", "other", "copy")


def error_kind(task, chain: str, k: int) -> str:
    # how the first wrong step k differs from its right form: a result off by one ('off_by_one': the solver's
    # slip), another result ('other'), or its operands miscopied ('copy')
    k = check_int("k", k, min=1)
    steps = parse_steps(chain)
    if steps is None or k > len(steps):
        raise ValueError(f"error_kind needs a readable chain with at least {k} steps; got {chain!r}")
    terms = terms_of(task)
    step = steps[k - 1]
    previous = terms[0][1] if k == 1 else steps[k - 2].result
    if (step.left, step.op, step.operand) != (previous, *terms[k]):
        return "copy"
    return "off_by_one" if abs(step.result - step.value) == 1 else "other"


def error_kinds(items: list) -> dict:
    # the share of each kind among erroneous (task, chain, k) items
    counts = {kind: 0 for kind in KINDS}
    for t, c, k in items:
        counts[error_kind(t, c, k)] += 1
    n = max(1, len(items))
    return {kind: round(v / n, 3) for kind, v in counts.items()}
