"""14 · Policy–reward co-evolution: a static judge gets hacked, a co-evolving one follows the policy: the mechanism that notebooks/14_policy_reward_coevolution.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import copy
import random
from dataclasses import dataclass, field
import torch
from labkit.core.checks import check_choice, check_float, check_int
from labkit.core.grpo import ADVANTAGES, RLConfig, grpo_advantages, grpo_step, update
from labkit.core.judge import judge_prompt, pairwise_prompt, parse_pairwise, pointwise, yes_probability
from labkit.core.sampling import rollout
from labkit.core.tasks import verify


ARMS = ("rlvr", "static", "coevolve", "spark")
PAIRWISE_TOKENS = 16  # a pairwise judgement "v<value> =k" fits; a yes/no one ends after a token


@dataclass
class JudgeItem:
    prompt: str   # what the judge reads (labkit.core.judge's yes/no or pairwise format)
    label: str    # the verdict the verifier implies: "y" / "n" (pointwise), "1" / "2" (pairwise)
    kind: str     # "pointwise" | "pairwise"


def recycle_group(task, completions, rewards, rng: random.Random, pairwise_share: float = 0.7) -> list[JudgeItem]:
    # SPARK's reward-data generation from one labelled prompt's RLVR group {(y_i, v_i)}
    pairwise_share = check_float("pairwise_share", pairwise_share, min=0, max=1)
    if not completions or len(completions) != len(rewards):
        raise ValueError(f"need one reward per completion and at least one; got {len(completions)} and {len(rewards)}")
    right = [i for i, r in enumerate(rewards) if r > 0]
    wrong = [i for i, r in enumerate(rewards) if r <= 0]
    if not right or not wrong:
        # all right: the first answer, 'y'; all wrong: a random one, 'n'
        i = 0 if right else rng.randrange(len(completions))
        return [JudgeItem(judge_prompt(task, completions[i], "yesno"), "y" if right else "n", "pointwise")]
    if rng.random() >= pairwise_share:
        # mixed, prob. 1 - rho: one pointwise item, right or wrong by a fair coin
        is_right = rng.random() < 0.5
        i = rng.choice(right if is_right else wrong)
        return [JudgeItem(judge_prompt(task, completions[i], "yesno"), "y" if is_right else "n", "pointwise")]
    # mixed, prob. rho: (y+, y-) in random order; the label says which one is right
    good, bad = completions[rng.choice(right)], completions[rng.choice(wrong)]
    if rng.random() < 0.5:
        return [JudgeItem(pairwise_prompt(task, good, bad), "1", "pairwise")]
    return [JudgeItem(pairwise_prompt(task, bad, good), "2", "pairwise")]


def judge_item_reward(item: JudgeItem, text: str) -> float:
    # r_J = 1[the judgement matches the label]; an unreadable judgement earns 0
    if item.kind == "pointwise":
        return 1.0 if text.strip() == item.label else 0.0
    parsed = parse_pairwise(text)
    return 1.0 if parsed is not None and str(parsed[1]) == item.label else 0.0


def judge_step(judge, optimizer, items: list[JudgeItem], cfg: RLConfig, generator=None) -> dict:
    # the judge's RLVR: G judgements per recycled item, reward r_J, the same GRPO update
    if not items:
        raise ValueError("judge_step needs at least one recycled item")
    owners = [it for it in items for _ in range(cfg.group_size)]
    batch = rollout(judge, [it.prompt for it in owners], PAIRWISE_TOKENS, cfg.temperature, generator=generator)
    rewards = torch.tensor([judge_item_reward(it, text) for it, text in zip(owners, batch.completions)])
    advantages = grpo_advantages(rewards, cfg.group_size).to(batch.logprobs.device)
    metrics = update(judge, optimizer, batch, advantages, cfg)
    metrics["judge/reward"] = rewards.mean().item()
    return metrics


JUDGE_SCORES = ("p_yes", "verdict")


def semi_supervised_reward(labelled_prompts: set, judge, score: str = "p_yes", generator=None):
    # r(x, y) = verify(x, y) for x in L, else the judge's p('y' | x, y) ("p_yes") or 1[it samples 'y'] ("verdict")
    score = check_choice("score", score, JUDGE_SCORES)

    def reward(task, completions):
        if task.prompt in labelled_prompts:
            return [verify(task, c).reward for c in completions]
        if score == "p_yes":
            return yes_probability(judge, [task] * len(completions), list(completions))
        return [j.score for j in pointwise(judge, [task] * len(completions), list(completions), "yesno", 1.0, generator)]
    return reward


@dataclass
class Arm:
    name: str
    policy: object
    optimizer: torch.optim.Optimizer
    judge: object                  # the model whose yes/no rewards unlabelled prompts (and is measured)
    judge_optimizer: torch.optim.Optimizer | None  # None: the judge is frozen
    cache: list = field(default_factory=list)       # recycled items waiting for a judge step
    policy_rollouts: int = 0
    judge_rollouts: int = 0
    judge_steps: int = 0


def make_arm(name: str, base, lr: float) -> Arm:
    # static: frozen base judge; coevolve: a trained copy; spark: phi = theta, one model and one optimizer
    name = check_choice("arm", name, ARMS)
    policy = copy.deepcopy(base)
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=lr, weight_decay=0.0)
    if name in ("rlvr", "static"):
        return Arm(name, policy, optimizer, base, None)
    if name == "coevolve":
        judge = copy.deepcopy(base)
        return Arm(name, policy, optimizer, judge, torch.optim.AdamW(judge.model.parameters(), lr=lr, weight_decay=0.0))
    return Arm(name, policy, optimizer, policy, optimizer)


def arm_step(arm: Arm, tasks, labelled_prompts: set, cfg: RLConfig, judge_cfg: RLConfig, rng: random.Random,
             generator=None, judge_generator=None, judge_batch: int = 16, pairwise_share: float = 0.7,
             judge_score: str = "p_yes", advantage: str = "grpo") -> dict:
    # one GRPO step of the policy on `tasks`; then, if the judge co-evolves, recycle and train it
    judge_batch = check_int("judge_batch", judge_batch, min=1)
    if arm.name == "rlvr" and any(t.prompt not in labelled_prompts for t in tasks):
        raise ValueError("the rlvr arm trains on labelled prompts only")
    reward = semi_supervised_reward(labelled_prompts, arm.judge, judge_score, judge_generator)
    advantage_fn = ADVANTAGES[check_choice("advantage", advantage, tuple(ADVANTAGES))]
    result = grpo_step(arm.policy, arm.optimizer, tasks, cfg, advantage_fn=advantage_fn, group_reward_fn=reward,
                       generator=generator)
    arm.policy_rollouts += len(result.batch)
    arm.judge_rollouts += sum(cfg.group_size for t in tasks if t.prompt not in labelled_prompts)
    metrics = dict(result.metrics)
    if arm.judge_optimizer is not None:
        g = cfg.group_size
        for k, task in enumerate(tasks):
            if task.prompt in labelled_prompts:
                arm.cache += recycle_group(task, result.batch.completions[k * g:(k + 1) * g],
                                           result.rewards[k * g:(k + 1) * g].tolist(), rng, pairwise_share)
        while len(arm.cache) >= judge_batch:
            items, arm.cache = arm.cache[:judge_batch], arm.cache[judge_batch:]
            metrics.update(judge_step(arm.judge, arm.judge_optimizer, items, judge_cfg, judge_generator))
            arm.judge_rollouts += len(items) * judge_cfg.group_size
            arm.judge_steps += 1
    return metrics


def onpolicy_report(policy, judge, tasks, generator=None) -> dict:
    # the arm's final samples y ~ pi(.|x) on held-out x: true reward, the judge's p(y), hack gap, judge accuracy
    answers = rollout(policy, [t.prompt for t in tasks], 8, 1.0, generator=generator).completions
    truth = [verify(t, a).correct for t, a in zip(tasks, answers)]
    p_yes = yes_probability(judge, tasks, answers)
    n = len(tasks)
    true_acc = sum(truth) / n
    believed = sum(p_yes) / n
    right = [p for p, t in zip(p_yes, truth) if t]
    wrong = [p for p, t in zip(p_yes, truth) if not t]
    return {"true_acc": true_acc, "believed": believed, "hack_gap": believed - true_acc,
            "judge_acc": sum(p if t else 1 - p for p, t in zip(p_yes, truth)) / n,
            "p_yes_right": sum(right) / len(right) if right else float("nan"),
            "p_yes_wrong": sum(wrong) / len(wrong) if wrong else float("nan"),
            "short": sum(len(a.strip()) < len(t.answer) for a, t in zip(answers, tasks)) / n,
            "answers": answers}


def best_of_n(policy, tasks, n: int = 4, generator=None) -> tuple[float, float]:
    # y* = argmax_{i<=n} p_theta('y' | x, y_i): the model judges its own n answers; vs the first answer alone
    n = check_int("n", n, min=1)
    answers = rollout(policy, [t.prompt for t in tasks for _ in range(n)], 8, 1.0, generator=generator).completions
    owners = [t for t in tasks for _ in range(n)]
    p_yes = yes_probability(policy, owners, answers)
    best = single = 0
    for i, task in enumerate(tasks):
        group = range(i * n, (i + 1) * n)
        pick = max(group, key=lambda j: p_yes[j])
        best += verify(task, answers[pick]).correct
        single += verify(task, answers[i * n]).correct
    return best / len(tasks), single / len(tasks)
