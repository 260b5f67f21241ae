"""``labkit``: list, run and read back the notebooks; pretrain base models.

    labkit list [--json]
    labkit run NOTEBOOK [--scale S] [--seed N ...] [-p KEY VALUE ...] [--out DIR] [--workers N]
    labkit sweep NOTEBOOK [--scale S] [--seed N ...] [-p KEY V1 V2 ...] [--metric NAME]
                 [--executor local|ray] [--address ADDR] [--workers N] [--out DIR]
    labkit results PATH [--json]   (PATH may be the --out directory that holds one run)
    labkit run NOTEBOOK --resume RUN_DIR   (rerun into RUN_DIR: training loops resume from checkpoints)
    labkit site OUT_DIR [--runs DIR ...] [--scale S] [--seed N]   (labkit.lab.site)
    labkit export RUN_DIR --to tensorboard OUT_DIR | --to trackio [DIR]   (labkit.lab.export)
    labkit student OUT_DIR [NOTEBOOK ...]   (workshop copies: solution functions blanked)
    labkit pretrain ...      (labkit.bases.pretrain)

Bad input gives a one-line error and exit code 2; a notebook that fails gives exit code 1;
Ctrl-C gives 130 and SIGTERM 143, both after stopping the kernels cleanly (run.json says
``interrupted``; a sweep keeps its finished cells: run the same command again to resume).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
from importlib import import_module
from pathlib import Path

from labkit.core.checks import ParameterError, check_timeout, is_finite_value
from labkit.lab.runs import Terminated, sigterm_as_interrupt

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143   # 128 + SIGINT, 128 + SIGTERM


class _Usage(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump). A value such as ``-3e-4`` or ``-inf``
    after ``-p KEY`` is a value, not an option (plain argparse only knows ``-3`` and ``-.5``),
    so that it reaches the checks that say what is accepted."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(
            r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$|^-(inf|infinity|nan)$", re.IGNORECASE)

    def error(self, message):
        raise _Usage(f"{self.prog}: {message} (see {self.prog} --help)")


def _err(msg: str) -> None:
    print(f"error: {' '.join(str(msg).split())}", file=sys.stderr)


_NONFINITE_WORDS = {f"{sign}{word}" for sign in ("", "+", "-")
                    for word in ("nan", "inf", "infinity")}


def _parse_value(text: str, what: str = "value"):
    """``-p KEY VALUE``: JSON when it parses (numbers, true/false/null, lists), else the string.

    NaN and infinities (``nan``, ``inf``, JSON's ``NaN``/``Infinity``, ``1e999``, inside lists
    too) are refused here: no knob takes them, and only the kernel would notice otherwise."""
    refused = ParameterError(f"{what}: {text} is not a finite value; accepted: finite numbers "
                             f"(50, 3e-4), true/false, null, strings, JSON lists")
    if text.strip().lower() in _NONFINITE_WORDS:
        raise refused
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if not is_finite_value(value):
        raise refused
    return value


def _check_out(text: str) -> Path:
    """``--out``: a directory that exists or can be made, and that we may write in; checked
    before any kernel starts, rather than failing inside the run."""
    path = Path(text).expanduser()
    accepted = "accepted: a writable directory, existing or new"
    if path.exists() and not path.is_dir():
        raise ParameterError(f"--out {text} is a file, not a directory; {accepted}")
    base = path
    while not base.exists() and base != base.parent:   # the first part that exists
        base = base.parent
    if not base.is_dir():
        raise ParameterError(f"--out {text} is under {base}, which is a file; {accepted}")
    try:
        tempfile.TemporaryDirectory(prefix=".labkit-probe-", dir=base).cleanup()
    except OSError as e:
        raise ParameterError(f"--out {text}: cannot write in {base} ({e.strerror or e}); "
                             f"{accepted}") from None
    return path


def _usage_failure(error_names) -> bool:
    """Every failed run stopped on the notebook's own check of a parameter."""
    from labkit.lab.runs import USAGE_ERRORS

    return all(name in USAGE_ERRORS for name in error_names)


# ---------------------------------------------------------------------------- list

def _paper_registry():
    """(ids, error) from labkit.lab.papers, degrading gracefully while it does not exist."""
    try:
        papers = import_module("labkit.lab.papers")
    except ImportError as e:
        return None, f"paper registry unavailable ({e})"
    reg = getattr(papers, "PAPERS", None)
    if reg is None:
        return None, "labkit.lab.papers has no PAPERS"
    if isinstance(reg, dict):
        return list(reg), None
    ids = []
    for p in reg:
        ids.append(p if isinstance(p, str) else getattr(p, "id", None) or p["id"])
    return ids, None


def cmd_list(args) -> int:
    from labkit.lab.notebooks import discover

    infos = discover()
    ids, problem = _paper_registry()
    used = [p for i in infos for p in i.papers]
    cov = None
    if ids is not None:
        covered = [p for p in ids if p in used]
        cov = {"total": len(ids), "covered": covered,
               "missing": [p for p in ids if p not in used],
               "unknown": sorted({p for p in used if p not in ids})}
    if args.json:
        doc = {"notebooks": [i.to_dict() for i in infos], "papers": cov}
        if problem:
            doc["papers_error"] = problem
        print(json.dumps(doc, indent=1))
        return EXIT_OK
    if not infos:
        print("no notebooks found")
    w = max([len(i.stem) for i in infos] + [8])
    for i in infos:
        minutes = f"{i.workshop_minutes:g} min" if i.workshop_minutes is not None else "? min"
        print(f"{i.stem.ljust(w)}  {minutes:>7}  {i.title}")
        print(f"{'':{w}}           papers: {', '.join(i.papers) or '-'}")
    print()
    if cov is None:
        print(f"papers: {problem}")
    else:
        print(f"papers covered: {len(cov['covered'])}/{cov['total']}")
        if cov["missing"]:
            print(f"not yet covered: {', '.join(cov['missing'])}")
        if cov["unknown"]:
            print(f"ids in notebooks but not in the registry: {', '.join(cov['unknown'])}")
    return EXIT_OK


# ---------------------------------------------------------------------------- run

def cmd_run(args) -> int:
    from labkit.lab.notebooks import resolve
    from labkit.core.checks import check_choice, check_seed, SCALES
    from labkit.lab.runs import execute, execute_seeds

    nb = resolve(args.notebook)
    if args.resume is not None:
        return _cmd_resume(args, nb)
    args.scale = args.scale or "workshop"
    check_choice("scale", args.scale, SCALES)
    seeds = [check_seed(_parse_value(s, "--seed")) for s in (args.seed or ["0"])]
    params = {}
    for key, value in args.param or []:
        params[key] = _parse_value(value, f"-p {key}")
    if args.workers is not None and args.workers < 1:
        raise ParameterError(f"workers must be an integer >= 1; got {args.workers}")
    check_timeout(args.timeout)
    from labkit.lab.runs import check_params

    params = check_params(nb, params)
    if args.out is not None:
        _check_out(args.out)
    print(f"running {nb.stem} at scale {args.scale}, seed{'s' if len(seeds) > 1 else ''} "
          f"{' '.join(map(str, seeds))}" + (f", {params}" if params else ""), flush=True)

    if len(seeds) == 1:
        r = execute(nb, scale=args.scale, seed=seeds[0], params=params, out_dir=args.out,
                    timeout=args.timeout)
        if r.results:
            width = max(len(k) for k in r.results)
            for k, v in r.results.items():
                print(f"  {k.ljust(width)}  {_show(v)}")
        if not r.ok:
            print(f"run directory: {r.run_dir}", flush=True)
            _err(f"{nb.stem} failed: {r.error}; see {r.notebook_out}")
            return EXIT_USAGE if _usage_failure([r.error_name]) else EXIT_FAILED
        print(f"run directory: {r.run_dir}")
        return EXIT_OK

    def progress(r):
        state = "ok" if r.ok else f"FAILED ({r.error})"
        print(f"  seed {r.seed}: {state} in {r.duration:.1f}s", flush=True)

    g = execute_seeds(nb, scale=args.scale, seeds=seeds, params=params, out_dir=args.out,
                      workers=args.workers, timeout=args.timeout, on_result=progress)
    print()
    print(g.table())
    print()
    failed = [r for r in g.runs if not r.ok]
    for r in failed:
        _err(f"{nb.stem} seed {r.seed} failed: {r.error}; see {r.notebook_out}")
    print(f"run directory: {g.dir}")
    if failed:
        return EXIT_USAGE if _usage_failure(r.error_name for r in failed) else EXIT_FAILED
    return EXIT_OK


def _cmd_resume(args, nb) -> int:
    """``labkit run NOTEBOOK --resume RUN_DIR``: the run's own scale, seed and parameters."""
    from labkit.lab.runs import execute_spec, resume_spec

    given = [opt for opt, v in (("--seed", args.seed), ("-p", args.param), ("--out", args.out),
                                ("--workers", args.workers)) if v]
    if given:
        raise ParameterError(f"--resume takes the scale, seed and parameters from RUN_DIR/run.json "
                             f"and writes into RUN_DIR; drop {', '.join(given)}")
    run_json = Path(args.resume) / "run.json"
    try:
        recorded = json.loads(run_json.read_text()).get("scale") if run_json.is_file() else None
    except (OSError, ValueError, AttributeError):
        recorded = None   # resume_run says what is wrong with it
    if args.scale is not None and recorded is not None and args.scale != recorded:
        raise ParameterError(f"--resume {args.resume} ran at scale {recorded}; drop --scale "
                             f"{args.scale} (a resumed run keeps its scale)")
    spec = resume_spec(args.resume, nb, timeout=args.timeout)
    print(f"resuming {nb.stem} at scale {spec.scale}, seed {spec.seed} in {args.resume}", flush=True)
    r = execute_spec(spec)
    for k, v in r.results.items():
        print(f"  {k.ljust(max(len(k) for k in r.results))}  {_show(v)}")
    print(f"run directory: {r.run_dir}", flush=True)
    if not r.ok:
        _err(f"{nb.stem} failed: {r.error}; see {r.notebook_out}")
        return EXIT_USAGE if _usage_failure([r.error_name]) else EXIT_FAILED
    return EXIT_OK


def _show(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.6g}"
    s = json.dumps(v) if not isinstance(v, str) else v
    return s if len(s) <= 100 else s[:97] + "..."


# ---------------------------------------------------------------------------- sweep

def cmd_sweep(args) -> int:
    import time

    from labkit.lab.sweep import SweepInterrupted, figure_x, run_sweep

    seeds = [_parse_value(x, "--seed") for x in (args.seed or ["0"])]
    grid = []
    for item in args.param or []:
        key, values = item[0], item[1:]
        if not values:
            raise ParameterError(f"-p {key}: give at least one value")
        grid.append((key, [_parse_value(v, f"-p {key}") for v in values]))
    if len({k for k, _ in grid}) != len(grid):
        dup = next(k for i, (k, _) in enumerate(grid) if k in [x for x, _ in grid[:i]])
        raise ParameterError(f"parameter {dup} is given twice; give all its values after "
                             f"one -p {dup}")
    check_timeout(args.timeout)
    if args.out is not None:
        _check_out(args.out)
    state = {"n": 0, "total": 0}

    def event(kind, cell, info):
        if kind == "start":
            state["total"] = info["cells"]
            done = info["cells"] - info["todo"]
            how = info["executor"]
            if info["executor"] == "local" and info["workers"]:
                how += f", {info['workers']} worker{'s' * (info['workers'] != 1)}"
            elif info["executor"] == "ray":
                how += f" at {info['address']}" if info["address"] else " (local)"
            print(f"sweep directory: {info['dir']}")
            print(f"{info['cells']} cells, {done} already done, {info['todo']} to run "
                  f"({how})", flush=True)
            if info["stale"]:
                print("warning: the notebook changed since the finished cells ran; they are "
                      "kept (use another --out to run everything again)", flush=True)
            return
        state["n"] += 1
        head = f"  [{state['n']}/{state['total']}] {cell.label}:"
        if kind == "done":
            print(f"{head} done before (skipped)", flush=True)
        else:
            r = info
            what = "ok" if r.ok else f"FAILED ({r.error})"
            print(f"{head} {what} in {r.duration:.1f}s", flush=True)

    t0 = time.time()
    try:
        sw = run_sweep(args.notebook, scale=args.scale, seeds=seeds, grid=dict(grid),
                       out=args.out, executor=args.executor, address=args.address,
                       workers=args.workers, metric=args.metric, timeout=args.timeout,
                       on_event=event)
    except SweepInterrupted as e:
        sw = e.sweep
        finished = sum(c.status in ("ok", "done", "failed") for c in sw.cells)
        how = "terminated" if e.terminated else "interrupted"
        _err(f"{how}: {finished} of {len(sw.cells)} cells finished and are kept in "
             f"{sw.dir}; run the same command again to resume")
        return EXIT_TERMINATED if e.terminated else EXIT_INTERRUPTED
    wall = time.time() - t0
    print()
    print(sw.table())
    print()
    if sw.figure is not None:
        print(f"figure: {sw.figure} ({sw.metric} against {figure_x(sw.grid)}; "
              f"also figure.svg, figure.json)")
    for problem in sw.problems:
        _err(problem)
    for c in sw.failed:
        _err(f"{sw.notebook.stem} {c.label} failed: {c.result.error}; "
             f"see {c.result.notebook_out}")
    print(f"{len(sw.cells)} cells in {wall:.1f}s; summary: {sw.dir / 'summary.csv'}")
    print(f"sweep directory: {sw.dir}")
    if sw.failed:
        # a cell's ValueError is one failing cell of the grid; a ParameterError in every
        # cell is input that no cell accepts
        return EXIT_USAGE if all(c.result.error_name == "ParameterError"
                                 for c in sw.failed) else EXIT_FAILED
    return EXIT_USAGE if sw.problems else EXIT_OK


# ---------------------------------------------------------------------------- results

_RUN_FILES = ("results.json", "run.json", "summary.json")


def _holds_run(d: Path) -> bool:
    return d.is_dir() and not d.name.startswith(".") and any((d / f).exists()
                                                             for f in _RUN_FILES)


def _the_run_in(path: Path) -> Path:
    """``labkit results DIR`` where DIR is a ``--out`` directory: the one run (or group of
    seeds, or sweep) inside it. Several: a one-line error listing them."""
    if not path.is_dir() or _holds_run(path) or any(path.glob("*.ipynb")):
        return path
    inside = sorted(d for d in path.iterdir() if _holds_run(d))
    if len(inside) > 1:
        names = ", ".join(d.name for d in inside[:8]) + (", ..." if len(inside) > 8 else "")
        raise ParameterError(f"{path} holds {len(inside)} runs ({names}); accepted: one run "
                             f"directory, e.g. labkit results {inside[-1]}")
    return inside[0] if inside else path


def cmd_results(args) -> int:
    from labkit.lab.record import read_timings, results
    from labkit.lab.runs import format_table, load_summary

    path = Path(args.path)
    if not path.exists():
        raise ParameterError(f"no such notebook or run directory: {path}")
    try:
        path = _the_run_in(path)
        if path.is_dir() and (path / "summary.json").exists():
            doc = load_summary(path)
            print(json.dumps(doc, indent=1) if args.json else
                  format_table(doc.get("summary", []), by=doc.get("by", [])))
            return EXIT_OK
        values = results(path, decode=not args.json)
        timings = read_timings(path) if path.is_dir() else {}
    except (OSError, ValueError) as e:   # missing, unreadable or malformed files
        raise ParameterError(str(e)) from None
    if args.json:
        print(json.dumps(values, indent=1))
        return EXIT_OK
    if not values:
        print("(no recorded values)")
    _print_values(values)
    if timings:   # wall times: apart from the results, which they never join
        print("\ntimings (labkit.record_time)")
        _print_values(timings)
    return EXIT_OK


def _print_values(values: dict) -> None:
    width = max([len(k) for k in values] + [1])
    for k, v in values.items():
        print(f"{k.ljust(width)}  {_show(v)}")


# ---------------------------------------------------------------------------- student

def cmd_student(args) -> int:
    """Student copies for a workshop (labkit.lab.exercises): every notebook, or the named ones."""
    from labkit.lab.exercises import write_student_copies
    from labkit.lab.notebooks import discover, notebooks_dir, resolve

    if Path(args.out_dir).expanduser().resolve() == notebooks_dir().resolve():
        raise ParameterError(f"OUT_DIR {args.out_dir} is the notebooks directory: the copies would overwrite "
                             f"the solutions; accepted: another directory")
    try:
        out = _check_out(args.out_dir).expanduser()
    except ParameterError as e:
        raise ParameterError(str(e).replace("--out ", "OUT_DIR ", 1)) from None
    infos = [resolve(n) for n in args.notebooks] if args.notebooks else discover()
    try:
        written = write_student_copies(out, infos)
    except ValueError as e:   # a notebook whose exercises name no function it can blank
        if isinstance(e, ParameterError):
            raise
        _err(str(e))
        return EXIT_FAILED
    for path in written:
        print(f"wrote {path}")
    return EXIT_OK


# ---------------------------------------------------------------------------- site, export

def cmd_site(args) -> int:
    from labkit.core.checks import SCALES, check_choice, check_seed
    from labkit.lab import site

    args.seed = check_seed(_parse_value(args.seed, "--seed"))
    if args.scale is not None:
        check_choice("scale", args.scale, SCALES)
    check_timeout(args.timeout)
    return site.main(args)


def cmd_export(args) -> int:
    from labkit.lab import export

    return export.main(args)


# ---------------------------------------------------------------------------- dispatch

def _dispatch(module: str, what: str, argv) -> int:
    try:
        mod = import_module(module)
    except ImportError as e:
        if e.name and module.startswith(e.name) or e.name == module:
            _err(f"labkit {what} is not available here ({module} is missing)")
            return EXIT_USAGE
        raise
    main = getattr(mod, "main", None)
    if main is None:
        _err(f"labkit {what} is not available here ({module} has no main)")
        return EXIT_USAGE
    rc = main(list(argv))
    return int(rc or 0)


def build_parser() -> argparse.ArgumentParser:
    ap = _Parser(prog="labkit", description="labkit: a notebook-first lab for self-evolving "
                                            "learning systems.")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("list", help="notebooks, their papers, and paper coverage")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("run", help="execute a notebook with papermill (several seeds in parallel)")
    p.add_argument("notebook", help="a path, or a short name: 02, entropy_mechanism, "
                                    "02_entropy_mechanism")
    p.add_argument("--scale", help="smoke | workshop | gpu (default workshop)")
    p.add_argument("--seed", nargs="+", metavar="N", help="one or more seeds (default 0); "
                   "several run as parallel processes and are aggregated (mean ± std)")
    p.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"),
                   help="set a notebook parameter (VALUE parsed as JSON when possible)")
    p.add_argument("--out", metavar="DIR", help="parent directory of the run directory "
                   "(default runs/<NN_name>/, or $LABKIT_RUNS_ROOT/<NN_name>/)")
    p.add_argument("--workers", type=int, help="parallel processes for several seeds "
                   "(default: one per CPU)")
    p.add_argument("--timeout", type=float, help="seconds allowed per notebook cell (a number "
                   "> 0; fractions count)")
    p.add_argument("--resume", metavar="RUN_DIR", help="execute again into RUN_DIR with its "
                   "scale, seed and parameters; loops that call run.resume continue from "
                   "their last checkpoint (RUN_DIR/checkpoints)")

    p = sub.add_parser("sweep", help="a grid of seeds x parameter values: one run per cell, "
                                     "aggregated (mean ± std) with a figure; resumable")
    p.add_argument("notebook", help="a path, or a short name: 02, entropy_mechanism, "
                                    "02_entropy_mechanism")
    p.add_argument("--scale", default="workshop", help="smoke | workshop | gpu (default workshop)")
    p.add_argument("--seed", nargs="+", metavar="N", help="seeds (default 0)")
    p.add_argument("-p", "--param", nargs="+", action="append", metavar=("KEY", "V"),
                   help="a swept parameter and its values: -p lr 1e-4 3e-4 (each value "
                        "parsed as JSON when possible); several -p make a grid")
    p.add_argument("--metric", metavar="NAME", help="the recorded value to plot (default: the "
                   "first numeric one the notebook declares or records)")
    p.add_argument("--executor", default="local", choices=["local", "ray"],
                   help="local: a process pool on this machine (default); ray: one Ray task "
                        "per cell (pip install 'ray>=2.9')")
    p.add_argument("--address", metavar="ADDR", help="Ray cluster address for --executor ray "
                   "(default: start a local Ray)")
    p.add_argument("--workers", type=int, metavar="N", help="cells at a time (local: at most "
                   "the CPU count, default one per CPU; ray: default all)")
    p.add_argument("--out", metavar="DIR", help="the sweep directory (default "
                   "runs/<NN_name>/sweep-<scale>-<keys>); the same directory resumes")
    p.add_argument("--timeout", type=float, help="seconds allowed per notebook cell (a number "
                   "> 0; fractions count)")

    p = sub.add_parser("results", help="recorded values of an executed notebook or run directory")
    p.add_argument("path")
    p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("student", help="workshop copies of the notebooks: solution functions blanked, "
                                       "a labkit.check cell after each")
    p.add_argument("out_dir", metavar="OUT_DIR", help="directory for the copies (not notebooks/)")
    p.add_argument("notebooks", nargs="*", default=[], metavar="NOTEBOOK", help="02, entropy_mechanism, "
                   "a path ... (default: every notebook)")

    p = sub.add_parser("site", help="a static HTML site of the executed notebooks (index.html "
                                    "and one page per notebook; offline, no scripts)")
    p.add_argument("out_dir", metavar="OUT_DIR", help="where index.html and the pages go")
    p.add_argument("--runs", nargs="+", metavar="DIR", help="render the newest executed "
                   "notebook of each series notebook found under DIR (default: execute every "
                   "notebook at --scale first)")
    p.add_argument("--scale", help="smoke | workshop | gpu: the scale to execute at (default "
                   "workshop); with --runs, render only runs of this scale (default: any)")
    p.add_argument("--seed", default="0", metavar="N", help="the seed (default 0; seed 0 of a "
                   "multi-seed run)")
    p.add_argument("--timeout", type=float, help="seconds allowed per notebook cell when "
                   "executing")

    p = sub.add_parser("export", help="a run's metrics.jsonl as TensorBoard event files or "
                                      "trackio runs")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a run directory (or a group of seeds)")
    p.add_argument("--to", nargs="+", required=True, metavar=("FORMAT", "OUT_DIR"),
                   help="tensorboard OUT_DIR (pip install -e '.[tensorboard]'), or trackio "
                        "[TRACKIO_DIR] (pip install -e '.[trackio]')")

    sub.add_parser("pretrain", help="pretrain a tiny base model (labkit pretrain --help)",
                   add_help=False)
    return ap


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "pretrain":
        return _dispatch("labkit.bases.pretrain", "pretrain", argv[1:])
    ap = build_parser()
    try:
        with sigterm_as_interrupt():
            args = ap.parse_args(argv)
            if args.command is None:
                ap.print_help()
                return EXIT_USAGE
            return {"list": cmd_list, "run": cmd_run, "sweep": cmd_sweep,
                    "results": cmd_results, "student": cmd_student,
                    "site": cmd_site, "export": cmd_export}[args.command](args)
    except (_Usage, ParameterError) as e:
        _err(str(e))
        return EXIT_USAGE
    except Terminated:
        _err("terminated (SIGTERM); the run directory says interrupted")
        return EXIT_TERMINATED
    except KeyboardInterrupt:
        _err("interrupted")
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `labkit list | head`
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:  # pragma: no cover
            pass
        return EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
