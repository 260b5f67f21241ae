"""Policy-gradient pieces for language models: advantages, per-token losses, the update, a step.

Small functions over tensors, composed by `grpo_step`. A notebook changes the mechanism by
passing its own `advantage_fn` or `loss_fn`, never by copying the loop.

Shapes: B completions in G groups of n (B = G * n, a group = one prompt's completions, adjacent);
T completion tokens; `mask` is 1 on generated tokens.
"""
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from labkit.core.policy import Policy
from labkit.core.sampling import Rollout, completion_logprobs, rollout
from labkit.core.tasks import Task, verify

# ---------------------------------------------------------------------------------------------
# Advantages: rewards (B,) -> advantages (B,), one value per completion


def _groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    if group_size < 2 or rewards.numel() % group_size:
        raise ValueError(f"need group_size >= 2 dividing the batch; got {group_size} for {rewards.numel()} rewards")
    return rewards.float().view(-1, group_size)


def grpo_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6,
                    population_std: bool = False) -> torch.Tensor:
    """GRPO (Shao et al., 2024): A_i = (r_i - mean(r)) / (std(r) + eps) within the group.

    std is the sample std (n - 1) as in TRL and verl; with population_std=True, a binary group
    with success rate p has mean |A| = 2 sqrt(p (1 - p)) exactly (notebook 07 uses this)."""
    r = _groups(rewards, group_size)
    std = r.std(dim=1, keepdim=True, correction=0 if population_std else 1)
    return ((r - r.mean(dim=1, keepdim=True)) / (std + eps)).view(-1)


def drgrpo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Dr. GRPO (Liu et al., 2025, "Understanding R1-Zero-Like Training"): A_i = r_i - mean(r).

    GRPO's division by the group's std gives groups that are nearly all right or all wrong (small
    std) larger advantages: a per-question difficulty bias. Dr. GRPO drops it; its other half is
    the length-unbiased loss, `loss_agg="seq-mean-token-sum-norm"`, which sums each completion's
    tokens and divides by a constant (the maximum completion length), not by |o_i|."""
    r = _groups(rewards, group_size)
    return (r - r.mean(dim=1, keepdim=True)).view(-1)


def rloo_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """RLOO (Ahmadian et al., 2024): A_i = r_i - mean_{j != i} r_j = n / (n - 1) * (r_i - mean(r))."""
    r = _groups(rewards, group_size)
    mean_of_others = (r.sum(dim=1, keepdim=True) - r) / (group_size - 1)
    return (r - mean_of_others).view(-1)


ADVANTAGES = {"grpo": grpo_advantages, "drgrpo": drgrpo_advantages, "rloo": rloo_advantages}

# ---------------------------------------------------------------------------------------------
# Per-token losses: a TokenBatch -> (loss per token (B, T), metrics)


@dataclass
class TokenBatch:
    """What a per-token loss may look at. All (B, T) except where noted."""

    logp: torch.Tensor  # current policy, with gradient
    old_logp: torch.Tensor  # policy that sampled the batch
    advantages: torch.Tensor  # per-token advantage (the completion's, broadcast)
    mask: torch.Tensor
    entropy: torch.Tensor | None = None  # current policy's full-distribution entropy (with gradient)
    ref_logp: torch.Tensor | None = None  # reference policy, for a KL penalty


@dataclass
class LossConfig:
    clip_low: float = 0.2  # ratio may fall to 1 - clip_low
    clip_high: float = 0.2  # and rise to 1 + clip_high (DAPO's clip-higher: make it larger)
    kl_coef: float = 0.0  # beta of the k3 KL penalty to the reference
    entropy_coef: float = 0.0  # bonus for entropy (a baseline against collapse)
    loss_agg: str = "token-mean"  # see aggregate()


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1)


def k3_kl(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Schulman's k3 estimator of KL(pi || ref): exp(ref - logp) - (ref - logp) - 1 >= 0."""
    delta = ref_logp - logp
    return delta.exp() - delta - 1


def ppo_clip(tb: TokenBatch, cfg: LossConfig):
    """PPO's clipped surrogate per token, with asymmetric bounds, and where the clip is active:
    L = max(-A * rho, -A * clip(rho, 1 - eps_low, 1 + eps_high)),  rho = pi / pi_old."""
    ratio = (tb.logp - tb.old_logp).exp()
    unclipped = -tb.advantages * ratio
    clipped = -tb.advantages * ratio.clamp(1 - cfg.clip_low, 1 + cfg.clip_high)
    return torch.maximum(unclipped, clipped), clipped > unclipped


def add_regularisers(loss: torch.Tensor, tb: TokenBatch, cfg: LossConfig, metrics: dict) -> torch.Tensor:
    """loss + beta * KL_k3(pi || ref) - entropy_coef * H, for the coefficients that are set."""
    if cfg.kl_coef and tb.ref_logp is not None:
        kl = k3_kl(tb.logp, tb.ref_logp)
        loss = loss + cfg.kl_coef * kl
        metrics["kl"] = masked_mean(kl, tb.mask).item()
    if cfg.entropy_coef and tb.entropy is not None:
        loss = loss - cfg.entropy_coef * tb.entropy
    return loss


def ppo_clip_loss(tb: TokenBatch, cfg: LossConfig):
    """PPO-clip (see `ppo_clip`) plus the optional KL penalty and entropy bonus."""
    loss, clipped = ppo_clip(tb, cfg)
    metrics = {"clipfrac": masked_mean(clipped.float(), tb.mask).item()}
    return add_regularisers(loss, tb, cfg, metrics), metrics


def aggregate(loss: torch.Tensor, mask: torch.Tensor, mode: str, max_len: int | None = None) -> torch.Tensor:
    """Reduce per-token losses to a scalar.

    token-mean:               sum_{i,t} l_it / sum_{i,t} m_it       (DAPO; long answers weigh more)
    seq-mean-token-mean:      mean_i (sum_t l_it / sum_t m_it)      (original GRPO)
    seq-mean-token-sum-norm:  sum_{i,t} l_it / (B * L_max)          (Dr. GRPO; no length bias)

    Dr. GRPO's L_max is a constant, the maximum completion length (`max_len`, the sampler's
    max_new_tokens), as in the authors' code: the padded width of a batch would change the
    step size with the longest completion that happened to be sampled.
    """
    loss = loss * mask
    if mode == "token-mean":
        return loss.sum() / mask.sum().clamp(min=1)
    if mode == "seq-mean-token-mean":
        return (loss.sum(-1) / mask.sum(-1).clamp(min=1)).mean()
    if mode == "seq-mean-token-sum-norm":
        if max_len is None or max_len < mask.shape[1]:
            raise ValueError(f"seq-mean-token-sum-norm needs max_len, the maximum completion length (a constant "
                             f">= the batch's width {mask.shape[1]}); got {max_len!r}")
        # L_Dr.GRPO = 1/(B * L_max) * sum_i sum_t l_it
        return loss.sum() / (mask.shape[0] * max_len)
    raise ValueError(f"unknown loss_agg {mode!r}; accepted: token-mean, seq-mean-token-mean, seq-mean-token-sum-norm")


LOSS_AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm")

# ---------------------------------------------------------------------------------------------
# The update: several epochs of minibatches over one batch, against the sampling log-probs


@dataclass
class RLConfig:
    group_size: int = 8  # completions per prompt
    max_new_tokens: int = 16
    temperature: float = 1.0
    top_p: float = 1.0
    epochs: int = 1  # passes over each batch (ratio = 1 on the first minibatch of the first epoch)
    minibatches: int = 1
    max_grad_norm: float = 1.0
    # Update only on groups whose rewards differ (DAPO-style filtering). Under GRPO without a KL
    # term an all-equal group has zero advantage and no gradient, so this saves the update's
    # compute; with token-mean the remaining tokens then carry the whole step.
    skip_uninformative_groups: bool = False
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self):
        checks = {"group_size": self.group_size >= 2, "max_new_tokens": self.max_new_tokens >= 1,
                  "temperature": self.temperature > 0, "top_p": 0 < self.top_p <= 1,
                  "epochs": self.epochs >= 1, "minibatches": self.minibatches >= 1,
                  "max_grad_norm": self.max_grad_norm > 0}
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"RLConfig.{name} out of range: {getattr(self, name)!r}")
        if self.loss.loss_agg not in LOSS_AGG_MODES:
            aggregate(torch.zeros(1, 1), torch.ones(1, 1), self.loss.loss_agg, 1)  # raises the one-line error


def update(policy: Policy, optimizer: torch.optim.Optimizer, batch: Rollout, advantages: torch.Tensor,
           cfg: RLConfig, loss_fn: Callable = ppo_clip_loss, ref_model=None) -> dict:
    """Policy-gradient update on one batch; returns the mean metrics over its minibatch steps."""
    ref_logp = None
    if ref_model is not None and cfg.loss.kl_coef:
        with torch.no_grad():
            ref_logp = completion_logprobs(ref_model, batch, temperature=cfg.temperature)
    return optimise(policy.model, optimizer, batch, advantages, cfg, loss_fn, ref_logp)


def optimise(model, optimizer: torch.optim.Optimizer, batch, advantages: torch.Tensor, cfg: RLConfig,
             loss_fn: Callable = ppo_clip_loss, ref_logp: torch.Tensor | None = None,
             logprobs_fn: Callable = completion_logprobs, select: Callable = None) -> dict:
    """cfg.epochs x cfg.minibatches optimizer steps of the per-token loss on `batch`.

    logprobs_fn(model, part, with_entropy=True, temperature=T) scores a minibatch under the
    distribution it was sampled from (logits / T, as the sampler drew them) and select(batch,
    index) takes its rows: the defaults serve text rollouts; an image-prefixed batch brings its
    own (labkit.core.vision.rollout.vlm_update)."""
    select = select or subset
    model.train()
    token_adv = advantages[:, None].expand_as(batch.completion_mask).to(batch.logprobs)
    totals, count = {}, 0
    for _ in range(cfg.epochs):
        order = torch.randperm(len(batch), device=batch.input_ids.device)
        for chunk in order.chunk(cfg.minibatches):
            part = select(batch, chunk)
            logp, entropy = logprobs_fn(model, part, with_entropy=True, temperature=cfg.temperature)
            tb = TokenBatch(logp=logp, old_logp=part.logprobs, advantages=token_adv[chunk],
                            mask=part.completion_mask, entropy=entropy,
                            ref_logp=None if ref_logp is None else ref_logp[chunk])
            token_loss, metrics = loss_fn(tb, cfg.loss)
            loss = aggregate(token_loss, part.completion_mask, cfg.loss.loss_agg, cfg.max_new_tokens)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            metrics.update(loss=loss.item(), grad_norm=grad_norm.item())
            for key, value in metrics.items():
                totals[key] = totals.get(key, 0.0) + value
            count += 1
    return {key: value / count for key, value in totals.items()}


def subset(batch: Rollout, index: torch.Tensor) -> Rollout:
    """Rows `index` of a rollout (for minibatches)."""
    rows = index.tolist()
    return Rollout(batch.input_ids[index], batch.attention_mask[index], batch.prompt_len,
                   batch.completion_mask[index], batch.logprobs[index], batch.entropies[index],
                   [batch.completions[i] for i in rows], [batch.prompts[i] for i in rows],
                   batch.finished[index])

# ---------------------------------------------------------------------------------------------
# One step of GRPO-style training: sample groups, verify, advantages, update, metrics


@dataclass
class StepResult:
    metrics: dict
    batch: Rollout
    tasks: list[Task]  # one per completion
    rewards: torch.Tensor
    advantages: torch.Tensor


def group_rewards(tasks: list[Task], completions: list[str], group_size: int, group_reward_fn: Callable) -> torch.Tensor:
    """Rewards from a judge that scores a task's whole group at once (a preference or set
    reward, a self-judge): group_reward_fn(task, completions) -> group_size numbers."""
    out = []
    for g, task in enumerate(tasks):
        group = completions[g * group_size:(g + 1) * group_size]
        scores = [float(r) for r in group_reward_fn(task, group)]
        if len(scores) != group_size:
            raise ValueError(f"group_reward_fn must return one reward per completion ({group_size}); "
                             f"got {len(scores)} for task {task.prompt!r}")
        out += scores
    return torch.tensor(out)


def grpo_step(policy: Policy, optimizer: torch.optim.Optimizer, tasks: list[Task], cfg: RLConfig,
              advantage_fn: Callable = grpo_advantages, loss_fn: Callable = ppo_clip_loss,
              reward_fn: Callable = None, ref_model=None, generator: torch.Generator | None = None,
              group_reward_fn: Callable = None) -> StepResult:
    """Sample `cfg.group_size` completions per task, score them, and update the policy.

    The reward is the task's verifier unless one of these is given:
    reward_fn(task, completion) -> float scores each completion alone;
    group_reward_fn(task, completions) -> list of floats scores a task's group together.
    Metrics use the field's standard names: reward/mean, acc, entropy, kl, clipfrac, grad_norm,
    len/mean, frac_zero_std, plus time/rollout, time/update, time/step in seconds; acc and
    format_ok always come from the verifier."""
    if reward_fn is not None and group_reward_fn is not None:
        raise ValueError("give grpo_step reward_fn (one completion) or group_reward_fn (a whole group), not both")
    started = time.perf_counter()
    owners = [t for t in tasks for _ in range(cfg.group_size)]
    batch = rollout(policy, [t.prompt for t in owners], cfg.max_new_tokens, cfg.temperature, cfg.top_p, generator)
    rolled = time.perf_counter()
    verdicts = [verify(t, text) for t, text in zip(owners, batch.completions)]
    if group_reward_fn is not None:
        rewards = group_rewards(tasks, batch.completions, cfg.group_size, group_reward_fn)
    elif reward_fn is None:
        rewards = torch.tensor([v.reward for v in verdicts])
    else:
        rewards = torch.tensor([float(reward_fn(t, text)) for t, text in zip(owners, batch.completions)])
    advantages = advantage_fn(rewards, cfg.group_size).to(batch.logprobs.device)
    grouped = rewards.view(-1, cfg.group_size)
    zero_std = grouped.std(dim=1) == 0
    informative = (~zero_std).repeat_interleave(cfg.group_size)
    if cfg.skip_uninformative_groups and not informative.all():
        rows = informative.nonzero().squeeze(1).to(batch.input_ids.device)
        metrics = update(policy, optimizer, subset(batch, rows), advantages[rows], cfg, loss_fn, ref_model) \
            if len(rows) else {"clipfrac": 0.0, "loss": 0.0, "grad_norm": 0.0}
    else:
        metrics = update(policy, optimizer, batch, advantages, cfg, loss_fn, ref_model)
    metrics.update({
        "reward/mean": rewards.mean().item(),
        "acc": sum(v.correct for v in verdicts) / len(verdicts),
        "format_ok": sum(v.format_ok for v in verdicts) / len(verdicts),
        "entropy": masked_mean(batch.entropies, batch.completion_mask).item(),
        "len/mean": batch.lengths.float().mean().item(),
        "frac_zero_std": zero_std.float().mean().item(),
        "rows_updated": len(batch) if not cfg.skip_uninformative_groups else int(informative.sum()),
        "time/rollout": rolled - started,
        "time/update": time.perf_counter() - rolled,
        "time/step": time.perf_counter() - started,
    })
    metrics.setdefault("kl", 0.0)
    return StepResult(metrics, batch, owners, rewards, advantages.cpu())
