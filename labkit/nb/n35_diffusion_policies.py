"""35 · Diffusion policies: guide the data, steer the noise: the mechanism that notebooks/35_diffusion_policies.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import copy
import math
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["cosine_schedule", "Denoiser", "ddpm_loss", "ddim_sample", "guidance_schedule", "policy_guidance",
           "pgd_sample", "dynamics_error", "mlp", "WorldModel", "model_rollout", "TD3BC", "td3bc_update",
           "run_chunk", "NoisePolicy", "Critic", "sac_update", "finetune_update"]


def cosine_schedule(steps: int, s: float = 0.008) -> torch.Tensor:
    """alpha_bar_k for k = 0..steps-1 of the cosine schedule (Nichol and Dhariwal 2021; DPPO's
    cosine_beta_schedule), each beta_k clipped to at most 0.999."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"cosine_schedule: steps must be an integer >= 1; got {steps!r}")
    x = torch.linspace(0, steps, steps + 1, dtype=torch.float64)
    f = torch.cos(((x / steps) + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, 0).float()


class Denoiser(nn.Module):
    """epsilon_theta(x_k, k | c): an MLP (Mish) over the noised vector, a sinusoidal embedding of k and an
    optional condition c (the state, for a policy). It predicts the noise (DDPM's parameterisation)."""

    def __init__(self, dim, cond_dim=0, hidden=128, layers=3, time_dim=16):
        super().__init__()
        self.dim, self.cond_dim, self.time_dim = dim, cond_dim, time_dim
        widths = [dim + cond_dim + time_dim] + [hidden] * layers
        self.body = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-1], widths[1:]))
        self.out = nn.Linear(hidden, dim)

    def embed(self, k):
        half = self.time_dim // 2
        freqs = torch.exp(-math.log(1000.0) * torch.arange(half) / max(half - 1, 1))
        angle = k.float()[:, None] * freqs[None]
        return torch.cat([angle.sin(), angle.cos()], dim=-1)

    def forward(self, x, k, cond=None):
        if (cond is None) != (self.cond_dim == 0):
            raise ValueError(f"Denoiser: pass cond of width {self.cond_dim} exactly when cond_dim > 0")
        h = torch.cat([x, self.embed(k)] + ([cond] if cond is not None else []), dim=-1)
        for layer in self.body:
            h = F.mish(layer(h))
        return self.out(h)


def ddpm_loss(model, x0, alpha_bar, cond=None, generator=None):
    """E_{k, eps} || eps - eps_theta(sqrt(abar_k) x0 + sqrt(1 - abar_k) eps, k | c) ||^2 (Ho et al. 2020)."""
    k = torch.randint(len(alpha_bar), (x0.shape[0],), generator=generator)
    eps = torch.randn(x0.shape, generator=generator)
    a = alpha_bar[k][:, None]
    # x_k = sqrt(abar_k) x_0 + sqrt(1 - abar_k) eps
    xk = a.sqrt() * x0 + (1 - a).sqrt() * eps
    return F.mse_loss(model(xk, k, cond), eps)


def ddim_sample(model, w, alpha_bar, cond=None, steps=8, clip=1.0):
    """The deterministic DDIM sampler (eta = 0) from the initial noise ``w`` (B, D): the map w -> x_0 that
    DSRL steers. ``steps`` evenly spaced timesteps of the schedule, from the last to 0; x_0's estimate is
    clipped to [-clip, clip] at every step (DPPO's denoised_clip_value) and the noise recomputed from it.
    Differentiable in the model's weights and in ``w``."""
    total = len(alpha_bar)
    if isinstance(steps, bool) or not isinstance(steps, int) or not 1 <= steps <= total:
        raise ValueError(f"ddim_sample: steps must be an integer in 1..{total}; got {steps!r}")
    if w.ndim != 2:
        raise ValueError(f"ddim_sample: w must be (B, D); got {tuple(w.shape)}")
    ks = torch.linspace(total - 1, 0, steps).round().long()
    x = w
    for i, k in enumerate(ks):
        a = alpha_bar[k]
        eps = model(x, k.expand(x.shape[0]), cond)
        # x0_hat = (x_k - sqrt(1 - abar_k) eps) / sqrt(abar_k), clipped
        x0 = ((x - (1 - a).sqrt() * eps) / a.sqrt()).clamp(-clip, clip)
        if i + 1 == steps:
            return x0
        # the noise that the clipped x0_hat implies, then x_k' = sqrt(abar_k') x0_hat + sqrt(1 - abar_k') eps
        eps = (x - a.sqrt() * x0) / (1 - a).sqrt()
        a_next = alpha_bar[ks[i + 1]]
        x = a_next.sqrt() * x0 + (1 - a_next).sqrt() * eps
    return x


def guidance_schedule(coeff: float, steps: int, cosine_coeff: float = 0.3, delay: int = 0) -> torch.Tensor:
    """lambda_i for the reverse steps i = 0..steps-1 (the authors' sample_trajectory):
    coeff * (1 - i / N + c_cos * sin(pi (i + 1) / N)); 0 before step ``delay`` and at the last step."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"guidance_schedule: steps must be an integer >= 1; got {steps!r}")
    i = torch.arange(steps, dtype=torch.float32)
    # lambda_i = lambda (1 - i / N + c_cos sin(pi (i + 1) / N))
    lam = coeff * (1 - i / steps + cosine_coeff * torch.sin(math.pi * (i + 1) / steps))
    on = (i >= delay) & (i < steps - 1)
    return torch.where(on, lam, torch.zeros(()))


def policy_guidance(actions, mu, action_std, sigma=1.0, normalise=False):
    """grad_{a~} log N(a; mu, sigma^2 I) for the normalised actions a~ of noised segments, whose
    unnormalised values are ``actions`` = a~ * action_std + mean: (mu - a) / sigma^2 * action_std.
    The target policy is a Gaussian around the deterministic actor's action ``mu`` (the authors'
    det_guidance: sigma = 1). ``actions``, ``mu`` (B, L, A); ``action_std`` (A,); ``normalise`` divides
    each segment's guidance by its Frobenius norm."""
    if actions.ndim != 3 or actions.shape != mu.shape:
        raise ValueError(f"policy_guidance: actions and mu must be (B, L, A) of one shape; got "
                         f"{tuple(actions.shape)} and {tuple(mu.shape)}")
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not sigma > 0:
        raise ValueError(f"policy_guidance: sigma must be a number > 0; got {sigma!r}")
    # d/da~ log N(a; mu, sigma^2) = (mu - a) / sigma^2 * da/da~
    g = (mu - actions) / sigma ** 2 * action_std
    if normalise:
        g = g / g.flatten(1).norm(dim=1).clamp_min(1e-8)[:, None, None]
    return g


def pgd_sample(model, alpha_bar, n, length, layout, stats, actor=None, coeff=0.0, cosine_coeff=0.3, sigma=1.0,
               normalise=False, clip=5.0, generator=None):
    """``n`` segments of ``length`` steps by ancestral DDPM sampling, each reverse step preceded by policy
    guidance on the noised actions (the authors' order): a~ <- a~ + lambda_i grad log pi(a | s), with the
    states read from the same noised segment. ``layout`` = (S, A): a step is (s, a, r), normalised by
    ``stats`` = (mean, std) of shape (S + A + 1,). ``actor`` None or ``coeff`` 0: unguided.
    Returns the unnormalised segments (n, length, S + A + 1)."""
    s_dim, a_dim = layout
    width = s_dim + a_dim + 1
    mean, std = stats
    if mean.shape != (width,) or std.shape != (width,):
        raise ValueError(f"pgd_sample: stats must be two tensors of shape ({width},); got {tuple(mean.shape)}, {tuple(std.shape)}")
    total = len(alpha_bar)
    alpha = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    lam = guidance_schedule(coeff, total, cosine_coeff)
    x = torch.randn(n, length, width, generator=generator)
    for i, k in enumerate(range(total - 1, -1, -1)):
        if actor is not None and float(lam[i]) != 0.0:
            traj = x * std + mean
            with torch.no_grad():
                mu = actor(traj[..., :s_dim].reshape(n * length, s_dim)).view(n, length, a_dim)
            g = policy_guidance(traj[..., s_dim:s_dim + a_dim], mu, std[s_dim:s_dim + a_dim], sigma, normalise)
            # a~ <- a~ + lambda_i grad_{a~} log pi(a | s)
            x = torch.cat([x[..., :s_dim], x[..., s_dim:s_dim + a_dim] + lam[i] * g, x[..., s_dim + a_dim:]], -1)
        with torch.no_grad():
            eps = model(x.view(n, -1), torch.full((n,), k), None).view(n, length, width)
        a_bar, a_k = alpha_bar[k], alpha[k]
        a_prev = alpha_bar[k - 1] if k > 0 else torch.ones(())
        # x0_hat = (x_k - sqrt(1 - abar_k) eps) / sqrt(abar_k), clipped to [-clip, clip] (normalised units)
        x0 = ((x - (1 - a_bar).sqrt() * eps) / a_bar.sqrt()).clamp(-clip, clip)
        # q(x_{k-1} | x_k, x0_hat): mean (sqrt(abar_{k-1}) beta_k x0 + sqrt(alpha_k) (1 - abar_{k-1}) x_k) / (1 - abar_k)
        x = (a_prev.sqrt() * (1 - a_k) * x0 + a_k.sqrt() * (1 - a_prev) * x) / (1 - a_bar)
        if k > 0:
            var = (1 - a_k) * (1 - a_prev) / (1 - a_bar)
            x = x + var.sqrt() * torch.randn(x.shape, generator=generator)
    return x * std + mean


def dynamics_error(world, states, actions, next_states):
    """The mean over transitions of ||s' - f(s, a)||^2, f the true world (the paper's dynamics error);
    (..., S) states and next states, (..., A) actions."""
    if states.shape != next_states.shape or states.shape[:-1] != actions.shape[:-1]:
        raise ValueError(f"dynamics_error: shapes {tuple(states.shape)}, {tuple(actions.shape)}, "
                         f"{tuple(next_states.shape)} do not match")
    s, a = states.reshape(-1, states.shape[-1]), actions.reshape(-1, actions.shape[-1])
    true_next, _ = world.step(s, a)
    return float(((next_states.reshape(s.shape) - true_next) ** 2).sum(-1).mean())


def mlp(inp, hidden, out, layers=2, layer_norm=False):
    """Linear layers with ReLU, or, with ``layer_norm``, LayerNorm and Tanh (DSRL's actor and critic)."""
    mods, width = [], inp
    for _ in range(layers):
        mods += [nn.Linear(width, hidden)] + ([nn.LayerNorm(hidden), nn.Tanh()] if layer_norm else [nn.ReLU()])
        width = hidden
    return nn.Sequential(*mods, nn.Linear(width, out))


class WorldModel(nn.Module):
    """The one-step autoregressive baseline: (s, a) -> (s + delta, r), fitted by regression (the model of
    MOPO/MBPO without its ensemble)."""

    def __init__(self, s_dim, a_dim, hidden=128):
        super().__init__()
        self.net = mlp(s_dim + a_dim, hidden, s_dim + 1)
        self.s_dim = s_dim

    def forward(self, s, a):
        out = self.net(torch.cat([s, a], -1))
        return s + out[:, :self.s_dim], out[:, self.s_dim]


@torch.no_grad()
def model_rollout(model, start, actor, steps, noise=0.1, generator=None):
    """Roll the learned model ``steps`` steps from ``start`` (B, S) with the actor's actions plus
    N(0, noise^2) (TD3's exploration noise), clipped to [-1, 1]: (B, steps, S + A + 1), pgd_sample's layout."""
    s, rows = start, []
    for _ in range(steps):
        a = actor(s)
        a = (a + noise * torch.randn(a.shape, generator=generator)).clamp(-1, 1)
        nxt, r = model(s, a)
        rows.append(torch.cat([s, a, r[:, None]], -1))
        s = nxt
    return torch.stack(rows, 1)


class TD3BC(nn.Module):
    """TD3+BC (Fujimoto and Gu 2021), the offline agent that PGD's authors train on synthetic data:
    a deterministic tanh actor and twin critics, with a target copy made at the first update."""

    def __init__(self, s_dim, a_dim, hidden=64):
        super().__init__()
        self.actor = nn.Sequential(mlp(s_dim, hidden, a_dim), nn.Tanh())
        self.q1, self.q2 = mlp(s_dim + a_dim, hidden, 1), mlp(s_dim + a_dim, hidden, 1)
        self.target = None

    def q(self, s, a, target=False):
        net = self.target if target else self
        x = torch.cat([s, a], -1)
        return net.q1(x).squeeze(-1), net.q2(x).squeeze(-1)


def td3bc_update(agent, opt_actor, opt_critic, batch, step, gamma=0.9, alpha=2.5, tau=0.005, policy_noise=0.2,
                 noise_clip=0.5, delay=2, generator=None):
    """One TD3+BC step on ``batch`` = (s, a, r, s'). Critics: y = r + gamma min_j Q'_j(s', pi'(s') + clip(eps));
    actor, every ``delay`` steps: max lambda Q(s, pi(s)) - (pi(s) - a)^2 with lambda = alpha / mean|Q|."""
    s, a, r, s2 = batch
    if agent.target is None:
        agent.target = copy.deepcopy(agent).requires_grad_(False)
    with torch.no_grad():
        eps = (policy_noise * torch.randn(a.shape, generator=generator)).clamp(-noise_clip, noise_clip)
        a2 = (agent.target.actor(s2) + eps).clamp(-1, 1)
        # y = r + gamma min(Q'_1, Q'_2)(s', a')
        y = r + gamma * torch.minimum(*agent.q(s2, a2, target=True))
    q1, q2 = agent.q(s, a)
    critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
    opt_critic.zero_grad()
    critic_loss.backward()
    opt_critic.step()
    if step % delay:
        return float(critic_loss.detach()), float("nan")
    pi = agent.actor(s)
    q = agent.q(s, pi)[0]
    lam = alpha / q.abs().mean().detach().clamp_min(1e-6)
    # L_actor = -lambda Q(s, pi(s)) + (pi(s) - a)^2
    actor_loss = -lam * q.mean() + F.mse_loss(pi, a)
    opt_actor.zero_grad()
    actor_loss.backward()
    opt_actor.step()
    with torch.no_grad():
        for p, pt in zip(agent.parameters(), agent.target.parameters()):
            pt.lerp_(p, tau)
    return float(critic_loss.detach()), float(actor_loss.detach())


def run_chunk(world, states, chunk):
    """Execute action chunks (B, C * A) open-loop: (next states, the chunk's summed reward)."""
    if chunk.ndim != 2 or chunk.shape[0] != states.shape[0] or chunk.shape[1] % world.act_dim:
        raise ValueError(f"run_chunk: chunk must be (B, C * {world.act_dim}) with B = {states.shape[0]}; got {tuple(chunk.shape)}")
    a = chunk.view(states.shape[0], -1, world.act_dim)
    total = torch.zeros(states.shape[0])
    for t in range(a.shape[1]):
        states, r = world.step(states, a[:, t])
        total = total + r
    return states, total


class NoisePolicy(nn.Module):
    """SAC's tanh-Gaussian actor scaled to [-magnitude, magnitude]^D. In DSRL its output is the frozen
    diffusion policy's initial noise w (the authors' action_magnitude 1.5); SAC on raw actions uses
    magnitude 1 and its output is the action chunk. Returns (x, log pi(x | s))."""

    def __init__(self, s_dim, out_dim, magnitude=1.0, hidden=64):
        super().__init__()
        self.net = mlp(s_dim, hidden, 2 * out_dim, layer_norm=True)
        self.magnitude = float(magnitude)

    def forward(self, s, generator=None, deterministic=False):
        mean, log_std = self.net(s).chunk(2, -1)
        log_std = log_std.clamp(-5, 2)
        u = mean if deterministic else mean + log_std.exp() * torch.randn(mean.shape, generator=generator)
        # log pi(x) = log N(u; mean, std) - sum_d log(magnitude (1 - tanh(u_d)^2)),  x = magnitude tanh(u)
        logp = (-0.5 * ((u - mean) / log_std.exp()) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - (math.log(self.magnitude) + 2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return self.magnitude * torch.tanh(u), logp


class Critic(nn.Module):
    """Twin Q(s, x) over a state and an action chunk (SAC, fine-tuning) or a noise vector (DSRL), with
    LayerNorm and Tanh as the authors' networks."""

    def __init__(self, s_dim, x_dim, hidden=64):
        super().__init__()
        self.q1, self.q2 = mlp(s_dim + x_dim, hidden, 1, layer_norm=True), mlp(s_dim + x_dim, hidden, 1, layer_norm=True)

    def forward(self, s, x):
        h = torch.cat([s, x], -1)
        return self.q1(h).squeeze(-1), self.q2(h).squeeze(-1)


def _soft_update(net, target, tau):
    with torch.no_grad():
        for p, pt in zip(net.parameters(), target.parameters()):
            pt.lerp_(p, tau)


def sac_update(actor, critic, target, log_alpha, opts, batch, gamma=0.99, tau=0.005, target_entropy=0.0,
               generator=None):
    """One SAC step (Haarnoja et al. 2018) on ``batch`` = (s, x, r, s', done), x the chunk or the noise:
    y = r + gamma (1 - done) (min_j Q'_j(s', x') - alpha log pi(x' | s')); the actor minimises
    alpha log pi - min_j Q; alpha is tuned toward ``target_entropy`` (DSRL: 0; SB3's auto: -dim)."""
    opt_actor, opt_critic, opt_alpha = opts
    s, x, r, s2, done = batch
    alpha = log_alpha.exp().detach()
    with torch.no_grad():
        x2, logp2 = actor(s2, generator)
        # y = r + gamma (1 - done) (min_j Q'_j(s', x') - alpha log pi(x' | s'))
        y = r + gamma * (1 - done) * (torch.minimum(*target(s2, x2)) - alpha * logp2)
    q1, q2 = critic(s, x)
    critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
    opt_critic.zero_grad()
    critic_loss.backward()
    opt_critic.step()
    xn, logp = actor(s, generator)
    actor_loss = (alpha * logp - torch.minimum(*critic(s, xn))).mean()
    opt_actor.zero_grad()
    actor_loss.backward()
    opt_actor.step()
    alpha_loss = -(log_alpha * (logp.detach() + target_entropy)).mean()
    opt_alpha.zero_grad()
    alpha_loss.backward()
    opt_alpha.step()
    _soft_update(critic, target, tau)
    return float(critic_loss.detach()), float(actor_loss.detach())


def finetune_update(policy, critic, target, alpha_bar, opts, batch, ddim_steps=8, gamma=0.99, tau=0.005,
                    generator=None):
    """Fine-tuning the diffusion policy's weights with the same critic signal (Diffusion-QL's actor loss
    without its BC term): Q(s, a) by TD with a' = DDIM_theta(w', s'), w' ~ N(0, I); the policy maximises
    Q(s, DDIM_theta(w, s)) / mean|Q|, backpropagated through the whole denoising chain."""
    opt_actor, opt_critic = opts
    s, a, r, s2, done = batch
    dim = a.shape[1]
    with torch.no_grad():
        a2 = ddim_sample(policy, torch.randn(s2.shape[0], dim, generator=generator), alpha_bar, s2, ddim_steps)
        y = r + gamma * (1 - done) * torch.minimum(*target(s2, a2))
    q1, q2 = critic(s, a)
    critic_loss = F.mse_loss(q1, y) + F.mse_loss(q2, y)
    opt_critic.zero_grad()
    critic_loss.backward()
    opt_critic.step()
    an = ddim_sample(policy, torch.randn(s.shape[0], dim, generator=generator), alpha_bar, s, ddim_steps)
    q = torch.minimum(*critic(s, an))
    # max_theta Q(s, pi_theta(s, w)), scaled by mean|Q| (Diffusion-QL's eta / mean|Q|)
    actor_loss = -(q / q.abs().mean().detach().clamp_min(1e-6)).mean()
    opt_actor.zero_grad()
    actor_loss.backward()
    opt_actor.step()
    _soft_update(critic, target, tau)
    return float(critic_loss.detach()), float(actor_loss.detach())
