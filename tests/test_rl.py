"""Advantage estimators, losses and aggregation against hand-computed values."""
import math

import pytest
import torch

from labkit.core.grpo import (LossConfig, RLConfig, TokenBatch, aggregate, drgrpo_advantages, grpo_advantages,
                       k3_kl, ppo_clip_loss, rloo_advantages)


def test_grpo_advantages_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    adv = grpo_advantages(rewards, group_size=4)
    # group 1: mean 0.25, sample std sqrt(((0.75)^2 + 3 * 0.25^2) / 3) = 0.5
    assert torch.allclose(adv[:4], torch.tensor([1.5, -0.5, -0.5, -0.5]), atol=1e-5)
    assert torch.allclose(adv[4:], torch.zeros(4))  # all-equal group: no signal


def test_grpo_population_std_gives_frontier_formula():
    for successes in range(1, 8):
        rewards = torch.tensor([1.0] * successes + [0.0] * (8 - successes))
        p = successes / 8
        adv = grpo_advantages(rewards, 8, eps=0.0, population_std=True)
        assert adv.abs().mean().item() == pytest.approx(2 * math.sqrt(p * (1 - p)), rel=1e-5)


def test_drgrpo_and_rloo_by_hand():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0])
    assert torch.allclose(drgrpo_advantages(rewards, 4), torch.tensor([0.75, -0.25, -0.25, -0.25]))
    # RLOO: r_i - mean of the others
    assert torch.allclose(rloo_advantages(rewards, 4), torch.tensor([1.0, -1 / 3, -1 / 3, -1 / 3]))


@pytest.mark.parametrize("fn", [grpo_advantages, drgrpo_advantages, rloo_advantages])
def test_advantages_reject_bad_group(fn):
    with pytest.raises(ValueError, match="group_size"):
        fn(torch.ones(6), 4)
    with pytest.raises(ValueError, match="group_size"):
        fn(torch.ones(4), 1)


def _tb(logp, old, adv, mask=None, ref=None, entropy=None):
    logp = torch.tensor([logp]).log()
    old = torch.tensor([old]).log()
    adv = torch.tensor([adv])
    mask = torch.ones_like(adv) if mask is None else torch.tensor([mask])
    ref = None if ref is None else torch.tensor([ref]).log()
    return TokenBatch(logp=logp, old_logp=old, advantages=adv, mask=mask, ref_logp=ref,
                      entropy=None if entropy is None else torch.tensor([entropy]))


def test_ppo_clip_by_hand_with_asymmetric_bounds():
    # ratios 1.5 (A>0: clipped at 1 + 0.28), 0.5 (A<0: clipped at 1 - 0.2), 1.1 (inside), 0.5 (A>0: unclipped)
    tb = _tb([0.3, 0.1, 0.22, 0.1], [0.2, 0.2, 0.2, 0.2], [1.0, -1.0, 2.0, 1.0])
    loss, metrics = ppo_clip_loss(tb, LossConfig(clip_low=0.2, clip_high=0.28))
    expected = torch.tensor([-1.28, 0.8, -2.2, -0.5])
    assert torch.allclose(loss[0], expected, atol=1e-5)
    assert metrics["clipfrac"] == pytest.approx(0.5)


def test_k3_kl_by_hand_and_penalty():
    logp, ref = torch.tensor([0.5]).log(), torch.tensor([0.25]).log()
    # k3 = exp(ref - logp) - (ref - logp) - 1 = 0.5 - log(0.5) - 1
    assert k3_kl(logp, ref).item() == pytest.approx(0.5 + math.log(2) - 1, rel=1e-5)
    tb = _tb([0.5], [0.5], [0.0], ref=[0.25])
    loss, metrics = ppo_clip_loss(tb, LossConfig(kl_coef=0.1))
    assert loss.item() == pytest.approx(0.1 * (0.5 + math.log(2) - 1), rel=1e-4)
    assert metrics["kl"] == pytest.approx(0.5 + math.log(2) - 1, rel=1e-4)


def test_entropy_bonus_lowers_loss():
    tb = _tb([0.5], [0.5], [0.0], entropy=[2.0])
    loss, _ = ppo_clip_loss(tb, LossConfig(entropy_coef=0.01))
    assert loss.item() == pytest.approx(-0.02)


def test_aggregation_modes_by_hand():
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    assert aggregate(loss, mask, "token-mean").item() == pytest.approx(10 / 4)
    assert aggregate(loss, mask, "seq-mean-token-mean").item() == pytest.approx((2 + 4) / 2)
    assert aggregate(loss, mask, "seq-mean-token-sum-norm", max_len=3).item() == pytest.approx(10 / 6)
    with pytest.raises(ValueError, match="accepted: token-mean"):
        aggregate(loss, mask, "mean")


def test_drgrpo_normaliser_is_the_max_length_not_the_batch_width():
    """Dr. GRPO divides by B * L_max, a constant: the same completions give the same loss however
    wide the padded batch happens to be (the batch width used to be the divisor)."""
    loss = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    wider_loss, wider_mask = (torch.nn.functional.pad(x, (0, 5)) for x in (loss, mask))
    narrow = aggregate(loss, mask, "seq-mean-token-sum-norm", max_len=16)
    wide = aggregate(wider_loss, wider_mask, "seq-mean-token-sum-norm", max_len=16)
    assert narrow.item() == pytest.approx(10 / (2 * 16)) and wide.item() == pytest.approx(narrow.item())
    with pytest.raises(ValueError, match="needs max_len"):
        aggregate(loss, mask, "seq-mean-token-sum-norm")
    with pytest.raises(ValueError, match="needs max_len"):
        aggregate(loss, mask, "seq-mean-token-sum-norm", max_len=2)  # narrower than the batch: not a maximum


@pytest.mark.parametrize("bad", [dict(group_size=1), dict(max_new_tokens=0), dict(epochs=0), dict(top_p=1.5),
                                 dict(loss=LossConfig(loss_agg="sum"))])
def test_rl_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        RLConfig(**bad)
