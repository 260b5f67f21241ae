"""37 · Foundation policy: one recurrent student flies drones it has never seen: the mechanism that notebooks/37_foundation_policy.ipynb defines.

Generated from the notebook's cells tagged `export` by `python -m labkit.lab.notebooks --export`:
edit the notebook, not this file.
"""
from __future__ import annotations
import torch
from torch import nn
from labkit.core.control.quadrotor import ACT_DIM, OBS_DIM, Drones, fly, initial_states

__all__ = ["Student", "act_with", "imitation_loss", "distill", "planar_to_raptor", "raptor_to_planar"]


class Student(nn.Module):
    """RAPTOR's student: Dense(hidden, ReLU) -> GRU(hidden) -> Dense(2) (the authors' width 16). With
    ``recurrent=False`` the GRU becomes a Dense(hidden, ReLU) layer: the MLP student, without memory."""

    def __init__(self, hidden: int = 16, recurrent: bool = True, obs_dim: int = OBS_DIM, act_dim: int = ACT_DIM):
        super().__init__()
        self.recurrent = recurrent
        self.inp = nn.Sequential(nn.Linear(obs_dim, hidden), nn.ReLU())
        self.core = nn.GRU(hidden, hidden, batch_first=True) if recurrent else nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU())
        self.out = nn.Linear(hidden, act_dim)

    def forward(self, obs: torch.Tensor, h: torch.Tensor | None = None):
        """obs (N, T, obs_dim) -> actions (N, T, act_dim) and the last hidden state (None without memory)."""
        if obs.dim() != 3:
            raise ValueError(f"Student: obs must be (N, T, obs_dim); got {tuple(obs.shape)}")
        x = self.inp(obs)
        if self.recurrent:
            # h_t = GRU(h_{t-1}, ReLU(W o_t)): the memory that can identify the drone from o_{0:t}
            x, h = self.core(x, h)
        else:
            x, h = self.core(x), None
        # a_t = W_o h_t
        return self.out(x), h


def act_with(student: Student, cut: bool = False):
    """A ``policy(obs, state, t)`` for ``fly``: the student acts on its observation only and carries its
    hidden state from step to step (fresh at t = 0); ``cut=True`` resets it at every step, so the
    trained GRU acts on o_t alone (the memory-cut control)."""
    memory = {}

    @torch.no_grad()
    def policy(obs, state, t):
        h = None if (t == 0 or cut) else memory["h"]
        action, memory["h"] = student(obs[:, None, :], h)
        return action[:, 0]
    return policy


def imitation_loss(actions: torch.Tensor, labels: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """sum_t |pi(o_{0:t}) - a*_t|^2 averaged over the live steps: actions, labels (N, T, A), alive (N, T) in {0, 1}."""
    if actions.shape != labels.shape or actions.dim() != 3 or alive.shape != actions.shape[:2]:
        raise ValueError(f"imitation_loss: actions and labels must be (N, T, A) and alive (N, T); got "
                         f"{tuple(actions.shape)}, {tuple(labels.shape)}, {tuple(alive.shape)}")
    # |pi(o_{0:t}) - a*_i(x_t)|^2, summed over the motors
    squared = (actions - labels).pow(2).sum(-1)
    return (squared * alive).sum() / alive.sum().clamp(min=1)


def distill(student: Student, drones: Drones, teacher, *, epochs: int, teacher_forcing: int, episodes: int, steps: int,
            updates: int, batch: int, lr: float, generator: torch.Generator, settle: int = 100, on_epoch=None) -> list[dict]:
    """Meta-imitation (RAPTOR's post-training). ``teacher(state) -> action`` labels a state of row r with
    the teacher of row r's drone (rows as ``drones.repeat(episodes)``). Every epoch flies ``episodes``
    episodes of every drone, driven by the teachers for the first ``teacher_forcing`` epochs and by the
    student afterwards (on-policy, DAgger), labels every visited state, and replaces the last epoch's data
    (the authors' ON_POLICY); then ``updates`` Adam steps on ``batch`` whole episodes each."""
    if min(epochs, episodes, steps, updates, batch) < 1 or not 0 <= teacher_forcing <= epochs:
        raise ValueError("distill: epochs, episodes, steps, updates, batch must be >= 1 and 0 <= teacher_forcing <= epochs")
    fleet = drones.repeat(episodes)
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        start = initial_states(drones, episodes, generator)
        by_teacher = epoch < teacher_forcing
        driver = (lambda obs, state, t: teacher(state)) if by_teacher else act_with(student)
        # tau ~ pi_drive on every training drone; every visited x_t labelled a*_i(x_t)
        data = fly(fleet, start, driver, steps, label=teacher, settle=min(settle, steps))
        losses = []
        for _ in range(updates):
            rows = torch.randint(len(fleet), (batch,), generator=generator)
            predicted, _ = student(data.obs[rows])
            loss = imitation_loss(predicted, data.labels[rows], data.alive[rows])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(student.parameters(), 1.0)
            optimizer.step()
            losses.append(float(loss.detach()))
        record = {"epoch": epoch, "loss": sum(losses) / len(losses), "driver": "teacher" if by_teacher else "student",
                  "cost": float(data.cost.mean()), "success": float(data.success.float().mean()),
                  "episodes": len(fleet), "updates": updates * batch}
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    return history


def planar_to_raptor(state: torch.Tensor, prev_action: torch.Tensor) -> torch.Tensor:
    """The published RAPTOR policy's 22-dim observation for a planar drone in the y-z plane of FLU:
    position (0, y, z), the rotation matrix of a roll phi about x (row-major), linear velocity (0, v_y, v_z),
    body angular velocity (omega, 0, 0), and the previous action of the four motors [front-right,
    back-right, back-left, front-left] = [right, right, left, left]."""
    n = state.shape[0]
    zero, one = torch.zeros(n), torch.ones(n)
    c, s = torch.cos(state[:, 2]), torch.sin(state[:, 2])
    rotation = torch.stack([one, zero, zero, zero, c, -s, zero, s, c], dim=-1)
    right, left = prev_action[:, 0], prev_action[:, 1]
    return torch.cat([torch.stack([zero, state[:, 0], state[:, 1]], -1), rotation,
                      torch.stack([zero, state[:, 3], state[:, 4]], -1), torch.stack([state[:, 5], zero, zero], -1),
                      torch.stack([right, right, left, left], -1)], dim=-1)


def raptor_to_planar(action: torch.Tensor) -> torch.Tensor:
    """RAPTOR's four motor commands [FR, BR, BL, FL] in [-1, 1] -> the planar (right, left) pair: each side's mean."""
    return torch.stack([(action[:, 0] + action[:, 1]) / 2, (action[:, 2] + action[:, 3]) / 2], dim=-1)
