"""Export a run's metrics (``metrics.jsonl``) to TensorBoard event files or to trackio.

    labkit export RUN_DIR --to tensorboard OUT_DIR     then: tensorboard --logdir OUT_DIR
    labkit export RUN_DIR --to trackio [TRACKIO_DIR]   then: trackio show --project NN_name

``metrics.jsonl`` holds one row per :meth:`labkit.lab.session.Run.log` call:
``{"step": ..., "time": ..., metric: value, ...}``. A row that names what it belongs to with a
string in one of :data:`SERIES_KEYS` (``series``, ``method``, ``arm``, ``curriculum``) goes to
that series: a TensorBoard run of its own (``OUT_DIR/<series>/``; the rows without one then go
to ``OUT_DIR/main/``, and with no series at all everything goes to ``OUT_DIR``), a trackio run
of its own. Every other number is a scalar tagged by its name (``reward/mean`` keeps its
slash: TensorBoard groups by it); booleans count 0/1, ``null`` (a non-finite value) and other
strings are left out. The wall time of each point is the run's start (``run.json``) plus the
row's ``time``, so an export says when it was measured, and the same run exports the same.

RUN_DIR may also be a group of seeds (``seed0/``, ``seed1/``, ...): each seed becomes
``OUT_DIR/seedN/...`` (trackio: runs named ``seedN/...``).

TensorBoard needs the ``tensorboard`` package (``pip install -e ".[tensorboard]"``); trackio
the ``trackio`` package (``pip install -e ".[trackio]"``). Without it the command says so in
one line (exit code 2).
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from pathlib import Path

from labkit.core.checks import ParameterError

__all__ = ["SERIES_KEYS", "read_metrics", "split_series", "export_tensorboard", "export_trackio",
           "main"]

SERIES_KEYS = ("series", "method", "arm", "curriculum")
_NOT_SCALARS = ("step", "time")


def _metrics_file(run_dir: Path) -> Path:
    return run_dir if run_dir.is_file() else run_dir / "metrics.jsonl"


def read_metrics(run_dir) -> tuple[list, int]:
    """The rows of a run's ``metrics.jsonl`` (or of that file itself) and the number of lines
    that could not be read (an interrupted run may end with a partial one)."""
    path = _metrics_file(Path(run_dir))
    rows, bad = [], 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(row, dict):
                rows.append(row)
            else:
                bad += 1
    return rows, bad


def _series_of(row: dict) -> str | None:
    labels = [row[k] for k in SERIES_KEYS if isinstance(row.get(k), str) and row[k]]
    return "-".join(labels) if labels else None


def _scalar(value):
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def split_series(rows) -> dict:
    """``{series or None: [(step, time, {tag: value})]}`` in the order the rows came."""
    out: dict = {}
    for n, row in enumerate(rows):
        step = row.get("step")
        step = int(step) if isinstance(step, (int, float)) and not isinstance(step, bool) \
            and math.isfinite(step) else n
        t = _scalar(row.get("time"))
        scalars = {}
        for k, v in row.items():
            if k in _NOT_SCALARS or k in SERIES_KEYS:
                continue
            x = _scalar(v)
            if x is not None:
                scalars[k] = x
        if scalars:
            out.setdefault(_series_of(row), []).append((step, t, scalars))
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=+-]+", "_", name).strip("._") or "series"


def _run_dirs(run_dir: Path) -> list:
    """``[(prefix, run directory)]``: the run itself, or each seed of a group."""
    if _metrics_file(run_dir).is_file():
        return [("", run_dir)]
    seeds = sorted((d for d in run_dir.glob("seed*") if _metrics_file(d).is_file()),
                   key=lambda d: (len(d.name), d.name))
    if seeds:
        return [(d.name, d) for d in seeds]
    raise ParameterError(f"export: {run_dir} has no metrics.jsonl; accepted: a run directory "
                         f"written by labkit run (or a group of seeds: seed0/, seed1/, ...)")


def _started(run_dir: Path) -> float:
    """The run's start as a POSIX time: run.json's ``started``, else metrics.jsonl's mtime."""
    try:
        started = json.loads((run_dir / "run.json").read_text(encoding="utf-8")).get("started")
        return _dt.datetime.fromisoformat(started).timestamp()
    except (OSError, ValueError, TypeError, AttributeError):
        return _metrics_file(run_dir).stat().st_mtime


def _check_run_dir(run_dir) -> Path:
    path = Path(run_dir).expanduser()
    if not path.exists():
        raise ParameterError(f"export: no such run directory: {run_dir}")
    return path


def export_tensorboard(run_dir, out_dir) -> dict:
    """Write the run's metrics as TensorBoard event files under ``out_dir``. Returns
    ``{run name: number of scalars}`` (run names are the sub-directories, "" for out_dir)."""
    run_dir = _check_run_dir(run_dir)
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise ParameterError(f"export: {out_dir} is a file; accepted: a directory for the event files")
    runs = _run_dirs(run_dir)
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ParameterError('export --to tensorboard needs the tensorboard package; install it '
                             'with pip install -e ".[tensorboard]"') from None
    written = {}
    for prefix, rd in runs:
        rows, _ = read_metrics(rd)
        t0 = _started(rd)
        by_series = split_series(rows)
        named = any(s is not None for s in by_series)
        for series, points in by_series.items():
            sub = _safe(series) if series is not None else ("main" if named else "")
            name = "/".join(p for p in (prefix, sub) if p)
            writer = SummaryWriter(log_dir=str(out / name) if name else str(out))
            n = 0
            try:
                for step, t, scalars in points:
                    wall = t0 + (t or 0.0)
                    for tag, value in scalars.items():
                        writer.add_scalar(tag, value, global_step=step, walltime=wall)
                        n += 1
            finally:
                writer.close()
            written[name] = written.get(name, 0) + n
    return written


def export_trackio(run_dir, trackio_dir=None, *, project: str | None = None) -> dict:
    """Log the run's metrics to trackio (one trackio run per series), in ``trackio_dir``
    (``$TRACKIO_DIR``; trackio's default otherwise), project ``project`` (default: the
    notebook's name). Returns ``{run name: number of scalars}``."""
    run_dir = _check_run_dir(run_dir)
    runs = _run_dirs(run_dir)
    if trackio_dir is not None:
        os.environ["TRACKIO_DIR"] = str(Path(trackio_dir).expanduser().resolve())
    try:
        import trackio
    except ImportError:
        raise ParameterError('export --to trackio needs the trackio package; install it with '
                             'pip install -e ".[trackio]"') from None
    if project is None:
        try:
            nb = json.loads((runs[0][1] / "run.json").read_text(encoding="utf-8")).get("notebook")
            project = Path(nb).stem
        except (OSError, ValueError, TypeError, AttributeError):
            project = run_dir.name
    written = {}
    for prefix, rd in runs:
        rows, _ = read_metrics(rd)
        for series, points in split_series(rows).items():
            name = "/".join(p for p in (run_dir.name, prefix, series or "") if p)
            trackio.init(project=project, name=name)
            try:
                for step, _, scalars in points:
                    trackio.log(scalars, step=step)
            finally:
                trackio.finish()
            written[name] = sum(len(s) for _, _, s in points)
    return written


def main(args) -> int:
    """``labkit export RUN_DIR --to FORMAT [OUT_DIR]`` (called by labkit.lab.cli)."""
    to = list(args.to or [])
    formats = ("tensorboard", "trackio")
    if not to or to[0] not in formats or len(to) > 2:
        got = " ".join(to) or "nothing"
        raise ParameterError(f"export: --to takes FORMAT [OUT_DIR] with FORMAT one of "
                             f"{', '.join(formats)}; got {got}")
    fmt, out = to[0], (to[1] if len(to) > 1 else None)
    if fmt == "tensorboard":
        if out is None:
            raise ParameterError("export: --to tensorboard needs OUT_DIR, the directory for the "
                                 "event files (labkit export RUN_DIR --to tensorboard OUT_DIR)")
        written = export_tensorboard(args.run_dir, out)
        where = f"{out} (tensorboard --logdir {out})"
    else:
        written = export_trackio(args.run_dir, out)
        where = "trackio" + (f" in {out}" if out else "")
    total = sum(written.values())
    names = ", ".join(n or "." for n in written) or "none"
    print(f"exported {total} scalars in {len(written)} run{'s' * (len(written) != 1)} "
          f"({names}) to {where}")
    return 0
