"""Device choice: ``auto`` picks CUDA, then MPS, then the CPU."""
from __future__ import annotations

from labkit.core.checks import ParameterError, _fmt


def available_devices() -> list[str]:
    """Device strings that work here, in the order ``auto`` prefers them (CPU last)."""
    import torch

    out = []
    if torch.cuda.is_available():
        out.append("cuda")
        out += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append("mps")
    out.append("cpu")
    return out


def resolve_device(device="auto"):
    """``"auto"`` -> CUDA, then MPS, then CPU; otherwise check that ``device`` exists here.

    Returns a :class:`torch.device`; raises a one-line ParameterError listing what is available.
    """
    import torch

    avail = available_devices()
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return torch.device(avail[0])
    accepted = ", ".join(["auto", "cpu"] + [d for d in avail if d != "cpu"])
    if not isinstance(device, str):
        raise ParameterError(f"device must be a string; accepted: {accepted}; got {_fmt(device)}")
    if device not in avail:
        raise ParameterError(f"device {device!r} is not available here; accepted: {accepted}")
    return torch.device(device)
