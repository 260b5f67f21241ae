"""labkit machinery through real kernels: papermill runs of tiny temporary notebooks
(record/results round trip, run directories, parallel seeds, the CLI)."""
import json
import math

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

import labkit
from labkit.lab.cli import main
from labkit.lab.runs import execute, execute_seeds, summarize

TINY = [
    '# 99 · Tiny\nA notebook made by the tests.',
    ('scale = "workshop"\nseed = 0\ndevice = "auto"\nsteps = None', "parameters"),
    'import os, random, torch\nimport labkit\n'
    'run = labkit.setup(scale=scale, seed=seed, device=device)\n'
    'steps = run.pick(steps, smoke=3, workshop=10, gpu=100, min=1)',
    'from labkit.lab.live import LivePlot\nplot = LivePlot(["loss", "acc"], title="tiny")\n'
    'for step in range(steps):\n'
    '    run.log(step, {"loss": torch.tensor(1.0 / (step + 1)), "acc": step / steps})\n'
    '    plot.update(step, {"loss": 1.0 / (step + 1), "acc": step / steps}, series="a")\n'
    'plot.close()',
    'labkit.record("acc", random.Random(seed).random())\n'
    'labkit.record("curve", [1.0, 2.0, float(steps)])\n'
    'labkit.record("loss_nan", float("nan"))\n'
    'labkit.record("env", {"cwd": os.getcwd(), "run_dir": os.environ.get("LABKIT_RUN_DIR"),\n'
    '    "live": os.environ.get("LABKIT_LIVE"), "jpy": os.environ.get("JPY_SESSION_NAME", ""),\n'
    '    "dir": str(run.dir)})',
]


def make_notebook(path, cells=TINY, records=("acc", "curve")):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["labkit"] = {"papers": ["sec"], "records": list(records), "workshop_minutes": 1}
    for c in cells:
        src, tag = (c, None) if isinstance(c, str) else c
        if src.startswith("#"):
            nb.cells.append(new_markdown_cell(src))
        else:
            nb.cells.append(new_code_cell(src, metadata={"tags": [tag]} if tag else {}))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.delenv("LABKIT_RUN_DIR", raising=False)
    # as if the tests ran inside a JupyterLab kernel: the runs must still be headless
    monkeypatch.setenv("JPY_SESSION_NAME", "/somewhere/else.ipynb")
    return make_notebook(tmp_path / "nbs" / "99_tiny.ipynb")


def test_execute_round_trip(tiny, tmp_path):
    r = execute(tiny, scale="smoke", seed=3, out_dir=tmp_path / "out")
    assert r.ok, r.error
    assert r.run_dir.parent == tmp_path / "out" and "smoke-seed3" in r.run_dir.name
    files = {p.name for p in r.run_dir.iterdir()}
    assert {"99_tiny.ipynb", "metrics.jsonl", "results.json", "run.json", "setup.json"} <= files
    # values, read back three ways
    assert r.results["acc"] == pytest.approx(__import__("random").Random(3).random())
    assert r.results["curve"] == [1.0, 2.0, 3.0] and math.isnan(r.results["loss_nan"])
    from_dir, from_nb = labkit.results(r.run_dir), labkit.results(r.notebook_out)
    assert from_dir.keys() == from_nb.keys() == r.results.keys()
    assert from_nb["curve"] == [1.0, 2.0, 3.0] and math.isnan(from_nb["loss_nan"])
    # the kernel's world: cwd = the notebook's directory, the run dir, headless
    env = r.results["env"]
    assert env == {"cwd": str(tiny.parent), "run_dir": str(r.run_dir), "live": "0", "jpy": "",
                   "dir": str(r.run_dir)}
    metrics = [json.loads(x) for x in (r.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics] == [0, 1, 2] and metrics[1]["loss"] == 0.5
    run_info = json.loads((r.run_dir / "run.json").read_text())
    assert run_info["status"] == "ok" and run_info["seed"] == 3 and run_info["scale"] == "smoke"
    # the executed notebook: scrapbook outputs and a final static figure
    nb = json.loads(r.notebook_out.read_text())
    outputs = [o for c in nb["cells"] for o in c.get("outputs", [])]
    scraps = [o for o in outputs if "application/scrapbook.scrap.json+json" in o.get("data", {})]
    assert scraps[0]["data"]["application/scrapbook.scrap.json+json"] == {
        "name": "acc", "data": r.results["acc"], "encoder": "json", "version": 1}
    assert scraps[0]["metadata"] == {"scrapbook": {"name": "acc", "data": True, "display": False}}
    figures = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(figures) == 1 and "image/svg+xml" in figures[0]["data"]
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


def test_a_failing_run_reports_one_line_and_keeps_what_it_measured(tiny, tmp_path):
    r = execute(tiny, scale="smoke", seed=0, params={"steps": -3}, out_dir=tmp_path / "out")
    assert not r.ok and r.error_name == "ParameterError"
    assert r.error.startswith("ParameterError: steps must be an integer >= 1; got -3")
    assert "\n" not in r.error
    assert json.loads((r.run_dir / "run.json").read_text())["status"] == "failed"
    assert (r.run_dir / "99_tiny.ipynb").exists()     # the notebook, traceback included


def test_a_dying_kernel_is_reported_with_its_last_words(tiny, tmp_path):
    dying = make_notebook(tmp_path / "nbs" / "98_dying.ipynb", cells=[
        TINY[0], TINY[1], TINY[2],
        'labkit.record("acc", 0.5)',
        'import os\nos.write(2, b"last words\\n")\nos._exit(3)'])
    r = execute(dying, scale="smoke", seed=0, out_dir=tmp_path / "out")
    assert not r.ok and r.error_name == "DeadKernelError"
    assert "\n" not in r.error and str(r.run_dir / "kernel.log") in r.error
    assert "last words" in (r.run_dir / "kernel.log").read_text()
    assert r.results == {"acc": 0.5}                  # what it measured before dying is kept
    assert json.loads((r.run_dir / "run.json").read_text())["status"] == "failed"


def test_seeds_run_in_parallel_and_aggregate(tiny, tmp_path):
    g = execute_seeds(tiny, scale="smoke", seeds=[0, 1], out_dir=tmp_path / "out", workers=2)
    assert g.ok and [r.seed for r in g.runs] == [0, 1]
    assert sorted(p.name for p in g.dir.iterdir()) == [
        "seed0", "seed1", "summary.csv", "summary.json"]
    acc = {row["name"]: row for row in g.summary}["acc"]
    import random
    vals = [random.Random(s).random() for s in (0, 1)]
    assert acc["values"] == pytest.approx(vals) and acc["n"] == 2
    assert acc["mean"] == pytest.approx(sum(vals) / 2)
    assert acc["std"] == pytest.approx(abs(vals[0] - vals[1]) / math.sqrt(2))
    curve = {row["name"]: row for row in g.summary}["curve"]
    assert curve["mean"] == [1.0, 2.0, 3.0] and curve["std"] == [0.0, 0.0, 0.0]
    doc = json.loads((g.dir / "summary.json").read_text())
    assert doc["seeds"] == [0, 1] and [x["run_dir"] for x in doc["runs"]] == ["seed0", "seed1"]
    csv_lines = (g.dir / "summary.csv").read_text().splitlines()
    assert csv_lines[0] == "name,mean,std,n,seed0,seed1" and csv_lines[1].startswith("acc,")
    # a failed run is left out of the aggregate, not fatal to it
    bad = type(g.runs[0])(spec=g.runs[0].spec, run_dir=g.runs[0].run_dir, ok=False, results={})
    rows = summarize([bad, g.runs[1]])
    assert {r["name"]: r["n"] for r in rows}["acc"] == 1


def test_cli_run_two_seeds_then_results(tiny, tmp_path, capsys):
    rc = main(["run", str(tiny), "--scale", "smoke", "--seed", "0", "1", "-p", "steps", "2",
               "--out", str(tmp_path / "cli")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "mean ± std" in out and "acc" in out
    group = out.strip().splitlines()[-1].split("run directory: ")[1]
    assert (tmp_path / "cli") in __import__("pathlib").Path(group).parents
    assert main(["results", group]) == 0
    assert "acc" in capsys.readouterr().out
    assert main(["results", group + "/seed1", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["curve"] == [1.0, 2.0, 2.0] and doc["loss_nan"] == "NaN"
    # a parameter the notebook rejects: one line, exit code 2
    rc = main(["run", str(tiny), "--scale", "smoke", "-p", "steps", "0",
               "--out", str(tmp_path / "cli")])
    err = capsys.readouterr().err
    assert rc == 2 and "ParameterError: steps must be an integer >= 1; got 0" in err
