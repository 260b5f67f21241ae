"""36 · In-context RL: partial updates and a Sink-KV over long multi-episode trials: the mechanism that notebooks/36_in_context_rl.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import math
from dataclasses import dataclass
import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["HiddenArmBandits", "trial_tokens", "sink_attention", "TrialTransformer", "TrialGRU", "update_schedule",
           "episodic_gae", "PPOConfig", "ppo_update", "train_trials", "play_trials", "thompson_trials"]


class HiddenArmBandits:
    """A family of K-armed Bernoulli bandits, one per trial. Each trial hides one good arm (uniform), kept
    for all ``episodes`` episodes of ``episode_len`` pulls: the good arm pays 1 with probability ``p_good``,
    every other arm with ``p_bad``. The bandit's darkroom: a goal fixed across the episodes of a trial that
    only the reward reveals. Payouts come from the ``generator`` passed in (one draw per trial and pull)."""

    def __init__(self, arms=4, episode_len=4, episodes=8, p_good=1.0, p_bad=0.0):
        for name, v, lo in (("arms", arms, 2), ("episode_len", episode_len, 1), ("episodes", episodes, 1)):
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"HiddenArmBandits: {name} must be an integer >= {lo}; got {v!r}")
        for name, v in (("p_good", p_good), ("p_bad", p_bad)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 1:
                raise ValueError(f"HiddenArmBandits: {name} must be a probability in [0, 1]; got {v!r}")
        if not p_good > p_bad:
            raise ValueError(f"HiddenArmBandits: p_good must be above p_bad; got {p_good!r} <= {p_bad!r}")
        self.arms, self.episode_len, self.episodes = arms, episode_len, episodes
        self.p_good, self.p_bad = float(p_good), float(p_bad)
        self.trial_len = episode_len * episodes

    def sample(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """The hidden good arm of ``n`` trials, (n,)."""
        return torch.randint(self.arms, (n,), generator=generator)

    def means(self, good: torch.Tensor) -> torch.Tensor:
        """The arms' payout probabilities (n, K)."""
        return torch.where(F.one_hot(good, self.arms).bool(), self.p_good, self.p_bad)

    def pull(self, good: torch.Tensor, actions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Rewards (n,) of pulling ``actions`` (n,) in the trials whose good arms are ``good``."""
        p = self.means(good).gather(1, actions[:, None]).squeeze(1)
        return (torch.rand(p.shape, generator=generator) < p).float()


def trial_tokens(actions: torch.Tensor, rewards: torch.Tensor, arms: int, episode_len: int) -> torch.Tensor:
    """The inputs of steps 0..t of a trial from the t steps played, (B, t + 1, K + 2): step s reads the
    previous step's action (one-hot) and reward, and a flag at the first step of each episode, where
    the environment was reset (the action and reward slots are zero there, as a reset in habitat masks them)."""
    b, t = actions.shape
    if rewards.shape != (b, t):
        raise ValueError(f"trial_tokens: rewards must be {(b, t)} like actions; got {tuple(rewards.shape)}")
    tokens = torch.zeros(b, t + 1, arms + 2)
    if t:
        tokens[:, 1:, :arms] = F.one_hot(actions, arms).float()
        tokens[:, 1:, arms] = rewards
    first = torch.arange(t + 1) % episode_len == 0
    tokens[:, first] = 0.0
    tokens[:, first, arms + 1] = 1.0
    return tokens


def sink_attention(q, k, v, sink_k=None, sink_v=None):
    """Causal multi-head attention (B, h, T, d) with an optional Sink-KV: one learned key sink_k (h, d) and
    value sink_v (h, d) per head that every query can attend to (ReLIC's ``head_bias_key/value``)."""
    if q.ndim != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"sink_attention: q, k, v must be equal (B, h, T, d) tensors; got "
                         f"{tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if (sink_k is None) != (sink_v is None):
        raise ValueError("sink_attention: give both sink_k and sink_v, or neither")
    b, h, t, d = q.shape
    # s_ij = q_i . k_j / sqrt(d) for j <= i (causal); -inf after i
    scores = (q @ k.transpose(-1, -2)) / math.sqrt(d)
    scores = scores.masked_fill(~torch.ones(t, t, dtype=torch.bool, device=q.device).tril(), float("-inf"))
    if sink_k is None:
        return scores.softmax(-1) @ v
    if sink_k.shape != (h, d) or sink_v.shape != (h, d):
        raise ValueError(f"sink_attention: sink_k and sink_v must be {(h, d)}; got {tuple(sink_k.shape)}, {tuple(sink_v.shape)}")
    # s_i0 = q_i . k_sink / sqrt(d): the sink is a key every query sees
    sink_scores = (q @ sink_k[None, :, :, None]) / math.sqrt(d)
    # w_i = softmax([s_i0, s_i1, ..., s_ii]);  out_i = w_i0 v_sink + sum_j w_ij v_j
    weights = torch.cat([sink_scores, scores], dim=-1).softmax(-1)
    return weights[..., :1] * sink_v[None, :, None, :] + weights[..., 1:] @ v


class _Block(nn.Module):
    """A pre-norm transformer block whose attention has an optional Sink-KV (zeros at the start, trainable)."""

    def __init__(self, hidden, heads, sink):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.norm1, self.norm2 = nn.LayerNorm(hidden), nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.out = nn.Linear(hidden, hidden, bias=False)
        self.mlp = nn.Sequential(nn.Linear(hidden, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, hidden))
        self.sink_k = nn.Parameter(torch.zeros(heads, self.head_dim)) if sink else None
        self.sink_v = nn.Parameter(torch.zeros(heads, self.head_dim)) if sink else None

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        x = x + self.out(sink_attention(q, k, v, self.sink_k, self.sink_v).transpose(1, 2).reshape(b, t, -1))
        return x + self.mlp(self.norm2(x))


class TrialTransformer(nn.Module):
    """The ReLIC policy at toy size: a causal transformer over a whole trial (every episode attends to the
    earlier ones), a position embedding reset at each episode plus an embedding of the episode's index,
    and two heads: action logits pi(a_t | h_t) and the value V(h_t). ``sink`` adds a Sink-KV per layer and head."""

    def __init__(self, arms, episode_len, episodes, hidden=32, n_layer=2, n_head=2, sink=True):
        super().__init__()
        if hidden % n_head:
            raise ValueError(f"TrialTransformer: hidden ({hidden}) must be a multiple of n_head ({n_head})")
        self.arms, self.episode_len = arms, episode_len
        self.embed = nn.Linear(arms + 2, hidden)
        self.position = nn.Embedding(episode_len, hidden)
        self.episode = nn.Embedding(episodes + 1, hidden)      # + 1: the token after the last step
        self.blocks = nn.ModuleList(_Block(hidden, n_head, sink) for _ in range(n_layer))
        self.norm = nn.LayerNorm(hidden)
        self.policy, self.value = nn.Linear(hidden, arms), nn.Linear(hidden, 1)

    def forward(self, tokens):
        """(B, T, K + 2) -> logits (B, T, K), values (B, T)."""
        step = torch.arange(tokens.shape[1])
        x = self.embed(tokens) + self.position(step % self.episode_len) + self.episode(step // self.episode_len)
        for block in self.blocks:
            x = block(x)
        x = self.norm(x)
        return self.policy(x), self.value(x).squeeze(-1)


class TrialGRU(nn.Module):
    """The RL^2 reference: a GRU over the same trial tokens (its state carried across the episodes)."""

    def __init__(self, arms, episode_len, episodes, hidden=32, **_):
        super().__init__()
        self.arms, self.episode_len = arms, episode_len
        self.embed = nn.Linear(arms + 2, hidden)
        self.position = nn.Embedding(episode_len, hidden)
        self.gru = nn.GRU(hidden, hidden, batch_first=True)
        self.policy, self.value = nn.Linear(hidden, arms), nn.Linear(hidden, 1)

    def forward(self, tokens):
        step = torch.arange(tokens.shape[1])
        h, _ = self.gru(torch.relu(self.embed(tokens) + self.position(step % self.episode_len)))
        return self.policy(h), self.value(h).squeeze(-1)


def update_schedule(trial_len: int, updates_per_trial: int, full_updates_per_trial: int = 1) -> list:
    """The updates of one trial as (end, loss_from) pairs, ReLIC's trainer: every n = trial_len /
    updates_per_trial steps the policy is updated on the steps [loss_from, end) with the whole trial
    [0, end) as its context; loss_from is the previous update's end (a partial update), or 0 for every
    (updates_per_trial / full_updates_per_trial)-th update (a full one). full = 0: only partial updates.
    updates_per_trial = 1 is the full-trial baseline: one update at the end of the trial."""
    for name, v, lo in (("trial_len", trial_len, 1), ("updates_per_trial", updates_per_trial, 1),
                        ("full_updates_per_trial", full_updates_per_trial, 0)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"update_schedule: {name} must be an integer >= {lo}; got {v!r}")
    if trial_len % updates_per_trial:
        raise ValueError(f"update_schedule: updates_per_trial ({updates_per_trial}) must divide trial_len ({trial_len})")
    if full_updates_per_trial and updates_per_trial % full_updates_per_trial:
        raise ValueError(f"update_schedule: full_updates_per_trial ({full_updates_per_trial}) must divide "
                         f"updates_per_trial ({updates_per_trial})")
    every = trial_len // updates_per_trial
    ratio = updates_per_trial // full_updates_per_trial if full_updates_per_trial else 0
    schedule, last = [], 0
    for i in range(1, updates_per_trial + 1):
        full = ratio > 0 and i % ratio == 0
        schedule.append((i * every, 0 if full else last))
        last = i * every
    return schedule


def episodic_gae(rewards, values, next_value, episode_end, gamma=0.99, lam=0.95):
    """GAE over a trial whose returns stop at each episode's end (ReLIC's masks: the trial's context goes on,
    the return does not). rewards, values, episode_end (B, t); next_value (B,) = V of the step after t.
    Returns (advantages, returns), each (B, t)."""
    if values.shape != rewards.shape or episode_end.shape != rewards.shape or next_value.shape != rewards.shape[:1]:
        raise ValueError(f"episodic_gae: rewards, values, episode_end must be (B, t) and next_value (B,); got "
                         f"{tuple(rewards.shape)}, {tuple(values.shape)}, {tuple(episode_end.shape)}, {tuple(next_value.shape)}")
    advantages = torch.zeros_like(rewards)
    gae = torch.zeros_like(next_value)
    for s in reversed(range(rewards.shape[1])):
        following = next_value if s == rewards.shape[1] - 1 else values[:, s + 1]
        keep = 1.0 - episode_end[:, s].float()
        # delta_s = r_s + gamma V(h_{s+1}) [s is not an episode's last step] - V(h_s)
        delta = rewards[:, s] + gamma * following * keep - values[:, s]
        # A_s = delta_s + gamma lambda A_{s+1} [s is not an episode's last step]
        gae = delta + gamma * lam * keep * gae
        advantages[:, s] = gae
    return advantages, advantages + values


@dataclass
class PPOConfig:
    """The authors' PPO settings (relic_base.yaml) unless noted."""
    clip: float = 0.2
    epochs: int = 4
    minibatches: int = 2          # trials split in 2 (the authors: 20 envs in 20 minibatches, 10 accumulated)
    value_coef: float = 0.5
    entropy_coef: float = 0.01
    max_grad_norm: float = 0.2
    gamma: float = 0.99
    lam: float = 0.95


def ppo_update(model, optimizer, tokens, actions, old_logp, advantages, returns, loss_from, cfg: PPOConfig, generator):
    """PPO epochs over minibatches of trials. The model reads the trial [0, end) (end = actions' length);
    the losses are averaged over the steps [loss_from, end) only (ReLIC's loss_from_step). Returns the
    mean clip fraction."""
    b, end = actions.shape
    clipped = []
    for _ in range(cfg.epochs):
        for rows in torch.randperm(b, generator=generator).chunk(cfg.minibatches):
            logits, values = model(tokens[rows, :end])
            logp_all = logits.log_softmax(-1)
            logp = logp_all.gather(-1, actions[rows, :, None]).squeeze(-1)
            ratio = (logp - old_logp[rows]).exp()
            adv = advantages[rows]
            # L_clip = -min(rho A, clip(rho, 1 - eps, 1 + eps) A),  rho = pi(a|h) / pi_old(a|h)
            policy_loss = -torch.min(ratio * adv, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * adv)
            value_loss = 0.5 * (values - returns[rows]) ** 2
            entropy = -(logp_all.exp() * logp_all).sum(-1)
            window = slice(loss_from, end)
            loss = (policy_loss[:, window].mean() + cfg.value_coef * value_loss[:, window].mean()
                    - cfg.entropy_coef * entropy[:, window].mean())
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
            optimizer.step()
            clipped.append(float(((ratio - 1).abs() > cfg.clip)[:, window].float().mean()))
    return sum(clipped) / len(clipped)


def train_trials(model, optimizer, world: HiddenArmBandits, iterations, trials, schedule, cfg: PPOConfig,
                 act_gen, world_gen, batch_gen, on_trial=None):
    """ReLIC's training loop: each iteration plays ``trials`` trials in parallel, step by step, and updates
    the policy at the schedule's steps *inside* the trial; the trial then goes on with the new policy and
    the whole context so far. After an update the stored values of the trial are recomputed by the new
    policy (update_stale_values; the keys/values are recomputed at every step here, update_stale_kv);
    the behaviour log-probabilities are not (the final full update's PPO ratio sees the change).
    ``on_trial(iteration, rewards (B, T), clipfrac)`` is called after each iteration."""
    T, H = world.trial_len, world.episode_len
    if not schedule or schedule[-1][0] != T:
        raise ValueError(f"train_trials: the schedule must end at the trial's last step {T}; got {schedule!r}")
    episode_end = (torch.arange(T) % H == H - 1).expand(trials, T)
    for it in range(iterations):
        good = world.sample(trials, world_gen)
        actions = torch.zeros(trials, 0, dtype=torch.long)
        rewards = torch.zeros(trials, 0)
        old_logp, values = torch.zeros(trials, T), torch.zeros(trials, T)
        updates, clipfracs = iter(schedule), []
        end, loss_from = next(updates)
        for t in range(T):
            with torch.no_grad():
                logits, value = model(trial_tokens(actions, rewards, world.arms, H))
                logp = logits[:, -1].log_softmax(-1)
                action = torch.multinomial(logp.exp(), 1, generator=act_gen).squeeze(1)
            old_logp[:, t], values[:, t] = logp.gather(1, action[:, None]).squeeze(1), value[:, -1]
            reward = world.pull(good, action, world_gen)
            actions, rewards = torch.cat([actions, action[:, None]], 1), torch.cat([rewards, reward[:, None]], 1)
            if t + 1 == end:
                tokens = trial_tokens(actions, rewards, world.arms, H)
                with torch.no_grad():
                    _, fresh = model(tokens)
                values[:, :end] = fresh[:, :end]                       # update_stale_values
                next_value = fresh[:, end] if end < T else torch.zeros(trials)
                advantages, returns = episodic_gae(rewards, values[:, :end], next_value, episode_end[:, :end],
                                                   cfg.gamma, cfg.lam)
                clipfracs.append(ppo_update(model, optimizer, tokens, actions, old_logp[:, :end], advantages,
                                            returns, loss_from, cfg, batch_gen))
                end, loss_from = next(updates, (None, None))
        if on_trial is not None:
            on_trial(it, rewards, sum(clipfracs) / len(clipfracs))


@torch.no_grad()
def play_trials(model, world: HiddenArmBandits, good, act_gen, world_gen):
    """Play whole trials with a trained policy (no update), sampling its actions; rewards (n, T)."""
    n, H = good.shape[0], world.episode_len
    actions, rewards = torch.zeros(n, 0, dtype=torch.long), torch.zeros(n, 0)
    for _ in range(world.trial_len):
        logits, _ = model(trial_tokens(actions, rewards, world.arms, H))
        action = torch.multinomial(logits[:, -1].softmax(-1), 1, generator=act_gen).squeeze(1)
        actions = torch.cat([actions, action[:, None]], 1)
        rewards = torch.cat([rewards, world.pull(good, action, world_gen)[:, None]], 1)
    return rewards


def thompson_trials(world: HiddenArmBandits, good, act_gen, world_gen, floor=1e-6):
    """Thompson sampling with the family's own prior (the good arm uniform) and likelihood: the posterior
    P(k is good | history) ∝ prod_t P(r_t | a_t, k); draw k from it, pull k. Rewards (n, T)."""
    n = good.shape[0]
    p_good, p_bad = min(max(world.p_good, floor), 1 - floor), min(max(world.p_bad, floor), 1 - floor)
    log_post = torch.zeros(n, world.arms)
    rewards = torch.zeros(n, world.trial_len)
    is_arm = torch.arange(world.arms)
    for t in range(world.trial_len):
        k = torch.multinomial(log_post.softmax(-1), 1, generator=act_gen).squeeze(1)
        r = world.pull(good, k, world_gen)
        # log P(r | a = k, good = j) = log p_good if j = k else log p_bad (Bernoulli in r)
        p = torch.where(is_arm[None] == k[:, None], p_good, p_bad)
        log_post += torch.where(r[:, None] > 0.5, p.log(), (-p).log1p())
        rewards[:, t] = r
    return rewards
