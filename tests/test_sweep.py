"""Sweeps (labkit.lab.sweep, `labkit sweep`): grid expansion, aggregation, resuming, failing
cells, Ctrl-C, the figure, the Ray executor, and one-line errors for bad input. The
notebooks are tiny (no torch, no labkit.setup), so each cell takes about a second."""
import json
import math
import os
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labkit.lab.cli import main
from notebook_factory import write_notebook  # tests/ is on sys.path under pytest
from labkit.core.checks import ParameterError
from labkit.lab.runs import RunResult, RunSpec, summarize
from labkit.lab.sweep import expand_grid, setting_name, sweep_figure, write_figure

PARAMS = ('scale = "workshop"\nseed = 0\ndevice = "auto"\nx = 1\ncounter = ""\n'
          'fail_on = None\nhold = ""\nhold_on = None')
BODY = '''import os, time
import labkit
if counter:  # one line per execution: how tests see what ran
    with open(counter, "a") as f:
        f.write(f"{x} {seed}\\n")
if x == fail_on:
    raise ValueError(f"bad x {x}")
if hold and x == hold_on:  # wait while the file exists (the Ctrl-C test)
    with open(hold + ".pid", "w") as f:
        f.write(str(os.getpid()))
    t0 = time.time()
    while os.path.exists(hold) and time.time() - t0 < 120:
        time.sleep(0.1)
labkit.record("y", x * 2 + seed)
labkit.record("curve", [x, seed])
labkit.record("cwd", os.getcwd())
labkit.record("gpus", os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))'''


def make_notebook(path, params=PARAMS, body=BODY):
    return write_notebook(path, "98 · Sweepable", params, body)


@pytest.fixture
def nb(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.delenv("LABKIT_RUN_DIR", raising=False)
    return make_notebook(tmp_path / "nbs" / "98_sweepable.ipynb")


def executions(counter: Path) -> list:
    if not counter.exists():
        return []
    return sorted(tuple(map(int, line.split())) for line in counter.read_text().splitlines())


def rows_by(doc, name):
    return {r["x"]: r for r in doc["summary"] if r["name"] == name}


# ---------------------------------------------------------------------------- the grid

def test_expand_grid_is_the_cartesian_product_in_order():
    cells = expand_grid({"lr": [0.1, 0.01], "mode": ["a", "b", "c"]}, [0, 1])
    assert len(cells) == 2 * 3 * 2
    assert cells[:3] == [({"lr": 0.1, "mode": "a"}, 0), ({"lr": 0.1, "mode": "a"}, 1),
                         ({"lr": 0.1, "mode": "b"}, 0)]
    assert cells[-1] == ({"lr": 0.01, "mode": "c"}, 1)
    assert expand_grid({}, [3, 1]) == [({}, 3), ({}, 1)]
    for grid, seeds, message in [
        ({"lr": []}, [0], "-p lr: give at least one value"),
        ({"lr": [1, 2, 1]}, [0], "values of lr must be distinct; got 1 twice"),
        ({}, [0, 0], "seed values must be distinct"),
        ({}, [-1], "seed must be a non-negative integer; got -1"),
        ({}, [], "seed: give at least one seed"),
    ]:
        with pytest.raises(ParameterError) as e:
            expand_grid(grid, seeds)
        assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_setting_names_are_readable_and_distinct(nb, tmp_path):
    from labkit.lab.notebooks import info
    from labkit.lab.sweep import default_sweep_dir

    assert default_sweep_dir(info(nb), "smoke", {"x": [1], "lr": [2]}) == (
        tmp_path / "runs" / "98_sweepable" / "sweep-smoke-x-lr")
    assert default_sweep_dir(info(nb), "gpu", {}).name == "sweep-gpu-seeds"
    assert setting_name({}) == "default"
    assert setting_name({"lr": 0.001, "steps": 3}) == "lr=0.001,steps=3"
    assert setting_name({"use_kl": True, "mode": "fast"}) == "use_kl=true,mode=fast"
    a, b = setting_name({"path": "a/b"}), setting_name({"path": "a_b"})
    assert a != b and "/" not in a and a.startswith("path=a_b-")
    assert not setting_name({"s": ".hidden"}).startswith(".")


# ---------------------------------------------------------------------------- aggregation

def _fake(x, seed, y, ok=True):
    spec = RunSpec(notebook="n.ipynb", scale="smoke", seed=seed, params={"x": x})
    return RunResult(spec=spec, run_dir=Path(f"/tmp/x{x}s{seed}"), ok=ok,
                     results={"y": y} if ok else {})


def test_aggregation_by_hand_and_the_figure(tmp_path):
    runs = [_fake(1, 0, 2.0), _fake(1, 1, 3.0), _fake(1, 2, 7.0),
            _fake(2, 0, 4.0), _fake(2, 1, 4.0), _fake(2, 2, 0.0, ok=False)]
    rows = {r["x"]: r for r in summarize(runs, by=["x"])}
    assert rows[1]["n"] == 3 and rows[1]["mean"] == pytest.approx(4.0)
    # sample std of 2, 3, 7: deviations -2, -1, 3 -> sqrt((4 + 1 + 9) / 2)
    assert rows[1]["std"] == pytest.approx(math.sqrt(7.0))
    assert rows[2]["n"] == 2 and rows[2]["mean"] == 4.0 and rows[2]["std"] == 0.0
    fig = sweep_figure(list(rows.values()), {"x": [1, 2]}, "y", title="t", seeds=[0, 1, 2])
    mean = fig.data[0]
    assert list(mean.x) == [1, 2] and list(mean.y) == pytest.approx([4.0, 4.0])
    assert list(mean.error_y.array) == pytest.approx([math.sqrt(7.0), 0.0])
    assert sorted(fig.data[1].y) == [2.0, 3.0, 4.0, 4.0, 7.0]      # every seed, faint
    html = write_figure(fig, tmp_path)
    assert html == tmp_path / "figure.html"
    text = html.read_text(encoding="utf-8")
    assert "<script src=\"https://cdn" not in text and len(text) > 1_000_000   # plotly.js inline
    svg = ET.fromstring((tmp_path / "figure.svg").read_text())
    assert svg.tag.endswith("svg")
    assert json.loads((tmp_path / "figure.json").read_text())["data"][0]["y"] == [4.0, 4.0]
    # a categorical parameter and a second varying one: one line per setting of the second
    cat = summarize([_fake("a", 0, 1.0), _fake("b", 0, 2.0)], by=["x"])
    fig = sweep_figure(cat, {"x": ["a", "b"]}, "y")
    assert fig.layout.xaxis.type == "category"
    write_figure(fig, tmp_path)
    assert ET.fromstring((tmp_path / "figure.svg").read_text()).tag.endswith("svg")


# ---------------------------------------------------------------------------- local

def test_local_sweep_aggregates_resumes_and_extends(nb, tmp_path, capsys):
    counter = tmp_path / "count.txt"
    out = tmp_path / "sweep"
    argv = ["sweep", str(nb), "--scale", "smoke", "--seed", "0", "1", "-p", "x", "1", "2",
            "-p", "counter", str(counter), "--out", str(out), "--workers", "2"]
    t0 = time.time()
    assert main(argv) == 0, capsys.readouterr()
    first_wall = time.time() - t0
    stdout = capsys.readouterr().out
    assert stdout.strip().splitlines()[-1] == f"sweep directory: {out}"
    assert executions(counter) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    # the table: y = 2x + seed over seeds 0, 1 -> mean 2x + 0.5, std sqrt(0.5)
    doc = json.loads((out / "summary.json").read_text())
    assert doc["by"] == ["x", "counter"] and doc["metric"] == "y" and doc["status"] == "complete"
    y = rows_by(doc, "y")
    assert (y[1]["mean"], y[2]["mean"]) == (2.5, 4.5)
    assert y[1]["std"] == pytest.approx(math.sqrt(0.5)) and y[1]["n"] == 2
    assert y[2]["values"] == [4, 5] and y[2]["seeds"] == [0, 1]
    assert rows_by(doc, "curve")[2]["mean"] == [2.0, 0.5]
    csv = (out / "summary.csv").read_text().splitlines()
    assert csv[0] == "x,counter,name,mean,std,n,seed0,seed1"
    assert csv[1].startswith(f"1,{counter},y,2.5,0.707")
    assert "mean ± std" in stdout and "2.5 ± 0.7071" in stdout
    # each cell in its own run directory; the notebook ran in its own folder (local)
    cell = out / setting_name({"x": 2, "counter": str(counter)}) / "seed1"
    assert json.loads((cell / "run.json").read_text())["status"] == "ok"
    assert (cell / "98_sweepable.ipynb").is_file()
    assert json.loads((cell / "results.json").read_text())["cwd"] == str(nb.parent)
    assert {"figure.html", "figure.svg", "figure.json", "sweep.json"} <= {
        p.name for p in out.iterdir()}
    sweep = json.loads((out / "sweep.json").read_text())
    assert [c["status"] for c in sweep["cells"]] == ["ok"] * 4 and sweep["grid"]["x"] == [1, 2]
    # `labkit results` reads the sweep directory
    assert main(["results", str(out)]) == 0
    assert "counter" in capsys.readouterr().out

    # the same command again: nothing runs twice, the aggregate is the same
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("run.json")}
    t0 = time.time()
    assert main(argv) == 0
    resume_wall = time.time() - t0
    stdout = capsys.readouterr().out
    assert "4 cells, 4 already done, 0 to run" in stdout and stdout.count("skipped") == 4
    assert executions(counter) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("run.json")} == mtimes
    assert json.loads((out / "summary.json").read_text())["summary"] == doc["summary"]
    assert resume_wall < first_wall

    # a bigger grid in the same directory runs only the new cells
    assert main(argv[:11] + ["3"] + argv[11:]) == 0
    assert "6 cells, 4 already done, 2 to run" in capsys.readouterr().out
    assert executions(counter) == [(1, 0), (1, 1), (2, 0), (2, 1), (3, 0), (3, 1)]
    assert rows_by(json.loads((out / "summary.json").read_text()), "y")[3]["mean"] == 6.5


def test_a_failing_cell_is_reported_and_the_others_finish(nb, tmp_path, capsys):
    counter = tmp_path / "count.txt"
    out = tmp_path / "sweep"
    argv = ["sweep", str(nb), "--scale", "smoke", "-p", "x", "1", "3", "-p", "fail_on", "3",
            "-p", "counter", str(counter), "--out", str(out)]
    assert main(argv) == 1
    captured = capsys.readouterr()
    err = [line for line in captured.err.splitlines() if line.startswith("error: ")]
    assert len(err) == 1 and "x=3" in err[0] and "ValueError: bad x 3" in err[0], err
    assert "FAILED (ValueError: bad x 3" in captured.out
    doc = json.loads((out / "summary.json").read_text())
    assert list(rows_by(doc, "y")) == [1] and doc["status"] == "incomplete"
    statuses = {c["params"]["x"]: c["status"] for c in
                json.loads((out / "sweep.json").read_text())["cells"]}
    assert statuses == {1: "ok", 3: "failed"}
    assert (out / "figure.html").exists()
    # a re-run tries the failed cell again, and only it
    assert main(argv) == 1
    assert executions(counter) == [(1, 0), (3, 0), (3, 0)]


def test_ctrl_c_stops_cleanly_keeps_finished_cells_and_resumes(nb, tmp_path, capsys):
    counter, hold, out = tmp_path / "count.txt", tmp_path / "hold", tmp_path / "sweep"
    hold.touch()
    argv = ["sweep", str(nb), "--scale", "smoke", "-p", "x", "1", "2", "-p", "hold", str(hold),
            "-p", "hold_on", "2", "-p", "counter", str(counter), "--out", str(out),
            "--workers", "2"]
    # Ctrl-C in a terminal: SIGINT at its default. A test run started as a background job of a
    # non-interactive shell inherits SIGINT ignored (POSIX), and so would the sweep; reset it
    cli = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
           "from labkit.lab.cli import main; sys.exit(main(sys.argv[1:]))")
    p = subprocess.Popen([sys.executable, "-c", cli, *argv], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    done_cell = out / setting_name({"x": 1, "hold": str(hold), "hold_on": 2,
                                    "counter": str(counter)}) / "seed0" / "run.json"
    pid_file = Path(str(hold) + ".pid")
    deadline = time.time() + 120
    try:
        while time.time() < deadline and p.poll() is None:
            if pid_file.exists() and done_cell.exists() and \
                    json.loads(done_cell.read_text())["status"] == "ok":
                break
            time.sleep(0.2)
        assert p.poll() is None, p.communicate()
        kernel = int(pid_file.read_text())
        t0 = time.time()
        p.send_signal(signal.SIGINT)
        stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert time.time() - t0 < 20                   # stopped, did not wait for the held cell
    assert p.returncode == 130
    # labkit says one line; a kernel being stopped may add its own log line ("[IPKernelApp] ...",
    # or nbclient's "Kernel died while waiting for execute reply.") to the inherited stderr,
    # which is not labkit's message
    own = [line for line in stderr.splitlines()
           if not line.startswith("[IPKernelApp]") and not line.startswith("Kernel died while")]
    assert len(own) == 1 and own[0].startswith("error: interrupted: 1 of 2 cells finished"), stderr
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["status"] == "interrupted"
    assert [c["status"] for c in sweep["cells"]] == ["ok", "interrupted"]
    held = out / sweep["cells"][1]["run_dir"] / "run.json"
    assert json.loads(held.read_text())["status"] == "interrupted"
    assert list(rows_by(json.loads((out / "summary.json").read_text()), "y")) == [1]
    # the held cell's kernel went with its worker (gone, or a zombie awaiting its reaper)
    for _ in range(50):
        try:
            state = Path(f"/proc/{kernel}/stat").read_text().split()[2]
        except FileNotFoundError:
            state = "gone"
        if state in ("gone", "Z", "X"):
            break
        time.sleep(0.1)
    assert state in ("gone", "Z", "X")
    # resume: only the interrupted cell runs
    hold.unlink()
    assert main(argv) == 0
    assert "2 cells, 1 already done, 1 to run" in capsys.readouterr().out
    assert executions(counter) == [(1, 0), (2, 0), (2, 0)]
    assert sorted(rows_by(json.loads((out / "summary.json").read_text()), "y")) == [1, 2]


# ---------------------------------------------------------------------------- ray

def test_ray_executor_end_to_end(nb, tmp_path, capsys):
    pytest.importorskip("ray")
    counter, out = tmp_path / "count.txt", tmp_path / "sweep"
    argv = ["sweep", str(nb), "--scale", "smoke", "--seed", "0", "1", "-p", "x", "1", "2",
            "-p", "counter", str(counter), "--out", str(out)]
    # --workers 2: a local Ray of 2 CPUs (ray.init(num_cpus=2, include_dashboard=False))
    assert main(argv + ["--executor", "ray", "--workers", "2"]) == 0, capsys.readouterr()
    assert "ray (local" in capsys.readouterr().out
    assert executions(counter) == [(1, 0), (1, 1), (2, 0), (2, 1)]
    y = rows_by(json.loads((out / "summary.json").read_text()), "y")
    assert (y[1]["mean"], y[2]["mean"], y[1]["n"]) == (2.5, 4.5, 2)
    assert y[2]["std"] == pytest.approx(math.sqrt(0.5))
    cell = out / setting_name({"x": 1, "counter": str(counter)}) / "seed0"
    info = json.loads((cell / "run.json").read_text())
    assert info["status"] == "ok" and info["executor"] == "ray"
    assert info["notebook"] == str(nb)                         # local paths, not the worker's
    assert (cell / "98_sweepable.ipynb").is_file()             # brought back
    results = json.loads((cell / "results.json").read_text())
    assert results["y"] == 2 and results["cwd"] != str(nb.parent)   # shipped, not shared
    assert (out / "figure.html").exists()
    # resuming with the local executor: nothing runs again
    assert main(argv) == 0
    assert executions(counter) == [(1, 0), (1, 1), (2, 0), (2, 1)]


def test_ray_cells_at_gpu_scale_request_a_gpu(nb, tmp_path):
    ray = pytest.importorskip("ray")
    from labkit.lab.sweep import run_sweep

    # a Ray we started, with one (logical) GPU: the sweep uses it and leaves it running
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False)
    try:
        sw = run_sweep(nb, scale="gpu", seeds=[0], grid={"x": [1, 2]}, executor="ray",
                       out=tmp_path / "gpu")
        assert ray.is_initialized()
    finally:
        ray.shutdown()
    assert sw.ok and [c.result.results["gpus"] for c in sw.cells] == ["0", "0"]
    assert [c.result.results["y"] for c in sw.cells] == [2, 4]


def test_ray_missing_is_one_line_with_the_install_command(nb, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)              # import ray -> ImportError
    assert main(["sweep", str(nb), "--scale", "smoke", "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and 'pip install "ray>=2.9"' in err, err


# ---------------------------------------------------------------------------- bad input

def _bad_notebooks(tmp_path):
    (tmp_path / "broken.ipynb").write_text("{not json")
    make_notebook(tmp_path / "noparams.ipynb", params="# no tag")
    nb = json.loads((tmp_path / "noparams.ipynb").read_text())
    for cell in nb["cells"]:
        cell["metadata"] = {}
    (tmp_path / "noparams.ipynb").write_text(json.dumps(nb))


@pytest.mark.parametrize("extra, fragment", [
    (["-p", "nope", "1"], "unknown parameter 'nope' for 98_sweepable; accepted: device, x, "),
    (["-p", "x"], "-p x: give at least one value"),
    (["-p"], "argument -p/--param: expected at least one argument"),
    (["-p", "x", "1", "1"], "values of x must be distinct; got 1 twice"),
    (["-p", "x", "1", "-p", "x", "2"], "parameter x is given twice"),
    (["-p", "seed", "1", "2"], "set seed with --seed"),
    (["--executor", "slurm"], "argument --executor: invalid choice: 'slurm'"),
    (["--address", "auto"], "--address is for --executor ray"),
    (["--seed", "-1"], "seed must be a non-negative integer; got -1"),
    (["--seed", "0", "0"], "seed values must be distinct"),
    (["--workers", "0"], "workers must be an integer >= 1; got 0"),
    (["--scale", "huge"], "scale must be one of smoke, workshop, gpu; got 'huge'"),
    (["NB=missing.ipynb"], "unknown notebook"),
    (["NB=broken.ipynb"], "cannot read notebook"),
    (["NB=noparams.ipynb"], "noparams.ipynb has no cell tagged 'parameters'"),
])
def test_bad_input_is_one_line_exit_2(nb, tmp_path, capsys, extra, fragment):
    _bad_notebooks(tmp_path)
    target = str(nb)
    if extra and extra[0].startswith("NB="):
        target, extra = str(tmp_path / extra[0][3:]), extra[1:]
    assert main(["sweep", target, "--scale", "smoke", "--out", str(tmp_path / "s"), *extra]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and fragment in err, err
    assert not (tmp_path / "s" / "sweep.json").exists()          # nothing ran


def test_a_sweep_directory_is_not_shared(nb, tmp_path, capsys):
    out = tmp_path / "s"
    out.mkdir()
    # another scale's sweep lives there
    (out / "sweep.json").write_text(json.dumps({"stem": "98_sweepable", "scale": "workshop"}))
    assert main(["sweep", str(nb), "--scale", "smoke", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "holds a sweep of 98_sweepable at scale workshop" in err
    # a sweep running there now
    import fcntl

    (out / "sweep.json").unlink()
    with open(out / ".sweep.lock", "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        f.write("4242")
        f.flush()
        assert main(["sweep", str(nb), "--scale", "smoke", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "in use by another sweep (pid 4242)" in err


def test_metric_that_was_not_recorded_is_reported(nb, tmp_path, capsys):
    out = tmp_path / "s"
    assert main(["sweep", str(nb), "--scale", "smoke", "--out", str(out),
                 "--metric", "acc"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "metric 'acc' was not recorded; numeric records: y" in err
    assert (out / "summary.json").exists() and not (out / "figure.html").exists()
    # the right metric later: nothing runs again, the figure is drawn
    assert main(["sweep", str(nb), "--scale", "smoke", "--out", str(out),
                 "--metric", "y"]) == 0
    assert "1 already done" in capsys.readouterr().out and (out / "figure.html").exists()
