"""A batched planar quadrotor in pure torch, a population of drones and their LQR teachers
(notebook 37, foundation policy: one recurrent student for many drones).

The drone flies in the (y, z) plane of the FLU frame (y left, z up) and rolls by ``phi`` about the
forward axis; its two motors are the right (index 0, at y = -l) and the left (index 1, at y = +l)
pair of a quadrotor. A step of ``dt`` (the authors' 100 Hz) is

    m <- m + min(1, dt / tau) (u - m)                     first-order motor lag, u = (a + 1) / 2
    F_i = (T/W) m g / 2 * f(m_i),   f(x) = (1 - q) x + q x^2   thrust curve, f(1) = 1
    v_y <- v_y - (F_0 + F_1) sin(phi) / m dt,  v_z <- v_z + ((F_0 + F_1) cos(phi) / m - g) dt
    omega <- omega + l (F_1 - F_0) / J dt                (semi-implicit Euler: velocities first)
    y, z, phi <- y, z, phi + dt * (v_y, v_z, omega)

``sample_drones`` follows the strategy of the authors' l2f ``sample_initial_parameters`` (RAPTOR's
1000 training drones): thrust-to-weight uniform, the size uniform (mass = size^3, so small and large
drones are equally common), the arm length from the size times a reciprocal-normal deviation, and
the inertia from torque-to-inertia = (T/W) / U[a, b] (their ``thrust_to_weight_by_torque_to_inertia``).
Motor lag and the thrust curve's curvature are drawn uniformly (ranges ours).

Everything is batched over drones (a leading dimension N) and deterministic given a torch.Generator.
Nothing here imports from labkit.lab, labkit.bases or labkit.nb.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

__all__ = ["GRAVITY", "DT", "STATE_DIM", "ACT_DIM", "OBS_DIM", "Drones", "sample_drones", "thrust", "step",
           "hover_command", "hover_state", "linearize", "dlqr", "LQRController", "initial_states", "observe",
           "Episodes", "fly", "step_cost"]

GRAVITY = 9.81
DT = 0.01            # the authors' 100 Hz
STATE_DIM = 8        # y, z, phi, v_y, v_z, omega, m_0, m_1
ACT_DIM = 2          # normalised motor commands in [-1, 1] (right, left)
OBS_DIM = 9          # y, z, cos phi, sin phi, v_y, v_z, omega, previous action (2)


@dataclass(frozen=True)
class Drones:
    """N drones' physical parameters, each a (N,) float tensor. ``thrust_to_weight`` = the total
    maximum thrust over m g; ``torque_to_inertia`` = l F_max / J with F_max one motor's maximum
    thrust (rad/s^2); ``motor_tau`` the motors' time constant (s); ``curve`` q, the thrust curve's
    quadratic share."""
    mass: torch.Tensor
    arm: torch.Tensor
    inertia: torch.Tensor
    thrust_to_weight: torch.Tensor
    motor_tau: torch.Tensor
    curve: torch.Tensor

    def __post_init__(self):
        shapes = {tuple(getattr(self, f.name).shape) for f in fields(self)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 1:
            raise ValueError(f"Drones: every parameter must be a (N,) tensor of one N; got shapes {sorted(shapes)}")
        for f in fields(self):
            value = getattr(self, f.name)
            if not bool(torch.isfinite(value).all()) or (f.name != "curve" and not bool((value > 0).all())):
                raise ValueError(f"Drones: {f.name} must be finite and > 0")
        if not bool(((self.curve >= 0) & (self.curve <= 1)).all()):
            raise ValueError("Drones: curve (the thrust curve's quadratic share) must lie in [0, 1]")
        if not bool((self.thrust_to_weight > 1).all()):
            raise ValueError("Drones: thrust_to_weight must be > 1 (a drone that cannot lift itself cannot hover)")

    def __len__(self) -> int:
        return self.mass.shape[0]

    @property
    def max_motor_thrust(self) -> torch.Tensor:
        """F_max of one motor (N)."""
        return self.thrust_to_weight * self.mass * GRAVITY / 2

    @property
    def torque_to_inertia(self) -> torch.Tensor:
        return self.arm * self.max_motor_thrust / self.inertia

    def index(self, idx) -> "Drones":
        return Drones(*(getattr(self, f.name)[idx] for f in fields(self)))

    def repeat(self, k: int) -> "Drones":
        """Each drone k times in a row (drone i at rows i*k .. i*k + k-1)."""
        return Drones(*(getattr(self, f.name).repeat_interleave(k) for f in fields(self)))

    def mean(self) -> "Drones":
        """One drone with the population's mean of every parameter (the nominal controller's model)."""
        return Drones(*(getattr(self, f.name).mean().reshape(1) for f in fields(self)))

    def table(self) -> dict[str, torch.Tensor]:
        """The parameters a controller's gains depend on (N, each)."""
        return {"thrust_to_weight": self.thrust_to_weight, "torque_to_inertia": self.torque_to_inertia,
                "motor_tau": self.motor_tau, "curve": self.curve, "mass": self.mass, "arm": self.arm}


def _reciprocal_factor(x: torch.Tensor) -> torch.Tensor:
    # the authors' _sample_domain_randomization_factor: a negative draw scales by 1/(1 - x), a positive by 1 + x
    return torch.where(x < 0, 1 / (1 - x), 1 + x)


def sample_drones(n: int, generator: torch.Generator | None = None, *, thrust_to_weight=(1.5, 5.0), mass=(0.02, 5.0),
                  ttw_by_tti=(0.001, 0.1), size_deviation=0.1, motor_tau=(0.02, 0.08), curve=(0.0, 1.0),
                  nominal_mass=1.0, nominal_arm=0.2) -> Drones:
    """n drones drawn as the authors' l2f domain randomisation (see the module docstring).
    Ranges are (low, high) pairs; the defaults are the authors' where they have one."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"sample_drones: n must be an integer >= 1; got {n!r}")
    for name, (lo, hi) in (("thrust_to_weight", thrust_to_weight), ("mass", mass), ("ttw_by_tti", ttw_by_tti),
                           ("motor_tau", motor_tau), ("curve", curve)):
        if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
            raise ValueError(f"sample_drones: {name} must be a (low, high) pair with low <= high; got {(lo, hi)!r}")
    if thrust_to_weight[0] <= 1:
        raise ValueError(f"sample_drones: thrust_to_weight must stay above 1; got {thrust_to_weight!r}")
    if mass[0] <= 0 or ttw_by_tti[0] <= 0 or motor_tau[0] <= 0 or not 0 <= curve[0] <= curve[1] <= 1:
        raise ValueError("sample_drones: mass, ttw_by_tti and motor_tau must be > 0 and curve within [0, 1]")

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)

    ttw = uniform(*thrust_to_weight)
    size = uniform(mass[0] ** (1 / 3), mass[1] ** (1 / 3))                  # uniform in size, mass = size^3
    m = (size ** 3).clamp(mass[0], mass[1])
    deviation = torch.randn(n, generator=generator, dtype=torch.float64).mul(size_deviation).clamp(-size_deviation, size_deviation) \
        if size_deviation > 0 else torch.zeros(n, dtype=torch.float64)
    arm = nominal_arm * (m / nominal_mass) ** (1 / 3) * _reciprocal_factor(deviation)
    tti = ttw / uniform(*ttw_by_tti)                                           # torque to inertia (rad/s^2)
    inertia = arm * (ttw * m * GRAVITY / 2) / tti
    return Drones(m.float(), arm.float(), inertia.float(), ttw.float(), uniform(*motor_tau).float(), uniform(*curve).float())


def thrust(drones: Drones, motors: torch.Tensor) -> torch.Tensor:
    """Each motor's thrust (N, 2) in newtons from its state in [0, 1]: F_max f(m), f(x) = (1-q) x + q x^2."""
    q = drones.curve[:, None]
    return drones.max_motor_thrust[:, None] * ((1 - q) * motors + q * motors * motors)


def step(drones: Drones, state: torch.Tensor, action: torch.Tensor, dt: float = DT) -> torch.Tensor:
    """One step of every drone: state (N, 8), action (N, 2) in [-1, 1] (clipped) -> next state (N, 8)."""
    if state.shape[-1] != STATE_DIM or action.shape[-1] != ACT_DIM or state.shape[:-1] != action.shape[:-1]:
        raise ValueError(f"step: state must be (N, {STATE_DIM}) and action (N, {ACT_DIM}); got {tuple(state.shape)}, {tuple(action.shape)}")
    y, z, phi, vy, vz, om = state[:, :6].unbind(-1)
    u = (action.clamp(-1, 1) + 1) / 2
    alpha = (dt / drones.motor_tau).clamp(max=1.0)[:, None]
    motors = state[:, 6:] + alpha * (u - state[:, 6:])
    force = thrust(drones, motors)
    total, diff = force.sum(-1), force[:, 1] - force[:, 0]
    vy = vy - total * torch.sin(phi) / drones.mass * dt
    vz = vz + (total * torch.cos(phi) / drones.mass - GRAVITY) * dt
    om = om + drones.arm * diff / drones.inertia * dt
    return torch.stack([y + dt * vy, z + dt * vz, phi + dt * om, vy, vz, om, motors[:, 0], motors[:, 1]], dim=-1)


def hover_command(drones: Drones) -> torch.Tensor:
    """The motor state u_h in [0, 1] at which the two motors carry the weight: f(u_h) = 1 / (T/W) (N)."""
    target, q = 1 / drones.thrust_to_weight, drones.curve
    linear = target.clone()
    disc = (1 - q) ** 2 + 4 * q * target
    quad = (-(1 - q) + torch.sqrt(disc)) / (2 * q.clamp(min=1e-12))
    return torch.where(q > 1e-6, quad, linear)


def hover_state(drones: Drones) -> torch.Tensor:
    """The equilibrium (N, 8): at the origin, level, still, motors at the hover command."""
    x = torch.zeros(len(drones), STATE_DIM)
    x[:, 6:] = hover_command(drones)[:, None]
    return x


def linearize(drones: Drones, dt: float = DT) -> tuple[torch.Tensor, torch.Tensor]:
    """A (N, 8, 8) and B (N, 8, 2): the Jacobians of ``step`` at hover (the action in [-1, 1] units)."""
    x0, a0 = hover_state(drones), (2 * hover_command(drones) - 1)[:, None].expand(-1, 2).contiguous()
    A = torch.autograd.functional.jacobian(lambda x: step(drones, x, a0, dt).sum(0), x0).permute(1, 0, 2)
    B = torch.autograd.functional.jacobian(lambda a: step(drones, x0, a, dt).sum(0), a0).permute(1, 0, 2)
    return A, B


def dlqr(A: torch.Tensor, B: torch.Tensor, Q: torch.Tensor, R: torch.Tensor, iters: int = 20000,
         tol: float = 1e-9) -> torch.Tensor:
    """Discrete LQR gains K (N, 2, 8) for every drone, u = -K x, by Riccati iteration in float64.
    Raises if it has not converged (an uncontrollable or badly scaled system)."""
    A, B, Q, R = (t.double() for t in (A, B, Q, R))
    P = Q.expand(A.shape[0], -1, -1).clone()
    At, Bt = A.transpose(1, 2), B.transpose(1, 2)
    for _ in range(iters):
        K = torch.linalg.solve(R + Bt @ P @ B, Bt @ P @ A)
        P_next = Q + At @ P @ (A - B @ K)
        P_next = (P_next + P_next.transpose(1, 2)) / 2
        if float(((P_next - P).abs().amax(dim=(1, 2)) / P_next.abs().amax(dim=(1, 2)).clamp(min=1)).max()) < tol:
            P = P_next
            break
        P = P_next
    else:
        raise RuntimeError(f"dlqr: the Riccati iteration did not converge in {iters} iterations")
    return torch.linalg.solve(R + Bt @ P @ B, Bt @ P @ A).float()


class LQRController:
    """a = a_h - K (x - x_h), clipped to [-1, 1]: the LQR of each drone's own linearisation.
    Given the true drones it is RAPTOR's per-drone teacher (here a model-based one); given
    ``Drones.mean()`` repeated it is the nominal controller tuned to the mean drone."""

    # the weights of the cost the authors' reward squares: position 1, orientation 0.1, velocities small
    Q_DIAG = (1.0, 1.0, 0.1, 0.05, 0.05, 0.005, 0.0, 0.0)

    def __init__(self, drones: Drones, r: float = 1.0, q_diag=None, dt: float = DT):
        self.drones = drones
        A, B = linearize(drones, dt)
        Q = torch.diag(torch.tensor(q_diag or self.Q_DIAG, dtype=torch.float64))
        self.K = dlqr(A, B, Q, r * torch.eye(ACT_DIM, dtype=torch.float64))
        self.x_h = hover_state(drones)
        self.a_h = (2 * hover_command(drones) - 1)[:, None].expand(-1, 2)

    def __call__(self, state: torch.Tensor) -> torch.Tensor:
        dx = state - self.x_h
        return (self.a_h - (self.K @ dx[:, :, None]).squeeze(-1)).clamp(-1, 1)


def initial_states(drones: Drones, episodes: int, generator: torch.Generator | None = None, position=0.5, angle=0.3,
                   velocity=0.5, rate=1.0) -> torch.Tensor:
    """(N * episodes, 8) start states, rows grouped by drone as ``Drones.repeat``: uniform offsets from
    the hover point (metres, rad, m/s, rad/s), motors at the drone's hover command."""
    n = len(drones) * episodes
    scale = torch.tensor([position, position, angle, velocity, velocity, rate])
    x = torch.zeros(n, STATE_DIM)
    x[:, :6] = (2 * torch.rand(n, 6, generator=generator) - 1) * scale
    x[:, 6:] = hover_command(drones).repeat_interleave(episodes)[:, None]
    return x


def observe(state: torch.Tensor, prev_action: torch.Tensor) -> torch.Tensor:
    """What a student sees (N, 9): position, rotation (cos, sin), velocities and its previous action
    (the authors' observation: position, rotation matrix, velocities, action history of 1). No motor state."""
    phi = state[:, 2]
    return torch.cat([state[:, :2], torch.cos(phi)[:, None], torch.sin(phi)[:, None], state[:, 3:6], prev_action], dim=-1)


def step_cost(state: torch.Tensor, action: torch.Tensor, prev_action: torch.Tensor) -> torch.Tensor:
    """The authors' reward terms as a cost (N): |p|^2 + 0.1 (1 - cos phi) + |a - a_prev|^2 (d_action 1)."""
    return state[:, :2].pow(2).sum(-1) + 0.1 * (1 - torch.cos(state[:, 2])) + (action - prev_action).pow(2).sum(-1)


@dataclass
class Episodes:
    """A batch of flown episodes: states (N, T+1, 8), observations (N, T, 9) seen before each action,
    actions (N, T, 2), alive (N, T) 1 while not terminated, costs (N,) and success (N,) bools."""
    states: torch.Tensor
    obs: torch.Tensor
    actions: torch.Tensor
    alive: torch.Tensor
    cost: torch.Tensor
    success: torch.Tensor
    labels: torch.Tensor | None = None


def fly(drones: Drones, start: torch.Tensor, policy, steps: int, label=None, bound: float = 2.0,
        crash_cost: float | None = None, settle: int = 100, tolerance: float = 0.1) -> Episodes:
    """Fly every row of ``start`` (drone i's rows as in ``drones``) for ``steps`` steps under
    ``policy(obs, state, t) -> action`` (N, 2) (a student reads obs; a controller the state).
    ``label(state) -> action`` (the teacher) labels every visited state when given (DAgger).

    A drone terminates when |y| or |z| exceeds ``bound`` or |phi| exceeds pi/2 (then frozen); a
    terminated step costs ``crash_cost`` (default bound^2 + 1, above any live step's position cost).
    cost = the mean step cost; success = never terminated and the mean distance to the target
    over the last ``settle`` steps is below ``tolerance`` metres."""
    if start.shape != (len(drones), STATE_DIM):
        raise ValueError(f"fly: start must be ({len(drones)}, {STATE_DIM}), one row per drone row; got {tuple(start.shape)}")
    if steps < 1 or settle < 1 or settle > steps:
        raise ValueError(f"fly: need steps >= 1 and 1 <= settle <= steps; got steps={steps}, settle={settle}")
    crash_cost = bound ** 2 + 1 if crash_cost is None else crash_cost
    n = len(drones)
    state, prev = start.clone(), (2 * start[:, 6:] - 1).clone()     # the previous action: the motors' command
    alive = torch.ones(n, dtype=torch.bool)
    states, obs_all, actions, alives, labels, costs = [state], [], [], [], [], []
    for t in range(steps):
        obs = observe(state, prev)
        action = policy(obs, state, t).clamp(-1, 1)
        if label is not None:
            labels.append(label(state))
        nxt = step(drones, state, action)
        cost = torch.where(alive, step_cost(nxt, action, prev), torch.full((n,), crash_cost))
        alives.append(alive.clone())
        obs_all.append(obs)
        actions.append(action)
        costs.append(cost)
        state = torch.where(alive[:, None], nxt, state)
        prev = torch.where(alive[:, None], action, prev)
        broke = (state[:, :2].abs() > bound).any(-1) | (state[:, 2].abs() > math.pi / 2) | ~torch.isfinite(state).all(-1)
        alive = alive & ~broke
        states.append(state)
    S = torch.stack(states, 1)
    alive_t = torch.stack(alives, 1)
    distance = S[:, -settle:, :2].norm(dim=-1).mean(-1)
    success = alive & (distance < tolerance)
    return Episodes(S, torch.stack(obs_all, 1), torch.stack(actions, 1), alive_t.float(), torch.stack(costs, 1).mean(1),
                    success, torch.stack(labels, 1) if labels else None)
