"""Notebook 37's foundation policy: the planar quadrotor's physics (hover thrust balances gravity, free
fall, symmetric thrust gives no torque, the sign conventions), the authors' drone sampler, the LQR
teachers, fly()'s termination and bookkeeping; the student's imitation loss, its step-by-step policy
with memory carried or cut, a tiny distillation run, and the published RAPTOR policy (skipped unless
the foundation-policy package is installed)."""
import importlib.util
import math

import pytest
import torch

from labkit.core.control import quadrotor as q
from labkit.nb import n37_foundation_policy as fp


def one_drone(**kw):
    base = dict(mass=1.0, arm=0.2, inertia=0.01, thrust_to_weight=2.0, motor_tau=0.05, curve=0.0)
    base.update(kw)
    return q.Drones(*(torch.tensor([float(base[k])]) for k in ("mass", "arm", "inertia", "thrust_to_weight", "motor_tau", "curve")))


def level(drone, motors):
    x = torch.zeros(1, q.STATE_DIM)
    x[:, 6:] = motors
    return x


# ---------------------------------------------------------------- physics


@pytest.mark.parametrize("curve", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("ttw", [1.5, 3.0, 5.0])
def test_hover_thrust_balances_gravity(curve, ttw):
    d = one_drone(thrust_to_weight=ttw, curve=curve, mass=0.7)
    u = q.hover_command(d)
    assert float(q.thrust(d, u[:, None].expand(-1, 2)).sum()) == pytest.approx(0.7 * q.GRAVITY, rel=1e-5)
    x = q.hover_state(d)
    a = (2 * u - 1)[:, None].expand(-1, 2)
    nxt = x
    for _ in range(200):
        nxt = q.step(d, nxt, a)
    assert float(nxt[:, :6].abs().max()) < 1e-4          # it stays where it is


def test_linear_thrust_curve_hover_command_by_hand():
    # f(u) = u (q = 0): two motors of (T/W) m g / 2 carry m g at u = 1 / (T/W)
    assert float(q.hover_command(one_drone(thrust_to_weight=4.0))) == pytest.approx(0.25)
    # f(u) = u^2 (q = 1): u = sqrt(1 / (T/W))
    assert float(q.hover_command(one_drone(thrust_to_weight=4.0, curve=1.0))) == pytest.approx(0.5)


def test_free_fall_with_motors_off():
    d = one_drone()
    x = level(d, 0.0)
    a = -torch.ones(1, 2)
    for _ in range(100):                                    # one second
        x = q.step(d, x, a)
    assert float(x[0, 4]) == pytest.approx(-q.GRAVITY, rel=1e-5)             # v_z = -g t
    assert float(x[0, 1]) == pytest.approx(-0.5 * q.GRAVITY * 1.0, rel=0.02)  # z = -g t^2 / 2 (Euler)
    assert float(x[0, 0]) == 0.0 and float(x[0, 2]) == 0.0


def test_symmetric_thrust_gives_no_torque_and_asymmetric_rolls_the_right_way():
    d = one_drone()
    x = level(d, 0.6)
    same = q.step(d, x, torch.tensor([[0.2, 0.2]]))
    assert float(same[0, 5]) == 0.0 and float(same[0, 2]) == 0.0
    # more thrust on the left motor (index 1, at y = +l) rolls positive about x (FLU) ...
    left = q.step(d, x, torch.tensor([[0.0, 0.4]]))
    right = q.step(d, x, torch.tensor([[0.4, 0.0]]))
    assert float(left[0, 5]) > 0 and float(right[0, 5]) == pytest.approx(-float(left[0, 5]))
    # ... and a positive roll tilts the thrust toward -y
    tilted = level(d, float(q.hover_command(d)))
    tilted[0, 2] = 0.2
    a = (2 * q.hover_command(d) - 1)[:, None].expand(-1, 2)
    assert float(q.step(d, tilted, a)[0, 3]) < 0


def test_angular_acceleration_is_torque_over_inertia():
    d = one_drone(inertia=0.02, arm=0.1, motor_tau=0.001)        # tau < dt: the motors reach the command at once
    x = level(d, 0.0)
    nxt = q.step(d, x, torch.tensor([[-1.0, 1.0]]))              # the left motor full, the right off
    torque = 0.1 * float(d.max_motor_thrust)
    assert float(nxt[0, 5]) == pytest.approx(torque / 0.02 * q.DT, rel=1e-5)
    assert float(d.torque_to_inertia) == pytest.approx(torque / 0.02, rel=1e-6)


def test_motor_lag_is_first_order():
    d = one_drone(motor_tau=0.04)
    x = level(d, 0.0)
    nxt = q.step(d, x, torch.ones(1, 2))
    assert float(nxt[0, 6]) == pytest.approx(q.DT / 0.04)        # m <- m + dt/tau (u - m)


def test_step_rejects_bad_shapes():
    d = one_drone()
    with pytest.raises(ValueError, match="step"):
        q.step(d, torch.zeros(1, 6), torch.zeros(1, 2))
    with pytest.raises(ValueError, match="step"):
        q.step(d, torch.zeros(1, 8), torch.zeros(2, 2))


# ---------------------------------------------------------------- the population


def test_sample_drones_follows_the_authors_ranges_and_is_deterministic():
    a = q.sample_drones(400, torch.Generator().manual_seed(3))
    b = q.sample_drones(400, torch.Generator().manual_seed(3))
    assert torch.equal(a.mass, b.mass) and torch.equal(a.inertia, b.inertia)
    assert float(a.thrust_to_weight.min()) >= 1.5 and float(a.thrust_to_weight.max()) <= 5.0
    assert float(a.mass.min()) >= 0.02 - 1e-6 and float(a.mass.max()) <= 5.0 + 1e-4
    ratio = a.thrust_to_weight / a.torque_to_inertia                   # their thrust_to_weight_by_torque_to_inertia
    assert float(ratio.min()) >= 0.001 * 0.999 and float(ratio.max()) <= 0.1 * 1.001
    size = a.mass ** (1 / 3)                                           # uniform in size, not in mass
    assert float((size < (0.02 ** (1 / 3) + 5 ** (1 / 3)) / 2).float().mean()) == pytest.approx(0.5, abs=0.08)
    # the arm follows the size within the reciprocal 10 % deviation
    rel = a.arm / (0.2 * a.mass ** (1 / 3))
    assert float(rel.min()) >= 1 / 1.1 - 1e-5 and float(rel.max()) <= 1.1 + 1e-5


def test_sample_drones_rejects_bad_ranges():
    with pytest.raises(ValueError, match="n must"):
        q.sample_drones(0)
    with pytest.raises(ValueError, match="thrust_to_weight"):
        q.sample_drones(3, thrust_to_weight=(0.8, 2.0))
    with pytest.raises(ValueError, match="low <= high"):
        q.sample_drones(3, motor_tau=(0.08, 0.02))
    with pytest.raises(ValueError, match="Drones"):
        q.Drones(*(torch.ones(2) for _ in range(5)), torch.ones(3))


def test_drones_helpers():
    d = q.sample_drones(3, torch.Generator().manual_seed(0))
    r = d.repeat(2)
    assert len(r) == 6 and torch.equal(r.mass[:2], d.mass[:1].expand(2))
    assert len(d.mean()) == 1 and float(d.mean().mass) == pytest.approx(float(d.mass.mean()))
    assert torch.equal(d.index(torch.tensor([2])).arm, d.arm[2:])


# ---------------------------------------------------------------- teachers and flights


def test_linearize_matches_finite_differences():
    d = one_drone(curve=0.4, thrust_to_weight=3.0)
    A, B = q.linearize(d)
    x0 = q.hover_state(d)
    a0 = (2 * q.hover_command(d) - 1)[:, None].expand(-1, 2).contiguous()
    eps = 1e-3
    for j in range(q.STATE_DIM):
        dx = torch.zeros(1, q.STATE_DIM, dtype=torch.float64)
        dx[0, j] = eps
        col = (q.step(d, (x0 + dx).float(), a0) - q.step(d, (x0 - dx).float(), a0)) / (2 * eps)
        assert torch.allclose(A[0, :, j], col[0], atol=2e-3)
    da = torch.tensor([[eps, 0.0]])
    col = (q.step(d, x0, a0 + da) - q.step(d, x0, a0 - da)) / (2 * eps)
    assert torch.allclose(B[0, :, 0], col[0], atol=2e-3)


def test_teachers_fly_their_drones_and_the_mean_drones_lqr_does_not_fly_all():
    g = torch.Generator().manual_seed(1)
    d = q.sample_drones(24, g)
    start = q.initial_states(d, 1, g)
    teacher = q.LQRController(d)
    own = q.fly(d, start, lambda o, s, t: teacher(s), 300)
    assert bool(own.success.all())
    nominal = q.LQRController(d.mean().repeat(len(d)))
    other = q.fly(d, start, lambda o, s, t: nominal(s), 300)
    assert float(other.success.float().mean()) < 0.8


def test_dlqr_by_hand_for_a_scalar_system():
    # x' = x + u, Q = R = 1: P = 1 + P - P^2 / (1 + P)  ->  P^2 - P - 1 = 0, K = P / (1 + P)
    P = (1 + math.sqrt(5)) / 2
    K = q.dlqr(torch.ones(1, 1, 1), torch.ones(1, 1, 1), torch.eye(1), torch.eye(1))
    assert float(K) == pytest.approx(P / (1 + P), rel=1e-6)


def test_fly_terminates_freezes_and_charges_the_crash_cost():
    d = one_drone()
    start = level(d, 0.0)
    ep = q.fly(d, start, lambda o, s, t: -torch.ones(1, 2), 120, settle=10)   # motors off: it falls out of the box
    dead = ep.alive[0] == 0
    assert bool(dead.any()) and not bool(ep.success[0])
    first = int(dead.float().argmax())
    assert torch.equal(ep.states[0, first + 1], ep.states[0, -1])             # frozen after the crash
    assert float(ep.cost[0]) > 1.0
    assert ep.obs.shape == (1, 120, q.OBS_DIM) and ep.actions.shape == (1, 120, 2) and ep.labels is None


def test_fly_labels_and_observations():
    d = q.sample_drones(2, torch.Generator().manual_seed(0))
    teacher = q.LQRController(d)
    start = q.initial_states(d, 1, torch.Generator().manual_seed(0))
    ep = q.fly(d, start, lambda o, s, t: torch.zeros(2, 2), 5, label=teacher, settle=2)
    assert torch.allclose(ep.labels[:, 0], teacher(start))
    assert torch.allclose(ep.obs[:, 0, :2], start[:, :2]) and torch.allclose(ep.obs[:, 1, 7:], torch.zeros(2, 2))
    with pytest.raises(ValueError, match="fly"):
        q.fly(d, start[:1], lambda o, s, t: torch.zeros(1, 2), 5)


# ---------------------------------------------------------------- the mechanism


def test_imitation_loss_by_hand():
    actions = torch.tensor([[[1.0, 0.0], [0.5, 0.5]]])
    labels = torch.tensor([[[0.0, 0.0], [0.5, -0.5]]])
    alive = torch.ones(1, 2)
    assert float(fp.imitation_loss(actions, labels, alive)) == pytest.approx((1.0 + 1.0) / 2)


def test_imitation_loss_leaves_dead_steps_out():
    actions = torch.zeros(2, 3, 2)
    labels = torch.zeros(2, 3, 2)
    labels[0, 2] = 100.0                     # a crashed step's label: must not count
    labels[1, 0] = torch.tensor([1.0, 1.0])
    alive = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    assert float(fp.imitation_loss(actions, labels, alive)) == pytest.approx(2.0 / 5)
    assert float(fp.imitation_loss(actions, labels, torch.zeros(2, 3))) == 0.0


def test_imitation_loss_rejects_bad_shapes():
    with pytest.raises(ValueError, match="imitation_loss"):
        fp.imitation_loss(torch.zeros(2, 3, 2), torch.zeros(2, 3, 1), torch.ones(2, 3))
    with pytest.raises(ValueError, match="imitation_loss"):
        fp.imitation_loss(torch.zeros(2, 3, 2), torch.zeros(2, 3, 2), torch.ones(2, 4))


def _obs(n=3, t=7):
    return torch.randn(n, t, q.OBS_DIM, generator=torch.Generator().manual_seed(0))


def test_act_with_carries_the_memory_step_by_step():
    torch.manual_seed(0)
    student = fp.Student(8, recurrent=True)
    obs = _obs()
    full, _ = student(obs)
    policy = fp.act_with(student)
    stepped = torch.stack([policy(obs[:, t], None, t) for t in range(obs.shape[1])], 1)
    assert torch.allclose(stepped, full, atol=1e-5)


def test_act_with_cut_resets_the_memory_every_step():
    torch.manual_seed(0)
    student = fp.Student(8, recurrent=True)
    obs = _obs()
    fresh, _ = student(obs.reshape(-1, 1, q.OBS_DIM))
    policy = fp.act_with(student, cut=True)
    stepped = torch.stack([policy(obs[:, t], None, t) for t in range(obs.shape[1])], 1)
    assert torch.allclose(stepped, fresh.view(obs.shape[0], obs.shape[1], -1), atol=1e-5)
    carried = fp.act_with(student)
    with_memory = torch.stack([carried(obs[:, t], None, t) for t in range(obs.shape[1])], 1)
    assert not torch.allclose(stepped[:, 1:], with_memory[:, 1:], atol=1e-4)   # the memory matters to this GRU


def test_act_with_forgets_the_last_episode_at_t0():
    torch.manual_seed(0)
    student = fp.Student(8, recurrent=True)
    obs = _obs()
    policy = fp.act_with(student)
    for t in range(obs.shape[1]):
        policy(obs[:, t], None, t)
    again = policy(obs[:, 0], None, 0)
    first, _ = student(obs[:, :1])
    assert torch.allclose(again, first[:, 0], atol=1e-6)


def test_mlp_student_has_no_memory():
    torch.manual_seed(0)
    student = fp.Student(8, recurrent=False)
    obs = _obs()
    full, h = student(obs)
    assert h is None
    shuffled, _ = student(obs.flip(1))
    assert torch.allclose(full, shuffled.flip(1), atol=1e-6)
    with pytest.raises(ValueError, match="Student"):
        student(obs[:, 0])


def test_distill_learns_the_teachers_and_keeps_its_budget():
    g = torch.Generator().manual_seed(0)
    d = q.sample_drones(4, g)
    teacher = q.LQRController(d.repeat(2))
    torch.manual_seed(0)
    student = fp.Student(8, recurrent=True)
    fixed = q.fly(d.repeat(2), q.initial_states(d, 2, torch.Generator().manual_seed(9)), lambda o, s, t: teacher(s), 30,
                  label=teacher, settle=10)

    def error():
        with torch.no_grad():
            return float(fp.imitation_loss(student(fixed.obs)[0], fixed.labels, fixed.alive))

    before = error()
    seen = []
    hist = fp.distill(student, d, teacher, epochs=6, teacher_forcing=2, episodes=2, steps=30, updates=8, batch=8, lr=1e-2,
                      generator=g, settle=10, on_epoch=seen.append)
    assert [h["driver"] for h in hist] == ["teacher"] * 2 + ["student"] * 4
    assert len(seen) == 6 and all(h["episodes"] == 8 and h["updates"] == 64 for h in hist)
    assert error() < before / 2                     # it imitates the teachers on teacher-flown episodes
    with pytest.raises(ValueError, match="distill"):
        fp.distill(student, d, teacher, epochs=2, teacher_forcing=3, episodes=2, steps=30, updates=1, batch=8, lr=1e-2,
                   generator=g)


def test_raptor_mapping_of_a_hovering_planar_drone():
    state = torch.zeros(2, q.STATE_DIM)
    state[1, :6] = torch.tensor([0.1, -0.2, 0.3, 0.4, 0.5, 0.6])
    prev = torch.tensor([[0.1, 0.1], [-0.2, 0.4]])
    obs = fp.planar_to_raptor(state, prev)
    assert obs.shape == (2, 22)
    assert torch.allclose(obs[0, 3:12], torch.eye(3).flatten())
    c, s = math.cos(0.3), math.sin(0.3)
    assert torch.allclose(obs[1], torch.tensor([0, 0.1, -0.2, 1, 0, 0, 0, c, -s, 0, s, c, 0, 0.4, 0.5, 0.6, 0, 0,
                                                -0.2, -0.2, 0.4, 0.4]), atol=1e-6)
    assert torch.allclose(fp.raptor_to_planar(torch.tensor([[0.1, 0.3, -0.5, 0.1]])), torch.tensor([[0.2, -0.2]]))


@pytest.mark.skipif(importlib.util.find_spec("foundation_policy") is None,
                    reason="the published RAPTOR policy (PyPI foundation-policy) is not installed; nothing is downloaded "
                           "at test time")
def test_published_raptor_policy_holds_a_planar_drone_near_hover():  # pragma: no cover - needs the package
    import numpy as np
    from foundation_policy import Raptor

    d = one_drone(mass=0.8, arm=0.15, inertia=0.008, thrust_to_weight=2.5, motor_tau=0.03, curve=0.5)
    policy = Raptor()
    policy.reset()
    start = q.hover_state(d)
    start[0, :2] = torch.tensor([0.2, -0.2])

    def act(obs, state, t):
        action = policy.evaluate_step(fp.planar_to_raptor(state, obs[:, 7:9]).numpy())
        return fp.raptor_to_planar(torch.as_tensor(np.asarray(action), dtype=torch.float32))

    ep = q.fly(d, start, act, 300)
    assert bool(ep.alive[0, -1]) and float(ep.states[0, -100:, :2].norm(dim=-1).mean()) < 0.2
