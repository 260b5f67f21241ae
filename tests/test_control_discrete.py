"""labkit.core.control.discrete: the bandit and FrozenLake worlds (their dynamics by hand and by
frequency, absorbing terminals, the optimal policies, ``collect``, the evaluator on them, bad inputs),
and a cross-check of the lake's transition table against gymnasium's when gymnasium is installed."""
import pytest
import torch
from torch.nn import functional as F

from labkit.core.control import Trajectories, evaluate_policy
from labkit.core.control.discrete import BernoulliBandit, FrozenLake, collect, greedy_policy, policy_value


def _onehot(index, n):
    return F.one_hot(torch.as_tensor(index), n).float()


def test_lake_transition_by_hand():
    lake = FrozenLake(slip=1 / 3)
    p = lake.transition
    torch.testing.assert_close(p.sum(-1), torch.ones(16, 4))
    # from the start (0), left: left and up hit the wall (stay), down slips to 4
    assert float(p[0, 0, 0]) == pytest.approx(2 / 3) and float(p[0, 0, 4]) == pytest.approx(1 / 3)
    # from 1, down: intended 5 (a hole), perpendicular left 0 and right 2
    assert [round(float(p[1, 1, c]), 4) for c in (0, 2, 5)] == [0.3333] * 3
    # holes and the goal absorb
    for cell in (5, 7, 11, 12, 15):
        assert float(p[cell, 2, cell]) == 1.0
    still = FrozenLake(slip=0.0)
    assert float(still.transition[0, 2, 1]) == 1.0 and float(still.transition[0, 1, 4]) == 1.0


def test_lake_reward_only_on_entering_the_goal_and_terminals_absorb():
    lake = FrozenLake(slip=0.0, horizon=10)
    s, r = lake.step(_onehot([14, 15, 5], 16), _onehot([2, 2, 2], 4))
    assert s.argmax(1).tolist() == [15, 15, 5]
    assert r.tolist() == [1.0, 0.0, 0.0]
    assert lake.terminal(s).tolist() == [True, True, True]


def test_lake_slips_at_the_stated_rates():
    lake = FrozenLake(slip=1 / 3)
    lake.reseed(3)
    n = 30_000
    s, _ = lake.step(_onehot([6] * n, 16), _onehot([1] * n, 4))   # from 6, down: 10, or 5 (left), 7 (right)
    freq = torch.bincount(s.argmax(1), minlength=16).float() / n
    for cell in (5, 7, 10):
        assert float(freq[cell]) == pytest.approx(1 / 3, abs=0.015)
    lake.reseed(3)
    again, _ = lake.step(_onehot([6] * n, 16), _onehot([1] * n, 4))
    assert torch.equal(s, again), "reseed must fix the world's randomness"


def test_optimal_policies():
    still = FrozenLake(slip=0.0, horizon=10)
    assert float(still.rollout(still.reset(4), still.optimal_action).min()) == 1.0
    # the slippery lake's optimal policy beats the still lake's shortest path when the ice slips
    slippery = FrozenLake(slip=1 / 3, horizon=100)
    careful = F.one_hot(slippery.optimal, 4).double()
    hasty = F.one_hot(still.optimal, 4).double()
    assert float(policy_value(slippery, careful)[0]) > 0.7 > 0.1 > float(policy_value(slippery, hasty)[0])
    assert torch.equal(greedy_policy(slippery), slippery.optimal)


def test_policy_value_agrees_with_rollouts():
    lake = FrozenLake(slip=1 / 3, horizon=20)
    lake.reseed(0)
    exact = float(policy_value(lake, F.one_hot(lake.optimal, 4).double())[0])
    mc = float(lake.rollout(lake.reset(20_000), lake.optimal_action).mean())
    assert mc == pytest.approx(exact, abs=0.015)


def test_bandit_pays_at_its_means():
    bandit = BernoulliBandit((0.1, 0.9))
    bandit.reseed(1)
    n = 20_000
    for arm, mean in ((0, 0.1), (1, 0.9)):
        _, r = bandit.step(torch.ones(n, 1), _onehot([arm] * n, 2))
        assert set(r.unique().tolist()) <= {0.0, 1.0}
        assert float(r.mean()) == pytest.approx(mean, abs=0.01)
    still = BernoulliBandit((0.1, 0.9), stochastic=False)
    _, r = still.step(torch.ones(3, 1), _onehot([0, 1, 1], 2))
    torch.testing.assert_close(r, torch.tensor([0.1, 0.9, 0.9]))
    assert still.outcome(None, None, r).tolist() == [0, 1, 1]
    assert bandit.expected_return(torch.tensor([0.5, 0.5])) == pytest.approx(0.5)


def test_collect_gives_trajectories_of_the_horizon():
    lake = FrozenLake(slip=1 / 3, horizon=12)
    data = collect(lake, 50, lambda s, t: torch.full((s.shape[0], 4), 0.25), torch.Generator().manual_seed(0))
    assert isinstance(data, Trajectories) and data.states.shape == (50, 12, 16) and data.actions.shape == (50, 12, 4)
    assert torch.equal(data.actions.sum(-1), torch.ones(50, 12))
    torch.testing.assert_close(data.returns, data.rewards.sum(1))
    assert float(data.rewards.sum(1).max()) <= 1.0, "one goal reward per episode at most"


def test_evaluate_policy_runs_on_the_discrete_worlds():
    bandit = BernoulliBandit((0.1, 0.9), stochastic=False)
    best = evaluate_policy(bandit, lambda batch: _onehot([1] * batch.states.shape[0], 2), 10, 0, 1, 0.9)
    assert best.mean_return == pytest.approx(0.9) and best.score == pytest.approx(1.0)
    lake = FrozenLake(slip=0.0, horizon=10)
    result = evaluate_policy(lake, lambda batch: lake.optimal_action(batch.states[:, -1]), 5, 0, 3, 1.0)
    assert result.mean_return == 1.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="slip"):
        FrozenLake(slip=0.6)
    with pytest.raises(ValueError, match="horizon"):
        FrozenLake(horizon=0)
    with pytest.raises(ValueError, match="desc"):
        FrozenLake(desc=("SFX", "FFG"))
    with pytest.raises(ValueError, match="means"):
        BernoulliBandit((0.5,))
    with pytest.raises(ValueError, match="means"):
        BernoulliBandit((0.1, 1.5))
    lake = FrozenLake()
    with pytest.raises(ValueError, match="states"):
        lake.step(torch.zeros(2, 15), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="actions"):
        lake.step(_onehot([0, 1], 16), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="n_episodes"):
        collect(lake, 0, lambda s, t: torch.full((s.shape[0], 4), 0.25))
    with pytest.raises(ValueError, match="behaviour"):
        collect(lake, 2, lambda s, t: torch.full((s.shape[0], 3), 0.25))


def test_lake_matches_gymnasium():
    gym = pytest.importorskip("gymnasium", reason="gymnasium is not installed (an optional cross-check)")
    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=True).unwrapped
    lake = FrozenLake(slip=1 / 3)
    table = torch.zeros(16, 4, 16)
    for s in range(16):
        for a in range(4):
            for prob, nxt, _reward, _done in env.P[s][a]:
                table[s, a, nxt] += prob
            if lake.terminals[s]:
                table[s, a] = 0
                table[s, a, s] = 1.0   # gym ends the episode; here the terminal cell absorbs
    torch.testing.assert_close(lake.transition, table)
