"""Notebook 34's dichotomy of control: the contrastive MI bound (by hand, zero for a latent that
ignores the outcome, masks), the min-max directions of doc_losses, latent selection by value under
the prior, the sequence policy's causality and conditioning, and a small end-to-end bandit run."""
import math

import pytest
import torch
from torch.nn import functional as F

from labkit.core.control import SequenceBatch, take_windows
from labkit.core.control.discrete import BernoulliBandit, collect
from labkit.nb import n34_dichotomy_of_control as doc


def test_contrastive_mi_by_hand():
    energy = torch.zeros(1, 1, 2, 2)
    energy[0, 0, 0, 0], energy[0, 0, 1, 1] = 1.0, 2.0     # f(z=0, o=0) = 1, f(z=1, o=1) = 2
    log_rho = torch.log(torch.tensor([[[0.25, 0.75]]]))
    z = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    o = torch.tensor([0, 1])
    zero = torch.zeros(2, dtype=torch.long)
    got = doc.contrastive_mi(energy, zero, zero, o, z, log_rho)
    first = 1.0 - math.log(0.25 * math.e + 0.75)
    second = 2.0 - math.log(0.25 + 0.75 * math.e ** 2)
    assert float(got) == pytest.approx((first + second) / 2, rel=1e-6)


def test_contrastive_mi_is_zero_when_f_ignores_the_outcome():
    energy = torch.randn(3, 2, 1, 4).expand(3, 2, 5, 4).contiguous()   # the same f for every outcome
    log_rho = torch.log_softmax(torch.randn(3, 2, 5), -1)
    n = 50
    s, a, o = torch.randint(3, (n,)), torch.randint(2, (n,)), torch.randint(5, (n,))
    z = F.one_hot(torch.randint(4, (n,)), 4).float()
    assert float(doc.contrastive_mi(energy, s, a, o, z, log_rho)) == pytest.approx(0.0, abs=1e-5)


def test_contrastive_mi_leaves_masked_steps_out():
    energy = torch.randn(2, 2, 3, 2)
    log_rho = torch.log(torch.tensor([[[0.5, 0.5, 0.0]] * 2, [[0.0, 0.0, 0.0]] * 2]))   # state 1: no data (all -inf)
    s, a, o = torch.tensor([0, 1]), torch.tensor([1, 0]), torch.tensor([0, 2])
    z = torch.eye(2)
    masked = doc.contrastive_mi(energy, s, a, o, z, log_rho, torch.tensor([1.0, 0.0]))
    alone = doc.contrastive_mi(energy, s[:1], a[:1], o[:1], z[:1], log_rho)
    assert torch.isfinite(masked) and float(masked) == pytest.approx(float(alone))


def test_contrastive_mi_rejects_bad_shapes():
    energy, log_rho = torch.zeros(2, 2, 3, 4), torch.zeros(2, 2, 3)
    idx = torch.zeros(5, dtype=torch.long)
    with pytest.raises(ValueError, match="z"):
        doc.contrastive_mi(energy, idx, idx, idx, torch.zeros(5, 3), log_rho)
    with pytest.raises(ValueError, match="log_rho"):
        doc.contrastive_mi(energy, idx, idx, idx, torch.zeros(5, 4), torch.zeros(2, 3))
    with pytest.raises(ValueError):
        doc.contrastive_mi(energy, idx, idx[:4], idx, torch.zeros(5, 4), log_rho)


def _bandit_batch(n=64, seed=0):
    world = BernoulliBandit((0.1, 0.9))
    world.reseed(seed)
    data = collect(world, n, lambda s, t: torch.tensor([[0.9, 0.1]]).expand(s.shape[0], -1),
                   torch.Generator().manual_seed(seed))
    ep, start = torch.arange(n), torch.zeros(n, dtype=torch.long)
    windows = take_windows(data, ep, start, 1)
    s, a = data.states.argmax(-1), data.actions.argmax(-1)
    o = world.outcome(None, None, data.rewards.flatten()).view(n, 1)
    counts = torch.zeros(1, 2, 2)
    counts.index_put_((s.flatten(), a.flatten(), o.flatten()), torch.ones(n), accumulate=True)
    log_rho = (counts / counts.sum(-1, keepdim=True).clamp(min=1)).log()
    episodes = (data.states, data.actions, data.rewards, data.returns)
    return world, episodes, windows, (s, a, o, torch.ones(n, 1)), log_rho


def _grads(model, batch, beta, mode):
    world, episodes, windows, steps, log_rho = batch
    model.zero_grad()
    loss, _ = doc.doc_losses(model, episodes, windows, steps, log_rho, beta=beta, mi_mode=mode,
                             generator=torch.Generator().manual_seed(1))     # the same z draw every call
    loss.backward()
    encoder = torch.cat([p.grad.flatten() for p in model.encoder.parameters()])
    return encoder, model.energy.grad.clone()


def test_doc_losses_min_max_directions():
    # minimax (the paper): the MI term's gradient in q is +beta dI/dq and f ascends I whatever beta;
    # joint (the released code): the MI term's gradient in q is -beta dI/dq and f's is -beta dI/df
    torch.manual_seed(0)
    model = doc.DoC(1, 2, 1, 2, latents=4, hidden=16, n_layer=1, dropout=0.0)
    batch = _bandit_batch()
    enc_mm1, f_mm1 = _grads(model, batch, 1.0, "minimax")
    enc_mm0, f_mm0 = _grads(model, batch, 0.0, "minimax")
    enc_j1, f_j1 = _grads(model, batch, 1.0, "joint")
    enc_j0, f_j0 = _grads(model, batch, 0.0, "joint")
    mi_in_q = enc_mm1 - enc_mm0
    assert float(mi_in_q.abs().max()) > 0, "the MI term must reach the encoder"
    torch.testing.assert_close(enc_j1 - enc_j0, -mi_in_q)
    torch.testing.assert_close(f_mm1, f_mm0)                 # f's loss is -I whatever beta
    torch.testing.assert_close(f_j1, f_mm1)                  # -beta dI/df with beta = 1
    assert float(f_j0.abs().max()) == 0.0 and float(f_mm1.abs().max()) > 0


def test_mi_steps_sum_is_the_mean_times_the_live_steps_per_episode():
    torch.manual_seed(0)
    world, episodes, windows, steps, log_rho = _bandit_batch(16)
    model = doc.DoC(1, 2, 1, 2, latents=4, hidden=8, n_layer=1, dropout=0.0)
    s, a, o, live = steps
    half = (s, a, o, (torch.arange(16) % 2).float()[:, None])            # 8 live steps over 16 episodes
    infos = {m: doc.doc_losses(model, episodes, windows, half, log_rho, beta=0.0, mi_steps=m,
                               generator=torch.Generator().manual_seed(3))[1]["mi"] for m in ("mean", "sum")}
    assert infos["mean"] != 0
    assert infos["sum"] == pytest.approx(0.5 * infos["mean"], rel=1e-5)


def test_doc_losses_reject_bad_settings():
    world, episodes, windows, steps, log_rho = _bandit_batch(8)
    model = doc.DoC(1, 2, 1, 2, latents=4, hidden=8, n_layer=1)
    with pytest.raises(ValueError, match="mi_mode"):
        doc.doc_losses(model, episodes, windows, steps, log_rho, mi_mode="max")
    with pytest.raises(ValueError, match="beta"):
        doc.doc_losses(model, episodes, windows, steps, log_rho, beta=-1)
    with pytest.raises(ValueError, match="mi_steps"):
        doc.doc_losses(model, episodes, windows, steps, log_rho, mi_steps="max")


class _Stub:
    """A prior that rules latent 3 out and a value that would prefer it: select_latent must not pick it."""
    latents = 4

    def prior(self, s0):
        return torch.tensor([0.0, 0.0, 0.0, -1e9]).expand(s0.shape[0], -1)

    def value_of(self, s0, z):
        return (z * torch.tensor([0.1, 0.7, 0.3, 5.0])).sum(-1)


def test_select_latent_picks_the_best_value_the_prior_can_draw():
    z, v = doc.select_latent(_Stub(), torch.ones(6, 1), samples=100, generator=torch.Generator().manual_seed(0))
    assert z.argmax(-1).tolist() == [1] * 6
    torch.testing.assert_close(v, torch.full((6,), 0.7))
    z1, _ = doc.select_latent(_Stub(), torch.ones(200, 1), samples=1, generator=torch.Generator().manual_seed(0))
    assert 3 not in z1.argmax(-1).tolist() and len(set(z1.argmax(-1).tolist())) == 3, "one draw: the prior's choice"


def test_select_latent_rejects_bad_samples():
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="samples"):
            doc.select_latent(_Stub(), torch.ones(2, 1), samples=bad)


def test_straight_through_is_one_hot_with_the_probabilities_gradient():
    logits = torch.randn(5, 3, requires_grad=True)
    z = doc.straight_through(logits, torch.Generator().manual_seed(0))
    hard = F.one_hot(z.detach().argmax(-1), 3).float()
    torch.testing.assert_close(z.detach(), hard)        # one-hot up to rounding (hard + p - p)
    (z * torch.arange(3.0)).sum().backward()
    expected = torch.autograd.grad((logits.softmax(-1) * torch.arange(3.0)).sum(), logits)[0]
    torch.testing.assert_close(logits.grad, expected)


def test_sequence_policy_is_causal_and_needs_z_exactly_when_conditioned():
    torch.manual_seed(0)
    policy = doc.SequencePolicy(4, 3, hidden=16, n_layer=2, max_timestep=8, dropout=0.0).eval()
    b, k = 2, 5
    batch = SequenceBatch(torch.randn(b, k, 4), torch.randn(b, k, 3), torch.randn(b, k, 1),
                          torch.arange(k).expand(b, -1), torch.ones(b, k))
    out = policy(batch)
    changed = SequenceBatch(batch.states.clone(), batch.actions.clone(), batch.rtg.clone(), batch.timesteps, batch.mask)
    changed.actions[:, 2:] += 5.0          # a_2.. must not change the logits at steps 0..2
    changed.states[:, 3:] += 5.0
    torch.testing.assert_close(policy(changed)[:, :3], out[:, :3])
    with pytest.raises(ValueError, match="z"):
        policy(batch, torch.zeros(b, 2))
    conditioned = doc.SequencePolicy(4, 3, cond_dim=2, hidden=16, n_layer=1, max_timestep=8)
    with pytest.raises(ValueError, match="z"):
        conditioned(batch)
    assert conditioned(batch, torch.zeros(b, 2)).shape == (b, k, 3)


def test_doc_learns_the_good_arm_of_the_bandit():
    # the paper's bandit: behaviour (0.9, 0.1) on arms paying (0.1, 0.9); DoC's chosen z must pull arm 1
    torch.manual_seed(0)
    world, episodes, windows, steps, log_rho = _bandit_batch(400, seed=1)
    model = doc.DoC(1, 2, 1, 2, latents=4, hidden=16, n_layer=1, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        idx = torch.randint(400, (64,), generator=gen)
        sub = tuple(t[idx] for t in episodes)
        win = SequenceBatch(*(getattr(windows, f)[idx] for f in ("states", "actions", "rtg", "timesteps", "mask")))
        loss, _ = doc.doc_losses(model, sub, win, tuple(t[idx] for t in steps), log_rho, generator=gen)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    z, v = doc.select_latent(model, torch.ones(50, 1), 100, torch.Generator().manual_seed(2))
    with torch.no_grad():
        probs = model.policy(SequenceBatch(torch.ones(50, 1, 1), torch.zeros(50, 1, 2), torch.zeros(50, 1, 1),
                                           torch.zeros(50, 1, dtype=torch.long), torch.ones(50, 1)), z)[:, -1].softmax(-1)
    assert float(probs[:, 1].mean()) > 0.8
    assert float(v.mean()) == pytest.approx(0.9, abs=0.15)
