"""Held-out evaluation: accuracy (pass@1) and pass@k by category and difficulty."""
from collections import defaultdict
from dataclasses import dataclass
from math import comb

import torch

from labkit.core.checks import check_int
from labkit.core.policy import Policy
from labkit.core.sampling import rollout
from labkit.core.tasks import Task, verify


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021): 1 - C(n-c, k) / C(n, k)."""
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n samples; got k={k}, n={n}")
    return 1.0 - comb(n - c, k) / comb(n, k)


@dataclass
class Evaluation:
    tasks: list[Task]
    correct: list[int]  # correct samples per task
    samples: int
    mean_entropy: float  # mean token entropy of the sampled completions

    @property
    def acc(self) -> float:
        """pass@1: the mean share of correct samples."""
        return sum(self.correct) / (len(self.tasks) * self.samples)

    def pass_at(self, k: int) -> float:
        return sum(pass_at_k(self.samples, c, k) for c in self.correct) / len(self.tasks)

    def by_group(self, k: int = 1) -> dict[tuple[str, int], float]:
        """pass@k per (category, difficulty)."""
        groups = defaultdict(list)
        for task, c in zip(self.tasks, self.correct):
            groups[(task.category, task.difficulty)].append(pass_at_k(self.samples, c, k))
        return {key: sum(v) / len(v) for key, v in sorted(groups.items())}


def check_tasks(name: str, tasks, samples) -> None:
    """One-line ValueErrors for an empty task list or a sample count below 1."""
    if not tasks:
        raise ValueError(f"{name} needs at least one task; got none")
    check_int("samples", samples, min=1)


def sample_and_judge(tasks: list, sampler, judge, samples: int = 1, batch_size: int = 512) -> tuple[Evaluation, list]:
    """Sample `samples` completions per task and judge each: labkit's one evaluation loop.

    The samples run task-major (task i's j-th at i * samples + j) in batches of `batch_size` rows:
    `sampler(part)` returns a Rollout with one completion per task of `part`, and
    `judge(part, batch)` one judgement per row, each with a `.correct` that is truthy when right
    (a `labkit.core.tasks.Verdict`, or a record of the evaluator's own). Returns the Evaluation
    and the judgements, task-major."""
    check_tasks("sample_and_judge", tasks, samples)
    check_int("batch_size", batch_size, min=1)
    owners = [t for t in tasks for _ in range(samples)]
    judged = []
    entropy_sum, token_count = 0.0, 0.0
    for start in range(0, len(owners), batch_size):
        part = owners[start:start + batch_size]
        batch = sampler(part)
        if len(batch) != len(part):
            raise ValueError(f"sampler must return one completion per task; got {len(batch)} for {len(part)}")
        entropy_sum += float((batch.entropies * batch.completion_mask).sum())
        token_count += float(batch.completion_mask.sum())
        verdicts = list(judge(part, batch))
        if len(verdicts) != len(part):
            raise ValueError(f"judge must return one judgement per row; got {len(verdicts)} for {len(part)}")
        judged += verdicts
    correct = [sum(int(bool(j.correct)) for j in judged[i * samples:(i + 1) * samples]) for i in range(len(tasks))]
    # mean token entropy: sum of H over the generated tokens / their number
    return Evaluation(list(tasks), correct, samples, entropy_sum / max(token_count, 1.0)), judged


@torch.no_grad()
def evaluate(policy: Policy, tasks: list[Task], samples: int = 1, temperature: float = 1.0,
             max_new_tokens: int = 20, batch_size: int = 512,
             generator: torch.Generator | None = None) -> Evaluation:
    """Sample `samples` completions per task (temperature 0: greedy, one is enough) and verify them."""
    check_tasks("evaluate", tasks, samples)

    def sampler(part: list[Task]):
        return rollout(policy, [t.prompt for t in part], max_new_tokens=max_new_tokens, temperature=temperature,
                       generator=generator)

    def judge(part: list[Task], batch) -> list:
        return [verify(t, text) for t, text in zip(part, batch.completions)]

    return sample_and_judge(tasks, sampler, judge, samples, batch_size)[0]
