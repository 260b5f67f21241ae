"""labkit machinery without a kernel: parameters, run directories, metrics, records, live
figures, notebook discovery and hygiene, the CLI's argument handling."""
import json
import math
import subprocess
import sys
import textwrap
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
import torch

import labkit
from labkit.lab import live, notebooks
from labkit.lab import session as params
from labkit.core.checks import ParameterError, check_choice, check_float, check_int
from labkit.lab.session import setup


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.delenv("LABKIT_RUN_DIR", raising=False)
    monkeypatch.delenv("LABKIT_LIVE", raising=False)
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.delenv("VSCODE_PID", raising=False)
    yield
    if params._CURRENT is not None:
        params._CURRENT.close()
    params._CURRENT = None


def one_line_error(excinfo) -> str:
    msg = str(excinfo.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------------------- setup

@pytest.mark.parametrize("kwargs, message", [
    ({"scale": "big"}, "scale must be one of smoke, workshop, gpu; got 'big'"),
    ({"scale": None}, "scale must be one of smoke, workshop, gpu; got None"),
    ({"seed": -1}, "seed must be a non-negative integer; got -1"),
    ({"seed": 1.5}, "seed must be a non-negative integer; got 1.5"),
    ({"seed": "0"}, "seed must be a non-negative integer; got '0'"),
    ({"seed": True}, "seed must be a non-negative integer; got True"),
    ({"seed": 2 ** 32}, "seed must be a non-negative integer below 2**32; got 4294967296"),
    ({"device": "cuda:7"}, "device 'cuda:7' is not available here; accepted: auto, cpu"),
    ({"device": "gpu"}, "device 'gpu' is not available here; accepted: auto, cpu"),
    ({"device": 3}, "device must be a string; accepted: auto, cpu"),
])
def test_setup_rejects_bad_values_in_one_line(kwargs, message):
    with pytest.raises(ParameterError) as e:
        setup(**{"scale": "smoke", "seed": 0, "device": "auto", **kwargs})
    assert one_line_error(e).startswith(message)
    assert isinstance(e.value, ValueError)


def test_unavailable_cuda_lists_what_is_here():
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ParameterError) as e:
        setup(scale="smoke", seed=0, device="cuda")
    accepted = one_line_error(e).split("accepted: ")[1].split(", ")
    assert accepted[:2] == ["auto", "cpu"]
    assert ("mps" in accepted) == torch.backends.mps.is_available()


def test_auto_device_and_seeding():
    run = setup(scale="smoke", seed=7)
    want = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert run.device.type == want and isinstance(run.device, torch.device)
    a = (torch.rand(3).tolist(), np.random.rand(), __import__("random").random())
    setup(scale="smoke", seed=7)
    b = (torch.rand(3).tolist(), np.random.rand(), __import__("random").random())
    assert a == b
    assert setup(scale="smoke", seed=7, device="cpu").device == torch.device("cpu")
    assert setup(scale="smoke", seed=7, device=torch.device("cpu")).device.type == "cpu"


def test_run_dirs_are_unique_and_follow_the_environment(tmp_path, monkeypatch):
    r1, r2 = setup(scale="smoke", seed=0), setup(scale="smoke", seed=0)
    assert r1.dir != r2.dir and r1.dir.is_dir() and r2.dir.is_dir()
    assert r1.dir.parent == tmp_path / "runs" / "interactive"
    assert (r1.dir / "setup.json").is_file() and (r1.dir / "metrics.jsonl").is_file()
    assert json.loads((r1.dir / "setup.json").read_text())["scale"] == "smoke"
    versions = json.loads((r1.dir / "setup.json").read_text())
    assert versions["torch"] and versions["transformers"] and versions["numpy"]  # what the numbers depend on
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path / "given"))
    assert setup(scale="smoke", seed=0).dir == tmp_path / "given"


def test_pick_defaults_per_scale_and_validation():
    for scale, want in (("smoke", 3), ("workshop", 200), ("gpu", 2000)):
        run = setup(scale=scale, seed=0, device="cpu")
        steps = None
        assert run.pick(steps, smoke=3, workshop=200, gpu=2000) == want
    steps = 17
    assert run.pick(steps, smoke=3, workshop=200, gpu=2000, min=1) == 17
    steps = -3
    with pytest.raises(ParameterError) as e:
        run.pick(steps, smoke=3, workshop=200, gpu=2000, min=1)
    assert one_line_error(e) == "steps must be an integer >= 1; got -3"
    lr = "fast"
    with pytest.raises(ParameterError) as e:
        run.pick(lr, smoke=1e-3, workshop=1e-3, gpu=1e-4, gt=0)
    assert one_line_error(e) == "lr must be a finite number > 0; got 'fast'"
    assert run.pick(2, smoke=1e-3, workshop=1e-3, gpu=1e-4, gt=0) == 2.0
    with pytest.raises(ParameterError) as e:
        run.pick(0, smoke=2, workshop=4, gpu=8, gt=0, name="group_size")
    assert one_line_error(e) == "group_size must be an integer >= 1; got 0"
    with pytest.raises(ParameterError) as e:
        run.pick("zz", smoke="a", workshop="a", gpu="b", choices=["a", "b"], name="mode")
    assert one_line_error(e) == "mode must be one of a, b; got 'zz'"
    with pytest.raises(ParameterError, match="must be True or False"):
        run.pick(1, smoke=True, workshop=True, gpu=False, name="flag")


@pytest.mark.parametrize("call, message", [
    (lambda: check_int("steps", -3, min=1), "steps must be an integer >= 1; got -3"),
    (lambda: check_int("steps", 2.0, min=1), "steps must be an integer >= 1; got 2.0"),
    (lambda: check_int("steps", True), "steps must be an integer; got True"),
    (lambda: check_int("k", 11, min=1, max=10), "k must be an integer in [1, 10]; got 11"),
    (lambda: check_int("k", 11, max=10), "k must be an integer <= 10; got 11"),
    (lambda: check_float("lr", 0, gt=0), "lr must be a finite number > 0; got 0.0"),
    (lambda: check_float("lr", math.nan), "lr must be a finite number; got nan"),
    (lambda: check_float("p", 1.5, min=0, max=1), "p must be a finite number in [0, 1]; got 1.5"),
    (lambda: check_float("p", "x"), "p must be a finite number; got 'x'"),
    (lambda: check_choice("scale", "big", ["smoke", "workshop", "gpu"]),
     "scale must be one of smoke, workshop, gpu; got 'big'"),
    (lambda: check_choice("n", True, [1, 2]), "n must be one of 1, 2; got True"),
    (lambda: check_choice("n", [1], [1, 2]), "n must be one of 1, 2; got [1]"),
])
def test_check_helpers(call, message):
    with pytest.raises(ParameterError) as e:
        call()
    assert one_line_error(e) == message


def test_check_helpers_return_values():
    assert check_int("k", np.int64(4), min=1) == 4 and type(check_int("k", np.int64(4))) is int
    assert check_float("lr", 1) == 1.0 and check_float("x", np.float32(0.5), min=0) == 0.5
    assert check_choice("scale", "gpu", params.SCALES) == "gpu"


# ---------------------------------------------------------------------------- metrics

def test_log_appends_json_lines_with_tensor_scalars():
    run = setup(scale="smoke", seed=0)
    run.log(0, {"loss": torch.tensor(1.5), "acc": np.float32(0.25), "n": np.int64(3)})
    run.log(1, {"loss": float("nan"), "vec": torch.tensor([1.0, 2.0])}, extra=1)
    rows = [json.loads(x) for x in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["step"] == 0 and rows[0]["loss"] == 1.5 and rows[0]["acc"] == 0.25
    assert rows[0]["n"] == 3 and "time" in rows[0]
    assert rows[1]["loss"] is None and rows[1]["vec"] == [1.0, 2.0] and rows[1]["extra"] == 1
    assert run.metrics() == rows
    with pytest.raises(TypeError, match="metric 'bad'"):
        run.log(2, {"bad": object()})


def test_an_interrupted_run_keeps_its_metrics(tmp_path):
    code = textwrap.dedent(f"""
        import os, signal, labkit
        os.environ["LABKIT_RUN_DIR"] = {str(tmp_path / 'killed')!r}
        run = labkit.setup(scale="smoke", seed=0)
        for step in range(5):
            run.log(step, {{"loss": 1.0 / (step + 1)}})
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode != 0
    lines = (tmp_path / "killed" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [0, 1, 2, 3, 4]


def test_autocast_is_a_noop_on_cpu():
    run = setup(scale="smoke", seed=0, device="cpu")
    with run.autocast():
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.float32


# ---------------------------------------------------------------------------- record

def test_record_writes_results_json_atomically():
    run = setup(scale="smoke", seed=0)
    labkit.record("acc", torch.tensor(0.5))
    labkit.record("curve", np.array([1.0, 2.0]))
    labkit.record("n", np.int64(3))
    labkit.record("acc", 0.75)  # a later record of the same name wins
    assert json.loads((run.dir / "results.json").read_text()) == {
        "acc": 0.75, "curve": [1.0, 2.0], "n": 3}
    assert [p.name for p in run.dir.iterdir() if p.name.startswith(".")] == []
    assert labkit.results(run.dir) == {"acc": 0.75, "curve": [1.0, 2.0], "n": 3}
    assert labkit.results() == {"acc": 0.75, "curve": [1.0, 2.0], "n": 3}


def test_record_nonfinite_round_trips_through_strings():
    run = setup(scale="smoke", seed=0)
    with pytest.warns(UserWarning, match="non-finite"):
        labkit.record("loss", float("nan"))
    with pytest.warns(UserWarning):
        labkit.record("vals", [1.0, float("inf")])
    stored = json.loads((run.dir / "results.json").read_text())
    assert stored == {"loss": "NaN", "vals": [1.0, "Infinity"]}
    back = labkit.results(run.dir)
    assert math.isnan(back["loss"]) and back["vals"] == [1.0, math.inf]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        labkit.record("word", "NaN")  # a string is a string: no warning


def test_record_rejects_bad_input():
    with pytest.raises(ValueError, match="must not be None"):
        labkit.record("x", None)
    with pytest.raises(ValueError, match="non-empty string"):
        labkit.record("", 1)
    with pytest.raises(TypeError, match="cannot store a object"):
        labkit.record("x", object())


def test_top_level_all_lists_the_lazy_exports():
    """labkit.__all__ is written out (ruff's PLE0605 wants a literal); it must name what __getattr__ serves."""
    assert labkit.__all__ == sorted(labkit._EXPORTS)
    assert all(getattr(labkit, name) is not None for name in labkit.__all__)


def test_record_stays_the_function_after_the_module_is_imported():
    import labkit.lab.record  # the module has its own name, so it cannot shadow labkit.record

    assert labkit.record is labkit.lab.record.record
    labkit.record("x", 1)
    labkit.record("y", 2)  # no run dir: display only (a no-op outside a kernel)


def test_results_reads_notebooks_and_rejects_bad_paths(tmp_path):
    nb = {"cells": [{"cell_type": "code", "outputs": [
        {"output_type": "display_data", "metadata": {}, "data": {
            "application/scrapbook.scrap.json+json": {
                "name": "a", "data": 1, "encoder": "json", "version": 1}}},
        {"output_type": "display_data", "metadata": {}, "data": {
            "application/papermill.record+json": {"legacy": [1, 2]}}},
        {"output_type": "display_data", "metadata": {}, "data": {
            "application/scrapbook.scrap.json+json": {
                "name": "a", "data": 2, "encoder": "json", "version": 1}}},
    ]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "run" / "x.ipynb"
    path.parent.mkdir()
    path.write_text(json.dumps(nb))
    assert labkit.results(path) == {"a": 2, "legacy": [1, 2]}
    assert labkit.results(path.parent) == {"a": 2, "legacy": [1, 2]}  # no results.json
    with pytest.raises(FileNotFoundError, match="no such notebook or run directory"):
        labkit.results(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no results.json and no executed notebook"):
        labkit.results(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(ValueError, match="expected an .ipynb"):
        labkit.results(tmp_path / "x.txt")


# ---------------------------------------------------------------------------- live

def test_live_mode_detection(monkeypatch):
    assert live.live_mode() is False                      # a plain process
    monkeypatch.setattr(live, "_in_kernel", lambda: True)
    assert live.live_mode() is False                      # a kernel papermill started
    monkeypatch.setenv("JPY_SESSION_NAME", "/x/02.ipynb")
    assert live.live_mode() is True                       # a kernel jupyter-server started
    monkeypatch.setenv("LABKIT_LIVE", "0")
    assert live.live_mode() is False
    monkeypatch.setenv("LABKIT_LIVE", "1")
    monkeypatch.delenv("JPY_SESSION_NAME")
    assert live.live_mode() is True


def _feed(plot, n=30):
    for s in range(n):
        plot.update(s, {"reward/mean": torch.tensor(s / n), "entropy": np.float32(1.0 / (s + 1)),
                        "not_a_panel": 5}, series="grpo")
        plot.update(s, {"reward/mean": 0.5, "entropy": float("nan") if s == 3 else 0.8},
                    series="baseline")


def test_headless_close_displays_the_final_figure(monkeypatch):
    shown = []
    monkeypatch.setattr(live, "_display", lambda obj, **kw: shown.append((obj, kw)))
    plot = live.LivePlot(["reward/mean", "entropy", "acc"], title="GRPO", cols=2)
    assert plot.live is False
    _feed(plot)
    assert shown == []                                     # nothing during the loop
    xs, ys = plot.data["grpo"]["entropy"]
    assert xs == list(range(30)) and ys[0] == 1.0 and "not_a_panel" not in plot.data["grpo"]
    plot.close()
    plot.close()                                           # idempotent
    assert len(shown) == 1
    bundle, kw = shown[0]
    assert kw.get("raw") is True
    assert set(bundle) == {"application/vnd.plotly.v1+json", "image/svg+xml", "text/plain"}
    fig = bundle["application/vnd.plotly.v1+json"]
    assert len(fig["data"]) == 4 and fig["layout"]["title"]["text"] == "GRPO"
    svg = ET.fromstring(bundle["image/svg+xml"])
    assert svg.tag.endswith("svg") and len(svg.findall(".//{http://www.w3.org/2000/svg}polyline")) >= 4
    with pytest.raises(RuntimeError):
        plot.update(31, {"entropy": 1})


def test_live_updates_are_throttled_and_flushed_at_close(monkeypatch):
    shown = []
    monkeypatch.setattr(live, "_display", lambda obj, **kw: shown.append((obj, kw)) or "handle")
    plot = live.LivePlot(["reward/mean", "entropy"], live=True, throttle=60)
    assert plot.live is True and plot._widget is not None
    _feed(plot, n=50)
    assert plot.draws == 1                                 # the first update draws, the rest wait
    plot.close()
    assert plot.draws == 2
    traces = {(t.name, t.xaxis): len(t.x) for t in plot._widget.data}
    assert sorted(traces.values()) == [50, 50, 50, 50]
    fast = live.LivePlot(["entropy"], live=True, throttle=0)
    for s in range(5):
        fast.update(s, {"entropy": s})
    assert fast.draws == 5


def test_live_falls_back_to_static_without_anywidget(monkeypatch):
    import plotly.graph_objects as go

    def no_widget(*a, **k):
        raise ImportError("Please install anywidget")

    monkeypatch.setattr(go, "FigureWidget", no_widget)
    monkeypatch.setattr(live, "_display", lambda obj, **kw: None)
    with pytest.warns(UserWarning, match="no live widget .anywidget is not installed"):
        plot = live.LivePlot(["acc"], live=True)
    assert plot.live is False


def test_liveplot_rejects_bad_arguments():
    with pytest.raises(ValueError):
        live.LivePlot([])
    with pytest.raises(ValueError):
        live.LivePlot(["a", "a"])
    with pytest.raises(ValueError):
        live.LivePlot(["a"], cols=0)
    with pytest.raises(TypeError):
        live.LivePlot(["a"]).update(0, {"a": "high"})


def test_show_draws_svg_for_line_and_bar_figures():
    import plotly.graph_objects as go

    line = go.Figure(go.Scatter(x=[1, 2, 3], y=[1, 4, 9], name="sq"))
    line.update_yaxes(type="log")
    assert "image/svg+xml" in live.figure_bundle(line)
    bars = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    assert set(live.figure_bundle(bars)) == {"application/vnd.plotly.v1+json", "image/svg+xml",
                                             "text/plain"}
    pie = go.Figure(go.Pie(labels=["a", "b"], values=[1, 2]))   # no static drawing for pies
    assert set(live.figure_bundle(pie)) == {"application/vnd.plotly.v1+json", "text/plain"}


# ---------------------------------------------------------------------------- notebooks

def _md(text: str) -> dict:
    return {"cell_type": "markdown", "metadata": {}, "source": [text]}


def _write_nb(path: Path, *, params_src='scale = "workshop"\nseed = 0\ndevice = "auto"',
              papers=("sec",), outputs=False, tagged=True, title="# 07 · A bandit"):
    cells = [{"cell_type": "markdown", "metadata": {}, "source": [title]},
             _md("## Key equations\n\n## Pseudocode"),
             {"cell_type": "code", "metadata": {"tags": ["parameters"] if tagged else []},
              "execution_count": 3 if outputs else None,
              "outputs": [{"output_type": "stream", "name": "stdout", "text": "x"}] if outputs else [],
              "source": [params_src]},
             _md("## Mechanism\n\n## Experiment"), _md("## Results"), _md("## Notes\n\nShort.")]
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i}"
    nb = {"cells": cells, "nbformat": 4, "nbformat_minor": 5, "metadata": {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "labkit": {"papers": list(papers), "records": ["acc"], "workshop_minutes": 4.5}}}
    path.write_text(json.dumps(nb))
    return path


def test_discover_and_resolve(tmp_path):
    _write_nb(tmp_path / "07_curriculum_bandit.ipynb")
    _write_nb(tmp_path / "02_entropy_mechanism.ipynb", title="# Entropy")
    (tmp_path / "scratch.ipynb").write_text("{}")             # not NN_name: not part of the series
    infos = notebooks.discover(tmp_path)
    assert [i.stem for i in infos] == ["02_entropy_mechanism", "07_curriculum_bandit"]
    i = infos[1]
    assert (i.number, i.name, i.title, i.papers, i.records, i.workshop_minutes) == (
        "07", "curriculum_bandit", "07 · A bandit", ("sec",), ("acc",), 4.5)
    for spec in ("07", "7", "curriculum_bandit", "07_curriculum_bandit",
                 "07_curriculum_bandit.ipynb", str(i.path)):
        assert notebooks.resolve(spec, tmp_path).path.name == i.path.name, spec
    with pytest.raises(ParameterError) as e:
        notebooks.resolve("bandit", tmp_path)
    assert one_line_error(e) == (
        "unknown notebook 'bandit'; accepted: a path to an .ipynb file, or NN, name or NN_name "
        "of one of: 02_entropy_mechanism, 07_curriculum_bandit")
    with pytest.raises(ParameterError, match="no notebooks found"):
        notebooks.resolve("02", tmp_path / "none")


def test_check_notebook_finds_each_problem(tmp_path):
    assert notebooks.check_notebook(_write_nb(tmp_path / "01_ok.ipynb")) == []
    problems = notebooks.check_notebook(_write_nb(tmp_path / "02_dirty.ipynb", outputs=True))
    assert any("has outputs" in p for p in problems)
    assert any("execution count" in p for p in problems)
    assert notebooks.check_notebook(_write_nb(tmp_path / "03.ipynb", tagged=False)) == [
        "no code cell tagged 'parameters'"]
    assert notebooks.check_notebook(_write_nb(
        tmp_path / "04.ipynb", params_src='scale = "workshop"\nseed = 0')) == [
        "parameters cell does not define device"]
    assert notebooks.check_notebook(_write_nb(
        tmp_path / "05.ipynb", params_src='scale = "smoke"\nseed = 0\ndevice = "auto"')) == [
        "parameters cell: scale should default to 'workshop', not 'smoke'"]
    assert any("non-empty list" in p for p in notebooks.check_notebook(
        _write_nb(tmp_path / "06.ipynb", papers=())))
    problems = notebooks.check_notebook(_write_nb(tmp_path / "08.ipynb", papers=("nope",)))
    if notebooks._paper_ids() is not None:
        assert problems == ["metadata labkit.papers has ids unknown to labkit.lab.papers: nope"]


def test_check_notebook_holds_the_anatomy(tmp_path):
    """Title → Key equations → Pseudocode → parameters → setup → Mechanism → Experiment →
    Results → [Exercises] → Notes (last, at most 40 lines)."""
    def problems_with(edit):
        path = _write_nb(tmp_path / "09_x.ipynb")
        nb = json.loads(path.read_text())
        edit(nb["cells"])
        path.write_text(json.dumps(nb))
        return notebooks.check_notebook(path)

    assert problems_with(lambda cells: None) == []
    assert problems_with(lambda cells: cells.pop(1)) == ["no '## Key equations' heading", "no '## Pseudocode' heading"]
    assert problems_with(lambda cells: cells.insert(1, cells.pop(4))) == [
        "sections out of order; want Key equations → Pseudocode → Mechanism → Experiment → Results → Notes"]
    assert problems_with(lambda cells: cells.insert(4, cells.pop(2))) == [
        "the parameters cell must come after Pseudocode and before Mechanism"]
    assert problems_with(lambda cells: cells.append({**_md("more"), "id": "more"})) == ["'## Notes' must be the last cell"]
    assert problems_with(lambda cells: cells[-1].update(source=["## Notes\n" + "line\n" * 40])) == [
        "'## Notes' is longer than 40 lines"]
    assert problems_with(lambda cells: cells[1].pop("id")) == [
        "cell 1 has no id (nbformat 4.5 requires one; nbformat.validator.normalize adds it)"]
    assert problems_with(lambda cells: cells[0].update(source=["no title"])) == [
        "the first cell must be the title and idea (markdown starting '# ')"]
    # optional: '## Exercises' between Results and Notes, 2-3 numbered exercises with difficulty and minutes
    def exercise(n, head="### Exercise {n} · Try it", meta="> **Difficulty:** 🔴🔴⚪ · **Minutes:** 15"):
        return f"{head.format(n=n)}\n\n{meta}\n\n**What to do.** This.\n\n**How it is checked.** So.\n\n"

    def with_exercises(*texts, at=-1):
        return lambda cells: cells.insert(at, {**_md("## Exercises\n\nIntro.\n\n" + "".join(texts)), "id": "ex"})

    assert problems_with(with_exercises(exercise(1), exercise(2))) == []
    assert problems_with(with_exercises(exercise(1), exercise(2), exercise(3))) == []
    assert problems_with(with_exercises(exercise(1), exercise(2), at=-2)) == [
        "'## Exercises' must come after '## Results' and before '## Notes'"]
    assert problems_with(with_exercises(exercise(1))) == [
        "'## Exercises' holds 1 exercise; want 2-3 ('### Exercise N · title', numbered from 1)"]
    assert problems_with(with_exercises(*map(exercise, (1, 2, 3, 4)))) == [
        "'## Exercises' holds 4 exercises; want 2-3 ('### Exercise N · title', numbered from 1)"]
    assert problems_with(with_exercises(exercise(1), exercise(3))) == [
        "exercises are numbered 1, 3; want 1 to 2 in order"]
    assert problems_with(with_exercises(exercise(1), exercise(2, meta="> **Difficulty:** 4 · 15 min"))) == [
        "Exercise 2 has no difficulty ('**Difficulty:** 🔴⚪⚪, 🔴🔴⚪, 🔴🔴🔴 or 1-3')",
        "Exercise 2 has no minutes ('**Minutes:** 15')"]
    assert problems_with(with_exercises(exercise(1), "### Exercise 2 · Bare\n\n**Difficulty:** 2 **Minutes:** 5")) == [
        "Exercise 2 does not say what to do ('**What to do.**')",
        "Exercise 2 does not say how it is checked ('**How it is checked.**')"]


def test_readme_notebook_table_is_current():
    readme = notebooks.readme_path()
    block = notebooks.readme_block(readme.read_text(encoding="utf-8"))
    assert block is not None, "README.md lost its notebooks:begin/end markers"
    assert block == notebooks.table_markdown(), (
        "README.md's notebook table is stale: run `python -m labkit.lab.notebooks --update-readme`")


def test_update_readme_only_rewrites_the_named_rows(tmp_path):
    infos = notebooks.discover()
    rows = notebooks.table_markdown(infos).splitlines()
    stale = [line.replace("](notebooks/", "](old/") for line in rows]       # every row differs from today's
    del stale[3]                                                             # and notebook 01's row is missing
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{notebooks.README_BEGIN}\n" + "\n".join(stale) + f"\n{notebooks.README_END}\ntail\n")
    assert notebooks.update_readme(readme, infos, only=["1", "02"])
    block = notebooks.readme_block(readme.read_text()).splitlines()
    assert block[3] == rows[3] and block[4] == rows[4]                       # added in order, and rewritten
    assert block[2] == stale[2] and block[5:] == stale[4:]                   # the others kept as they were
    assert readme.read_text().startswith("intro\n") and readme.read_text().endswith("tail\n")
    with pytest.raises(SystemExit, match="no notebook numbered 99"):
        notebooks.update_readme(readme, infos, only=["99"])


# ---------------------------------------------------------------------------- CLI

def test_cli_list_json(capsys):
    from labkit.lab.cli import main

    assert main(["list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    stems = [n["stem"] for n in doc["notebooks"]]
    assert stems == [i.stem for i in notebooks.discover()]
    if doc["papers"] is not None:
        cov = doc["papers"]
        assert cov["total"] == 53 and len(cov["covered"]) + len(cov["missing"]) == 53
        declared = {p for n in doc["notebooks"] for p in n["papers"]}
        assert set(cov["covered"]) == declared & set(cov["covered"] + cov["missing"])


@pytest.mark.parametrize("argv, fragment", [
    (["run", "no_such_notebook"], "unknown notebook 'no_such_notebook'; accepted:"),
    (["run", "00", "--scale", "huge"], "scale must be one of smoke, workshop, gpu; got 'huge'"),
    (["run", "00", "--seed", "x"], "seed must be a non-negative integer; got 'x'"),
    (["run", "00", "-p", "nope", "1"], "unknown parameter 'nope' for 00_map"),
    (["run", "00", "-p", "seed", "1"], "set seed with --seed"),
    (["run", "00", "--workers", "0"], "workers must be an integer >= 1; got 0"),
    (["run"], "the following arguments are required: notebook"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    (["results", "/no/such/run"], "no such notebook or run directory: /no/such/run"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, fragment, capsys):
    from labkit.lab.cli import main

    if argv[:2] == ["run", "00"] and not any(i.number == "00" for i in notebooks.discover()):
        pytest.skip("needs notebooks/00_*.ipynb")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and fragment in err, err


def test_console_script_exit_code():
    p = subprocess.run([sys.executable, "-m", "labkit.lab.cli", "run", "nope"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.startswith("error: unknown notebook 'nope'")
    assert p.stderr.count("\n") == 1


def test_ci_runs_the_readme_test_command():
    root = notebooks.readme_path().parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0].strip() for b in readme.split("```bash\n")[1:3]]
    assert len(blocks) == 2 and all("\n" not in b for b in blocks), "quickstart: two one-line commands"
    assert "pip install torch==2.13.0 && pip install -e" in blocks[0] and "labkit run 01" in blocks[0]
    test_cmd = blocks[1].split(" && ")[-1]
    assert test_cmd.startswith("python -m pytest")
    ci = (root / ".ci" / "run").read_text(encoding="utf-8")
    assert test_cmd in ci.splitlines()
    assert ci.index("pip install --quiet torch==2.13.0") < ci.index("pip install --quiet -e")
    # CI measures with the numeric stack the notebooks' numbers come from
    assert '-e ".[lab,test]" -c constraints.txt' in ci and (root / "constraints.txt").is_file()
    pinned = {line.split("==")[0] for line in (root / "constraints.txt").read_text().splitlines()
              if line and not line.startswith("#")}
    assert {"torch", "transformers", "numpy"} <= pinned


def test_svg_draws_numpy_arrays_like_lists():
    import numpy as np
    import plotly.graph_objects as go

    from labkit.lab.live import to_svg

    as_numpy = to_svg(go.Figure(go.Scatter(x=np.arange(4), y=np.array([1.0, 3.0, 2.0, 5.0]))))
    as_lists = to_svg(go.Figure(go.Scatter(x=[0, 1, 2, 3], y=[1.0, 3.0, 2.0, 5.0])))
    assert as_numpy == as_lists and "polyline" in as_numpy
