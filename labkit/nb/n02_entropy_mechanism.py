"""02 · The entropy mechanism: why RL collapses entropy, and Clip-Cov / KL-Cov: the mechanism that notebooks/02_entropy_mechanism.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from dataclasses import dataclass
import torch
from labkit.core.grpo import LossConfig, TokenBatch, add_regularisers, masked_mean, ppo_clip


__all__ = ["CovConfig", "token_covariance", "batch_covariance", "covariance_share",
           "clip_cov_select", "kl_cov_select", "clip_cov_loss", "kl_cov_loss"]


BOUNDS = ("absolute", "quantile")


@dataclass
class CovConfig(LossConfig):
    """LossConfig plus the covariance-selection settings of Clip-Cov and KL-Cov.

    Defaults are the paper's (and the official code's): Clip-Cov drops the gradient of a random
    `clip_cov_ratio` = 2e-4 of the tokens among those with covariance in (1, 5); KL-Cov puts a
    `kl_cov_coef` = 1 penalty |log pi - log pi_old| on the top `kl_cov_ratio` = 2e-3 of tokens
    by covariance (2e-4 for their 32B model).

    bounds="absolute": `clip_cov_lb < cov < clip_cov_ub` in covariance units (the paper).
    bounds="quantile": `clip_cov_lb`, `clip_cov_ub` are quantiles in [0, 1] of the covariances
    of this batch's eligible tokens, band inclusive (lb=0.8, ub=1.0: the top fifth). This is the
    rescaling for a tiny batch, whose covariances have a different scale than an LLM's.
    """

    clip_cov_ratio: float = 2e-4
    clip_cov_lb: float = 1.0
    clip_cov_ub: float = 5.0
    bounds: str = "absolute"
    kl_cov_ratio: float = 2e-3
    kl_cov_coef: float = 1.0

    def __post_init__(self):
        if self.bounds not in BOUNDS:
            raise ValueError(f"CovConfig.bounds must be one of {', '.join(BOUNDS)}; got {self.bounds!r}")
        for name in ("clip_cov_ratio", "kl_cov_ratio"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise ValueError(f"CovConfig.{name} must be a fraction in (0, 1]; got {value!r}")
        if not self.kl_cov_coef >= 0:
            raise ValueError(f"CovConfig.kl_cov_coef must be >= 0; got {self.kl_cov_coef!r}")
        lb, ub = self.clip_cov_lb, self.clip_cov_ub
        if not lb < ub:
            raise ValueError(f"CovConfig needs clip_cov_lb < clip_cov_ub; got {lb!r}, {ub!r}")
        if self.bounds == "quantile" and not 0 <= lb < ub <= 1:
            raise ValueError(f"CovConfig with bounds='quantile' needs 0 <= clip_cov_lb < clip_cov_ub <= 1; "
                             f"got {lb!r}, {ub!r}")


def _check(tb: TokenBatch, cfg) -> None:
    if not isinstance(cfg, CovConfig):
        raise TypeError(f"Clip-Cov/KL-Cov need a labkit.nb.n02_entropy_mechanism.CovConfig as RLConfig.loss; "
                        f"got {type(cfg).__name__}")
    shapes = {tuple(t.shape) for t in (tb.logp, tb.old_logp, tb.advantages, tb.mask)}
    if len(shapes) != 1:
        raise ValueError(f"TokenBatch tensors must share one (B, T) shape; got {sorted(shapes)}")


# ---------------------------------------------------------------------------------------------
# The covariance term


@torch.no_grad()
def token_covariance(logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each token's contribution to the batch covariance of log-probability and advantage.

    Returns (B, T), zero off the mask, no gradient. Means are over the masked tokens."""
    if not (logp.shape == advantages.shape == mask.shape):
        raise ValueError(f"logp, advantages and mask must share one shape; got "
                         f"{tuple(logp.shape)}, {tuple(advantages.shape)}, {tuple(mask.shape)}")
    logp, advantages, mask = logp.detach().float(), advantages.detach().float(), mask.float()
    # cov_i = (A_i - mean_j A_j) * (log pi_i - mean_j log pi_j),  j over the batch's tokens
    cov = (advantages - masked_mean(advantages, mask)) * (logp - masked_mean(logp, mask))
    return cov * mask


def batch_covariance(logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor) -> float:
    """Cov(log pi, A) over the batch's tokens = the mean of `token_covariance` over the mask.
    Positive means confident tokens are rewarded: entropy is predicted to fall."""
    return masked_mean(token_covariance(logp, advantages, mask), mask.float()).item()


def covariance_share(cov: torch.Tensor, selected: torch.Tensor, mask: torch.Tensor) -> float:
    """Sum of the selected tokens' covariance over the whole batch's (signed) sum.

    Above 1 when the selected tokens carry more than the batch's net covariance (the rest
    cancels out). NaN when the batch's covariance sums to zero."""
    mask = mask.bool()
    total = cov[mask].sum()
    picked = cov[mask & selected.bool()].sum()
    return (picked / total).item() if total != 0 else float("nan")


# ---------------------------------------------------------------------------------------------
# Token selection


def clip_cov_select(cov: torch.Tensor, mask: torch.Tensor, excluded: torch.Tensor, cfg: CovConfig,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Clip-Cov's choice: max(1, floor(clip_cov_ratio * N)) tokens (N = masked tokens) drawn at
    random among the masked, not `excluded` tokens whose covariance lies in the band (fewer if
    the band holds fewer). Returns a bool (B, T) mask. With bounds="quantile" the band's
    quantiles are those of the eligible tokens' covariances."""
    mask = mask.bool()
    eligible = mask & ~excluded.bool()
    values = cov[eligible]
    if values.numel() == 0:
        return torch.zeros_like(mask)
    if cfg.bounds == "absolute":
        # clip_cov_lb < cov_i < clip_cov_ub
        band = eligible & (cov > cfg.clip_cov_lb) & (cov < cfg.clip_cov_ub)
    else:
        q = torch.tensor([cfg.clip_cov_lb, cfg.clip_cov_ub], dtype=values.dtype, device=values.device)
        lo, hi = torch.quantile(values, q).tolist()
        # Q_lb(cov) <= cov_i <= Q_ub(cov), quantiles over the eligible tokens
        band = eligible & (cov >= lo) & (cov <= hi)
    candidates = band.flatten().nonzero().squeeze(1)
    # |I_clip| = max(1, floor(r * N))
    count = min(max(int(cfg.clip_cov_ratio * int(mask.sum())), 1), candidates.numel())
    order = torch.randperm(candidates.numel(), generator=generator).to(candidates.device)
    chosen = torch.zeros(mask.numel(), dtype=torch.bool, device=mask.device)
    chosen[candidates[order[:count]]] = True
    return chosen.view_as(mask)


def kl_cov_select(cov: torch.Tensor, mask: torch.Tensor, cfg: CovConfig) -> torch.Tensor:
    """KL-Cov's choice: the top `kl_cov_ratio` of the masked tokens by covariance (at least one).
    Returns a bool (B, T) mask."""
    mask = mask.bool()
    n = int(mask.sum())
    if n == 0:
        return torch.zeros_like(mask)
    # |I_KL| = max(1, floor(k * N)),  the tokens of largest Cov
    count = max(int(cfg.kl_cov_ratio * n), 1)
    flat = cov.masked_fill(~mask, float("-inf")).flatten()
    chosen = torch.zeros_like(flat, dtype=torch.bool)
    chosen[flat.topk(count).indices] = True
    return chosen.view_as(mask)


# ---------------------------------------------------------------------------------------------
# Per-token losses (labkit.core.grpo's loss_fn signature)


def clip_cov_loss(tb: TokenBatch, cfg: CovConfig, generator: torch.Generator | None = None):
    """Clip-Cov: PPO-clip, with the gradient of a few high-covariance tokens dropped.

    Among tokens that PPO's clip has not already cut, those whose covariance lies in the band
    [lb, ub] are candidates; a random `clip_cov_ratio` of all tokens is taken from them and
    contributes no gradient (their loss value is kept, detached, so the logged loss is PPO's).
    Metrics: clipfrac (PPO's), covfrac (share of tokens detached), cov (batch Cov(log pi, A)),
    cov_share (the detached tokens' share of the batch's summed covariance)."""
    _check(tb, cfg)
    mask = tb.mask.bool()
    # L_PPO = max(-A rho, -A clip(rho, 1 - eps_low, 1 + eps_high)),  rho = pi_theta / pi_old
    ppo, cut_by_ppo = ppo_clip(tb, cfg)
    cut_by_ppo = cut_by_ppo & mask
    cov = token_covariance(tb.logp, tb.advantages, tb.mask)
    chosen = clip_cov_select(cov, mask, cut_by_ppo, cfg, generator)
    # L_i = 0 * grad for i in I_clip, L_PPO otherwise
    loss = torch.where(chosen, ppo.detach(), ppo)
    metrics = {"clipfrac": masked_mean(cut_by_ppo.float(), tb.mask).item(),
               "covfrac": masked_mean(chosen.float(), tb.mask).item(),
               "cov": masked_mean(cov, tb.mask).item(),
               "cov_share": covariance_share(cov, chosen, tb.mask)}
    return add_regularisers(loss, tb, cfg, metrics), metrics


def kl_cov_loss(tb: TokenBatch, cfg: CovConfig):
    """KL-Cov: the unclipped policy gradient, plus a KL penalty on the top-k covariance tokens.

    L_i = -A_i rho_i + beta |log pi_i - log pi_old,i| for the top `kl_cov_ratio` tokens by
    covariance, -A_i rho_i for the rest; no ratio clip anywhere (as in the paper's code).
    The penalty's gradient is zero while pi = pi_old, so KL-Cov differs from plain PG only from
    the second minibatch/epoch over a batch on (RLConfig.epochs or minibatches > 1).
    Metrics: clipfrac (0), covfrac, cov, cov_share, abs_kl (mean |log pi - log pi_old|)."""
    _check(tb, cfg)
    log_ratio = tb.logp - tb.old_logp
    ratio = log_ratio.exp()
    cov = token_covariance(tb.logp, tb.advantages, tb.mask)
    chosen = kl_cov_select(cov, tb.mask, cfg)
    # L_i = -A_i rho_i + beta * 1[i in I_KL] * |log pi_i - log pi_old,i|
    loss = -tb.advantages * ratio + cfg.kl_cov_coef * chosen.float() * log_ratio.abs()
    metrics = {"clipfrac": 0.0,
               "covfrac": masked_mean(chosen.float(), tb.mask).item(),
               "cov": masked_mean(cov, tb.mask).item(),
               "cov_share": covariance_share(cov, chosen, tb.mask),
               "abs_kl": masked_mean(log_ratio.detach().abs(), tb.mask).item()}
    return add_regularisers(loss, tb, cfg, metrics), metrics
