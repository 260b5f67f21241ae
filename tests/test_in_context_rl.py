"""Notebook 36's in-context RL (ReLIC): the Sink-KV attention (by hand, causal, a sink that changes
nothing, zero queries, bad shapes), the partial-update schedule (the authors' configurations, bad
inputs), episodic GAE (returns stop at episode ends), the trial's tokens, the hidden-arm world,
Thompson sampling with the family's prior, the policy's causality, and a tiny training run."""
import math

import pytest
import torch

from labkit.nb import n36_in_context_rl as m


# ---------------------------------------------------------------------------- sink_attention

def test_sink_attention_by_hand():
    q = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)
    k = torch.tensor([2.0, 0.0]).view(1, 1, 1, 2)
    v = torch.tensor([3.0, 5.0]).view(1, 1, 1, 2)
    sink_k, sink_v = torch.tensor([[0.0, 0.0]]), torch.tensor([[-1.0, 1.0]])
    out = m.sink_attention(q, k, v, sink_k, sink_v)
    s = 2.0 / math.sqrt(2)                               # q . k / sqrt(d); the sink scores 0
    w_sink, w_k = 1 / (1 + math.exp(s)), math.exp(s) / (1 + math.exp(s))
    want = torch.tensor([w_sink * -1 + w_k * 3, w_sink * 1 + w_k * 5])
    assert torch.allclose(out.view(2), want, atol=1e-6)
    assert torch.allclose(m.sink_attention(q, k, v).view(2), v.view(2))   # no sink: the only key takes all


def test_sink_attention_is_causal():
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4, generator=g) for _ in range(3))
    sk, sv = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    out = m.sink_attention(q, k, v, sk, sv)
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 3:], v2[:, :, 3:] = 7.0, -7.0
    out2 = m.sink_attention(q, k2, v2, sk, sv)
    assert torch.allclose(out[:, :, :3], out2[:, :, :3], atol=1e-6)
    assert not torch.allclose(out[:, :, 3:], out2[:, :, 3:])


def test_a_sink_nobody_attends_to_changes_nothing():
    g = torch.Generator().manual_seed(1)
    q, k, v = (torch.randn(1, 2, 4, 3, generator=g) for _ in range(3))
    q = q.abs() + 0.1                                    # positive queries against a very negative sink key
    sk, sv = torch.full((2, 3), -1e4), torch.randn(2, 3, generator=g)
    assert torch.allclose(m.sink_attention(q, k, v, sk, sv), m.sink_attention(q, k, v), atol=1e-5)


def test_a_zero_query_spreads_its_weight_over_the_sink_and_the_past():
    k, v = torch.randn(1, 1, 3, 2), torch.randn(1, 1, 3, 2)
    q = torch.zeros(1, 1, 3, 2)
    sv = torch.tensor([[4.0, -4.0]])
    out = m.sink_attention(q, k, v, torch.randn(1, 2), sv)
    for i in range(3):
        want = (sv[0] + v[0, 0, :i + 1].sum(0)) / (i + 2)
        assert torch.allclose(out[0, 0, i], want, atol=1e-6)


def test_sink_attention_rejects_bad_shapes():
    q = torch.zeros(1, 2, 3, 4)
    with pytest.raises(ValueError, match="equal"):
        m.sink_attention(q, torch.zeros(1, 2, 4, 4), q)
    with pytest.raises(ValueError, match="both"):
        m.sink_attention(q, q, q, torch.zeros(2, 4), None)
    with pytest.raises(ValueError, match="sink_k"):
        m.sink_attention(q, q, q, torch.zeros(3, 4), torch.zeros(3, 4))


# ---------------------------------------------------------------------------- update_schedule

def test_update_schedule_authors_configurations():
    # relic_base: 16 updates per 4096-step rollout, one full: the last one, from step 0
    sched = m.update_schedule(4096, 16, 1)
    assert len(sched) == 16 and sched[0] == (256, 0) and sched[1] == (512, 256) and sched[-1] == (4096, 0)
    assert all(frm == prev for (_, frm), (prev, _) in zip(sched[1:-1], sched[:-2]))
    assert m.update_schedule(32, 4, 1) == [(8, 0), (16, 8), (24, 16), (32, 0)]    # the partial-update ablation
    assert m.update_schedule(32, 1, 1) == [(32, 0)]                              # no partial updates


def test_update_schedule_partial_only_and_two_full_updates():
    assert m.update_schedule(32, 4, 0) == [(8, 0), (16, 8), (24, 16), (32, 24)]
    assert m.update_schedule(32, 4, 2) == [(8, 0), (16, 0), (24, 16), (32, 0)]


def test_update_schedule_rejects_bad_inputs():
    with pytest.raises(ValueError, match="divide"):
        m.update_schedule(30, 4, 1)
    with pytest.raises(ValueError, match="divide"):
        m.update_schedule(32, 4, 3)
    with pytest.raises(ValueError, match="updates_per_trial"):
        m.update_schedule(32, 0, 1)
    with pytest.raises(ValueError, match="trial_len"):
        m.update_schedule(32.0, 4, 1)


# ---------------------------------------------------------------------------- episodic_gae

def test_episodic_gae_stops_at_episode_ends():
    rewards = torch.tensor([[1.0, 0.0, 1.0, 1.0]])
    values = torch.zeros(1, 4)
    end = torch.tensor([[False, True, False, True]])
    adv, ret = m.episodic_gae(rewards, values, torch.tensor([5.0]), end, gamma=1.0, lam=1.0)
    assert torch.allclose(ret, torch.tensor([[1.0, 0.0, 2.0, 1.0]]))      # nothing crosses an episode's end
    assert torch.allclose(adv, ret)


def test_episodic_gae_by_hand_with_bootstrap():
    rewards, values = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.5, 1.0]])
    end = torch.zeros(1, 2, dtype=torch.bool)
    g, lam = 0.9, 0.5
    adv, ret = m.episodic_gae(rewards, values, torch.tensor([3.0]), end, gamma=g, lam=lam)
    d1 = 2.0 + g * 3.0 - 1.0
    d0 = 1.0 + g * 1.0 - 0.5
    assert torch.allclose(adv, torch.tensor([[d0 + g * lam * d1, d1]]))
    assert torch.allclose(ret, adv + values)
    with pytest.raises(ValueError):
        m.episodic_gae(rewards, values, torch.tensor([3.0, 1.0]), end)


# ---------------------------------------------------------------------------- world, tokens, references

def test_trial_tokens_carry_the_last_step_and_reset_at_episodes():
    actions, rewards = torch.tensor([[2, 0, 1]]), torch.tensor([[1.0, 0.0, 1.0]])
    tok = m.trial_tokens(actions, rewards, arms=3, episode_len=2)
    assert tok.shape == (1, 4, 5)
    assert tok[0, 0].tolist() == [0, 0, 0, 0, 1]          # the first step: a reset flag
    assert tok[0, 1].tolist() == [0, 0, 1, 1, 0]          # action 2, reward 1
    assert tok[0, 2].tolist() == [0, 0, 0, 0, 1]          # a new episode starts: reset
    assert tok[0, 3].tolist() == [0, 1, 0, 1, 0]          # action 1, reward 1


def test_world_has_one_good_arm_and_pays_by_it():
    w = m.HiddenArmBandits(arms=3, episode_len=2, episodes=2, p_good=1.0, p_bad=0.0)
    good = w.sample(200, torch.Generator().manual_seed(0))
    assert set(good.tolist()) == {0, 1, 2}
    g = torch.Generator().manual_seed(1)
    assert torch.equal(w.pull(good, good, g), torch.ones(200))
    assert torch.equal(w.pull(good, (good + 1) % 3, g), torch.zeros(200))
    with pytest.raises(ValueError, match="p_good"):
        m.HiddenArmBandits(p_good=0.2, p_bad=0.5)
    with pytest.raises(ValueError, match="arms"):
        m.HiddenArmBandits(arms=1)


def test_thompson_never_repulls_a_known_bad_arm_and_sticks_to_the_good_one():
    w = m.HiddenArmBandits(arms=4, episode_len=4, episodes=2)
    good = w.sample(300, torch.Generator().manual_seed(0))
    r = m.thompson_trials(w, good, torch.Generator().manual_seed(1), torch.Generator().manual_seed(2))
    found = r.cumsum(1) > 0
    assert bool((r[:, 1:][found[:, :-1]] == 1).all())     # once found, always pulled
    assert bool((found[:, 3]).all())                       # 4 arms, no repeats: found within 4 pulls
    assert abs(float(r[:, 0].mean()) - 0.25) < 0.1


def test_transformer_is_causal_and_the_sink_is_trainable():
    torch.manual_seed(0)
    model = m.TrialTransformer(3, 2, 3, hidden=8, n_layer=1, n_head=2, sink=True)
    tok = torch.randn(2, 5, 5)
    logits, values = model(tok)
    tok2 = tok.clone()
    tok2[:, 3:] = 9.0
    logits2, values2 = model(tok2)
    assert torch.allclose(logits[:, :3], logits2[:, :3], atol=1e-5) and torch.allclose(values[:, :3], values2[:, :3], atol=1e-5)
    names = {n for n, _ in model.named_parameters()}
    assert "blocks.0.sink_k" in names and "blocks.0.sink_v" in names
    assert not any("sink" in n for n, _ in m.TrialTransformer(3, 2, 3, hidden=8, n_layer=1, sink=False).named_parameters())


def test_partial_updates_update_inside_the_trial():
    w = m.HiddenArmBandits(arms=3, episode_len=2, episodes=2)
    torch.manual_seed(0)
    model = m.TrialTransformer(3, 2, 2, hidden=8, n_layer=1, n_head=1)
    before = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    calls = []
    sched = m.update_schedule(4, 2, 1)
    g = lambda s: torch.Generator().manual_seed(s)
    m.train_trials(model, opt, w, 2, 4, sched, m.PPOConfig(epochs=1, minibatches=2), g(0), g(1), g(2),
                   on_trial=lambda it, r, c: calls.append((it, tuple(r.shape))))
    assert calls == [(0, (4, 4)), (1, (4, 4))]
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    # 2 iterations x 2 updates x 1 epoch x 2 minibatches = 8 optimizer steps
    assert opt.state[next(iter(model.parameters()))]["step"] == 8
    with pytest.raises(ValueError, match="schedule"):
        m.train_trials(model, opt, w, 1, 4, [(2, 0)], m.PPOConfig(), g(0), g(1), g(2))
