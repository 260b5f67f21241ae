"""Reliability through real kernels: SIGTERM stops runs and sweeps cleanly (no processes,
no connection files left), declared records are required, timings stay out of
results.json, and the same seed gives byte-identical results. The notebooks are tiny."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labkit.lab.cli import main
from notebook_factory import write_notebook  # tests/ is on sys.path under pytest
from labkit.lab.runs import execute

PARAMS = 'scale = "workshop"\nseed = 0\ndevice = "auto"\nx = 1\nhold = ""\nhold_on = None'
# While ``hold`` exists and x == hold_on, the cell waits, with the kernel's pid in
# ``<hold>.<x>.<seed>.pid``: the signal tests stop the run there.
BODY = '''import os, time
import labkit
if hold and x == hold_on:
    with open(f"{hold}.{x}.{seed}.pid", "w") as f:
        f.write(str(os.getpid()))
    t0 = time.time()
    while os.path.exists(hold) and time.time() - t0 < 120:
        time.sleep(0.1)
labkit.record("y", x * 2 + seed)'''


def make_notebook(path, params=PARAMS, body=BODY, records=("y",)):
    return write_notebook(path, "96 · Reliable", params, body, records)


@pytest.fixture
def nb(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.delenv("LABKIT_RUN_DIR", raising=False)
    return make_notebook(tmp_path / "nbs" / "96_reliable.ipynb")


# ---------------------------------------------------------------------------- processes

def _ppids() -> dict:
    out = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            out[int(d.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return out


def descendants(pid: int) -> set:
    children, found, todo = {}, set(), [pid]
    for p, pp in _ppids().items():
        children.setdefault(pp, []).append(p)
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in found:
                found.add(c)
                todo.append(c)
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in "ZX"
    except OSError:
        return False


def connection_files(env: dict) -> list:
    """Kernel connection files where jupyter_client writes them: a temporary file when
    papermill starts the kernel, else the Jupyter runtime directory."""
    return sorted(Path(env["TMPDIR"]).glob("*.json")) + sorted(
        Path(env["JUPYTER_RUNTIME_DIR"]).glob("kernel-*.json"))


def start_cli(argv, tmp_path):
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmpdir"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    for d in ("TMPDIR", "JUPYTER_RUNTIME_DIR"):
        Path(env[d]).mkdir(parents=True, exist_ok=True)
    p = subprocess.Popen([sys.executable, "-m", "labkit.lab.cli", *argv], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env)
    return p, env


def wait_for(cond, p, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline and p.poll() is None and not cond():
        time.sleep(0.2)
    if p.poll() is not None or not cond():
        p.kill()
        raise AssertionError(f"never ready: {p.communicate()}")


def terminate_and_check(p, env, kernels):
    """SIGTERM the CLI; it exits 143 with one line and leaves no process of its own, no
    kernel and no connection file behind."""
    assert connection_files(env), "the test looks for connection files in the wrong place"
    procs = descendants(p.pid)
    assert set(kernels) <= procs
    t0 = time.time()
    p.send_signal(signal.SIGTERM)
    try:
        stdout, stderr = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert time.time() - t0 < 30, "stopped without waiting for the held cells"
    assert p.returncode == 143, (stdout, stderr)
    own = [line for line in stderr.splitlines() if not line.startswith("[IPKernelApp]")]
    assert len(own) == 1 and own[0].startswith("error: terminated"), stderr
    for _ in range(50):   # reaped by now, or a zombie awaiting its reaper
        left = [q for q in procs if running(q)]
        if not left:
            break
        time.sleep(0.1)
    assert not left, f"processes left running: {left}"
    assert not connection_files(env), connection_files(env)
    return stdout


def test_sigterm_stops_a_run_like_ctrl_c(nb, tmp_path):
    hold = tmp_path / "hold"
    hold.touch()
    p, env = start_cli(["run", str(nb), "--scale", "smoke", "-p", "hold", str(hold),
                        "-p", "hold_on", "1", "--out", str(tmp_path / "out")], tmp_path)
    pid_file = Path(f"{hold}.1.0.pid")
    wait_for(pid_file.exists, p)
    terminate_and_check(p, env, [int(pid_file.read_text())])
    (run_dir,) = (tmp_path / "out").iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "interrupted" and info["error_name"] == "Terminated"


def test_sigterm_stops_parallel_seeds_and_their_workers(nb, tmp_path):
    hold = tmp_path / "hold"
    hold.touch()
    p, env = start_cli(["run", str(nb), "--scale", "smoke", "--seed", "0", "1", "--workers",
                        "2", "-p", "hold", str(hold), "-p", "hold_on", "1",
                        "--out", str(tmp_path / "out")], tmp_path)
    pid_files = [Path(f"{hold}.1.{s}.pid") for s in (0, 1)]
    wait_for(lambda: all(f.exists() for f in pid_files), p)
    terminate_and_check(p, env, [int(f.read_text()) for f in pid_files])
    (group,) = (tmp_path / "out").iterdir()
    for s in (0, 1):
        assert json.loads((group / f"seed{s}" / "run.json").read_text())["status"] == \
            "interrupted"
    assert json.loads((group / "summary.json").read_text())["interrupted"] is True


def test_sigterm_stops_a_sweep_which_then_resumes(nb, tmp_path, capsys):
    hold, out = tmp_path / "hold", tmp_path / "sweep"
    hold.touch()
    argv = ["sweep", str(nb), "--scale", "smoke", "-p", "x", "1", "2", "-p", "hold", str(hold),
            "-p", "hold_on", "2", "--out", str(out), "--workers", "2"]
    p, env = start_cli(argv, tmp_path)
    pid_file = Path(f"{hold}.2.0.pid")
    done = list(out.glob("x=1,*/seed0/run.json"))

    def ready():
        done[:] = list(out.glob("x=1,*/seed0/run.json"))
        return pid_file.exists() and done and json.loads(done[0].read_text())["status"] == "ok"

    wait_for(ready, p)
    terminate_and_check(p, env, [int(pid_file.read_text())])
    sweep = json.loads((out / "sweep.json").read_text())
    assert sweep["status"] == "interrupted"
    assert [c["status"] for c in sweep["cells"]] == ["ok", "interrupted"]
    held = out / sweep["cells"][1]["run_dir"] / "run.json"
    assert json.loads(held.read_text())["status"] == "interrupted"
    hold.unlink()
    assert main(argv) == 0
    assert "2 cells, 1 already done, 1 to run" in capsys.readouterr().out


# ---------------------------------------------------------------------------- errors in notebooks

CHECKED = '''import time
from labkit.core.checks import check_int
x = check_int("x", x, min=-5)              # a ParameterError below -5
if x < 0:
    raise ValueError(f"x must be >= 0; got {x}")
if x == 99:
    raise RuntimeError("a bug, not bad input")
if x == 7:
    time.sleep(1.8)
import labkit
labkit.record("y", x)'''


@pytest.mark.parametrize("x, code, fragment", [
    ("-1", 2, "ValueError: x must be >= 0; got -1"),
    ("-9", 2, "ParameterError: x must be an integer >= -5; got -9"),
    ("99", 1, "RuntimeError: a bug, not bad input"),
])
def test_a_notebook_that_rejects_its_input_exits_2_with_its_line(tmp_path, capsys, monkeypatch,
                                                                 x, code, fragment):
    monkeypatch.setenv("LABKIT_RUNS_ROOT", str(tmp_path / "runs"))
    nb = make_notebook(tmp_path / "nbs" / "94_checked.ipynb", body=CHECKED)
    assert main(["run", str(nb), "--scale", "smoke", "-p", "x", x,
                 "--out", str(tmp_path / "out")]) == code
    captured = capsys.readouterr()
    assert captured.err.count("\n") == 1 and fragment in captured.err, captured.err
    assert "Traceback" not in captured.err + captured.out


def test_a_fractional_timeout_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_RUNS_ROOT", str(tmp_path / "runs"))
    nb = make_notebook(tmp_path / "nbs" / "94_checked.ipynb", body=CHECKED)
    # the 1.8 s cell outlasts 1.5 s (rounded up to whole seconds it would not)
    r = execute(nb, scale="smoke", params={"x": 7}, out_dir=tmp_path / "out", timeout=1.5)
    assert not r.ok and "timed out" in r.error.lower(), r.error
    assert json.loads((r.run_dir / "run.json").read_text())["status"] == "failed"


# ---------------------------------------------------------------------------- declared records

def test_a_run_missing_a_declared_record_failed(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LABKIT_RUNS_ROOT", str(tmp_path / "runs"))
    nb = make_notebook(tmp_path / "nbs" / "93_forgetful.ipynb",
                       body='import labkit\nlabkit.record("y", 1)\nlabkit.record("y_after", 2)',
                       records=("y", "z", "y_after", "w"))
    assert main(["run", str(nb), "--scale", "smoke", "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "MissingRecords: z, w not recorded (declared in metadata labkit.records; " \
           "recorded: y, y_after)" in err, err
    (run_dir,) = (tmp_path / "out").iterdir()
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "failed" and info["error_name"] == "MissingRecords"
    assert "z, w not recorded" in info["error"]
    assert json.loads((run_dir / "results.json").read_text()) == {"y": 1, "y_after": 2}


# ---------------------------------------------------------------------------- determinism

SEEDED = [
    'import random, time\nimport numpy as np, torch\nimport labkit\n'
    'run = labkit.setup(scale=scale, seed=seed, device="cpu")\nt0 = time.perf_counter()',
    # a little training: every source of randomness, float arithmetic in torch
    'w = torch.randn(8, 1, requires_grad=True)\nX = torch.randn(64, 8)\n'
    'y_true = X @ torch.arange(8.0).unsqueeze(1) + 0.1 * torch.randn(64, 1)\n'
    'opt = torch.optim.Adam([w], lr=0.05)\nlosses = []\n'
    'for step in range(30):\n'
    '    opt.zero_grad()\n'
    '    loss = ((X @ w - y_true) ** 2).mean()\n'
    '    loss.backward()\n'
    '    opt.step()\n'
    '    losses.append(loss.item())\n'
    '    run.log(step, {"loss": loss})',
    'labkit.record("y", losses[-1])\nlabkit.record("curve", losses[::5])\n'
    'labkit.record("w", w.detach().squeeze(1))\n'
    'labkit.record("draws", [random.random(), float(np.random.rand()), hash("labkit")])\n'
    'from labkit.lab.record import record_time\n'
    'record_time("train_s", time.perf_counter() - t0)',
]


def test_same_seed_gives_byte_identical_results_and_timings_stay_apart(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_RUNS_ROOT", str(tmp_path / "runs"))
    nb = make_notebook(tmp_path / "nbs" / "92_seeded.ipynb", body=SEEDED,
                       records=("y", "curve", "w", "draws"))
    a, b = (execute(nb, scale="smoke", seed=3, out_dir=tmp_path / name, threads=1)
            for name in ("a", "b"))
    assert a.ok and b.ok, (a.error, b.error)
    assert (a.run_dir / "results.json").read_bytes() == (b.run_dir / "results.json").read_bytes()
    assert set(a.results) == {"y", "curve", "w", "draws"}     # no wall time among them
    for r in (a, b):
        timings = json.loads((r.run_dir / "timings.json").read_text())
        assert list(timings) == ["train_s"] and timings["train_s"] > 0
        assert json.loads((r.run_dir / "run.json").read_text())["timings"] == timings
    # another seed: other numbers (the comparison above can fail)
    c = execute(nb, scale="smoke", seed=4, out_dir=tmp_path / "c", threads=1)
    assert c.ok and c.results["y"] != a.results["y"]
