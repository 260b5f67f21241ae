"""13 · Multimodal self-evolving training: continuous RFT, PRM reranking, adaptive temperature (M-STAR): the mechanism that notebooks/13_multimodal_self_training.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from labkit.bases.pretrain import encode_batch
from labkit.core.vision.evaluate import MAX_NEW_TOKENS
from labkit.core.vision.rollout import vlm_rollout
from labkit.core.vision.world import (COLOURS, KINDS, MAX_COUNT, images_of, make_scene, parse_description, render,
                                      sample_task, verify)


# ---- the process reward model: one probability per step of the description
def cell_features(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, 16, 16) -> (B, 48): the mean colour of each 4 x 4 cell (the PRM's own view of the image)."""
    return F.avg_pool2d(images, 4).flatten(1)


def count_features(counts) -> torch.Tensor:
    """(r, g, b) counts -> one-hot, (3 * (MAX_COUNT + 1),)."""
    x = torch.zeros(len(COLOURS), MAX_COUNT + 1)
    for i, c in enumerate(counts):
        x[i, c] = 1.0
    return x.flatten()


class StepPRM(nn.Module):
    """P(step s is right | image, description) for the steps s = the count of each colour. It never
    sees the question or the answer: it judges the process, not the outcome."""

    def __init__(self, hidden: int = 128):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(48 + len(COLOURS) * (MAX_COUNT + 1), hidden), nn.GELU(),
                                 nn.Linear(hidden, hidden), nn.GELU(), nn.Linear(hidden, len(COLOURS)))

    def forward(self, images: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return self.net(torch.cat([cell_features(images), counts], dim=1))  # step logits (B, 3)


def prm_examples(n: int, seed: int, p_step_noise: float = 0.3):
    """n scenes, each with a description whose counts are each off by one with probability p_step_noise,
    and the step labels (which counts are right): our stand-in for the authors' Monte Carlo step labels."""
    rng = random.Random(f"prm-{seed}")
    images, counts, labels = [], [], []
    for _ in range(n):
        scene = make_scene(rng)
        said = list(scene.counts)
        for i in range(len(COLOURS)):
            if rng.random() < p_step_noise:
                step = rng.choice((-1, 1))
                said[i] += step if 0 <= said[i] + step <= MAX_COUNT else -step
        images.append(render(scene))
        counts.append(count_features(said))
        labels.append(torch.tensor([float(a == b) for a, b in zip(said, scene.counts)]))
    return torch.stack(images), torch.stack(counts), torch.stack(labels)


def train_prm(n_examples: int, steps: int, seed: int, hidden: int = 128, lr: float = 3e-3,
              batch_size: int = 256) -> StepPRM:
    """The PRM by binary cross-entropy on each step's label (Adam, minibatches drawn with the seed)."""
    images, counts, labels = prm_examples(n_examples, seed)
    torch.manual_seed(seed)
    prm = StepPRM(hidden)
    optimizer = torch.optim.Adam(prm.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        idx = torch.randint(0, n_examples, (batch_size,), generator=generator)
        loss = F.binary_cross_entropy_with_logits(prm(images[idx], counts[idx]), labels[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return prm.eval()


@torch.no_grad()
def prm_scores(prm: StepPRM, images: torch.Tensor, descriptions: list) -> torch.Tensor:
    """One score per response: the probability of its weakest step, min_s P(step s right); 0 when the
    description does not parse (no steps to judge)."""
    if len(images) != len(descriptions):
        raise ValueError(f"need one description per image; got {len(descriptions)} for {len(images)} images")
    parsed = [parse_description(d) for d in descriptions]
    parsed = [p if p is not None and max(p) <= MAX_COUNT else None for p in parsed]  # a count no scene has: no steps
    scores = torch.zeros(len(parsed))
    ok = [i for i, p in enumerate(parsed) if p is not None]
    if ok:
        device = next(prm.parameters()).device
        counts = torch.stack([count_features(parsed[i]) for i in ok]).to(device)
        # score(y) = min_s sigma(PRM(image, steps)_s)
        scores[ok] = torch.sigmoid(prm(images[ok].to(device), counts)).min(dim=1).values.cpu()
    return scores


# ---- selection, Reward-Pass@2, the temperature
def _groups_of(n: int, group_size: int) -> int:
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1 or n % group_size:
        raise ValueError(f"group_size must be an int >= 1 dividing the {n} responses; got {group_size!r}")
    return n // group_size


def select_top(correct, scores, group_size: int, keep: int, generator: torch.Generator | None = None) -> list[int]:
    """The rows RFT trains on. Within each query's group of group_size responses: the correct ones,
    ranked by score (highest first; ties keep the sampling order), the first `keep`. scores None: the
    correct ones in a random order (the same filter without the reranking signal)."""
    n_groups = _groups_of(len(correct), group_size)
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ValueError(f"keep must be an int >= 1; got {keep!r}")
    if scores is not None and len(scores) != len(correct):
        raise ValueError(f"need one score per response; got {len(scores)} for {len(correct)}")
    rows = []
    for g in range(n_groups):
        right = [i for i in range(g * group_size, (g + 1) * group_size) if correct[i]]
        if scores is None:
            right = [right[j] for j in torch.randperm(len(right), generator=generator).tolist()]
        else:
            right = sorted(right, key=lambda i: -float(scores[i]))  # rerank the correct responses by the PRM
        rows += right[:keep]
    return rows


def reward_pass_at_k(correct, scores, group_size: int, k: int = 2) -> float:
    """Reward-Pass@k: the share of queries with a correct response among the k the reward model ranks
    highest (ties keep the sampling order)."""
    n_groups = _groups_of(len(correct), group_size)
    if len(scores) != len(correct):
        raise ValueError(f"need one score per response; got {len(scores)} for {len(correct)}")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= group_size:
        raise ValueError(f"k must be an int in [1, group_size={group_size}]; got {k!r}")
    hits = 0
    for g in range(n_groups):
        group = range(g * group_size, (g + 1) * group_size)
        top = sorted(group, key=lambda i: -float(scores[i]))[:k]
        hits += any(correct[i] for i in top)
    return hits / n_groups


def choose_temperature(reward_pass: dict) -> float:
    """The temperature with the highest Reward-Pass@2; among ties the highest temperature (as much
    exploration as the same exploitation allows)."""
    if not reward_pass:
        raise ValueError("choose_temperature needs Reward-Pass@2 at one temperature at least")
    best = max(reward_pass.values())
    return max(t for t, v in reward_pass.items() if v >= best - 1e-12)


def cosine_lr(step: int, total: int, peak: float) -> float:
    """Cosine decay from `peak` (at step 0) towards 0 over `total` steps."""
    return peak * 0.5 * (1 + math.cos(math.pi * min(step, total) / max(1, total)))


# ---- one method of self-evolving training
@dataclass(frozen=True)
class Method:
    restart: bool  # each iteration trains a fresh copy of the base (ReST-EM)
    carry_optimizer: bool  # optimizer state and lr schedule continue across iterations (continuous)
    rerank: bool  # the PRM reranks the correct responses
    adaptive: bool  # the temperature of each iteration is chosen by Reward-Pass@2


METHODS = {
    "restem": Method(restart=True, carry_optimizer=False, rerank=False, adaptive=False),
    "iterative": Method(restart=False, carry_optimizer=False, rerank=False, adaptive=False),
    "continuous": Method(restart=False, carry_optimizer=True, rerank=False, adaptive=False),
    "continuous_prm": Method(restart=False, carry_optimizer=True, rerank=True, adaptive=False),
    "mstar": Method(restart=False, carry_optimizer=True, rerank=True, adaptive=True),
}


@dataclass(frozen=True)
class EvolveConfig:
    iterations: int = 4
    queries: int = 20  # queries per iteration (M-STAR's probe included)
    samples: int = 8  # responses per query (K)
    keep: int = 2  # responses kept per query (the top 2)
    lr: float = 1e-4  # peak lr of the cosine schedule
    epochs: int = 2  # passes over an iteration's kept responses
    minibatch: int = 16
    temperature: float = 1.0  # the static methods' sampling temperature
    temperatures: tuple = (0.6, 1.0, 1.4)  # M-STAR's candidates
    probe_queries: int = 4  # M-STAR: queries per candidate temperature, sampled first (and trained on too)
    shortcut: float = 0.5  # P("y") for `more` questions in the training stream


def sample_responses(model, tokenizer, tasks, samples: int, temperature: float, generator):
    """K responses per task at `temperature`: (owners, completions, verdicts)."""
    owners = [t for t in tasks for _ in range(samples)]
    out = vlm_rollout(model, tokenizer, [t.question for t in owners], images_of(owners).to(next(model.parameters()).device),
                      MAX_NEW_TOKENS, temperature, generator)
    return owners, out.completions, [verify(t, c) for t, c in zip(owners, out.completions)]


def sft_steps(model, tokenizer, optimizer, pairs, cfg: EvolveConfig, step: int, total: int, generator) -> tuple[int, float]:
    """RFT's update: epochs x minibatches of the NLL of the kept responses (the cold start's own loss),
    lr on the cosine schedule at `step` of `total`. Returns (steps taken so far, mean loss)."""
    device = next(model.parameters()).device
    model.train()
    losses = []
    for _ in range(cfg.epochs):
        order = torch.randperm(len(pairs), generator=generator).tolist()
        for start in range(0, len(order), cfg.minibatch):
            part = [pairs[i] for i in order[start:start + cfg.minibatch]]
            ids, mask, labels = encode_batch(tokenizer, [(t.question, c) for t, c in part])
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(step, total, cfg.lr)
            # L = - (1 / |y|) sum_t log pi(y_t | image, x, y_<t) over the kept responses y
            loss = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                         pixel_values=images_of([t for t, _ in part]).to(device), labels=labels.to(device)).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            losses.append(loss.item())
            step += 1
    model.eval()
    return step, sum(losses) / max(1, len(losses))


def steps_per_iteration(cfg: EvolveConfig, kept: int) -> int:
    return cfg.epochs * math.ceil(kept / cfg.minibatch)


def self_evolve(name: str, base, tokenizer, prm, cfg: EvolveConfig, stream_seed, generator, on_iteration=None):
    """One method's self-evolving run from `base` (never modified): per iteration, sample K responses to
    each of `queries` fresh queries, keep up to `keep` correct ones per query (reranked by the PRM or
    not), and fine-tune on them. Returns the final model and one dict per iteration."""
    method = METHODS[name]
    rng = random.Random(stream_seed)  # the same queries, in the same order, for every method
    model = copy.deepcopy(base)
    optimizer, step = None, 0
    expected = cfg.iterations * steps_per_iteration(cfg, cfg.queries * cfg.keep)  # the continuous schedule's length
    history = []
    for it in range(cfg.iterations):
        tasks = [sample_task(rng, rng.choice(KINDS), cfg.shortcut) for _ in range(cfg.queries)]
        chunks, reward_pass = [], {}
        if method.adaptive:  # probe each candidate temperature on its own queries, then sample the rest at T*
            for i, temperature in enumerate(cfg.temperatures):
                probe = tasks[i * cfg.probe_queries:(i + 1) * cfg.probe_queries]
                owners, completions, verdicts = sample_responses(model, tokenizer, probe, cfg.samples, temperature,
                                                                 generator)
                scores = prm_scores(prm, images_of(owners), [v.description for v in verdicts])
                reward_pass[temperature] = reward_pass_at_k([v.correct for v in verdicts], scores, cfg.samples, 2)
                chunks.append((owners, completions, verdicts, scores))
            temperature = choose_temperature(reward_pass)
            rest = tasks[len(cfg.temperatures) * cfg.probe_queries:]
        else:
            temperature, rest = cfg.temperature, tasks
        if rest:
            owners, completions, verdicts = sample_responses(model, tokenizer, rest, cfg.samples, temperature, generator)
            scores = prm_scores(prm, images_of(owners), [v.description for v in verdicts]) if method.rerank else None
            chunks.append((owners, completions, verdicts, scores))
        pairs, n_correct, n_rows = [], 0, 0
        for owners, completions, verdicts, scores in chunks:
            rows = select_top([v.correct for v in verdicts], scores if method.rerank else None, cfg.samples, cfg.keep,
                              generator)
            pairs += [(owners[i], completions[i]) for i in rows]
            n_correct += sum(v.correct for v in verdicts)
            n_rows += len(verdicts)
        if method.restart:  # ReST-EM: the data of the current model, a fresh copy of the base to train on it
            model = copy.deepcopy(base)
        if optimizer is None or not method.carry_optimizer:
            optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
            step = 0
        total = expected if method.carry_optimizer else steps_per_iteration(cfg, len(pairs))
        step, loss = sft_steps(model, tokenizer, optimizer, pairs, cfg, step, total, generator) if pairs else (step, float("nan"))
        exact = [parse_description(verify(t, c).description) == t.scene.counts for t, c in pairs]
        history.append({"iteration": it, "temperature": temperature, "reward_pass": reward_pass,
                        "train_acc": n_correct / n_rows, "kept": len(pairs),
                        "kept_desc_exact": sum(exact) / max(1, len(exact)), "loss": loss, "rollouts": n_rows})
        if on_iteration is not None:
            on_iteration(it, history[-1])
    return model, history
