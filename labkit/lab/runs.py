"""Executing notebooks with papermill into run directories, over seeds in parallel.

A *run* is one papermill execution of one notebook with one scale, seed and parameter set,
in its own directory::

    <run dir>/
      NN_name.ipynb   the executed notebook (saved after every cell)
      run.json        notebook, scale, seed, params, status (running|ok|failed|interrupted),
                      error, duration, timings (copied from timings.json at the end)
      setup.json      what labkit.setup resolved (device, versions)
      metrics.jsonl   run.log(...) rows, flushed every step
      results.json    labkit.record(...) values, written atomically; the same seed gives the
                      same bytes, so wall times never go there, but to
      timings.json    labkit.record_time(...) values (seconds), written atomically
      kernel.log      the kernel process's own output (a crash's last words); cells' output
                      is in the notebook

The kernel gets ``LABKIT_RUN_DIR`` (so ``labkit.setup`` uses that directory) and
``LABKIT_LIVE=0`` (headless figures), runs with the notebook's directory as cwd, and the
caller's environment is never modified.

A run that ends without recording every name its notebook declares (metadata
``labkit.records``) is ``failed`` (``MissingRecords``). Ctrl-C, and SIGTERM within
:func:`sigterm_as_interrupt` (``labkit run``/``sweep``) or in a pool worker, stop a run the
same way: the kernel is shut down and its connection file removed, run.json says
``interrupted``.

Several seeds (and parameter grids: :mod:`labkit.lab.sweep`) are *cells* (:class:`RunSpec`),
executed by :func:`run_specs` in a process pool; :func:`summarize` aggregates the recorded
values to mean ± std per parameter setting. A group of runs lives in one directory::

    <group dir>/seed0/ seed1/ ...  summary.json  summary.csv

:func:`execute_spec` is the unit of work: a plain function of a picklable spec, so any
executor (a process pool here, Ray tasks in :mod:`labkit.lab.sweep`) can run it; :func:`load_run`
reads a finished cell back (resuming a sweep).
"""
from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import io
import json
import math
import os
import signal
import sys
import threading
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from labkit.lab.notebooks import NotebookInfo, info, missing_records, resolve
from labkit.core.stats import mean_std
from labkit.core.checks import SCALES, ParameterError, check_choice, check_seed, check_timeout, is_finite_value
from labkit.lab.session import new_run_dir, runs_root
from labkit.lab.record import (_decode, read_json_object, read_notebook_records,
                              write_json_atomic)

__all__ = ["RunSpec", "RunResult", "Group", "Terminated", "sigterm_as_interrupt", "execute", "resume_run",
           "resume_spec",
           "execute_seeds", "execute_spec", "run_specs", "load_run", "mark_interrupted",
           "summarize", "format_table", "write_summary", "load_summary",
           "notebook_parameters", "check_params", "check_param_value"]

_RESERVED = ("scale", "seed")
# Error names of a notebook that stopped on its own validation of a parameter: bad input
# (exit code 2), not a failure of the run.
USAGE_ERRORS = ("ParameterError", "ValueError")
# Arms ranges are expanded one difficulty at a time; real ones span a few digits.
MAX_ARMS_RANGE = 1000


@dataclass
class RunSpec:
    """One cell of work: execute ``notebook`` at ``scale``/``seed`` with ``params`` into
    ``run_dir`` (which must not hold a finished run)."""
    notebook: str
    scale: str
    seed: int
    params: dict = field(default_factory=dict)
    run_dir: str = ""
    timeout: float | None = None       # seconds per cell (None: no limit)
    threads: int | None = None         # OMP/MKL threads for the kernel (None: leave as is)
    env: dict = field(default_factory=dict)


@dataclass
class RunResult:
    spec: RunSpec
    run_dir: Path
    ok: bool
    results: dict
    error: str | None = None
    error_name: str | None = None
    duration: float = 0.0

    @property
    def seed(self):
        return self.spec.seed

    @property
    def params(self):
        return self.spec.params

    @property
    def notebook_out(self) -> Path:
        return self.run_dir / Path(self.spec.notebook).name

    def to_dict(self) -> dict:
        return {"notebook": self.spec.notebook, "scale": self.spec.scale, "seed": self.spec.seed,
                "params": self.spec.params, "run_dir": str(self.run_dir), "ok": self.ok,
                "error": self.error, "error_name": self.error_name,
                "duration": round(self.duration, 2), "results": self.results}


@dataclass
class Group:
    """Runs of one notebook over several seeds (and/or parameter settings)."""
    dir: Path
    runs: list
    summary: list

    @property
    def ok(self) -> bool:
        return all(r.ok for r in self.runs)

    def table(self, by=()) -> str:
        return format_table(self.summary, by=by)


# ---------------------------------------------------------------------------- signals

class Terminated(KeyboardInterrupt):
    """SIGTERM as an exception: it stops a run the way Ctrl-C does (kernel shut down, its
    connection file removed, run.json ``interrupted``) instead of killing the process and
    leaving the kernel and its files behind."""


def _raise_terminated(signum, frame):
    # once: a second SIGTERM must not cut the kernel's shutdown short
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated("terminated (SIGTERM)")


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within this block SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main
    thread; elsewhere (or outside the main thread) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------- parameters

def notebook_parameters(notebook) -> dict:
    """Names of the notebook's ``parameters`` cell -> their literal defaults (None where the
    default is not a literal). Parsed with ``ast``, so comments and expressions are fine."""
    from labkit.lab.notebooks import assigned_names, literal_defaults, parameters_cell

    path = notebook.path if isinstance(notebook, NotebookInfo) else Path(notebook)
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    cell = parameters_cell(nb)
    if cell is None:
        raise ParameterError(f"{Path(path).name} has no cell tagged 'parameters'")
    src = "".join(cell.get("source", []))
    try:
        names = assigned_names(src)
    except SyntaxError as e:
        raise ParameterError(f"{Path(path).name}: the parameters cell does not parse ({e})") from None
    defaults = literal_defaults(src)
    return {n: defaults.get(n) for n in names}


def _is_arms_key(key: str) -> bool:
    return key == "arms" or key.endswith("_arms")


def _check_arms(key: str, spec: str) -> None:
    """An arms spec (``"add:1-3,sub:2"``), checked here so that a bad one stops before any
    kernel starts, and an enormous range (``add:1-1000000000``, which ``parse_arms`` would
    expand in the kernel until memory runs out) is refused without expanding it."""
    from labkit.core.tasks import DIFFICULTIES, parse_arms

    for part in spec.split(","):
        category, _, levels = part.strip().partition(":")
        low, _, high = levels.partition("-")
        try:
            span = int(high or low) - int(low) + 1
        except ValueError:
            continue   # parse_arms names what is wrong with it
        if span > MAX_ARMS_RANGE:
            valid = DIFFICULTIES.get(category)
            takes = f" ({category} takes {valid[0]}..{valid[-1]})" if valid else ""
            raise ParameterError(f"{key}: the range {part.strip()} spans {span} difficulties; "
                                 f"at most {MAX_ARMS_RANGE} accepted{takes}")
    try:
        parse_arms(spec)
    except ValueError as e:
        raise ParameterError(f"{key}: {e}") from None


def check_param_value(key: str, value) -> None:
    """What can be known about a ``-p`` value without the notebook: it is finite (no knob
    takes NaN or infinity) and, for arms, a valid spec of a sensible size."""
    if not is_finite_value(value):
        raise ParameterError(f"{key} must be finite; got {value!r}; accepted: finite numbers, "
                             f"true/false, null, strings, lists of those")
    if _is_arms_key(key) and isinstance(value, str):
        _check_arms(key, value)


def check_params(notebook, params: dict) -> dict:
    """Reject ``params`` keys that the notebook's parameters cell does not define
    (one-line ParameterError listing the accepted knobs), and values that no knob takes
    (:func:`check_param_value`)."""
    params = dict(params or {})
    for k in _RESERVED:
        if k in params:
            raise ParameterError(f"set {k} with --{k}, not as a -p parameter")
    known = notebook_parameters(notebook)
    unknown = [k for k in params if k not in known]
    if unknown:
        stem = notebook.stem if isinstance(notebook, NotebookInfo) else Path(notebook).stem
        accepted = ", ".join(k for k in known if k not in _RESERVED) or "(none)"
        raise ParameterError(f"unknown parameter {unknown[0]!r} for {stem}; accepted: {accepted}")
    for k, v in params.items():
        check_param_value(k, v)
    return params


# ---------------------------------------------------------------------------- one run

def _kernel_manager_class(extra_env: dict, log_path: Path, started: list):
    from jupyter_client.manager import AsyncKernelManager

    class LabkitKernelManager(AsyncKernelManager):
        """Starts the kernel with the run's environment, leaving os.environ untouched, and
        its process's own output (not the cells': they reach the notebook) in ``log_path``:
        a kernel that dies, or outlives an interrupted caller, leaves its last words there
        instead of in the caller's terminal. Each manager is appended to ``started``, so an
        interrupted run can make sure that its kernel is gone."""

        async def start_kernel(self, **kw):
            started.append(self)
            env = dict(kw.pop("env", None) or os.environ)
            env.pop("JPY_SESSION_NAME", None)   # a kernel we start is never a live JupyterLab one
            env.update(extra_env)
            with open(log_path, "ab") as log:   # the kernel keeps its own copy of the handle
                return await super().start_kernel(env=env, stdout=log, stderr=log, **kw)

    return LabkitKernelManager


def _write_run_json(spec: RunSpec, run_dir: Path, **extra):
    info = {"notebook": spec.notebook, "scale": spec.scale, "seed": spec.seed,
            "params": spec.params, **extra}
    write_json_atomic(run_dir / "run.json", info)


def _shutdown_kernels(managers) -> None:
    """Stop the kernels of ``managers`` that are still alive and remove their connection
    files. nbclient does this when an interrupt reaches it inside the execution; an interrupt
    that lands while the kernel is starting would otherwise leave both behind."""
    from jupyter_core.utils import run_sync

    for km in managers:
        with contextlib.suppress(Exception):
            if run_sync(km.is_alive)():
                run_sync(km.shutdown_kernel)(now=True)
        with contextlib.suppress(Exception):
            run_sync(km.cleanup_resources)()


def _settle_tasks() -> None:
    """Cancel and collect what an interrupted execution left on this thread's event loop
    (the cell it was waiting for), so that asyncio does not print their errors at exit."""
    import asyncio
    import gc

    from jupyter_core.utils import ensure_event_loop

    with contextlib.suppress(Exception):
        loop = ensure_event_loop()
        pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for t in pending:
            t.cancel()
        if pending and not loop.is_running():
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
    # finished tasks are no longer listed by all_tasks; the exception's traceback keeps them
    # alive, and asyncio would log their error when they are finally collected
    for obj in gc.get_objects():
        if isinstance(obj, asyncio.Future) and obj.done() and not obj.cancelled():
            with contextlib.suppress(Exception, asyncio.CancelledError):
                obj.exception()   # marks it retrieved


def read_results(run_dir: Path, executed_notebook: Path) -> dict:
    """A run's recorded values: results.json, else the executed notebook's records, else {}."""
    try:
        if (run_dir / "results.json").exists():
            return read_json_object(run_dir / "results.json", "recorded values")
        if executed_notebook.is_file():
            return read_notebook_records(executed_notebook)
    except (OSError, ValueError):
        pass
    return {}


def _timings(run_dir: Path) -> dict:
    """What the run kept with labkit.record_time (timings.json), or {}."""
    try:
        return read_json_object(run_dir / "timings.json", "timings")
    except (OSError, ValueError):
        return {}


def _declared_records(nb_path: Path) -> tuple:
    try:
        return info(nb_path).records
    except (OSError, ValueError):
        return ()


def _missing_records_error(nb_path: Path, results: dict) -> str | None:
    """A run that ended without recording every name its notebook declares failed: its
    numbers are not all there, whatever the cells said."""
    missing = missing_records(_declared_records(nb_path), results)
    if not missing:
        return None
    got = ", ".join(sorted(results)) or "nothing"
    return (f"MissingRecords: {', '.join(missing)} not recorded (declared in metadata "
            f"labkit.records; recorded: {got})")


def execute_spec(spec: RunSpec) -> RunResult:
    """Execute one :class:`RunSpec` with papermill in this process. Never raises for a
    notebook that fails: the result says ``ok=False`` with a one-line ``error``."""
    import logging

    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    # papermill's own parameter-cell parser warns about comments containing "="; harmless
    logging.getLogger("papermill.translators").setLevel(logging.ERROR)

    nb_path = Path(spec.notebook).resolve()
    run_dir = Path(spec.run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    out_nb = run_dir / nb_path.name
    env = {"LABKIT_RUN_DIR": str(run_dir), "LABKIT_LIVE": "0", "PYTHONHASHSEED": "0"}
    if spec.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(spec.threads)
    env.update({k: str(v) for k, v in (spec.env or {}).items()})
    started = _dt.datetime.now().isoformat(timespec="seconds")
    _write_run_json(spec, run_dir, status="running", started=started)
    parameters = {"scale": spec.scale, "seed": spec.seed, **(spec.params or {})}
    t0 = time.time()
    error = error_name = None
    managers = []
    try:
        pm.execute_notebook(
            str(nb_path), str(out_nb), parameters=parameters, cwd=str(nb_path.parent),
            kernel_manager_class=_kernel_manager_class(env, run_dir / "kernel.log", managers),
            progress_bar=False,
            log_output=False, request_save_on_cell_execute=True,
            # nbclient's `timeout` is whole seconds; its timeout_func takes any number
            timeout_func=None if spec.timeout is None else (lambda cell: spec.timeout),
            # ipykernel warns on every start that loopback TCP is unencrypted; keep errors only
            extra_arguments=["--IPKernelApp.log_level=ERROR"],
        )
    except PapermillExecutionError as e:
        error_name = e.ename
        evalue = " ".join(str(e.evalue).split())
        error = f"{e.ename}: {evalue} (cell {e.exec_count})"
    except Exception as e:  # kernel died, timeout, unreadable notebook...
        error_name = type(e).__name__
        msg = " ".join(str(e).split()) or traceback.format_exc().splitlines()[-1]
        error = f"{error_name}: {msg[:300]}"
        if error_name == "DeadKernelError":
            error += f" (its last output: {run_dir / 'kernel.log'})"
    except KeyboardInterrupt as e:  # Ctrl-C or SIGTERM: say so, so a resume runs it again
        _shutdown_kernels(managers)
        _settle_tasks()
        _write_run_json(spec, run_dir, status="interrupted", started=started,
                        duration=round(time.time() - t0, 2), error=str(e) or "interrupted",
                        error_name=type(e).__name__, timings=_timings(run_dir))
        raise
    duration = time.time() - t0
    results = read_results(run_dir, out_nb)
    if error is None:
        error = _missing_records_error(nb_path, results)
        error_name = "MissingRecords" if error else None
    ok = error is None
    _write_run_json(spec, run_dir, status="ok" if ok else "failed", started=started,
                    duration=round(duration, 2), error=error, error_name=error_name,
                    timings=_timings(run_dir))
    return RunResult(spec=spec, run_dir=run_dir, ok=ok, results=_decode(results), error=error,
                     error_name=error_name, duration=duration)


def _default_parent(nb: NotebookInfo, out_dir) -> Path:
    return Path(out_dir) if out_dir is not None else runs_root() / nb.stem


def _validate(notebook, scale, params):
    nb = notebook if isinstance(notebook, NotebookInfo) else resolve(notebook)
    check_choice("scale", scale, SCALES)
    params = check_params(nb, params)
    return nb, params


def execute(notebook, scale="workshop", seed=0, params=None, out_dir=None, *, timeout=None,
            threads=None) -> RunResult:
    """Execute ``notebook`` (a path or a short name such as ``"02"``) once, in a fresh run
    directory created inside ``out_dir`` (default ``runs/<NN_name>/``). Returns the
    :class:`RunResult`; ``result.run_dir``, ``result.results``, ``result.ok``/``error``."""
    nb, params = _validate(notebook, scale, params)
    seed = check_seed(seed)
    timeout = check_timeout(timeout)
    run_dir = new_run_dir(_default_parent(nb, out_dir), label=f"{scale}-seed{seed}")
    spec = RunSpec(notebook=str(nb.path), scale=scale, seed=seed, params=params,
                   run_dir=str(run_dir), timeout=timeout, threads=threads)
    return execute_spec(spec)


def resume_run(run_dir, notebook=None, *, timeout=None, threads=None) -> RunResult:
    """Execute again the run in ``run_dir`` (see :func:`resume_spec`), into the same directory."""
    return execute_spec(resume_spec(run_dir, notebook, timeout=timeout, threads=threads))


def resume_spec(run_dir, notebook=None, *, timeout=None, threads=None) -> RunSpec:
    """The :class:`RunSpec` that executes the notebook of the run in ``run_dir`` again, into
    the same directory, with the scale, seed and parameters its run.json records: its
    training loops that call
    ``run.resume(...)`` continue from their newest checkpoint (``<run_dir>/checkpoints/``,
    written by ``run.checkpoint``). The executed notebook, run.json and results.json are
    rewritten; metrics.jsonl is appended to (so it holds the rows of both executions).
    ``notebook`` (a path or short name) must be the run's notebook; it is where the notebook
    is read from (default: the path in run.json)."""
    run_dir = Path(run_dir).expanduser()
    try:
        info = read_json_object(run_dir / "run.json", "a run (notebook, scale, seed, params)") \
            if (run_dir / "run.json").is_file() else None
    except (OSError, ValueError) as e:
        raise ParameterError(f"--resume {run_dir}: {e}") from None
    if info is None:
        seeds = sorted(d.name for d in run_dir.glob("seed*") if (d / "run.json").is_file()) \
            if run_dir.is_dir() else []
        hint = f"; it holds {', '.join(seeds)}: resume one of them" if seeds else ""
        raise ParameterError(f"--resume {run_dir} is not a run directory (no run.json){hint}")
    recorded = Path(str(info.get("notebook") or ""))
    if notebook is not None:
        nb = notebook if isinstance(notebook, NotebookInfo) else resolve(notebook)
        if nb.stem != recorded.stem:
            raise ParameterError(f"--resume {run_dir} is a run of {recorded.stem or '?'}, not of "
                                 f"{nb.stem}")
    elif not recorded.is_file():
        raise ParameterError(f"--resume {run_dir}: its notebook {recorded} is not there any more")
    nb, params = _validate(nb if notebook is not None else str(recorded), info.get("scale"),
                           info.get("params") or {})
    return RunSpec(notebook=str(nb.path), scale=info["scale"], seed=check_seed(info.get("seed")),
                   params=params, run_dir=str(run_dir), timeout=check_timeout(timeout),
                   threads=threads)


# ---------------------------------------------------------------------------- many runs

def default_workers(n_cells: int) -> int:
    return max(1, min(n_cells, os.cpu_count() or 1))


_EXECUTING = False   # in a pool worker: True while execute_spec runs


def _worker_sigterm(signum, frame):  # pragma: no cover - runs in the pool's processes
    if _EXECUTING:   # stop the run cleanly (kernel, run.json), then _execute_in_worker exits
        _raise_terminated(signum, frame)
    os._exit(128 + signum)   # idle: nothing to clean up


def _worker_init():  # pragma: no cover - runs in the pool's processes
    # Ctrl-C in a terminal reaches the whole process group: the parent decides what stops
    # (see run_specs), the workers do not each die half-way through a save. The parent
    # stops a worker with SIGTERM, which ends its run the way Ctrl-C ends one in-process.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _worker_sigterm)


def _execute_in_worker(spec: RunSpec) -> RunResult:  # pragma: no cover - in the pool
    global _EXECUTING
    _EXECUTING = True
    try:
        return execute_spec(spec)
    except KeyboardInterrupt:
        # the kernel is shut down and run.json says interrupted: leave at once, rather than
        # hand the pool an exception and wait for work that will not come
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(128 + signal.SIGTERM)
    finally:
        _EXECUTING = False


def mark_interrupted(spec: RunSpec) -> None:
    """Turn a ``running`` run.json of ``spec`` (its process was stopped) into
    ``interrupted``, so that a resume knows to run it again."""
    rj = Path(spec.run_dir) / "run.json"
    try:
        info = json.loads(rj.read_text())
    except (OSError, ValueError):
        return
    if info.get("status") == "running":
        info.update(status="interrupted", error="interrupted", error_name="KeyboardInterrupt")
        write_json_atomic(rj, info)


def run_specs(specs, workers=None, on_result=None, *, processes=None) -> list[RunResult]:
    """Execute specs in a process pool of ``workers`` (default: one per CPU, at most one per
    spec); a failing cell never stops the others. Results come back in ``specs`` order;
    ``on_result(result)`` is called as each finishes.

    One worker (or one spec) runs in this process unless ``processes=True``. Ctrl-C
    (KeyboardInterrupt in this process) cancels what has not started, stops the cells that
    are running (their worker processes are terminated; their kernels exit with them; their
    run.json says ``interrupted``) and re-raises: finished cells are kept on disk."""
    specs = list(specs)
    workers = default_workers(len(specs)) if workers is None else max(1, int(workers))
    cpus = os.cpu_count() or 1
    for s in specs:
        if s.threads is None and workers > 1:
            s.threads = max(1, cpus // min(workers, len(specs)))
    if not specs:
        return []
    if (workers == 1 or len(specs) == 1) and not processes:
        out = []
        for s in specs:
            r = execute_spec(s)
            if on_result:
                on_result(r)
            out.append(r)
        return out
    import multiprocessing as mp

    results: dict[int, RunResult] = {}
    pool = ProcessPoolExecutor(max_workers=min(workers, len(specs)),
                               mp_context=mp.get_context("spawn"), initializer=_worker_init)
    interrupted = False
    try:
        futures = {pool.submit(_execute_in_worker, s): i for i, s in enumerate(specs)}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                r = fut.result()
            except Exception as e:  # the worker itself died
                s = specs[i]
                r = RunResult(spec=s, run_dir=Path(s.run_dir), ok=False, results={},
                              error=f"{type(e).__name__}: {e}", error_name=type(e).__name__)
            results[i] = r
            if on_result:
                on_result(r)
    except KeyboardInterrupt:
        interrupted = True
        procs = list((getattr(pool, "_processes", None) or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(timeout=15)
        for p in procs:   # a worker stuck past its kernel's shutdown: no orphans either way
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
        for i, s in enumerate(specs):
            if i not in results:
                mark_interrupted(s)
        raise
    finally:
        if not interrupted:
            pool.shutdown(wait=True, cancel_futures=True)
    return [results[i] for i in range(len(specs))]


def execute_seeds(notebook, scale="workshop", seeds=(0, 1, 2), params=None, out_dir=None, *,
                  workers=None, timeout=None, on_result=None) -> Group:
    """Execute ``notebook`` once per seed, in parallel processes, into one group directory
    (``<out_dir>/<stamp>-<scale>-seeds0-1-2-.../seed0, seed1, ...``); aggregate the
    recorded values (mean ± std) into ``summary.json`` and ``summary.csv``."""
    nb, params = _validate(notebook, scale, params)
    seeds = [check_seed(s) for s in seeds]
    timeout = check_timeout(timeout)
    if not seeds:
        raise ParameterError("seed: give at least one seed")
    if len(set(seeds)) != len(seeds):
        raise ParameterError(f"seed values must be distinct; got {' '.join(map(str, seeds))}")
    label = f"{scale}-seeds{'-'.join(map(str, seeds))}" if len(seeds) <= 6 else \
        f"{scale}-{len(seeds)}seeds"
    group = new_run_dir(_default_parent(nb, out_dir), label=label)
    specs = [RunSpec(notebook=str(nb.path), scale=scale, seed=s, params=params,
                     run_dir=str(group / f"seed{s}"), timeout=timeout) for s in seeds]
    meta = {"notebook": str(nb.path), "stem": nb.stem, "scale": scale, "params": params,
            "seeds": seeds}
    done = []

    def collect(r):
        done.append(r)
        if on_result:
            on_result(r)

    try:
        runs = run_specs(specs, workers=workers, on_result=collect)
    except KeyboardInterrupt:  # keep what finished: a summary of the runs that did
        write_summary(group, done, summarize(done), meta={**meta, "interrupted": True})
        raise
    rows = summarize(runs)
    write_summary(group, runs, rows, meta=meta)
    return Group(dir=group, runs=runs, summary=rows)


def load_run(run_dir, spec: RunSpec | None = None) -> RunResult | None:
    """Read back a run directory written by :func:`execute_spec` (``run.json`` and
    ``results.json``, else the executed notebook's records). None when it has no readable
    run.json. ``ok`` is True only for status ``ok``."""
    run_dir = Path(run_dir)
    try:
        info = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError):
        return None
    if spec is None:
        spec = RunSpec(notebook=info.get("notebook", ""), scale=info.get("scale", ""),
                       seed=info.get("seed", 0), params=info.get("params") or {},
                       run_dir=str(run_dir))
    results = read_results(run_dir, run_dir / Path(info.get("notebook") or spec.notebook).name)
    ok = info.get("status") == "ok"
    error = info.get("error") or (None if ok else f"status {info.get('status')!r}")
    return RunResult(spec=spec, run_dir=run_dir, ok=ok, results=_decode(results),
                     error=None if ok else error, error_name=info.get("error_name"),
                     duration=float(info.get("duration") or 0.0))


# ---------------------------------------------------------------------------- aggregation

def _is_num(v) -> bool:
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) or isinstance(v, bool)


def summarize(runs, by=()) -> list[dict]:
    """Aggregate recorded values of successful runs, grouped by the parameters named in
    ``by``. One row per (group, recorded name)::

        {**group_params, "name", "n", "mean", "std", "values", "seeds"}

    Numbers (and bools, as 0/1) get mean and sample std (0 for one run); equal-length lists
    of numbers get element-wise lists; anything else keeps only ``values``."""
    groups: dict[tuple, list] = {}
    for r in runs:
        if not r.ok:
            continue
        key = tuple(json.dumps(r.params.get(k), sort_keys=True) for k in by)
        groups.setdefault(key, []).append(r)
    rows = []
    for key, members in groups.items():
        gp = {k: json.loads(v) for k, v in zip(by, key)}
        names = []
        for r in members:
            for name in r.results:
                if name not in names:
                    names.append(name)
        for name in names:
            have = [r for r in members if name in r.results]
            values = [r.results[name] for r in have]
            row = {**gp, "name": name, "n": len(values), "mean": None, "std": None,
                   "values": values, "seeds": [r.seed for r in have]}
            if values and all(_is_num(v) for v in values):
                row["mean"], row["std"] = mean_std(values)
            elif values and all(isinstance(v, list) and v and all(_is_num(x) for x in v)
                                for v in values) and len({len(v) for v in values}) == 1:
                cols = list(zip(*values))
                ms = [mean_std(c) for c in cols]
                row["mean"] = [m for m, _ in ms]
                row["std"] = [s for _, s in ms]
            rows.append(row)
    return rows


def _fmt_num(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        return f"{v:.4g}"
    if isinstance(v, list):
        return f"[{len(v)} values]"
    s = str(v)
    return s if len(s) <= 24 else s[:21] + "..."


def format_table(rows, by=()) -> str:
    """A plain-text table: parameters, name, mean ± std, n, per-seed values."""
    head = list(by) + ["name", "mean ± std", "n", "values (by seed)"]
    body = []
    for r in rows:
        if isinstance(r["mean"], (int, float)):
            ms = f"{_fmt_num(r['mean'])} ± {_fmt_num(r['std'])}"
        elif isinstance(r["mean"], list):
            ms = f"[{len(r['mean'])}-vector]"
        else:
            ms = "—"
        vals = "  ".join(f"{s}:{_fmt_num(v)}" for s, v in zip(r["seeds"], r["values"]))
        body.append([_fmt_num(r.get(k)) for k in by] + [r["name"], ms, str(r["n"]), vals])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)] if body else \
        [len(h) for h in head]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(head, widths)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)).rstrip() for row in body]
    if not body:
        lines.append("(no recorded values)")
    return "\n".join(lines)


def _json_safe(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    return obj


def write_summary(group_dir, runs, rows, meta=None, by=()):
    """Write ``summary.json`` (meta, runs, rows) and ``summary.csv`` (one row per
    recorded name and parameter setting) into ``group_dir``."""
    group_dir = Path(group_dir)
    runs_info = []
    for r in runs:
        try:
            rel = str(Path(r.run_dir).relative_to(group_dir))
        except ValueError:
            rel = str(r.run_dir)
        runs_info.append({"seed": r.seed, "params": r.params, "run_dir": rel, "ok": r.ok,
                          "error": r.error, "duration": round(r.duration, 2)})
    doc = {**(meta or {}), "by": list(by), "runs": runs_info, "summary": rows}
    write_json_atomic(group_dir / "summary.json", _json_safe(doc))
    seeds = sorted({s for r in rows for s in r["seeds"]})
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(list(by) + ["name", "mean", "std", "n"] + [f"seed{s}" for s in seeds])
    for r in rows:
        scalar = isinstance(r["mean"], (int, float))
        by_seed = dict(zip(r["seeds"], r["values"]))
        w.writerow([json.dumps(r.get(k)) if not isinstance(r.get(k), (str, int, float))
                    else r.get(k) for k in by] + [
            r["name"], r["mean"] if scalar else "", r["std"] if scalar else "", r["n"]] + [
            (by_seed[s] if s in by_seed and _is_num(by_seed[s]) else
             json.dumps(by_seed[s]) if s in by_seed else "") for s in seeds])
    tmp = group_dir / ".summary.csv.tmp"
    tmp.write_text(buf.getvalue(), encoding="utf-8")
    os.replace(tmp, group_dir / "summary.csv")


_ROW_KEYS = ("name", "n", "mean", "std", "values", "seeds")


def load_summary(group_dir) -> dict:
    """Read ``summary.json`` of a group directory. A file that is not what
    :func:`write_summary` writes gives a one-line ValueError saying what is wrong."""
    path = Path(group_dir) / "summary.json"
    if not path.exists():
        raise FileNotFoundError(f"{group_dir} has no summary.json")
    doc = read_json_object(path, "a summary (by, runs, summary rows)")
    rows, by = doc.get("summary", []), doc.get("by", [])
    expected = f"expected rows with {', '.join(_ROW_KEYS)} as labkit writes them"
    if not isinstance(by, list) or not all(isinstance(k, str) for k in by):
        raise ValueError(f"{path}: 'by' is not a list of parameter names; {expected}")
    if not isinstance(rows, list):
        raise ValueError(f"{path}: 'summary' is not a list; {expected}")
    for i, row in enumerate(rows):
        lacking = [k for k in _ROW_KEYS if k not in row] if isinstance(row, dict) else None
        if lacking is None or lacking or not isinstance(row["values"], list) \
                or not isinstance(row["seeds"], list):
            what = f"lacks {', '.join(lacking)}" if lacking else "is malformed"
            raise ValueError(f"{path}: summary row {i} {what}; {expected}")
    return doc

