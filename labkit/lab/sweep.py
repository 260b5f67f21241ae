"""Sweeps: one notebook over a grid of seeds × parameter values, on this machine or on Ray.

::

    labkit sweep 02 --scale smoke --seed 0 1 2 -p clip_cov 0.0 0.002 --metric acc_after
    labkit sweep 02 --scale gpu --seed 0 1 2 -p lr 1e-4 3e-4 --executor ray --address auto

Every *cell* (one seed, one value of each swept parameter) is one papermill execution
(:func:`labkit.lab.runs.execute_spec`) in its own run directory; a sweep directory holds them
all, with the aggregate beside them::

    <sweep dir>/                       default runs/<NN_name>/sweep-<scale>-<keys>
      sweep.json                       the grid, the cells and their status
      clip_cov=0.0/seed0/ seed1/ ...   run directories (executed notebook, results.json, ...)
      clip_cov=0.002/seed0/ ...
      summary.json  summary.csv        mean ± std (and n) per parameter setting, every record
      figure.html                      the metric against the swept parameter (plotly,
      figure.json  figure.svg          offline: plotly.js inline), its JSON, a static SVG

Executors:

- ``local`` (default): a process pool of ``min(workers, CPUs)`` processes
  (:func:`labkit.lab.runs.run_specs`).
- ``ray``: each cell is a Ray task (``ray.init()`` starts a local Ray when no address is
  given; ``ray.init(address=...)`` joins a cluster). The notebook is read here and shipped
  with its parameters, so workers need labkit installed but no shared file system; the
  executed notebook and every file of its run directory come back and are written here.
  Cells at ``gpu`` scale request ``num_gpus=1``. Ray is an optional extra.

Resuming: the same command (same sweep directory) skips cells whose run.json says ``ok``
and runs the others (new grid points, failed or interrupted cells). A failing cell is
reported with its one-line error and the other cells still run. Ctrl-C stops the running
cells, keeps the finished ones, writes the aggregate of what finished and exits with 130.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import itertools
import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from labkit.lab.notebooks import NotebookInfo, resolve
from labkit.core.checks import SCALES, ParameterError, check_choice, check_seed, check_timeout
from labkit.lab.session import runs_root
from labkit.lab.record import write_json_atomic
from labkit.lab.runs import (RunResult, RunSpec, Terminated, _json_safe, check_param_value,
                         check_params, default_workers, execute_spec, format_table, load_run,
                         mark_interrupted, run_specs, summarize, write_summary)

__all__ = ["EXECUTORS", "RAY_REQUIREMENT", "Cell", "Sweep", "SweepInterrupted", "expand_grid",
           "setting_name", "run_sweep", "sweep_figure", "figure_x", "write_figure",
           "import_ray"]

EXECUTORS = ("local", "ray")
# Each cell is a whole notebook execution; a grid beyond this is a typo or a job for several
# sweeps, and expanding it would only exhaust memory before anything ran.
MAX_CELLS = 10_000
RAY_REQUIREMENT = "ray>=2.9"
RAY_INSTALL_HINT = (f'--executor ray needs Ray, which is not installed here: '
                    f'pip install "{RAY_REQUIREMENT}" (or pip install -e ".[ray]")')


# ---------------------------------------------------------------------------- the grid

@dataclass
class Cell:
    """One point of the grid: ``params`` (one value per swept key) and a ``seed``."""
    params: dict
    seed: int
    run_dir: Path
    status: str = "pending"         # pending | done (resumed) | ok | failed | interrupted
    result: RunResult | None = None

    @property
    def label(self) -> str:
        keys = [f"{k}={_show_value(v)}" for k, v in self.params.items()]
        return " ".join(keys + [f"seed={self.seed}"])


def _show_value(v) -> str:
    return v if isinstance(v, str) else json.dumps(v)


def _check_grid(grid) -> dict:
    out = {}
    for key, values in (grid.items() if isinstance(grid, dict) else grid):
        if not isinstance(key, str) or not key:
            raise ParameterError(f"parameter names must be non-empty strings; got {key!r}")
        if key in out:
            raise ParameterError(f"parameter {key} is given twice; give all its values after "
                                 f"one -p {key}")
        values = list(values)
        if not values:
            raise ParameterError(f"-p {key}: give at least one value")
        seen = set()
        for v in values:
            check_param_value(key, v)
            js = json.dumps(v, sort_keys=True)
            if js in seen:
                raise ParameterError(f"values of {key} must be distinct; got {_show_value(v)} "
                                     f"twice")
            seen.add(js)
        out[key] = values
    return out


def expand_grid(grid: dict, seeds) -> list[tuple[dict, int]]:
    """The cartesian product of the parameter values (in the order given, first key slowest)
    and the seeds (fastest): ``[(params, seed), ...]``. Validates both (one-line
    ParameterError for an empty value list, repeated values or bad seeds)."""
    grid = _check_grid(grid)
    seeds = [check_seed(s) for s in seeds]
    if not seeds:
        raise ParameterError("seed: give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ParameterError(f"seed values must be distinct; got {' '.join(map(str, seeds))}")
    keys = list(grid)
    _check_size(grid, seeds)
    cells = []
    for combo in itertools.product(*(grid[k] for k in keys)):
        params = dict(zip(keys, combo))
        cells.extend((dict(params), s) for s in seeds)
    return cells


def _check_size(grid: dict, seeds) -> None:
    """Refuse a grid of more than MAX_CELLS cells, counted without expanding it."""
    n = math.prod(len(v) for v in grid.values()) * len(seeds)
    if n > MAX_CELLS:
        shape = " x ".join([f"{len(v)} {k}" for k, v in grid.items()] + [f"{len(seeds)} seeds"])
        raise ParameterError(f"the grid has {n:,} cells ({shape}); at most {MAX_CELLS:,} "
                             f"accepted: sweep fewer values, or split it into several sweeps")


_SAFE = re.compile(r"[^A-Za-z0-9._+\-=,]")


def setting_name(params: dict) -> str:
    """A directory name for one parameter setting: ``lr=0.001,steps=3`` (``default`` when
    nothing is swept). Characters a file system might not like become ``_``, and then a
    short hash keeps distinct settings distinct."""
    if not params:
        return "default"
    raw = ",".join(f"{k}={_show_value(v)}" for k, v in params.items())
    safe = _SAFE.sub("_", raw)
    if safe != raw or len(safe) > 100 or safe.startswith("."):
        digest = hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]
        safe = f"{safe[:80].lstrip('.')}-{digest}"
    return safe


# ---------------------------------------------------------------------------- results

@dataclass
class Sweep:
    """What :func:`run_sweep` returns (and :class:`SweepInterrupted` carries)."""
    dir: Path
    notebook: NotebookInfo
    scale: str
    seeds: list
    grid: dict
    cells: list
    summary: list = field(default_factory=list)
    metric: str | None = None
    figure: Path | None = None
    problems: list = field(default_factory=list)   # e.g. the metric was not recorded
    interrupted: bool = False

    @property
    def by(self) -> list:
        return list(self.grid)

    @property
    def runs(self) -> list:
        return [c.result for c in self.cells if c.result is not None]

    @property
    def failed(self) -> list:
        return [c for c in self.cells if c.status in ("failed",)]

    @property
    def ok(self) -> bool:
        return not self.interrupted and all(c.status in ("ok", "done") for c in self.cells)

    def table(self) -> str:
        return format_table(self.summary, by=self.by)


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM: ``terminated``) during a sweep: finished cells are kept and
    aggregated in ``sweep``."""

    def __init__(self, sweep: Sweep, terminated: bool = False):
        super().__init__("sweep terminated" if terminated else "sweep interrupted")
        self.sweep = sweep
        self.terminated = terminated


# ---------------------------------------------------------------------------- ray

def import_ray():
    """``import ray``, or a one-line ParameterError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ParameterError(RAY_INSTALL_HINT) from None
    version = getattr(ray, "__version__", "0")
    try:
        major, minor = (int(x) for x in version.split(".")[:2])
    except ValueError:
        major, minor = 0, 0
    if (major, minor) < (2, 9):
        raise ParameterError(f"--executor ray needs {RAY_REQUIREMENT}; this is ray {version}: "
                             f'pip install -U "{RAY_REQUIREMENT}"')
    return ray


def _ray_cell(nb_name: str, nb_bytes: bytes, fields: dict) -> dict:
    """The Ray task: write the shipped notebook into a temporary directory on the worker,
    execute it there, and return the outcome with every file of the run directory."""
    import socket
    import tempfile

    with tempfile.TemporaryDirectory(prefix="labkit-ray-") as tmp:
        nb_path = Path(tmp) / nb_name
        nb_path.write_bytes(nb_bytes)
        run_dir = Path(tmp) / "run"
        r = execute_spec(RunSpec(notebook=str(nb_path), run_dir=str(run_dir), **fields))
        files = {}
        for p in sorted(run_dir.rglob("*")):
            if p.is_file() and not p.name.endswith(".tmp"):
                files[p.relative_to(run_dir).as_posix()] = p.read_bytes()
    return {"ok": r.ok, "error": r.error, "error_name": r.error_name,
            "duration": r.duration, "files": files, "node": socket.gethostname()}


def _write_back(cell: Cell, spec: RunSpec, out: dict, executor_info: dict) -> RunResult:
    """Write a Ray cell's files into its local run directory and read it back."""
    run_dir = cell.run_dir
    for rel, data in out.get("files", {}).items():
        target = (run_dir / rel).resolve()
        if run_dir.resolve() not in target.parents:  # never outside the run directory
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    info = {"notebook": spec.notebook, "scale": spec.scale, "seed": spec.seed,
            "params": spec.params}
    with contextlib.suppress(OSError, ValueError):
        remote = json.loads((run_dir / "run.json").read_text())
        info = {**remote, **info}   # the worker's paths are its own; ours are local
    info.update(status="ok" if out["ok"] else "failed", error=out.get("error"),
                error_name=out.get("error_name"), duration=round(out.get("duration", 0.0), 2),
                **executor_info, node=out.get("node"))
    write_json_atomic(run_dir / "run.json", info)
    return load_run(run_dir, spec)


def _failed_result(cell: Cell, spec: RunSpec, error_name: str, error: str) -> RunResult:
    cell.run_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(cell.run_dir / "run.json", {
        "notebook": spec.notebook, "scale": spec.scale, "seed": spec.seed,
        "params": spec.params, "status": "failed", "error": error, "error_name": error_name})
    return RunResult(spec=spec, run_dir=cell.run_dir, ok=False, results={}, error=error,
                     error_name=error_name)


def _run_ray(todo, specs, nb: NotebookInfo, scale, *, address, workers, on_result):
    ray = import_ray()
    started_here = False
    if not ray.is_initialized():
        import logging

        kw = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        if address:
            ray.init(address=address, **kw)
        else:
            cpus = os.cpu_count() or 1
            ray.init(num_cpus=min(workers, cpus) if workers else cpus, **kw)
        started_here = True
    try:
        if scale == "gpu" and not ray.cluster_resources().get("GPU"):
            msg = "scale gpu requests a GPU per cell (num_gpus=1), but the Ray cluster has none"
            if not address:
                raise ParameterError(msg)
            print(f"warning: {msg} yet; the cells wait for one", flush=True)
        nb_bytes = Path(nb.path).read_bytes()
        task = ray.remote(_ray_cell).options(
            num_cpus=1, num_gpus=1 if scale == "gpu" else 0, max_retries=1)
        executor_info = {"executor": "ray", "address": address or "local"}
        queue = list(zip(todo, specs))
        pending: dict = {}
        limit = workers or len(queue)
        try:
            while queue or pending:
                while queue and len(pending) < limit:
                    cell, spec = queue.pop(0)
                    fields = {"scale": spec.scale, "seed": spec.seed, "params": spec.params,
                              "timeout": spec.timeout, "threads": spec.threads,
                              "env": spec.env}
                    ref = task.remote(Path(nb.path).name, nb_bytes, fields)
                    pending[ref] = (cell, spec)
                # short waits, so that Ctrl-C is seen while cells run
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                for ref in ready:
                    cell, spec = pending.pop(ref)
                    try:
                        out = ray.get(ref)
                    except Exception as e:  # the task itself failed (worker died, no labkit)
                        first = " ".join(str(e).split())[:300]
                        r = _failed_result(cell, spec, type(e).__name__,
                                           f"{type(e).__name__}: {first}")
                    else:
                        r = _write_back(cell, spec, out, executor_info)
                    on_result(r)
        except KeyboardInterrupt:
            for ref in pending:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise
    finally:
        if started_here:
            with contextlib.suppress(Exception):
                ray.shutdown()


# ---------------------------------------------------------------------------- the sweep

@contextlib.contextmanager
def _lock(sweep_dir: Path):
    """One sweep at a time per directory (an advisory lock, released when we exit)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: no lock
        yield
        return
    path = sweep_dir / ".sweep.lock"
    f = open(path, "a+")
    try:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            who = f.read().strip() or "?"
            raise ParameterError(f"sweep directory {sweep_dir} is in use by another sweep "
                                 f"(pid {who})") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield
    finally:
        f.close()


def _sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _resolve_notebook(notebook) -> NotebookInfo:
    if isinstance(notebook, NotebookInfo):
        return notebook
    try:
        return resolve(notebook)
    except ParameterError:
        raise
    except (OSError, ValueError) as e:
        msg = " ".join(str(e).split())
        raise ParameterError(f"cannot read notebook {notebook}: {msg}") from None


def default_sweep_dir(nb: NotebookInfo, scale: str, keys) -> Path:
    """``runs/<NN_name>/sweep-<scale>-<key>-<key>`` (``...-seeds`` when only seeds vary):
    the same command finds the same directory, which is what resuming needs."""
    tail = "-".join(_SAFE.sub("_", k) for k in keys) or "seeds"
    return runs_root() / nb.stem / f"sweep-{scale}-{tail}"


def _done(cell: Cell, scale: str) -> RunResult | None:
    """The finished run of ``cell`` if its directory holds one (status ok, same cell)."""
    r = load_run(cell.run_dir)
    if r is None or not r.ok:
        return None
    if (r.spec.scale, r.spec.seed) != (scale, cell.seed) or json.dumps(
            r.spec.params, sort_keys=True) != json.dumps(cell.params, sort_keys=True):
        return None
    return r


def run_sweep(notebook, scale="workshop", seeds=(0,), grid=None, *, out=None,
              executor="local", address=None, workers=None, metric=None, timeout=None,
              on_event=None) -> Sweep:
    """Run the grid ``seeds × grid`` (``grid``: ``{key: [values]}``) of ``notebook`` and
    aggregate it. Returns a :class:`Sweep`; raises :class:`SweepInterrupted` (a
    KeyboardInterrupt) on Ctrl-C after saving the aggregate of the finished cells, and a
    one-line ParameterError for bad input before anything runs.

    ``on_event(kind, cell, info)`` reports progress: ``("start", None, {...})``, then
    ``("done", cell, None)`` for each resumed cell and ``("result", cell, RunResult)`` as
    each cell finishes."""
    def emit(kind, cell=None, info=None):
        if on_event:
            on_event(kind, cell, info)

    nb = _resolve_notebook(notebook)
    check_choice("scale", scale, SCALES)
    check_choice("executor", executor, EXECUTORS)
    grid = _check_grid(grid or {})
    check_params(nb, {k: v[0] for k, v in grid.items()})
    seeds = list(seeds)
    cells_spec = expand_grid(grid, seeds)
    seeds = [check_seed(s) for s in seeds]
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int)
                                or workers < 1):
        raise ParameterError(f"workers must be an integer >= 1; got {workers!r}")
    timeout = check_timeout(timeout)
    if address and executor != "ray":
        raise ParameterError("--address is for --executor ray")
    if metric is not None and (not isinstance(metric, str) or not metric):
        raise ParameterError(f"metric must be a recorded name; got {metric!r}")
    if executor == "ray":
        import_ray()

    sweep_dir = Path(out).expanduser() if out else default_sweep_dir(nb, scale, grid)
    sweep_dir = sweep_dir.resolve()
    if sweep_dir.exists() and not sweep_dir.is_dir():
        raise ParameterError(f"--out {sweep_dir} is a file, not a directory")
    old = {}
    if (sweep_dir / "sweep.json").exists():
        with contextlib.suppress(OSError, ValueError):
            old = json.loads((sweep_dir / "sweep.json").read_text())
        if old and (old.get("stem"), old.get("scale")) != (nb.stem, scale):
            raise ParameterError(f"{sweep_dir} holds a sweep of {old.get('stem')} at scale "
                                 f"{old.get('scale')}; choose another --out")
    sweep_dir.mkdir(parents=True, exist_ok=True)

    with _lock(sweep_dir):
        cells = [Cell(params=p, seed=s, run_dir=sweep_dir / setting_name(p) / f"seed{s}")
                 for p, s in cells_spec]
        for c in cells:
            r = _done(c, scale)
            if r is not None:
                c.status, c.result = "done", r
        todo = [c for c in cells if c.status == "pending"]
        sha = _sha256(nb.path)
        stale = old.get("notebook_sha256") not in (None, sha) and len(todo) < len(cells)
        n_workers = None
        if executor == "local" and todo:
            n_workers = min(workers or default_workers(len(todo)), os.cpu_count() or 1,
                            len(todo))
            if scale == "gpu" and workers is None:
                n_workers = 1   # one GPU: one cell at a time (more GPUs: use --executor ray)
        elif executor == "ray":
            n_workers = workers
        sweep = Sweep(dir=sweep_dir, notebook=nb, scale=scale, seeds=seeds, grid=grid,
                      cells=cells, metric=metric)
        meta = {"notebook": str(nb.path), "stem": nb.stem, "scale": scale, "seeds": seeds,
                "grid": grid, "executor": executor, "address": address,
                "notebook_sha256": sha, "started": _dt.datetime.now().isoformat(
                    timespec="seconds")}
        _write_sweep_json(sweep, meta, status="running")
        emit("start", None, {"dir": sweep_dir, "cells": len(cells), "todo": len(todo),
                             "executor": executor, "workers": n_workers, "stale": stale,
                             "address": address})
        for c in cells:
            if c.status == "done":
                emit("done", c, c.result)

        # a cell that failed or was interrupted before starts again from an empty directory
        for c in todo:
            if c.run_dir.exists():
                shutil.rmtree(c.run_dir)
        specs = [RunSpec(notebook=str(nb.path), scale=scale, seed=c.seed, params=c.params,
                         run_dir=str(c.run_dir), timeout=timeout,
                         threads=1 if executor == "ray" else None) for c in todo]
        by_dir = {str(c.run_dir): c for c in todo}

        def on_result(r: RunResult):
            c = by_dir[str(Path(r.spec.run_dir))]
            c.result = r
            c.status = "ok" if r.ok else "failed"
            emit("result", c, r)

        t0 = time.time()
        try:
            if todo and executor == "local":
                run_specs(specs, workers=n_workers, on_result=on_result, processes=True)
            elif todo:
                _run_ray(todo, specs, nb, scale, address=address, workers=workers,
                         on_result=on_result)
        except KeyboardInterrupt as stop:
            sweep.interrupted = True
            for c, spec in zip(todo, specs):
                if c.status == "pending":
                    c.status = "interrupted"
                    mark_interrupted(spec)   # a run.json left saying "running"
            _aggregate(sweep, meta, wall=time.time() - t0)
            raise SweepInterrupted(sweep, terminated=isinstance(stop, Terminated)) from None
        _aggregate(sweep, meta, wall=time.time() - t0)
        return sweep


def _write_sweep_json(sweep: Sweep, meta: dict, status: str, extra=None):
    cells = []
    for c in sweep.cells:
        r = c.result
        cells.append({"params": c.params, "seed": c.seed,
                      "run_dir": c.run_dir.relative_to(sweep.dir).as_posix(),
                      "status": "ok" if c.status == "done" else c.status,
                      "resumed": c.status == "done",
                      "error": r.error if r is not None else None,
                      "duration": round(r.duration, 2) if r is not None else None})
    doc = {**meta, "status": status, "by": sweep.by, "metric": sweep.metric,
           "updated": _dt.datetime.now().isoformat(timespec="seconds"), **(extra or {}),
           "cells": cells}
    write_json_atomic(sweep.dir / "sweep.json", _json_safe(doc))


def _aggregate(sweep: Sweep, meta: dict, wall: float):
    runs = [c.result for c in sweep.cells if c.result is not None]
    sweep.summary = summarize(runs, by=sweep.by)
    scalar = [r["name"] for r in sweep.summary if isinstance(r["mean"], (int, float))]
    if sweep.metric is None:
        declared = [n for n in sweep.notebook.records if n in scalar]
        sweep.metric = (declared or scalar or [None])[0]
    elif sweep.summary and sweep.metric not in scalar:
        names = sorted({r["name"] for r in sweep.summary})
        what = "was not recorded" if sweep.metric not in names else "is not a number"
        sweep.problems.append(f"metric {sweep.metric!r} {what}; numeric records: "
                              f"{', '.join(n for n in names if n in scalar) or '(none)'}")
    sweep.figure = None
    for name in ("figure.html", "figure.json", "figure.svg"):
        with contextlib.suppress(OSError):
            (sweep.dir / name).unlink()
    if sweep.metric in scalar:
        try:
            fig = sweep_figure(sweep.summary, sweep.grid, sweep.metric,
                               title=f"{sweep.notebook.stem} · {sweep.metric} ({sweep.scale})",
                               seeds=sweep.seeds)
            sweep.figure = write_figure(fig, sweep.dir)
        except Exception as e:  # the table matters more than the picture
            sweep.problems.append(f"figure not written: {type(e).__name__}: "
                                  f"{' '.join(str(e).split())[:200]}")
    status = "interrupted" if sweep.interrupted else (
        "complete" if sweep.ok else "incomplete")
    summary_meta = {k: meta[k] for k in ("notebook", "stem", "scale", "seeds", "grid")}
    write_summary(sweep.dir, runs, sweep.summary,
                  meta={**summary_meta, "metric": sweep.metric, "status": status}, by=sweep.by)
    _write_sweep_json(sweep, meta, status=status, extra={
        "wall_s": round(wall, 2), "figure": sweep.figure.name if sweep.figure else None,
        "problems": sweep.problems})


# ---------------------------------------------------------------------------- figure

def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def figure_x(grid: dict) -> str:
    """The figure's x axis: the first swept parameter that takes several values (a ``-p``
    with one value is a constant), else the first one, else ``"seed"``."""
    keys = list(grid)
    return next((k for k in keys if len(grid[k]) > 1), keys[0] if keys else "seed")


def sweep_figure(rows, grid: dict, metric: str, title=None, seeds=()):
    """A plotly figure of ``metric`` (mean ± std over seeds, each seed a faint point)
    against the first swept parameter that takes several values, one line per setting of
    the other varying ones. With no swept parameter, the metric per seed with its mean."""
    import plotly.graph_objects as go

    from labkit.lab.live import COLORS

    keys = list(grid)
    mine = [r for r in rows if r["name"] == metric and isinstance(r["mean"], (int, float))]
    fig = go.Figure()
    if not keys:
        xs = [s for r in mine for s in r["seeds"]]
        ys = [v for r in mine for v in r["values"]]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", name=metric,
                                 marker={"color": COLORS[0], "size": 8}))
        if mine and xs:
            m = mine[0]
            fig.add_trace(go.Scatter(
                x=[min(xs), max(xs)], y=[m["mean"], m["mean"]], mode="lines",
                name=f"mean {m['mean']:.4g} ± {m['std']:.3g} (n={m['n']})",
                line={"color": COLORS[1], "dash": "dash"}))
        fig.update_layout(xaxis_title="seed", yaxis_title=metric)
    else:
        xkey = figure_x(grid)
        others = [k for k in keys if k != xkey and len(grid[k]) > 1]
        fixed = {k: grid[k][0] for k in keys if k != xkey and len(grid[k]) == 1}
        xvals = grid[xkey]
        numeric = all(_is_number(v) for v in xvals)
        series = list(itertools.product(*(grid[k] for k in others))) if others else [()]
        for i, combo in enumerate(series):
            color = COLORS[i % len(COLORS)]
            name = ", ".join(f"{k}={_show_value(v)}" for k, v in zip(others, combo)) or metric
            pts = []
            for xv in xvals:
                want = {xkey: xv, **fixed, **dict(zip(others, combo))}
                for r in mine:
                    if all(json.dumps(r.get(k), sort_keys=True) == json.dumps(v, sort_keys=True)
                           for k, v in want.items()):
                        pts.append((xv if numeric else _show_value(xv), r))
            if not pts:
                continue
            fig.add_trace(go.Scatter(
                x=[p[0] for p in pts], y=[p[1]["mean"] for p in pts], name=name,
                mode="lines+markers", line={"color": color}, marker={"color": color, "size": 8},
                error_y={"type": "data", "array": [p[1]["std"] for p in pts], "visible": True},
                customdata=[[p[1]["n"], p[1]["std"]] for p in pts],
                hovertemplate=f"{xkey}=%{{x}}<br>{metric}=%{{y:.4g}} ± %{{customdata[1]:.3g}}"
                              f"<br>n=%{{customdata[0]}}<extra>{name}</extra>"))
            fig.add_trace(go.Scatter(
                x=[p[0] for p in pts for _ in p[1]["values"]],
                y=[v for p in pts for v in p[1]["values"]],
                text=[f"seed {s}" for p in pts for s in p[1]["seeds"]],
                mode="markers", name=f"{name} (seeds)", showlegend=False, opacity=0.45,
                marker={"color": color, "size": 5}))
        xaxis = {"title": {"text": xkey}}
        if not numeric:
            xaxis.update(type="category")
        elif all(v > 0 for v in xvals) and max(xvals) / min(xvals) >= 100:
            xaxis.update(type="log")
        fig.update_layout(xaxis=xaxis, yaxis_title=metric)
    n = len(seeds)
    fig.update_layout(title={"text": title or metric}, template="plotly_white",
                      legend={"orientation": "h", "y": -0.2},
                      annotations=[{"text": f"mean ± std over {n} seed{'s' * (n != 1)}",
                                    "xref": "paper", "yref": "paper", "x": 1, "y": 1,
                                    "xanchor": "right", "yanchor": "bottom",
                                    "showarrow": False}])
    return fig


def _svg_dict(fig_dict: dict) -> dict:
    """A copy that :func:`labkit.lab.live.to_svg` draws: error bars become short vertical line
    traces, category x values become positions 0, 1, ... (named in the axis title)."""
    d = json.loads(json.dumps(fig_dict))
    lay = d.setdefault("layout", {})
    xaxis = lay.setdefault("xaxis", {})
    cats = None
    if xaxis.get("type") == "category":
        cats = []
        for t in d["data"]:
            for x in t.get("x") or []:
                if x not in cats:
                    cats.append(x)
        for t in d["data"]:
            t["x"] = [cats.index(x) for x in t.get("x") or []]
        xaxis["type"] = "linear"
        title = xaxis.get("title") or {}
        text = title.get("text") if isinstance(title, dict) else title
        legend = ", ".join(f"{i}: {c}" for i, c in enumerate(cats))
        xaxis["title"] = {"text": f"{text or ''} ({legend})"}
    bars = []
    for t in d["data"]:
        err = (t.pop("error_y", None) or {}).get("array")
        if not err:
            continue
        color = (t.get("line") or {}).get("color")
        for x, y, e in zip(t.get("x") or [], t.get("y") or [], err):
            if _is_number(y) and _is_number(e) and e > 0:
                bars.append({"type": "scatter", "x": [x, x], "y": [y - e, y + e],
                             "mode": "lines", "showlegend": False, "line": {"color": color}})
    d["data"] = d["data"] + bars
    return d


def write_figure(fig, directory) -> Path:
    """Write ``figure.html`` (plotly.js inline: opens offline), ``figure.json`` and a static
    ``figure.svg`` into ``directory``; returns the HTML path."""
    from labkit.lab.live import _plotly_json, to_svg

    directory = Path(directory)
    d = _plotly_json(fig)
    write_json_atomic(directory / "figure.json", d)
    with contextlib.suppress(Exception):   # a courtesy for static viewers; never fatal
        svg = to_svg(_svg_dict(d), width=820, height=480)
        if svg:
            (directory / "figure.svg").write_text(svg, encoding="utf-8")
    html = directory / "figure.html"
    tmp = directory / ".figure.html.tmp"
    fig.write_html(str(tmp), include_plotlyjs=True, full_html=True,
                   config={"displaylogo": False})
    os.replace(tmp, html)
    return html
