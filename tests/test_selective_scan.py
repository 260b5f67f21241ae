"""Notebook 33's pure-torch selective scan (Mamba's S6): the recurrence and the associative
(parallel-prefix) form agree, the scan is causal, gradients flow, bad shapes are one-line errors.

Functions are looked up on the module at call time, so labkit.check can put a learner's
associative_scan in place of the reference."""
import pytest
import torch

from labkit.nb import n33_decision_mamba as dm


def _inputs(b=2, length=13, d=5, n=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, length, d, generator=g)
    delta = torch.nn.functional.softplus(torch.randn(b, length, d, generator=g))
    A = -torch.rand(d, n, generator=g) * 3 - 0.1
    B, C = torch.randn(b, length, n, generator=g), torch.randn(b, length, n, generator=g)
    D = torch.randn(d, generator=g)
    return x, delta, A, B, C, D


@pytest.mark.parametrize("length", [1, 2, 7, 8, 17, 33])
def test_sequential_equals_parallel(length):
    x, delta, A, B, C, D = _inputs(length=length, seed=length)
    for d_ in (D, None):
        seq = dm.selective_scan(x, delta, A, B, C, d_, mode="sequential")
        par = dm.selective_scan(x, delta, A, B, C, d_, mode="parallel")
        assert seq.shape == (2, length, 5)
        torch.testing.assert_close(seq, par, rtol=1e-5, atol=1e-5)


def test_associative_scan_is_the_recurrence_by_hand():
    a = torch.tensor([[0.5, 2.0, 0.1, 1.0, -1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, -2.0, 0.5]])
    h, expected = 0.0, []
    for t in range(5):
        h = float(a[0, t]) * h + float(b[0, t])
        expected.append(h)
    torch.testing.assert_close(dm.associative_scan(a, b), torch.tensor([expected]))
    with pytest.raises(ValueError, match="same shape"):
        dm.associative_scan(a, b[:, :3])


def test_one_step_by_hand():
    # L = 1: h = Delta B x, y = C . h + D x (the decay never acts)
    x = torch.tensor([[[2.0]]])
    delta = torch.tensor([[[0.5]]])
    A = torch.tensor([[-1.0, -2.0]])
    B = torch.tensor([[[1.0, 3.0]]])
    C = torch.tensor([[[4.0, -1.0]]])
    D = torch.tensor([0.25])
    y = dm.selective_scan(x, delta, A, B, C, D)
    # h = 0.5 * (1, 3) * 2 = (1, 3); C . h = 4 - 3 = 1; + D x = 0.5
    assert float(y) == pytest.approx(1.5)


def test_two_steps_decay_is_exp_delta_A():
    x = torch.tensor([[[1.0], [0.0]]])
    delta = torch.tensor([[[1.0], [0.5]]])
    A = torch.tensor([[-2.0]])
    B = torch.ones(1, 2, 1)
    C = torch.ones(1, 2, 1)
    y = dm.selective_scan(x, delta, A, B, C, mode="parallel")
    # h_1 = 1; h_2 = exp(0.5 * -2) * 1 + 0
    torch.testing.assert_close(y[0, :, 0], torch.tensor([1.0, float(torch.exp(torch.tensor(-1.0)))]))


@pytest.mark.parametrize("mode", ["sequential", "parallel"])
def test_causal_outputs_ignore_later_inputs(mode):
    x, delta, A, B, C, D = _inputs(length=12)
    y = dm.selective_scan(x, delta, A, B, C, D, mode=mode)
    t0 = 5
    x2, delta2, B2, C2 = x.clone(), delta.clone(), B.clone(), C.clone()
    x2[:, t0 + 1:] += 3.0
    delta2[:, t0 + 1:] *= 2.0
    B2[:, t0 + 1:] -= 1.0
    C2[:, t0 + 1:] += 1.0
    y2 = dm.selective_scan(x2, delta2, A, B2, C2, D, mode=mode)
    torch.testing.assert_close(y[:, :t0 + 1], y2[:, :t0 + 1])
    assert not torch.allclose(y[:, t0 + 1:], y2[:, t0 + 1:])


def test_gradients_flow_and_agree_between_forms():
    grads = {}
    for mode in ("sequential", "parallel"):
        leaves = [t.clone().requires_grad_(True) for t in _inputs(length=9)]
        dm.selective_scan(*leaves, mode=mode).pow(2).sum().backward()
        grads[mode] = [t.grad for t in leaves]
        for name, grad in zip("x delta A B C D".split(), grads[mode]):
            assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name
    for gs, gp in zip(grads["sequential"], grads["parallel"]):
        torch.testing.assert_close(gs, gp, rtol=1e-4, atol=1e-4)


def test_bad_shapes_are_one_line_errors():
    x, delta, A, B, C, D = _inputs()
    cases = [
        ((x[0], delta, A, B, C, D), "x must be a"),
        ((x, delta[:, :4], A, B, C, D), "delta must have shape"),
        ((x, delta, A[:3], B, C, D), "A must be"),
        ((x, delta, A, B[..., :2], C, D), "B must have shape"),
        ((x, delta, A, B, C[:, :2], D), "C must have shape"),
        ((x, delta, A, B, C, D[:2]), "D must have shape"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message) as info:
            dm.selective_scan(*args)
        assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="mode must be one of"):
        dm.selective_scan(x, delta, A, B, C, D, mode="fast")


def test_mixer_is_causal_and_modes_agree():
    torch.manual_seed(0)
    mixer = dm.Mixer(8, state=4)
    x = torch.randn(2, 10, 8)
    y = mixer(x, "parallel")
    torch.testing.assert_close(y, mixer(x, "sequential"), rtol=1e-5, atol=1e-5)
    x2 = x.clone()
    x2[:, 6:] = torch.randn(2, 4, 8)
    torch.testing.assert_close(mixer(x2)[:, :6], y[:, :6])
