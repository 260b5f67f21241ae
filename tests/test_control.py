"""labkit.core.control: the point-mass world, the offline dataset and its label noise, the sequence
format, the batched evaluator and the DT / BC baselines."""
import pytest
import torch

from labkit.core.control import (DecisionTransformer, MLPPolicy, PointMass, SequenceBatch, corrupt_actions,
                                 evaluate_policy, make_dataset, return_to_go, sample_windows, take_windows)


def test_step_by_hand():
    world = PointMass(horizon=4, speed=0.25, radius=0.2)
    states = torch.tensor([[0.0, 0.0, 0.5, 0.0], [0.9, 0.9, 0.0, 0.0]])
    nxt, reward = world.step(states, torch.tensor([[1.0, 0.0], [5.0, 5.0]]))
    torch.testing.assert_close(nxt, torch.tensor([[0.25, 0.0, 0.5, 0.0], [1.0, 1.0, 0.0, 0.0]]))  # clipped action, wall
    assert reward.tolist() == [0.0, 0.0]
    nxt, reward = world.step(nxt, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    assert reward.tolist() == [1.0, 0.0]


def test_optimal_policy_reaches_every_goal_and_beats_random():
    world = PointMass()
    starts = world.reset(500, torch.Generator().manual_seed(0))
    optimal = world.rollout(starts, world.optimal_action)
    # the farthest goal is 2 per axis away: 8 steps at speed 0.25, then on the goal to the end
    assert float(optimal.min()) >= world.horizon - 8
    g = torch.Generator().manual_seed(1)
    random = world.rollout(starts, lambda s: torch.rand(s.shape[0], 2, generator=g) * 2 - 1)
    assert float(random.mean()) < 0.2 * float(optimal.mean())


def test_reset_is_seeded_and_bad_inputs():
    world = PointMass()
    a = world.reset(4, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, world.reset(4, torch.Generator().manual_seed(3)))
    with pytest.raises(ValueError, match="n must be"):
        world.reset(0)
    with pytest.raises(ValueError, match="states must be a"):
        world.step(torch.zeros(3, 3), torch.zeros(3, 2))
    with pytest.raises(ValueError, match="actions must be a"):
        world.step(torch.zeros(3, 4), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="horizon must be a positive integer"):
        PointMass(horizon=2.5)


def test_return_to_go_by_hand():
    torch.testing.assert_close(return_to_go(torch.tensor([[0.0, 1.0, 1.0, 0.0]])), torch.tensor([[2.0, 2.0, 1.0, 0.0]]))


def test_dataset_mix_order_and_quality():
    world = PointMass()
    data = make_dataset(world, 10, {"expert": 0.3, "medium": 0.4, "random": 0.3}, torch.Generator().manual_seed(0))
    assert data.kinds.tolist() == [0] * 3 + [1] * 4 + [2] * 3
    assert data.states.shape == (10, 16, 4) and data.actions.shape == (10, 16, 2)
    torch.testing.assert_close(data.rtg, return_to_go(data.rewards))
    big = make_dataset(world, 90, {"expert": 1, "medium": 1, "random": 1}, torch.Generator().manual_seed(1))
    means = [float(big.returns[big.kinds == k].mean()) for k in range(3)]
    assert means[0] > means[1] > means[2]
    # the states follow the actions taken
    nxt, _ = world.step(big.states[:, 0], big.actions[:, 0])
    torch.testing.assert_close(nxt, big.states[:, 1])
    for bad in ({}, {"good": 1.0}, {"expert": -1}, {"expert": 0}):
        with pytest.raises(ValueError, match="mix"):
            make_dataset(world, 5, bad)


def test_corrupt_actions_replaces_labels_only():
    world = PointMass()
    data = make_dataset(world, 200, {"medium": 1.0}, torch.Generator().manual_seed(0))
    noisy = corrupt_actions(data, 0.3, torch.Generator().manual_seed(1))
    share = float(noisy.noisy.float().mean())
    assert 0.27 < share < 0.33
    torch.testing.assert_close(noisy.states, data.states)
    torch.testing.assert_close(noisy.rtg, data.rtg)
    torch.testing.assert_close(noisy.actions[~noisy.noisy], data.actions[~noisy.noisy])
    assert not torch.allclose(noisy.actions[noisy.noisy], data.actions[noisy.noisy])
    torch.testing.assert_close(noisy.clean_actions, data.actions)
    assert not corrupt_actions(data, 0.0).noisy.any()
    with pytest.raises(ValueError, match="fraction must be"):
        corrupt_actions(data, 1.5)


def test_windows_are_consecutive_steps():
    world = PointMass()
    data = make_dataset(world, 6, {"expert": 1.0}, torch.Generator().manual_seed(0))
    batch = take_windows(data, torch.tensor([2, 5]), torch.tensor([0, 11]), 5)
    torch.testing.assert_close(batch.states[1], data.states[5, 11:16])
    torch.testing.assert_close(batch.rtg[0, :, 0], data.rtg[2, :5])
    assert batch.timesteps[1].tolist() == list(range(11, 16))
    sampled = sample_windows(data, 7, 3, torch.Generator().manual_seed(0))
    assert sampled.states.shape == (7, 3, 4) and sampled.actions.shape == (7, 3, 2)
    with pytest.raises(ValueError, match="context must be"):
        sample_windows(data, 4, 17)
    with pytest.raises(ValueError, match="inside the horizon"):
        take_windows(data, torch.tensor([0]), torch.tensor([14]), 5)
    with pytest.raises(ValueError, match="actions must start with shape"):
        SequenceBatch(batch.states, batch.actions[:1], batch.rtg, batch.timesteps, batch.mask)


def test_evaluator_scores_optimal_one_and_random_near_zero():
    world = PointMass()

    def optimal(batch):
        return world.optimal_action(batch.states[:, -1])

    result = evaluate_policy(world, optimal, 50, seed=0, context=4, target_return=12)
    assert result.score == pytest.approx(1.0)
    g = torch.Generator().manual_seed(5)
    noise = evaluate_policy(world, lambda b: torch.rand(b.states.shape[0], 2, generator=g) * 2 - 1, 200, 0, 4, 12)
    assert abs(noise.score) < 0.1
    seen = []

    def spy(batch):
        seen.append((batch.states.shape[1], float(batch.rtg[0, -1, 0]), batch.actions[:, -1].abs().sum().item()))
        return world.optimal_action(batch.states[:, -1])

    evaluate_policy(world, spy, 3, seed=1, context=4, target_return=12)
    assert [s[0] for s in seen] == [1, 2, 3, 4] + [4] * 12        # the context grows to K, then slides
    assert seen[0][1] == 12 and all(s[2] == 0 for s in seen)       # RTG starts at the target; a_t's slot is empty
    with pytest.raises(ValueError, match="policy must return"):
        evaluate_policy(world, lambda b: torch.zeros(3), 3, 0, 4, 12)


def test_decision_transformer_is_causal_and_bc_reads_the_state():
    torch.manual_seed(0)
    model = DecisionTransformer(4, 2, hidden=16, n_layer=2, n_head=2, max_timestep=16, rtg_scale=16).eval()
    g = torch.Generator().manual_seed(0)
    batch = SequenceBatch(torch.randn(2, 5, 4, generator=g), torch.randn(2, 5, 2, generator=g),
                          torch.rand(2, 5, 1, generator=g), torch.arange(5).expand(2, -1), torch.ones(2, 5))
    base = model(batch)["action"]
    actions = batch.actions.clone()
    actions[:, 2:] += 1.0
    changed = model(SequenceBatch(batch.states, actions, batch.rtg, batch.timesteps, batch.mask))["action"]
    torch.testing.assert_close(changed[:, :3], base[:, :3])
    assert not torch.allclose(changed[:, 3:], base[:, 3:])
    bc = MLPPolicy(4, 2).eval()
    assert bc.act(batch).shape == (2, 2)
    with pytest.raises(ValueError, match="divisible by n_head"):
        DecisionTransformer(4, 2, hidden=10, n_head=3)
    with pytest.raises(ValueError, match="hidden must be"):
        MLPPolicy(4, 2, hidden=0)
