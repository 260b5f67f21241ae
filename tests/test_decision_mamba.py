"""Notebook 33's Decision Mamba: PSER's refined labels and schedule, the multi-grained model's
causality (the action at step t never sees a_t or anything later), its loss, bad inputs."""
import pytest
import torch

from labkit.core.control import PointMass, SequenceBatch, make_dataset, sample_windows
from labkit.nb import n33_decision_mamba as dm


def test_pser_target_by_hand():
    labels = torch.tensor([[1.0, -1.0], [0.0, 0.5]])
    past = torch.tensor([[0.0, 0.0], [1.0, 0.5]])
    out = dm.pser_target(labels, past, 0.25)
    torch.testing.assert_close(out, torch.tensor([[0.75, -0.75], [0.25, 0.5]]))
    torch.testing.assert_close(dm.pser_target(labels, past, 0.0), labels)
    torch.testing.assert_close(dm.pser_target(labels, past, 1.0), past)


def test_pser_target_holds_the_past_prediction_fixed():
    # gradients reach what the target is built from only through the label, never the past model
    labels = torch.zeros(3, 2, requires_grad=True)
    past = torch.ones(3, 2, requires_grad=True)
    dm.pser_target(labels, past, 0.5).sum().backward()
    assert past.grad is None
    torch.testing.assert_close(labels.grad, torch.full((3, 2), 0.5))


def test_pser_target_pulls_a_noisy_label_toward_a_good_past_prediction():
    # the effect PSER relies on: where the past model predicts the true action, the refined label
    # is (1 - beta) times as far from it as the noisy label was
    clean = torch.tensor([[0.8, -0.2]])
    noisy = torch.tensor([[-1.0, 1.0]])
    refined = dm.pser_target(noisy, clean, 0.4)
    assert float((refined - clean).norm()) == pytest.approx(0.6 * float((noisy - clean).norm()), rel=1e-5)


def test_pser_target_rejects_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        dm.pser_target(torch.zeros(2, 2), torch.zeros(2, 3), 0.5)
    for beta in (-0.1, 1.5, True, "0.5"):
        with pytest.raises(ValueError, match="beta must be a number in"):
            dm.pser_target(torch.zeros(2), torch.zeros(2), beta)


def test_pser_beta_schedule():
    betas = [dm.pser_beta(k, 10) for k in range(1, 11)]
    assert betas[0] == 0.0                                  # no past model in the first phase
    assert betas[1] == pytest.approx(0.1)
    assert max(betas) == 0.5 and betas[-1] == 0.5           # capped (the authors' lower_bound)
    assert all(a <= b for a, b in zip(betas, betas[1:]))
    assert dm.pser_beta(5, 10, beta_T=0.5, cap=1.0) == pytest.approx(0.2)
    for k, total in ((0, 10), (11, 10), (1, 0), (1.5, 10)):
        with pytest.raises(ValueError):
            dm.pser_beta(k, total)


def _batch(b=3, k=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SequenceBatch(states=torch.randn(b, k, 4, generator=g), actions=torch.rand(b, k, 2, generator=g) * 2 - 1,
                         rtg=torch.rand(b, k, 1, generator=g) * 10, timesteps=torch.arange(k).expand(b, -1),
                         mask=torch.ones(b, k))


@pytest.mark.parametrize("grain", ["multi", "coarse"])
def test_action_at_t_never_sees_a_t_or_later_tokens(grain):
    torch.manual_seed(0)
    model = dm.DecisionMamba(4, 2, hidden=16, n_layer=2, state=4, max_timestep=16, rtg_scale=16, grain=grain).eval()
    batch = _batch()
    base = model(batch)["action"]
    t = 1
    actions = batch.actions.clone()
    actions[:, t:] = -actions[:, t:] + 0.3                  # change a_t and every later action
    states = batch.states.clone()
    states[:, t + 1:] += 1.0                                # and every later state
    changed = model(SequenceBatch(states, actions, batch.rtg, batch.timesteps, batch.mask))["action"]
    torch.testing.assert_close(changed[:, :t + 1], base[:, :t + 1])
    assert not torch.allclose(changed[:, t + 1:], base[:, t + 1:])   # a_t does reach a_{t+1}


def test_fine_grain_adds_parameters_and_both_scan_modes_agree():
    torch.manual_seed(0)
    multi = dm.DecisionMamba(4, 2, hidden=16, state=4, grain="multi").eval()
    coarse = dm.DecisionMamba(4, 2, hidden=16, state=4, grain="coarse")
    assert sum(p.numel() for p in multi.parameters()) > sum(p.numel() for p in coarse.parameters())
    batch = _batch(k=6)
    seq = multi(batch)["action"]
    multi.mode = "parallel"
    torch.testing.assert_close(multi(batch)["action"], seq, rtol=1e-5, atol=1e-5)
    assert multi.act(batch).shape == (3, 2) and float(seq.detach().abs().max()) <= 1.0


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="grain must be one of"):
        dm.DecisionMamba(4, 2, grain="medium")
    with pytest.raises(ValueError, match="mode must be one of"):
        dm.DecisionMamba(4, 2, mode="fast")


def test_dm_loss_by_hand():
    batch = _batch(b=1, k=2)
    out = {"action": torch.zeros(1, 2, 2), "state": batch.states.clone(), "rtg": batch.rtg / 4}
    target = torch.ones(1, 2, 2)
    # action term only: the auxiliary heads predict s_{t+1}, R_{t+1} from step t; make them exact
    out["state"][:, 0] = batch.states[:, 1]
    out["rtg"][:, 0] = batch.rtg[:, 1] / 4
    assert float(dm.dm_loss(out, batch, target, rtg_scale=4)) == pytest.approx(0.9)
    out["state"][:, 0] += 0.5                               # Huber(0.5) = 0.5 * 0.5^2 = 0.125 on every state dim
    assert float(dm.dm_loss(out, batch, target, rtg_scale=4)) == pytest.approx(0.9 + 0.05 * 0.125)


def test_a_short_training_run_fits_clean_labels():
    # behaviour: a few steps of the notebook's loss on clean expert data lower the action error
    world = PointMass()
    data = make_dataset(world, 20, {"expert": 1.0}, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = dm.DecisionMamba(4, 2, hidden=16, n_layer=1, state=4, max_timestep=16, rtg_scale=16, dropout=0.0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    probe = sample_windows(data, 64, 4, torch.Generator().manual_seed(1))
    with torch.no_grad():
        before = float(((model(probe)["action"] - probe.actions) ** 2).mean())
    g = torch.Generator().manual_seed(2)
    for _ in range(60):
        batch = sample_windows(data, 16, 4, g)
        loss = dm.dm_loss(model(batch), batch, batch.actions, rtg_scale=16)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        after = float(((model(probe)["action"] - probe.actions) ** 2).mean())
    assert after < 0.5 * before
