"""Recorded results: ``record(name, value)`` in a notebook, ``results(path)`` afterwards.

``record`` leaves a scrapbook-compatible output in the cell (mimetype
``application/scrapbook.scrap.json+json``, payload ``{"name", "data", "encoder": "json",
"version": 1}``; ``scrapbook.read_notebook(path).scraps`` reads it, but labkit does not need
scrapbook) and, when a run directory is active (``labkit.setup`` was called, or
``LABKIT_RUN_DIR`` is set), rewrites ``<run dir>/results.json`` atomically.

Values: numbers, bools, strings, lists and dicts of those, numpy/torch scalars and arrays
(converted to plain JSON). JSON has no NaN and scrapbook's schema forbids a null value, so a
non-finite float is stored as the string ``"NaN"``, ``"Infinity"`` or ``"-Infinity"`` (with a
warning) and :func:`results` turns those strings back into floats. ``None`` is rejected.

Wall times are not results: the same seed must give a byte-identical ``results.json``.
``record_time(name, seconds)`` keeps them in ``<run dir>/timings.json`` (atomically, like
results.json); ``labkit run`` copies them into run.json under ``"timings"``.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
import warnings
from pathlib import Path

from labkit.core.checks import check_float
from labkit.lab.session import current_run, jsonable

MIMETYPE = "application/scrapbook.scrap.json+json"
_SCRAP_PREFIX = "application/scrapbook.scrap."
_PAPERMILL_RECORD = "application/papermill.record+json"
_NONFINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}

__all__ = ["record", "record_time", "results", "read_timings", "read_json_object", "MIMETYPE",
           "active_run_dir", "read_notebook_records"]


def active_run_dir() -> Path | None:
    """The directory of the current run: that of the last ``labkit.setup``, else
    ``$LABKIT_RUN_DIR``, else None."""
    run = current_run()
    if run is not None:
        return run.dir
    env = os.environ.get("LABKIT_RUN_DIR")
    return Path(env) if env else None


def _count_tokens(value) -> int:
    if isinstance(value, str):
        return int(value in _NONFINITE)
    if isinstance(value, list):
        return sum(_count_tokens(v) for v in value)
    if isinstance(value, dict):
        return sum(_count_tokens(v) for v in value.values())
    return 0


def _decode(value):
    if isinstance(value, str):
        return _NONFINITE.get(value, value)
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value


def write_json_atomic(path: Path, obj) -> None:
    """Write ``obj`` as JSON to ``path`` via a temporary file and ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, allow_nan=False)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json_object(path, what: str) -> dict:
    """The JSON object in ``path``, or a one-line ValueError that names the file, what is
    wrong with it and what it should hold (``what``, e.g. "recorded values")."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as e:   # invalid JSON, or not UTF-8
        raise ValueError(f"{path} is not valid JSON ({' '.join(str(e).split())}); expected "
                         f"{what} as a JSON object") from None
    if not isinstance(data, dict):
        kind = {list: "a list", str: "a string", type(None): "null", bool: "a boolean"}.get(
            type(data), "a number")
        raise ValueError(f"{path} holds {kind}, not a JSON object; expected {what} as a JSON "
                         f"object")
    return data


def _store(path: Path, name: str, data) -> None:
    """Set ``name`` in the JSON object at ``path`` (read, update, write atomically)."""
    stored = {}
    if path.exists():
        try:
            stored = read_json_object(path, "values")
        except (OSError, ValueError):
            stored = {}
    stored[name] = data
    write_json_atomic(path, stored)


def _keep(kind: str, name: str, data) -> None:
    """``name`` -> ``data`` in the current run's ``kind`` dict ("results" or "timings") and in
    ``<run dir>/<kind>.json``."""
    run = current_run()
    if run is not None:
        getattr(run, kind)[name] = data
    run_dir = active_run_dir()
    if run_dir is not None:
        _store(run_dir / f"{kind}.json", name, data)


def record(name: str, value):
    """Record ``value`` under ``name``: a scrapbook output in the notebook, and
    ``results.json`` in the run directory. Returns None (so a notebook's last line
    ``labkit.record(...)`` adds no ``Out[]``); ``results()`` reads values back."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"record: name must be a non-empty string; got {name!r}")
    if value is None:
        raise ValueError(f"record({name!r}, None): value must not be None")
    try:
        data = jsonable(value, nonfinite="string")
    except TypeError as e:
        raise TypeError(f"record({name!r}, ...): {e}") from None
    if _count_tokens(data) > _count_tokens(jsonable(value, nonfinite="null")):
        warnings.warn(f"record({name!r}): non-finite value stored as {json.dumps(data)[:60]}",
                      stacklevel=2)

    payload = {"name": name, "data": data, "encoder": "json", "version": 1}
    metadata = {"scrapbook": {"name": name, "data": True, "display": False}}
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display({MIMETYPE: payload}, metadata=metadata, raw=True)
    except ImportError:  # pragma: no cover
        pass

    _keep("results", name, data)
    return None


def record_time(name: str, seconds) -> None:
    """Keep a wall time under ``name`` in ``<run dir>/timings.json``, never in results.json
    (timings differ between runs of the same seed; recorded values must not). ``seconds`` is
    a finite number >= 0 (the name may say another unit: ``train_minutes``). ``labkit run``
    copies the timings into run.json; ``labkit results`` shows them apart."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"record_time: name must be a non-empty string; got {name!r}")
    _keep("timings", name, check_float(f"record_time({name!r}, ...): the time", seconds, min=0))
    return None


def read_timings(run_dir) -> dict:
    """A run directory's timings: run.json's ``"timings"``, else timings.json, else {}.
    Raises a one-line ValueError for a malformed file."""
    run_dir = Path(run_dir)
    if (run_dir / "run.json").exists():
        info = read_json_object(run_dir / "run.json", "what ran (notebook, scale, status)")
        if info.get("timings") is not None:
            timings = info["timings"]
            if not isinstance(timings, dict):
                raise ValueError(f"{run_dir / 'run.json'}: timings is not a JSON object; "
                                 f"expected names and seconds")
            return timings
    if (run_dir / "timings.json").exists():
        return read_json_object(run_dir / "timings.json", "timings (names and seconds)")
    return {}


def _dicts(items) -> list:
    """The dicts in ``items`` (a malformed notebook's odd entries are skipped)."""
    return [x for x in items if isinstance(x, dict)] if isinstance(items, list) else []


def read_notebook_records(nb) -> dict:
    """Recorded values in an executed notebook (a path or an nbformat/dict notebook), in
    order; a later record of the same name wins. Reads scrapbook json scraps and legacy
    ``papermill.record`` outputs."""
    if isinstance(nb, (str, Path)):
        nb = read_json_object(nb, "a notebook")
    out = {}
    for cell in _dicts(nb.get("cells")):
        for output in _dicts(cell.get("outputs")):
            data = output.get("data")
            for mime, payload in (data.items() if isinstance(data, dict) else ()):
                if mime.startswith(_SCRAP_PREFIX) and isinstance(payload, dict):
                    if payload.get("encoder", "json") == "json" and "name" in payload:
                        out[payload["name"]] = payload.get("data")
                elif mime == _PAPERMILL_RECORD and isinstance(payload, dict):
                    out.update(payload)
    return out


def results(path=None, *, decode: bool = True) -> dict:
    """Recorded values of an executed notebook (``.ipynb``) or a run directory
    (``results.json``, else the executed notebook inside it).

    With no ``path``: the values recorded so far in the current run. Non-finite values
    come back as floats (``decode=False`` keeps the stored strings).
    """
    if path is None:
        run = current_run()
        data = dict(run.results) if run is not None else {}
        return _decode(data) if decode else data
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such notebook or run directory: {path}")
    if path.is_dir():
        rj = path / "results.json"
        if not rj.exists() and (path / "summary.json").exists():
            raise FileNotFoundError(f"{path} holds several runs; read its summary with "
                                    f"labkit.lab.runs.load_summary, or one run's results from a "
                                    f"subdirectory")
        if rj.exists():
            data = read_json_object(rj, "recorded values")
        else:
            nbs = sorted(p for p in path.glob("*.ipynb") if not p.name.startswith("."))
            if len(nbs) != 1:
                what = "no executed notebook" if not nbs else f"{len(nbs)} notebooks"
                raise FileNotFoundError(
                    f"{path} has no results.json and {what}; expected a run directory")
            data = read_notebook_records(nbs[0])
    elif path.suffix == ".ipynb":
        data = read_notebook_records(path)
    elif path.suffix == ".json":
        data = read_json_object(path, "recorded values")
    else:
        raise ValueError(f"expected an .ipynb file or a run directory; got {path}")
    return _decode(data) if decode else data
