"""The model card shipped beside a base checkpoint: how it was made and what it can do."""
import json
from pathlib import Path

import torch

from labkit.core.evaluate import evaluate, sample_and_judge
from labkit.core.policy.loading import load_policy
from labkit.bases.mixtures import load_mixture
from labkit.core.policy.models import count_parameters
from labkit.core.sampling import rollout
from labkit.core.tasks import EVAL_SETS, load_eval_set

CARD_SAMPLES = 4  # sampled completions per eval task (temperature 1)


def card_tasks(mixture: str = "default") -> dict:
    """What the card measures: the mixture's own `card_tasks()` if it has one, else every shipped
    eval set."""
    module = load_mixture(mixture)
    if hasattr(module, "card_tasks"):
        return module.card_tasks()
    return {name: load_eval_set(name) for name in EVAL_SETS}


class _Judged:
    """One row's mark, in the shape sample_and_judge reads."""
    __slots__ = ("correct",)

    def __init__(self, correct: bool):
        self.correct = correct


def scored_evaluate(policy, tasks, samples: int, temperature: float, max_new_tokens: int, is_right):
    """A mixture's card_evaluate for tasks that labkit's verifier cannot mark: sample `samples`
    completions per task and count those `is_right(task, text)` accepts. All rows go in one batch,
    the sampling the shipped cards were measured with."""
    def sampler(part):
        return rollout(policy, [t.prompt for t in part], max_new_tokens=max_new_tokens, temperature=temperature)

    def judge(part, batch):
        return [_Judged(bool(is_right(t, text))) for t, text in zip(part, batch.completions)]

    return sample_and_judge(tasks, sampler, judge, samples, batch_size=max(1, len(tasks) * samples))[0]


def measure(checkpoint, samples: int = CARD_SAMPLES, seed: int = 0, mixture: str = "default") -> dict:
    """Accuracy by (category, difficulty) on the mixture's card tasks: sampled (T=1) and greedy."""
    torch.manual_seed(seed)
    policy = load_policy(checkpoint, device="cpu")
    rows = []
    # a mixture whose completions need an environment (e.g. a tool) brings its own evaluate
    measure_fn = getattr(load_mixture(mixture), "card_evaluate", evaluate)
    for name, tasks in card_tasks(mixture).items():
        sampled = measure_fn(policy, tasks, samples=samples, temperature=1.0)
        greedy = measure_fn(policy, tasks, samples=1, temperature=0.0)
        greedy_groups = greedy.by_group()
        for (category, difficulty), acc in sampled.by_group().items():
            rows.append({"category": category, "difficulty": difficulty, "acc_sampled": round(acc, 3),
                         "acc_greedy": round(greedy_groups[(category, difficulty)], 3),
                         "n": sum(1 for t in tasks if (t.category, t.difficulty) == (category, difficulty))})
        rows.append({"category": f"[{name}] entropy", "difficulty": None,
                     "acc_sampled": round(sampled.mean_entropy, 3), "acc_greedy": None, "n": len(tasks)})
    return {"parameters": count_parameters(policy.model), "samples": samples, "rows": rows}


def write_card(checkpoint, command: str) -> Path:
    checkpoint = Path(checkpoint)
    made = json.loads((checkpoint / "pretraining.json").read_text())["settings"] \
        if (checkpoint / "pretraining.json").exists() else {}
    mixture = made.get("mixture", "default")
    measured = measure(checkpoint, mixture=mixture)
    description = getattr(load_mixture(mixture), "DESCRIPTION", f"the {mixture!r} mixture")
    (checkpoint / "card.json").write_text(json.dumps({"made": made, "command": command, **measured}, indent=1))
    lines = [
        f"# {checkpoint.name}: a base policy for the labkit notebooks", "",
        f"A {measured['parameters']:,}-parameter Llama-style causal LM over characters, pretrained by "
        f"`labkit pretrain` on {description} (mixture `{mixture}`, labkit/bases/mixtures). "
        "It is deliberately imperfect: it leaves reward variance for RL.", "",
        f"Made with: `{command}`", "",
        "Settings: " + ", ".join(f"{k}={v}" for k, v in made.items()), "",
        f"## Accuracy on held-out tasks: sampled = pass@1 at temperature 1 "
        f"({measured['samples']} samples per task), greedy = temperature 0", "",
        "| category | difficulty | sampled | greedy | tasks |", "|---|---|---|---|---|",
    ]
    for row in measured["rows"]:
        if row["difficulty"] is None:
            lines.append(f"| {row['category']} (mean token entropy, nats) | | {row['acc_sampled']} | | {row['n']} |")
        else:
            lines.append(f"| {row['category']} | {row['difficulty']} | {row['acc_sampled']} | {row['acc_greedy']} | {row['n']} |")
    (checkpoint / "README.md").write_text("\n".join(lines) + "\n")
    return checkpoint
