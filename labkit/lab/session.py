"""Scales, parameter validation, seeding, device choice and the run directory.

Every notebook's setup cell calls :func:`setup` right after its ``parameters`` cell::

    import labkit
    run = labkit.setup(scale=scale, seed=seed, device=device)
    steps = run.pick(steps, smoke=3, workshop=200, gpu=2000, min=1)

A bad value fails there with a one-line :class:`ParameterError` that names the parameter
and says what is accepted, e.g. ``scale must be one of smoke, workshop, gpu; got 'big'``.

The run directory: ``labkit run`` (and :mod:`labkit.lab.runs`) sets ``LABKIT_RUN_DIR`` for the
kernel; otherwise each call makes a fresh directory under ``$LABKIT_RUNS_ROOT`` (or
``<repo>/runs/interactive``) named ``<timestamp>-<pid>-<random>`` so that concurrent runs
never clash. It receives ``metrics.jsonl`` (:meth:`Run.log`), ``results.json``
(:func:`labkit.record`, in labkit/lab/record.py) and ``setup.json``.

Checkpoints (:meth:`Run.checkpoint`, :meth:`Run.resume`): a training loop that saves its state
every ``run.checkpoint_every`` steps (on at gpu scale, every 100 steps; off at smoke and workshop
scale, whose numbers never move; ``$LABKIT_CHECKPOINT_EVERY`` overrides) into
``<run dir>/checkpoints/`` can be continued by ``labkit run NOTEBOOK --resume RUN_DIR``::

    start = run.resume(model=model, optimizer=opt)          # 0 on a fresh run
    for step in range(start, steps):
        ...                                                 # one training step
        run.checkpoint(step, model=model, optimizer=opt)    # every run.checkpoint_every steps
"""
from __future__ import annotations

import atexit
import builtins
import contextlib
import datetime as _dt
import json
import math
import numbers
import os
import platform
import random
import secrets
import sys
import time
from pathlib import Path

from labkit.core.checks import (SCALES, ParameterError, _fmt, check_bool, check_choice, check_float,
                                check_int, check_seed)
from labkit.core.devices import resolve_device

__all__ = ["Run", "setup", "current_run", "runs_root", "new_run_dir", "jsonable"]


# ---------------------------------------------------------------------------- run dirs

def _repo_root() -> Path | None:
    try:
        from labkit.core.paths import REPO_ROOT
    except Exception:  # pragma: no cover - paths is the lead's module
        REPO_ROOT = Path(__file__).resolve().parents[2]
    return REPO_ROOT if (Path(REPO_ROOT) / "pyproject.toml").exists() else None


def runs_root() -> Path:
    """Where run directories go: ``$LABKIT_RUNS_ROOT``, else ``<repo>/runs`` in a source
    checkout, else ``./runs``."""
    env = os.environ.get("LABKIT_RUNS_ROOT")
    if env:
        return Path(env).expanduser()
    root = _repo_root()
    return (root / "runs") if root is not None else Path.cwd() / "runs"


def new_run_dir(parent: Path, label: str = "") -> Path:
    """Create and return a fresh directory ``parent/<timestamp>[-label]-<pid>-<random>``."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    mid = f"-{label}" if label else ""
    while True:
        path = parent / f"{stamp}{mid}-{os.getpid()}-{secrets.token_hex(3)}"
        try:
            path.mkdir()
            return path
        except FileExistsError:  # pragma: no cover - 24 random bits
            continue


# ---------------------------------------------------------------------------- JSON

def jsonable(value, *, nonfinite="null"):
    """Convert numpy/torch scalars and arrays, tuples, Paths to plain JSON values.

    Non-finite floats become ``None`` (``nonfinite="null"``) or the strings ``"NaN"``,
    ``"Infinity"``, ``"-Infinity"`` (``nonfinite="string"``). Raises TypeError otherwise.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        f = float(value)
        if math.isfinite(f):
            return f
        if nonfinite == "string":
            return "NaN" if math.isnan(f) else ("Infinity" if f > 0 else "-Infinity")
        return None
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                if isinstance(k, (int, float, bool)):
                    k = str(k)
                else:
                    raise TypeError(f"dict keys must be strings; got {type(k).__name__}")
            out[k] = jsonable(v, nonfinite=nonfinite)
        return out
    if isinstance(value, (list, tuple)):
        return [jsonable(v, nonfinite=nonfinite) for v in value]
    if isinstance(value, Path):
        return str(value)
    # numpy / torch: scalars and arrays (tolist covers both; detach for tensors)
    if hasattr(value, "detach"):
        value = value.detach().cpu()
    if hasattr(value, "tolist") and (hasattr(value, "dtype") or hasattr(value, "shape")):
        return jsonable(value.tolist(), nonfinite=nonfinite)
    if hasattr(value, "item"):
        return jsonable(value.item(), nonfinite=nonfinite)
    raise TypeError(f"cannot store a {type(value).__name__} as JSON")


# ---------------------------------------------------------------------------- the run

_CURRENT = None


def current_run():
    """The Run made by the last :func:`setup` in this process, or None."""
    return _CURRENT


def _caller_arg_name(frame) -> str | None:
    """Best effort: the source text of the first argument of the call being executed in
    ``frame`` (so ``run.pick(steps, ...)`` knows it is picking ``steps``)."""
    import ast
    import linecache

    try:
        lines = linecache.getlines(frame.f_code.co_filename, frame.f_globals)
        if not lines:
            return None
        pos = None
        if hasattr(frame.f_code, "co_positions"):
            positions = list(frame.f_code.co_positions())
            idx = frame.f_lasti // 2
            if 0 <= idx < len(positions):
                pos = positions[idx]
        if pos and None not in pos:
            l0, l1, c0, c1 = pos
            seg = lines[l0 - 1:l1]
            if len(seg) == 1:
                text = seg[0][c0:c1]
            else:
                text = seg[0][c0:] + "".join(seg[1:-1]) + seg[-1][:c1]
        else:
            text = lines[frame.f_lineno - 1].strip()
            text = text.split("=", 1)[1] if "=" in text.split("(", 1)[0] else text
        tree = ast.parse(text.strip(), mode="eval")
        call = tree.body
        if isinstance(call, ast.Call) and call.args:
            arg = call.args[0]
            if isinstance(arg, ast.Name):
                return arg.id
            if isinstance(arg, ast.Attribute):
                return arg.attr
    except Exception:
        return None
    return None


class Run:
    """What :func:`setup` returns: the validated scale, seed and device, and the run directory."""

    def __init__(self, scale: str, seed: int, device, dir: Path):
        self.scale = scale
        self.seed = seed
        self.device = device
        self.dir = Path(dir)
        self.results: dict = {}
        self.timings: dict = {}   # labkit.record_time: wall times, kept out of results
        self._t0 = time.time()
        self._metrics = None
        self._last_sync = 0.0
        self.checkpoint_every = _checkpoint_every(scale)

    def __repr__(self):
        return f"Run(scale={self.scale!r}, seed={self.seed}, device={str(self.device)!r}, dir={str(self.dir)!r})"

    # -- scales
    def pick(self, value, *, smoke, workshop, gpu, min=None, max=None, gt=None, choices=None,
             name=None):
        """``value`` if it is not None, else this scale's default; validated.

        The type comes from the defaults (int defaults accept ints, float defaults any finite
        number, str defaults any string); ``min``/``max``/``gt``/``choices`` add bounds. The
        parameter's name in messages is taken from the call (``run.pick(steps, ...)`` ->
        ``steps``) or given as ``name=``.
        """
        defaults = {"smoke": smoke, "workshop": workshop, "gpu": gpu}
        if value is None:
            return defaults[self.scale]
        if name is None:
            name = _caller_arg_name(sys._getframe(1)) or "value"
        kinds = {type(v) for v in defaults.values() if v is not None}
        if choices is not None:
            return check_choice(name, value, choices)
        if kinds and kinds <= {int}:
            if gt is not None:
                lo = int(math.floor(gt)) + 1
                min = lo if min is None else builtins.max(min, lo)
            return check_int(name, value, min=min, max=max)
        if kinds and kinds <= {int, float}:
            return check_float(name, value, min=min, max=max, gt=gt)
        if kinds == {bool}:
            return check_bool(name, value)
        if kinds == {str} and not isinstance(value, str):
            raise ParameterError(f"{name} must be a string; got {_fmt(value)}")
        return value

    # -- metrics
    def log(self, step, metrics: dict | None = None, **kw):
        """Append ``{"step": step, "time": seconds, **metrics}`` as a JSON line to
        ``<dir>/metrics.jsonl``. Flushed every call (an interrupted run keeps what it measured)
        and fsynced at most every few seconds. Accepts torch/numpy scalars; NaN/inf -> null."""
        row = {"step": jsonable(step), "time": round(time.time() - self._t0, 3)}
        values = dict(metrics or {}, **kw)
        for k, v in values.items():
            try:
                row[str(k)] = jsonable(v)
            except TypeError as e:
                raise TypeError(f"run.log: metric {k!r}: {e}") from None
        if self._metrics is None or self._metrics.closed:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._metrics = open(self.dir / "metrics.jsonl", "a", encoding="utf-8")
        self._metrics.write(json.dumps(row, allow_nan=False) + "\n")
        self._metrics.flush()
        now = time.monotonic()
        if now - self._last_sync > 5.0:
            self._last_sync = now
            try:
                os.fsync(self._metrics.fileno())
            except OSError:  # pragma: no cover
                pass

    def close(self):
        """Flush and close ``metrics.jsonl`` (also done at interpreter exit)."""
        if self._metrics is not None and not self._metrics.closed:
            self._metrics.flush()
            try:
                os.fsync(self._metrics.fileno())
            except OSError:  # pragma: no cover
                pass
            self._metrics.close()

    def metrics(self, before: int | None = None) -> list[dict]:
        """The rows logged so far (read back from ``metrics.jsonl``). With ``before=start``
        (what :meth:`resume` returned): the rows a resumed loop already logged, one per step
        ``< start`` (the newest, since a resumed run's file holds the rows of every execution),
        in step order; ``[]`` on a fresh run."""
        path = self.dir / "metrics.jsonl"
        if self._metrics is not None and not self._metrics.closed:
            self._metrics.flush()
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] \
            if path.exists() else []
        if before is None:
            return rows
        before = check_int("before", before, min=0)
        newest = {r["step"]: r for r in rows if isinstance(r.get("step"), int) and r["step"] < before}
        return [newest[s] for s in sorted(newest)]

    # -- checkpoints
    def checkpoint_dir(self, tag: str | None = None) -> Path:
        """``<run dir>/checkpoints`` (``/<tag>`` for one of several training loops)."""
        d = self.dir / "checkpoints"
        return d / _check_tag(tag) if tag else d

    def checkpoint(self, step, *, every=None, keep=2, tag=None, **state) -> Path | None:
        """After training step ``step`` (0-based), every ``every`` steps (default
        ``self.checkpoint_every``: 100 at gpu scale, 0 = off at smoke and workshop), save
        ``state`` (models, optimizers, schedulers: anything with ``state_dict()``; also
        ``torch.Generator``, ``random.Random`` and numpy ``Generator`` objects), the torch,
        python and numpy global RNG states and ``step`` to
        ``<run dir>/checkpoints/[<tag>/]step-<step>.pt``, atomically, keeping the newest
        ``keep`` files. Returns the file written, or None when this step saves nothing.
        Saving draws no random number: a run's numbers are the same with or without it."""
        every = self.checkpoint_every if every is None else every
        step = check_int("step", step, min=0)
        every = check_int("every", every, min=0)
        keep = check_int("keep", keep, min=1)
        if not every or (step + 1) % every:
            return None
        if not state:
            raise ValueError("run.checkpoint: give the state to save, e.g. model=model, optimizer=opt")
        import torch

        doc = {"labkit_checkpoint": 1, "step": step, "rng": _rng_state(),
               "state": {name: _state_of(name, obj) for name, obj in state.items()}}
        d = self.checkpoint_dir(tag)
        d.mkdir(parents=True, exist_ok=True)
        path = d / f"step-{step}.pt"
        tmp = d / f".{path.name}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                torch.save(doc, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        for old in _checkpoints(d)[:-keep]:
            with contextlib.suppress(FileNotFoundError):
                old.unlink()
        return path

    def resume(self, *, tag=None, **state) -> int:
        """Restore the newest checkpoint of ``<run dir>/checkpoints/[<tag>/]`` into the
        objects of ``state`` (the same names as given to :meth:`checkpoint`) and the global
        RNG states, and return the step to continue from (the saved step + 1); 0 when there is
        no checkpoint (a fresh run), leaving everything as it is."""
        files = _checkpoints(self.checkpoint_dir(tag))
        if not files:
            return 0
        path = files[-1]
        doc = _load_checkpoint(path)
        saved = doc.get("state") or {}
        missing = [name for name in state if name not in saved]
        if missing:
            raise ValueError(f"run.resume: {path} has no {', '.join(missing)}; it holds "
                             f"{', '.join(saved) or 'nothing'}")
        for name, obj in state.items():
            _restore(name, obj, saved[name])
        _set_rng_state(doc.get("rng") or {})
        step = int(doc["step"]) + 1
        print(f"resumed from {path.relative_to(self.dir)}: continuing at step {step}")
        return step

    # -- precision
    def autocast(self):
        """bf16 autocast on CUDA; a no-op context elsewhere."""
        if getattr(self.device, "type", None) == "cuda":
            import torch

            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


# ---------------------------------------------------------------------------- checkpoints

CHECKPOINT_EVERY = {"smoke": 0, "workshop": 0, "gpu": 100}


def _checkpoint_every(scale: str) -> int:
    env = os.environ.get("LABKIT_CHECKPOINT_EVERY", "").strip()
    if not env:
        return CHECKPOINT_EVERY.get(scale, 0)
    try:
        return check_int("LABKIT_CHECKPOINT_EVERY", int(env), min=0)
    except ValueError:
        raise ParameterError(f"LABKIT_CHECKPOINT_EVERY must be an integer >= 0 (0: off); "
                             f"got {env!r}") from None


def _check_tag(tag) -> str:
    if not isinstance(tag, str) or not tag or not all(c.isalnum() or c in "-_." for c in tag) \
            or tag.startswith("."):
        raise ValueError(f"checkpoint tag must be letters, digits, '-', '_' or '.'; got {tag!r}")
    return tag


def _checkpoints(d: Path) -> list:
    """``step-N.pt`` files of ``d``, oldest step first."""
    found = []
    for p in d.glob("step-*.pt") if d.is_dir() else ():
        n = p.name[len("step-"):-len(".pt")]
        if n.isdigit():
            found.append((int(n), p))
    return [p for _, p in sorted(found)]


def _rng_state() -> dict:
    import numpy as np
    import torch

    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": (kind, [int(k) for k in keys], int(pos), int(has_gauss), float(gauss))}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    import numpy as np
    import torch

    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _state_of(name: str, obj) -> dict:
    """What :meth:`Run.checkpoint` saves of one object, with how to put it back."""
    import torch

    if isinstance(obj, torch.Generator):
        return {"kind": "torch.Generator", "value": obj.get_state()}
    if isinstance(obj, random.Random):
        return {"kind": "random.Random", "value": obj.getstate()}
    if hasattr(obj, "bit_generator"):   # numpy.random.Generator: its state as JSON (big ints)
        return {"kind": "numpy.Generator", "value": json.dumps(obj.bit_generator.state)}
    if hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict"):
        return {"kind": "state_dict", "value": obj.state_dict()}
    raise TypeError(f"run.checkpoint: cannot save {name}={type(obj).__name__}; accepted: objects "
                    f"with state_dict()/load_state_dict() (models, optimizers, schedulers), "
                    f"torch.Generator, random.Random, numpy Generator")


def _restore(name: str, obj, saved: dict) -> None:
    kind, value = saved.get("kind"), saved.get("value")
    if kind == "torch.Generator":
        obj.set_state(value)
    elif kind == "random.Random":
        version, internal, gauss = value
        obj.setstate((version, tuple(internal), gauss))
    elif kind == "numpy.Generator":
        obj.bit_generator.state = json.loads(value)
    elif kind == "state_dict":
        obj.load_state_dict(value)
    else:
        raise ValueError(f"run.resume: {name} was saved as {kind!r}, which labkit cannot restore")


def _load_checkpoint(path: Path) -> dict:
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        # a state_dict holding objects beyond tensors and plain values; the file is the run's own,
        # written by Run.checkpoint
        return torch.load(path, map_location="cpu", weights_only=False)


def _seed_everything(seed: int):
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover
        pass
    import torch

    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _versions(*packages) -> dict:
    """Installed versions of ``packages`` (None for one that is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in packages:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def setup(scale="workshop", seed=0, device="auto") -> Run:
    """Validate the standard parameters, seed python/numpy/torch, resolve the device and open
    the run directory. Returns a :class:`Run`."""
    global _CURRENT
    check_choice("scale", scale, SCALES)
    seed = check_seed(seed)
    dev = resolve_device(device)
    _seed_everything(seed)

    env_dir = os.environ.get("LABKIT_RUN_DIR")
    if env_dir:
        run_dir = Path(env_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
    else:
        try:
            run_dir = new_run_dir(runs_root() / "interactive")
        except OSError:
            import tempfile

            run_dir = new_run_dir(Path(tempfile.gettempdir()) / "labkit-runs")
    if _CURRENT is not None:
        _CURRENT.close()
    run = Run(scale, seed, dev, run_dir)
    try:
        (run_dir / "metrics.jsonl").touch()  # every run directory has one, possibly empty
        import torch

        info = {"scale": scale, "seed": seed, "device": str(dev), "requested_device": str(device),
                "torch": torch.__version__, "python": platform.python_version(),
                # numbers move with these too (stop 5: 04's figures changed between transformers versions)
                **_versions("transformers", "tokenizers", "numpy", "peft"),
                "started": _dt.datetime.now().isoformat(timespec="seconds")}
        (run_dir / "setup.json").write_text(json.dumps(info, indent=1) + "\n")
    except OSError:  # pragma: no cover
        pass
    _CURRENT = run
    return run


def _close_current():  # pragma: no cover - interpreter exit
    if _CURRENT is not None:
        _CURRENT.close()


atexit.register(_close_current)
