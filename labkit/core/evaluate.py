"""Held-out evaluation: accuracy (pass@1) and pass@k by category and difficulty."""
from collections import defaultdict
from dataclasses import dataclass
from math import comb

import torch

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


@torch.no_grad()
def evaluate(policy: Policy, tasks: list[Task], samples: int = 1, temperature: float = 1.0,
             max_new_tokens: int = 20, batch_size: int = 512,
             generator: torch.Generator | None = None) -> Evaluation:
    """Sample `samples` completions per task (temperature 0: greedy, one is enough) and verify them."""
    if not tasks:
        raise ValueError("evaluate needs at least one task")
    if samples < 1:
        raise ValueError(f"samples must be >= 1; got {samples}")
    prompts = [t.prompt for t in tasks for _ in range(samples)]
    owners = [t for t in tasks for _ in range(samples)]
    correct = [0] * len(tasks)
    entropy_sum, token_count = 0.0, 0.0
    for start in range(0, len(prompts), batch_size):
        batch = rollout(policy, prompts[start:start + batch_size], max_new_tokens=max_new_tokens,
                        temperature=temperature, generator=generator)
        entropy_sum += float((batch.entropies * batch.completion_mask).sum())
        token_count += float(batch.completion_mask.sum())
        for offset, text in enumerate(batch.completions):
            index = (start + offset) // samples
            correct[index] += int(verify(owners[start + offset], text).correct)
    return Evaluation(list(tasks), correct, samples, entropy_sum / max(token_count, 1.0))
