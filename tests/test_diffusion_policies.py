"""Notebook 35's diffusion mechanisms: the cosine schedule, DDIM's deterministic map from noise (exact for a
denoiser that points at a known x_0), PGD's guidance (autograd on the Gaussian, normalisation, the schedule
by hand, guided samples nearer the target policy), the dynamics error, and the SAC / fine-tuning updates of
DSRL (the tanh-Gaussian's log-density, terminal backups, gradients through the denoising chain)."""
import math

import pytest
import torch

from labkit.core.control import PointMass
from labkit.nb import n35_diffusion_policies as dp


class PointsAt(torch.nn.Module):
    """A denoiser whose noise prediction is exact for data concentrated at ``target``:
    eps(x_k, k) = (x_k - sqrt(abar_k) x0) / sqrt(1 - abar_k)."""

    def __init__(self, target, alpha_bar):
        super().__init__()
        self.target, self.alpha_bar = target, alpha_bar

    def forward(self, x, k, cond=None):
        a = self.alpha_bar[k][:, None]
        return (x - a.sqrt() * self.target) / (1 - a).sqrt()


def test_cosine_schedule_decreases_inside_0_1_and_rejects_bad_steps():
    ab = dp.cosine_schedule(20)
    assert ab.shape == (20,) and float(ab[0]) < 1 and float(ab[-1]) > 0
    assert bool((ab[1:] < ab[:-1]).all())
    assert float(ab[0]) == pytest.approx(1 - (1 - math.cos((1 / 20 + 0.008) / 1.008 * math.pi / 2) ** 2
                                              / math.cos(0.008 / 1.008 * math.pi / 2) ** 2), rel=1e-5)
    for bad in (0, 2.5, True):
        with pytest.raises(ValueError, match="steps"):
            dp.cosine_schedule(bad)


def test_ddim_sample_returns_the_target_from_any_noise():
    ab = dp.cosine_schedule(20)
    target = torch.tensor([[0.3, -0.7, 0.5]])
    model = PointsAt(target, ab)
    for steps in (1, 3, 8, 20):
        out = dp.ddim_sample(model, torch.randn(5, 3, generator=torch.Generator().manual_seed(steps)), ab, steps=steps)
        assert torch.allclose(out, target.expand(5, -1), atol=1e-5)


def test_ddim_sample_clips_the_estimate():
    ab = dp.cosine_schedule(10)
    model = PointsAt(torch.tensor([[2.0, -3.0]]), ab)
    out = dp.ddim_sample(model, torch.zeros(2, 2), ab, steps=4, clip=1.0)
    assert torch.allclose(out, torch.tensor([[1.0, -1.0]] * 2))


def test_ddim_sample_one_step_is_the_x0_estimate_and_is_differentiable_in_w():
    ab = dp.cosine_schedule(10)
    torch.manual_seed(0)
    model = dp.Denoiser(2, cond_dim=1, hidden=8, layers=1)
    w = torch.randn(4, 2, requires_grad=True)
    cond = torch.randn(4, 1)
    out = dp.ddim_sample(model, w, ab, cond, steps=1, clip=1e6)
    k = torch.full((4,), 9)
    expected = (w - (1 - ab[9]).sqrt() * model(w, k, cond)) / ab[9].sqrt()
    assert torch.allclose(out, expected, atol=1e-6)
    dp.ddim_sample(model, w, ab, cond, steps=5, clip=1e6).sum().backward()
    assert w.grad is not None and torch.isfinite(w.grad).all() and float(w.grad.abs().sum()) > 0


def test_ddim_sample_rejects_bad_steps():
    ab = dp.cosine_schedule(10)
    model = PointsAt(torch.zeros(1, 2), ab)
    for bad in (0, 11, 2.0):
        with pytest.raises(ValueError, match="steps"):
            dp.ddim_sample(model, torch.zeros(1, 2), ab, steps=bad)


def test_guidance_schedule_by_hand():
    lam = dp.guidance_schedule(2.0, 4, cosine_coeff=0.3)
    by_hand = [2.0 * (1 - i / 4 + 0.3 * math.sin(math.pi * (i + 1) / 4)) for i in range(3)] + [0.0]
    assert lam.tolist() == pytest.approx(by_hand, rel=1e-6)
    delayed = dp.guidance_schedule(1.0, 5, cosine_coeff=0.0, delay=2)
    assert delayed.tolist() == pytest.approx([0.0, 0.0, 0.6, 0.4, 0.0])
    assert dp.guidance_schedule(0.0, 6).abs().sum() == 0
    with pytest.raises(ValueError, match="steps"):
        dp.guidance_schedule(1.0, 0)


def test_policy_guidance_is_the_gradient_of_the_gaussian_log_density():
    g = torch.Generator().manual_seed(1)
    norm_actions = torch.randn(3, 4, 2, generator=g, requires_grad=True)
    action_mean, action_std = torch.tensor([0.1, -0.2]), torch.tensor([0.5, 2.0])
    mu = torch.randn(3, 4, 2, generator=g)
    sigma = 0.7
    actions = norm_actions * action_std + action_mean
    torch.distributions.Normal(mu, sigma).log_prob(actions).sum().backward()
    got = dp.policy_guidance(actions.detach(), mu, action_std, sigma)
    assert torch.allclose(got, norm_actions.grad, atol=1e-5)


def test_policy_guidance_normalises_each_segment_and_rejects_bad_inputs():
    a, mu = torch.randn(5, 3, 2), torch.randn(5, 3, 2)
    got = dp.policy_guidance(a, mu, torch.ones(2), normalise=True)
    assert torch.allclose(got.flatten(1).norm(dim=1), torch.ones(5), atol=1e-5)
    same = dp.policy_guidance(mu, mu, torch.ones(2), normalise=True)
    assert torch.isfinite(same).all() and float(same.abs().sum()) == 0      # zero gradient stays zero, no NaN
    with pytest.raises(ValueError, match="shape"):
        dp.policy_guidance(a, mu[:, :2], torch.ones(2))
    with pytest.raises(ValueError, match="shape"):
        dp.policy_guidance(a[0], mu[0], torch.ones(2))
    with pytest.raises(ValueError, match="sigma"):
        dp.policy_guidance(a, mu, torch.ones(2), sigma=0.0)


def _toy_segments():
    torch.manual_seed(0)
    model = dp.Denoiser(3 * 7, hidden=16, layers=1)
    stats = (torch.zeros(7), torch.ones(7))
    return model, dp.cosine_schedule(16), stats


def test_pgd_sample_without_guidance_ignores_the_actor_and_guidance_moves_actions_toward_it():
    model, ab, stats = _toy_segments()
    target = lambda s: torch.full((s.shape[0], 2), 0.8)                     # noqa: E731
    plain = dp.pgd_sample(model, ab, 64, 3, (4, 2), stats, generator=torch.Generator().manual_seed(3))
    off = dp.pgd_sample(model, ab, 64, 3, (4, 2), stats, target, 0.0, generator=torch.Generator().manual_seed(3))
    guided = dp.pgd_sample(model, ab, 64, 3, (4, 2), stats, target, 1.0, generator=torch.Generator().manual_seed(3))
    assert plain.shape == (64, 3, 7) and torch.equal(plain, off)
    dist = lambda seg: float((seg[..., 4:6] - 0.8).abs().mean())           # noqa: E731
    assert dist(guided) < dist(plain)
    with pytest.raises(ValueError, match="stats"):
        dp.pgd_sample(model, ab, 4, 3, (4, 2), (torch.zeros(6), torch.ones(6)))


def test_dynamics_error_is_zero_on_true_transitions_and_by_hand_otherwise():
    world = PointMass()
    s = world.reset(10, torch.Generator().manual_seed(0))
    a = torch.rand(10, 2) * 2 - 1
    s2, _ = world.step(s, a)
    assert dp.dynamics_error(world, s, a, s2) == pytest.approx(0.0, abs=1e-12)
    shifted = s2 + torch.tensor([0.1, 0.0, 0.0, 0.2])
    assert dp.dynamics_error(world, s[None], a[None], shifted[None]) == pytest.approx(0.05, rel=1e-5)
    with pytest.raises(ValueError, match="shapes"):
        dp.dynamics_error(world, s, a[:5], s2)


def test_run_chunk_steps_open_loop_and_sums_rewards():
    world = PointMass()
    s = torch.tensor([[0.0, 0.0, 0.5, 0.0]])
    s2, r = dp.run_chunk(world, s, torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0, 0.0]]))
    assert torch.allclose(s2, torch.tensor([[0.5, 0.0, 0.5, 0.0]]))
    assert r.tolist() == [2.0]                                               # at the goal after the 2nd and 3rd steps
    with pytest.raises(ValueError, match="chunk"):
        dp.run_chunk(world, s, torch.zeros(1, 3))


def test_noise_policy_is_bounded_and_its_log_density_is_the_change_of_variables():
    torch.manual_seed(0)
    actor = dp.NoisePolicy(4, 3, magnitude=1.5)
    s = torch.randn(200, 4)
    x, logp = actor(s, torch.Generator().manual_seed(0))
    assert float(x.detach().abs().max()) <= 1.5
    mean, log_std = actor.net(s).chunk(2, -1)
    dist = torch.distributions.TransformedDistribution(
        torch.distributions.Normal(mean, log_std.clamp(-5, 2).exp()),
        [torch.distributions.TanhTransform(), torch.distributions.AffineTransform(0.0, 1.5)])
    inside = x.abs().max(-1).values < 1.49                                   # away from tanh's saturation
    assert torch.allclose(logp[inside], dist.log_prob(x).sum(-1)[inside], atol=1e-3)


def _sac_parts(x_dim=2, magnitude=1.0):
    torch.manual_seed(0)
    actor, critic = dp.NoisePolicy(3, x_dim, magnitude, hidden=16), dp.Critic(3, x_dim, hidden=16)
    target = dp.Critic(3, x_dim, hidden=16)
    target.load_state_dict(critic.state_dict())
    log_alpha = torch.tensor(math.log(0.1), requires_grad=True)
    opts = (torch.optim.Adam(actor.parameters(), lr=1e-3), torch.optim.Adam(critic.parameters(), lr=1e-2),
            torch.optim.Adam([log_alpha], lr=1e-3))
    return actor, critic, target, log_alpha, opts


def test_sac_update_with_terminal_transitions_fits_the_reward():
    actor, critic, target, log_alpha, opts = _sac_parts()
    g = torch.Generator().manual_seed(1)
    s, x, s2 = torch.randn(32, 3, generator=g), torch.rand(32, 2, generator=g) * 2 - 1, torch.randn(32, 3, generator=g)
    r = s[:, 0] + x[:, 1]
    for _ in range(400):
        dp.sac_update(actor, critic, target, log_alpha, opts, (s, x, r, s2, torch.ones(32)), generator=g)
    q1, q2 = critic(s, x)
    assert float(((q1 - r) ** 2).mean()) < 0.05 and float(((q2 - r) ** 2).mean()) < 0.05


def test_sac_update_tunes_alpha_toward_the_target_entropy():
    actor, critic, target, log_alpha, opts = _sac_parts()
    batch = (torch.randn(16, 3), torch.zeros(16, 2), torch.zeros(16), torch.randn(16, 3), torch.zeros(16))
    start = float(log_alpha)
    dp.sac_update(actor, critic, target, log_alpha, opts, batch, target_entropy=100.0)   # entropy below target: alpha up
    assert float(log_alpha) > start


def test_finetune_update_moves_the_denoiser_weights_through_the_chain():
    torch.manual_seed(0)
    ab = dp.cosine_schedule(10)
    policy = dp.Denoiser(2, cond_dim=3, hidden=16, layers=1)
    before = [p.detach().clone() for p in policy.parameters()]
    critic, target = dp.Critic(3, 2, hidden=16), dp.Critic(3, 2, hidden=16)
    opts = (torch.optim.Adam(policy.parameters(), lr=1e-2), torch.optim.Adam(critic.parameters(), lr=1e-3))
    batch = (torch.randn(8, 3), torch.rand(8, 2), torch.rand(8), torch.randn(8, 3), torch.zeros(8))
    critic_loss, actor_loss = dp.finetune_update(policy, critic, target, ab, opts, batch, ddim_steps=4,
                                                 generator=torch.Generator().manual_seed(0))
    assert math.isfinite(critic_loss) and math.isfinite(actor_loss)
    moved = [not torch.equal(b, p) for b, p in zip(before, policy.parameters())]
    assert all(moved)                                                        # every layer, the first included


def test_td3bc_update_runs_and_builds_its_target():
    torch.manual_seed(0)
    agent = dp.TD3BC(4, 2, hidden=16)
    opt_a = torch.optim.Adam(agent.actor.parameters(), lr=1e-3)
    opt_c = torch.optim.Adam([*agent.q1.parameters(), *agent.q2.parameters()], lr=1e-3)
    batch = (torch.randn(32, 4), torch.rand(32, 2) * 2 - 1, torch.rand(32), torch.randn(32, 4))
    c0, a0 = dp.td3bc_update(agent, opt_a, opt_c, batch, 0)
    c1, a1 = dp.td3bc_update(agent, opt_a, opt_c, batch, 1)
    assert agent.target is not None and math.isfinite(c0) and math.isfinite(a0) and math.isnan(a1)


def test_model_rollout_shapes_and_clipped_actions():
    torch.manual_seed(0)
    model = dp.WorldModel(4, 2, hidden=8)
    out = dp.model_rollout(model, torch.zeros(5, 4), lambda s: torch.full((s.shape[0], 2), 3.0), 6)
    assert out.shape == (5, 6, 7) and float(out[..., 4:6].abs().max()) <= 1.0
