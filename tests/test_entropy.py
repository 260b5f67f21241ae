"""Clip-Cov, KL-Cov and the covariance helpers (labkit.nb.n02_entropy_mechanism) against hand-computed values."""
import math
import random

import pytest
import torch

from labkit.nb.n02_entropy_mechanism import (CovConfig, batch_covariance, clip_cov_loss, clip_cov_select, covariance_share,
                            kl_cov_loss, kl_cov_select, token_covariance)
from labkit.core.grpo import LossConfig, RLConfig, TokenBatch, ppo_clip_loss


def _tb(logp, old, adv, mask=None, entropy=None, ref=None, grad=True):
    """A one-row TokenBatch from lists of log-probs (logp with gradient)."""
    logp = torch.tensor([logp], requires_grad=grad)
    old = torch.tensor([old])
    adv = torch.tensor([adv])
    mask = torch.ones_like(adv) if mask is None else torch.tensor([mask])
    return TokenBatch(logp=logp, old_logp=old, advantages=adv, mask=mask,
                      entropy=None if entropy is None else torch.tensor([entropy], requires_grad=True),
                      ref_logp=None if ref is None else torch.tensor([ref]))


# ---------------------------------------------------------------------------------------------
# covariance helpers


def test_token_covariance_by_hand():
    # masked tokens: A = [2, -1, -1] (mean 0), log pi = [-1, -2, -3] (mean -2); the 4th is padding
    logp = torch.tensor([[-1.0, -2.0, -3.0, 99.0]])
    adv = torch.tensor([[2.0, -1.0, -1.0, 7.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    cov = token_covariance(logp, adv, mask)
    # cov_i = (A_i - 0) * (log pi_i + 2)
    assert torch.allclose(cov, torch.tensor([[2.0, 0.0, 1.0, 0.0]]))
    assert batch_covariance(logp, adv, mask) == pytest.approx(1.0)  # (2 + 0 + 1) / 3
    assert not cov.requires_grad


def test_token_covariance_means_span_rows_and_ignore_padding():
    logp = torch.tensor([[-1.0, 0.0], [-3.0, 5.0]])
    adv = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    # means over the two real tokens: A 0, log pi -2
    assert torch.allclose(token_covariance(logp, adv, mask), torch.tensor([[1.0, 0.0], [1.0, 0.0]]))


def test_token_covariance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="shape"):
        token_covariance(torch.zeros(2, 3), torch.zeros(2, 3), torch.ones(2, 2))


def test_covariance_share_by_hand():
    cov = torch.tensor([[3.0, -1.0, 0.5, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    selected = torch.tensor([[True, False, False, True]])  # the padded token never counts
    assert covariance_share(cov, selected, mask) == pytest.approx(3.0 / 2.5)  # > 1: the rest cancels
    assert math.isnan(covariance_share(torch.tensor([[1.0, -1.0]]), torch.tensor([[True, False]]),
                                       torch.ones(1, 2)))


# ---------------------------------------------------------------------------------------------
# settings


@pytest.mark.parametrize("kwargs, match", [
    (dict(bounds="relative"), "bounds"),
    (dict(clip_cov_ratio=0.0), "clip_cov_ratio"),
    (dict(clip_cov_ratio=1.5), "clip_cov_ratio"),
    (dict(kl_cov_ratio=-0.1), "kl_cov_ratio"),
    (dict(kl_cov_coef=-1.0), "kl_cov_coef"),
    (dict(kl_cov_coef=float("nan")), "kl_cov_coef"),
    (dict(clip_cov_lb=5.0, clip_cov_ub=1.0), "clip_cov_lb < clip_cov_ub"),
    (dict(bounds="quantile", clip_cov_lb=0.8, clip_cov_ub=1.2), "quantile"),
])
def test_cov_config_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CovConfig(**kwargs)


def test_cov_config_defaults_are_the_papers_and_it_is_a_loss_config():
    cfg = CovConfig()
    assert (cfg.clip_cov_ratio, cfg.clip_cov_lb, cfg.clip_cov_ub, cfg.kl_cov_ratio, cfg.kl_cov_coef) == \
        (2e-4, 1.0, 5.0, 2e-3, 1.0)
    assert isinstance(cfg, LossConfig) and cfg.clip_low == 0.2
    RLConfig(loss=cfg)  # accepted where a LossConfig is


@pytest.mark.parametrize("loss_fn", [clip_cov_loss, kl_cov_loss])
def test_losses_reject_a_plain_loss_config_and_bad_shapes(loss_fn):
    tb = _tb([-1.0, -2.0], [-1.0, -2.0], [1.0, -1.0])
    with pytest.raises(TypeError, match="CovConfig"):
        loss_fn(tb, LossConfig())
    bad = TokenBatch(logp=torch.zeros(1, 3), old_logp=torch.zeros(1, 3), advantages=torch.zeros(1, 2),
                     mask=torch.ones(1, 3))
    with pytest.raises(ValueError, match="shape"):
        loss_fn(bad, CovConfig())


# ---------------------------------------------------------------------------------------------
# Clip-Cov


def test_clip_cov_select_absolute_band_and_count():
    cov = torch.tensor([[0.5, 1.5, 2.0, 4.9, 5.0, 7.0, 3.0, 2.5]])
    mask = torch.tensor([[1.0] * 7 + [0.0]])
    excluded = torch.tensor([[False, False, False, False, False, False, True, False]])
    cfg = CovConfig(clip_cov_ratio=1.0)
    chosen = clip_cov_select(cov, mask, excluded, cfg)
    # 1 < cov < 5, not excluded (3.0), not padding (2.5): 1.5, 2.0, 4.9
    assert chosen.tolist() == [[False, True, True, True, False, False, False, False]]
    # ratio 0.3 of N = 7 masked tokens -> floor(2.1) = 2 tokens, drawn from the band
    torch.manual_seed(0)
    chosen = clip_cov_select(cov, mask, excluded, CovConfig(clip_cov_ratio=0.3))
    assert int(chosen.sum()) == 2 and not (chosen & ~torch.tensor([[0, 1, 1, 1, 0, 0, 0, 0]]).bool()).any()
    # the paper's ratio on a tiny batch still takes one token (max(1, .)), if the band has one
    assert int(clip_cov_select(cov, mask, excluded, CovConfig()).sum()) == 1


def test_clip_cov_select_quantile_band():
    cov = torch.arange(10.0).view(1, 10)  # 0..9
    mask = torch.ones(1, 10)
    none = torch.zeros(1, 10, dtype=torch.bool)
    top = clip_cov_select(cov, mask, none, CovConfig(bounds="quantile", clip_cov_ratio=1.0,
                                                     clip_cov_lb=0.8, clip_cov_ub=1.0))
    # quantiles 0.8 and 1.0 of 0..9 are 7.2 and 9: tokens 8 and 9
    assert top.nonzero()[:, 1].tolist() == [8, 9]
    # quantiles are over the eligible tokens only: exclude 8, 9 -> 0..7, q0.8 = 5.6 -> 6, 7
    excluded = cov >= 8
    top = clip_cov_select(cov, mask, excluded, CovConfig(bounds="quantile", clip_cov_ratio=1.0,
                                                         clip_cov_lb=0.8, clip_cov_ub=1.0))
    assert top.nonzero()[:, 1].tolist() == [6, 7]


def test_clip_cov_select_with_nothing_eligible():
    cov = torch.tensor([[2.0, 3.0]])
    assert not clip_cov_select(cov, torch.zeros(1, 2), torch.zeros(1, 2), CovConfig(clip_cov_ratio=1.0)).any()
    assert not clip_cov_select(cov, torch.ones(1, 2), torch.ones(1, 2), CovConfig(clip_cov_ratio=1.0)).any()


def test_clip_cov_loss_drops_only_the_chosen_tokens_gradient():
    # log pi = log pi_old (ratio 1); A = [2, -1, -1, 0], log pi = [-0.1, -2, -3, -2.5]
    # means: A 0, log pi -1.9 -> cov = [3.6, 0.1, 1.1, 0]: band (1, 5) holds tokens 0 and 2
    logp = [-0.1, -2.0, -3.0, -2.5]
    tb = _tb(logp, logp, [2.0, -1.0, -1.0, 0.0])
    loss, metrics = clip_cov_loss(tb, CovConfig(clip_cov_ratio=1.0))
    # values are PPO's (-A * 1) everywhere; the chosen ones are detached
    assert torch.allclose(loss, torch.tensor([[-2.0, 1.0, 1.0, 0.0]]))
    loss.sum().backward()
    # d(-A rho)/d log pi = -A rho = -A at ratio 1; tokens 0 and 2 give nothing
    assert torch.allclose(tb.logp.grad, torch.tensor([[0.0, 1.0, 0.0, 0.0]]))
    assert metrics["covfrac"] == pytest.approx(0.5) and metrics["clipfrac"] == 0.0
    assert metrics["cov"] == pytest.approx((3.6 + 0.1 + 1.1) / 4, rel=1e-5)
    assert metrics["cov_share"] == pytest.approx(4.7 / 4.8, rel=1e-5)


def test_clip_cov_never_picks_tokens_ppo_already_clipped():
    # token 0: A = 1, ratio 1.5 > 1.2: clipped by PPO (and top covariance); token 1 in the band
    tb = _tb([math.log(0.6), math.log(0.05), math.log(0.3)], [math.log(0.4), math.log(0.05), math.log(0.3)],
             [1.0, -1.0, 0.0])
    cfg = CovConfig(bounds="quantile", clip_cov_ratio=1.0, clip_cov_lb=0.5, clip_cov_ub=1.0)
    loss, metrics = clip_cov_loss(tb, cfg)
    ppo, _ = ppo_clip_loss(tb, cfg)
    assert torch.allclose(loss, ppo)
    assert metrics["clipfrac"] == pytest.approx(1 / 3)
    loss.sum().backward()
    assert tb.logp.grad[0, 0] == 0.0  # clipped by PPO: no gradient anyway
    cov = token_covariance(tb.logp, tb.advantages, tb.mask)
    # eligible tokens 1, 2; the band [median, max] of their covariance holds the larger one
    picked = 1 if cov[0, 1] > cov[0, 2] else 2
    assert tb.logp.grad[0, picked] == 0.0 and metrics["covfrac"] == pytest.approx(1 / 3)


def test_clip_cov_equals_ppo_when_no_token_is_in_the_band():
    # covariances of a tiny batch are far below the paper's lower bound 1: nothing is clipped
    logp = [-0.5, -1.0, -1.5]
    kw = dict(entropy=[0.7, 0.2, 0.1], ref=[-0.4, -1.2, -1.5])
    cfg = CovConfig(entropy_coef=0.01, kl_coef=0.1)
    tb_cov, tb_ppo = _tb(logp, [-0.6, -1.0, -1.4], [0.5, -0.5, 0.1], **kw), \
        _tb(logp, [-0.6, -1.0, -1.4], [0.5, -0.5, 0.1], **kw)
    loss, metrics = clip_cov_loss(tb_cov, cfg)
    expected, expected_metrics = ppo_clip_loss(tb_ppo, cfg)
    assert torch.allclose(loss, expected)
    assert metrics["covfrac"] == 0.0 and metrics["kl"] == pytest.approx(expected_metrics["kl"])
    loss.sum().backward()
    expected.sum().backward()
    assert torch.allclose(tb_cov.logp.grad, tb_ppo.logp.grad)
    assert torch.allclose(tb_cov.entropy.grad, tb_ppo.entropy.grad)


def test_clip_cov_random_choice_follows_the_generator():
    cov_logp = [0.0, -1.0, -2.0, -3.0, -4.0, -5.0]
    adv = [3.0, 2.0, 1.0, -1.0, -2.0, -3.0]
    cfg = CovConfig(bounds="quantile", clip_cov_ratio=0.34, clip_cov_lb=0.0, clip_cov_ub=1.0)  # 2 of 6

    def picked(seed):
        tb = _tb(cov_logp, cov_logp, adv)
        loss, _ = clip_cov_loss(tb, cfg, generator=torch.Generator().manual_seed(seed))
        loss.sum().backward()
        return (tb.logp.grad == 0).squeeze(0).tolist()

    assert picked(1) == picked(1) and sum(picked(1)) == 2
    assert len({tuple(picked(s)) for s in range(8)}) > 1


# ---------------------------------------------------------------------------------------------
# KL-Cov


def test_kl_cov_select_top_k():
    cov = torch.tensor([[0.1, 5.0, -2.0, 3.0, 9.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0, 0.0]])  # the 9.0 is padding
    assert kl_cov_select(cov, mask, CovConfig(kl_cov_ratio=0.5)).tolist() == \
        [[False, True, False, True, False]]
    assert kl_cov_select(cov, mask, CovConfig()).tolist() == [[False, True, False, False, False]]  # max(1, .)
    assert not kl_cov_select(cov, torch.zeros(1, 5), CovConfig()).any()


def test_kl_cov_loss_by_hand():
    # ratios 1.5, 0.5, 1.0; A = [1, -1, 0]; log pi = [log .6, log .2, log .3] (mean -1.107)
    # cov = [1 * 0.596, -1 * -0.502, 0]: token 0 is the top one
    old = [math.log(0.4), math.log(0.4), math.log(0.3)]
    new = [math.log(0.6), math.log(0.2), math.log(0.3)]
    tb = _tb(new, old, [1.0, -1.0, 0.0])
    cov = token_covariance(tb.logp, tb.advantages, tb.mask)[0]
    top = int(cov.argmax())
    assert top == 0  # confident and rewarded
    loss, metrics = kl_cov_loss(tb, CovConfig(kl_cov_ratio=0.34, kl_cov_coef=2.0))  # 1 of 3
    # no clip: -A rho = [-1.5, 0.5, 0]; + beta |log 1.5| on token 0
    expected = torch.tensor([[-1.5 + 2.0 * math.log(1.5), 0.5, 0.0]])
    assert torch.allclose(loss, expected, atol=1e-6)
    assert metrics["covfrac"] == pytest.approx(1 / 3)
    assert metrics["abs_kl"] == pytest.approx((math.log(1.5) + math.log(2.0)) / 3, rel=1e-5)
    loss.sum().backward()
    # d/d log pi: -A rho + beta * sign(log rho) on token 0 = -1.5 + 2; token 1: +1 * 0.5
    assert torch.allclose(tb.logp.grad, torch.tensor([[0.5, 0.5, 0.0]]), atol=1e-6)


def test_kl_cov_has_no_penalty_gradient_on_the_first_pass():
    """While pi = pi_old the penalty |log pi - log pi_old| has zero gradient: KL-Cov is plain PG."""
    logp = [-0.2, -1.0, -3.0, -0.7]
    adv = [1.0, -1.0, 1.0, -1.0]
    tb = _tb(logp, logp, adv)
    loss, _ = kl_cov_loss(tb, CovConfig(kl_cov_ratio=1.0, kl_cov_coef=10.0))
    loss.sum().backward()
    assert torch.allclose(tb.logp.grad, -torch.tensor([adv]))


def test_kl_cov_adds_the_entropy_bonus_like_ppo():
    tb = _tb([-1.0, -2.0], [-1.0, -2.0], [1.0, -1.0], entropy=[0.5, 0.25])
    loss, _ = kl_cov_loss(tb, CovConfig(entropy_coef=0.1))
    assert torch.allclose(loss, torch.tensor([[-1.0 - 0.05, 1.0 - 0.025]]))


# ---------------------------------------------------------------------------------------------
# through the real update loop


@pytest.mark.parametrize("loss_fn, cfg", [
    (clip_cov_loss, CovConfig(bounds="quantile", clip_cov_ratio=1.0, clip_cov_lb=0.8, clip_cov_ub=1.0)),
    (kl_cov_loss, CovConfig(kl_cov_ratio=0.2, kl_cov_coef=5.0)),
])
def test_losses_run_in_grpo_step(loss_fn, cfg):
    from labkit.core.policy import shipped_models

    if "tiny" not in shipped_models():
        pytest.skip("the shipped tiny checkpoint is not there yet")
    from labkit.core.policy import load_policy
    from labkit.core.grpo import grpo_step
    from labkit.core.tasks import parse_arms, sample_task, train_seed

    torch.manual_seed(0)
    policy = load_policy("tiny", device="cpu")
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=1e-3)
    rng = random.Random(train_seed(0))
    arms = parse_arms("add:1-2,sort:3")
    tasks = [sample_task(*rng.choice(arms), rng) for _ in range(4)]
    result = grpo_step(policy, optimizer, tasks, RLConfig(group_size=4, max_new_tokens=8, epochs=2, loss=cfg),
                       loss_fn=loss_fn)
    m = result.metrics
    assert 0 < m["covfrac"] <= 1 and math.isfinite(m["loss"]) and math.isfinite(m["grad_norm"])
