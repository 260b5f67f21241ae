"""16 · Verification that scales: rubric-guided verify → refine, and SELF's self-evolution: the mechanism that notebooks/16_verification.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import random
import torch
from labkit.bases.pretrain import encode_batch
from labkit.core.checks import check_choice, check_int
from labkit.core.judge import pointwise, refine
from labkit.core.sampling import rollout
from labkit.core.tasks import verify


ARMS = ("refine", "resample")


def sample_answers(policy, tasks, generator=None, temperature: float = 1.0) -> list[str]:
    # a ~ pi(. | x): one answer per task
    return rollout(policy, [t.prompt for t in tasks], 8, temperature, generator=generator).completions


def verify_refine_loop(policy, tasks, answers, rounds: int, arm: str = "refine", generator=None,
                       judge_temperature: float = 1.0) -> list[list[str]]:
    # DeepVerifier's test-time loop: the answers after each round, round 0 = `answers`
    arm = check_choice("arm", arm, ARMS)
    rounds = check_int("rounds", rounds, min=0)
    current = list(answers)
    history = [list(current)]
    for _ in range(rounds):
        # j_k ~ J(x, a_{k-1}): one rubric judgement per current answer
        judgements = pointwise(policy, tasks, current, "rubric", judge_temperature, generator)
        rejected = [i for i, j in enumerate(judgements) if not j.verdict]
        if rejected:
            sub = [tasks[i] for i in rejected]
            if arm == "refine":
                # a_k ~ pi(. | x, a_{k-1}, j_k): the rubric is the feedback
                new = refine(policy, sub, [current[i] for i in rejected], [judgements[i] for i in rejected],
                             generator=generator)
            else:
                # a_k ~ pi(. | x): a fresh sample, the judgement unused
                new = sample_answers(policy, sub, generator)
            for i, answer in zip(rejected, new):
                current[i] = answer
        history.append(list(current))
    return history


def accuracy(tasks, answers) -> float:
    # acc_k = E_x verify(x, a_k), the exact verifier (never shown to the model)
    return sum(verify(t, a).correct for t, a in zip(tasks, answers)) / len(tasks)


def self_data(policy, tasks, generator=None, judge_temperature: float = 1.0) -> list[tuple]:
    # SELF: keep a if J(x, a) accepts, else the refined a' if J(x, a') accepts; no ground truth read
    answers = sample_answers(policy, tasks, generator)
    first = pointwise(policy, tasks, answers, "rubric", judge_temperature, generator)
    kept = [(t, a) for t, a, j in zip(tasks, answers, first) if j.verdict]
    rejected = [i for i, j in enumerate(first) if not j.verdict]
    if rejected:
        sub = [tasks[i] for i in rejected]
        revised = refine(policy, sub, [answers[i] for i in rejected], [first[i] for i in rejected], generator=generator)
        second = pointwise(policy, sub, revised, "rubric", judge_temperature, generator)
        kept += [(t, a) for t, a, j in zip(sub, revised, second) if j.verdict]
    return kept


def star_data(policy, tasks, generator=None) -> list[tuple]:
    # STaR's filter (without rationalization): keep (x, a) when verify(x, a) = 1
    answers = sample_answers(policy, tasks, generator)
    return [(t, a) for t, a in zip(tasks, answers) if verify(t, a).correct]


def sft(policy, pairs, steps: int, batch_size: int, lr: float, rng: random.Random, optimizer=None):
    # min_theta -E_{(x,a) ~ D} log pi_theta(a | x): `steps` Adam steps on batches drawn from `pairs`
    optimizer = optimizer or torch.optim.Adam(policy.model.parameters(), lr=lr)
    losses = []
    if not pairs:
        return losses
    policy.model.train()
    for _ in range(steps):
        batch = [pairs[rng.randrange(len(pairs))] for _ in range(batch_size)]
        ids, mask, labels = encode_batch(policy.tokenizer, [(t.prompt, a) for t, a in batch])
        loss = policy.model(input_ids=ids.to(policy.device), attention_mask=mask.to(policy.device),
                            labels=labels.to(policy.device)).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.model.parameters(), 1.0)
        optimizer.step()
        losses.append(loss.item())
    policy.model.eval()
    return losses
