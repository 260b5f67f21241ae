"""10 · Task spaces for self-improvement: ExIt's histories as tasks, WebRL's failure-seeded curriculum: the mechanism that notebooks/10_task_space.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import dataclasses
import random
import re
from dataclasses import dataclass
import torch
from labkit.core.checks import check_float, check_int
from labkit.core.grpo import grpo_advantages, subset, update
from labkit.core.judge import judge_prompt, pointwise, refine_prompt
from labkit.core.proposer import parse_answer, parse_task
from labkit.core.sampling import rollout
from labkit.core.tasks import Task, verify
from labkit.core.tasks.arithmetic import count_carries

_VALUE = re.compile(r"v(-?\d+)")   # the value mark of a rubric: the sum the judge computed itself


def learning_potential(returns) -> float:
    # ExIt's score of an instance: the variance of the returns of its group, S = Var_i[r_i] (n - 1; 0 below 2)
    r = torch.as_tensor(returns, dtype=torch.float64)
    if r.ndim != 1:
        raise ValueError(f"learning_potential takes a 1-D list of returns; got shape {tuple(r.shape)}")
    return float(r.var()) if r.numel() > 1 else 0.0


def in_band(value: float, low: float = 0.05, high: float = 0.75) -> bool:
    # WebRL's filter on a generated task: keep it when low <= V <= high (V: the estimated success rate)
    value = check_float("value", value, min=0.0, max=1.0)
    low = check_float("low", low, min=0.0, max=1.0)
    high = check_float("high", high, min=low, max=1.0)
    return low - 1e-9 <= value <= high + 1e-9


@dataclass(frozen=True)
class Instance:
    # an ExIt task instance: a task, and for a partial history its last attempt and the judge's feedback on it
    task: Task
    answer: str | None = None
    feedback: str | None = None
    depth: int = 0                  # attempts in the history so far (0: the task itself)

    @property
    def prompt(self) -> str:
        # what the self-improvement policy reads: the task, or "task answer|feedback|>" (revise it)
        return self.task.prompt if self.answer is None else refine_prompt(self.task, self.answer, self.feedback)


class TaskBuffer:
    # ExIt's buffer of partial histories: at most `capacity`; a full buffer evicts its lowest score (or refuses a
    # newcomer that scores no higher); sampled with P(i) = S_i / sum_j S_j (uniform while every score is 0)

    def __init__(self, capacity: int = 64):
        self.capacity = check_int("capacity", capacity, min=1)
        self.items: dict[int, Instance] = {}
        self.scores: dict[int, float] = {}
        self._next = 0

    def __len__(self) -> int:
        return len(self.items)

    def add(self, instance: Instance, score: float) -> bool:
        score = check_float("score", score, min=0.0)
        if not isinstance(instance, Instance):
            raise ValueError(f"a TaskBuffer holds Instances; got {type(instance).__name__}")
        if len(self.items) >= self.capacity:
            worst = min(self.scores, key=self.scores.get)      # the first lowest
            if score <= self.scores[worst]:
                return False
            del self.items[worst], self.scores[worst]
        self.items[self._next], self.scores[self._next] = instance, score
        self._next += 1
        return True

    def sample(self, rng: random.Random, shuffled: bool = False) -> tuple[int, Instance]:
        # P(i) = S_i / sum_j S_j  (shuffled=True: uniform, the selection signal removed)
        if not self.items:
            raise ValueError("cannot sample from an empty TaskBuffer")
        keys = list(self.items)
        weights = [self.scores[k] for k in keys]
        key = rng.choice(keys) if shuffled or sum(weights) <= 0 else rng.choices(keys, weights)[0]
        return key, self.items[key]

    def rescore(self, key: int, score: float) -> None:
        # a replayed instance takes the learning potential of its new group
        if key in self.scores:
            self.scores[key] = check_float("score", score, min=0.0)


def next_instances(judge, instances, answers, generator=None, shuffle_rng=None):
    # an attempt becomes a new task instance: (task, attempt, the judge's rubric on the attempt), one step deeper.
    # shuffle_rng: the control, each history carries the feedback written for another history of the batch
    if len(instances) != len(answers) or not instances:
        raise ValueError(f"need one answer per instance and at least one; got {len(answers)} for {len(instances)}")
    tasks = [inst.task for inst in instances]
    feedback = [j.text.strip() for j in pointwise(judge, tasks, list(answers), "rubric", generator=generator)]
    if shuffle_rng is not None:
        shuffle_rng.shuffle(feedback)
    return [Instance(t, a.strip(), f, inst.depth + 1) for t, a, f, inst in zip(tasks, answers, feedback, instances)]


@torch.no_grad()
def self_improve(policy, judge, tasks, depth: int, samples: int = 1, generator=None, max_new_tokens: int = 8):
    # inference-time self-improvement: attempt, then depth - 1 times (judge's rubric, revise); acc after each attempt
    depth = check_int("depth", depth, min=1)
    samples = check_int("samples", samples, min=1)
    instances = [Instance(t) for t in tasks for _ in range(samples)]
    acc = []
    for k in range(depth):
        answers = rollout(policy, [i.prompt for i in instances], max_new_tokens, 1.0, generator=generator).completions
        acc.append(sum(verify(i.task, a).correct for i, a in zip(instances, answers)) / len(instances))
        if k + 1 < depth:
            instances = next_instances(judge, instances, answers, generator)
    return acc


EXIT_ARMS = ("single", "fixed2", "exit", "exit_shuffled")


def exit_step(arm, policy, optimizer, cfg, roots, judge, state, n, rng, generator, select_prob=0.5, capacity=64):
    # one update of n instances x G rollouts in every arm (equal solver rollouts):
    #   single:        n tasks (one-step training)
    #   fixed2:        n/2 tasks + n/2 one-step histories of the previous step's tasks (a fixed depth of 2)
    #   exit:          each slot a buffered history (P ~ S) with probability select_prob, else a task; every group's
    #                  attempt becomes a new history, scored by its group's learning potential
    #   exit_shuffled: exit with the histories' feedback shuffled across the batch (the feedback signal removed)
    if arm not in EXIT_ARMS:
        raise ValueError(f"unknown arm {arm!r}; accepted: {', '.join(EXIT_ARMS)}")
    G = cfg.group_size
    keys = [None] * n
    if arm == "single":
        instances = [Instance(t) for t in rng.sample(roots, n)]
    elif arm == "fixed2":
        histories = state.get("histories", [])[:n // 2]
        instances = histories + [Instance(t) for t in rng.sample(roots, n - len(histories))]
    else:
        buffer = state.setdefault("buffer", TaskBuffer(capacity))
        instances = []
        for g in range(n):
            if len(buffer) >= n and rng.random() < select_prob:
                keys[g], inst = buffer.sample(rng)
                instances.append(inst)
            else:
                instances.append(Instance(rng.choice(roots)))
    batch = rollout(policy, [i.prompt for i in instances for _ in range(G)], cfg.max_new_tokens, cfg.temperature,
                    generator=generator)
    rewards = torch.tensor([float(verify(i.task, c).correct)
                            for i, c in zip([i for i in instances for _ in range(G)], batch.completions)])
    scores = [learning_potential(rewards[g * G:(g + 1) * G]) for g in range(n)]
    # one attempt per group (drawn uniformly) is the history a later step may continue
    picked = [batch.completions[g * G + rng.randrange(G)] for g in range(n)]
    if arm == "fixed2":
        first = [g for g, i in enumerate(instances) if i.depth == 0][:n // 2]
        state["histories"] = next_instances(judge, [instances[g] for g in first], [picked[g] for g in first],
                                            generator)
    elif arm in ("exit", "exit_shuffled"):
        for g, key in enumerate(keys):
            if key is not None:
                buffer.rescore(key, scores[g])
        children = next_instances(judge, instances, picked, generator,
                                  rng if arm == "exit_shuffled" else None)
        for child, score in zip(children, scores):
            buffer.add(child, score)
    stats = {"rollouts": len(batch), "acc": rewards.mean().item(),
             "histories": sum(i.depth > 0 for i in instances) / n,
             "depth": sum(i.depth for i in instances) / n,
             "acc_histories": _mean([rewards[g * G:(g + 1) * G].mean().item() for g, i in enumerate(instances) if i.depth]),
             "frac_signal": sum(s > 0 for s in scores) / n}
    advantages = grpo_advantages(rewards, G)
    if advantages.abs().sum() > 0:
        stats.update(update(policy, optimizer, batch, advantages.to(batch.logprobs.device), cfg))
    return stats


def _mean(values):
    return sum(values) / len(values) if values else None


def orm_rewards(orm, tasks, answers, generator=None) -> torch.Tensor:
    # the outcome reward model: the judge writes its rubric "f. v<sum> c. =." and the outcome is paid when the answer
    # is the sum it computed, R = 1[answer = v]; its own verdict marks are not read (part (a) shows why).
    # The verifier only measures.
    tasks, answers = list(tasks), list(answers)
    if len(tasks) != len(answers) or not tasks:
        raise ValueError(f"need one answer per task and at least one; got {len(answers)} for {len(tasks)}")
    texts = rollout(orm, [judge_prompt(t, a, "rubric") for t, a in zip(tasks, answers)], 12, 1.0,
                    generator=generator).completions
    values = [_VALUE.search(text) for text in texts]
    return torch.tensor([float(v is not None and parse_answer(a) == str(int(v.group(1))))
                         for a, v in zip(answers, values)])


def failure_variant(task: Task, rng: random.Random, exclude=frozenset()) -> Task:
    # WebRL's new task from a failed one: same domain and size, one operand digit changed (a nearby instruction)
    if not isinstance(task, Task) or task.category != "carry":
        raise ValueError(f"failure_variant needs a carry-world Task; got {task!r}")
    for _ in range(1000):
        a, b = str(task.meta["a"]), str(task.meta["b"])
        side, pos = rng.randrange(2), rng.randrange(len(a))
        digits = list((a, b)[side])
        digits[pos] = str(rng.choice([d for d in range(1 if pos == 0 else 0, 10) if str(d) != digits[pos]]))
        a, b = ("".join(digits), b) if side == 0 else (a, "".join(digits))
        found = parse_task(f"{a}+{b}=", exclude=exclude)
        if found is not None:
            x, y = found.meta["a"], found.meta["b"]
            return dataclasses.replace(found, category="carry", difficulty=count_carries(x, y), world=task.world)
    raise ValueError(f"no variant of {task.prompt!r} outside the excluded prompts")


WEBRL_ARMS = ("fixed", "webrl", "webrl_shuffled")


def webrl_step(arm, policy, optimizer, cfg, train_tasks, orm, state, n, rng, generator, band=(0.05, 0.75),
               exclude=frozenset(), ref_model=None, pool_size=64):
    # one update of n tasks x G rollouts in every arm (equal solver rollouts), rewarded by the ORM:
    #   fixed:          n tasks of the fixed training set, GRPO, no KL
    #   webrl:          n/2 training tasks + n/2 generated from earlier failures; a generated task is trained on
    #                   only when its ORM success rate is in the band; KL to the reference (cfg.loss.kl_coef, ref_model)
    #   webrl_shuffled: webrl with the failure flags shuffled across the batch (seeds drawn regardless of failure)
    if arm not in WEBRL_ARMS:
        raise ValueError(f"unknown arm {arm!r}; accepted: {', '.join(WEBRL_ARMS)}")
    G = cfg.group_size
    pool = state.setdefault("pool", [])
    if arm == "fixed" or not pool:
        tasks, generated = rng.sample(train_tasks, n), [False] * n
    else:
        tasks = rng.sample(train_tasks, n - n // 2) + [rng.choice(pool) for _ in range(n // 2)]
        generated = [False] * (n - n // 2) + [True] * (n // 2)
    owners = [t for t in tasks for _ in range(G)]
    batch = rollout(policy, [t.prompt for t in owners], cfg.max_new_tokens, cfg.temperature, generator=generator)
    rewards = orm_rewards(orm, owners, batch.completions, generator)
    truth = torch.tensor([float(verify(t, c).correct) for t, c in zip(owners, batch.completions)])
    success = [rewards[g * G:(g + 1) * G].mean().item() for g in range(n)]
    kept = [g for g in range(n) if arm == "fixed" or not generated[g] or in_band(success[g], *band)]
    stats = {"rollouts": len(batch), "acc": truth.mean().item(), "reward": rewards.mean().item(),
             "orm_agreement": (rewards == truth).float().mean().item(), "kept": len(kept) / n,
             "generated": sum(generated) / n, "pool": len(pool)}
    if arm != "fixed":
        # the attempt that counts (WebRL tries each task once a phase): the group's first; failed if the ORM rejects it
        failed = [rewards[g * G].item() == 0 for g in range(n)]
        if arm == "webrl_shuffled":
            rng.shuffle(failed)
        for g in range(n):
            if failed[g]:
                pool.append(failure_variant(tasks[g], rng, exclude))
        del pool[:-pool_size]
    rows = torch.tensor([g * G + j for g in kept for j in range(G)])
    advantages = grpo_advantages(rewards[rows], G)
    if advantages.abs().sum() > 0:
        part = subset(batch, rows.to(batch.input_ids.device))
        stats.update(update(policy, optimizer, part, advantages.to(part.logprobs.device), cfg,
                            ref_model=None if arm == "fixed" else ref_model))
    return stats
