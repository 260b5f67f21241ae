"""Reliability without a kernel: trust_remote_code, one-line CLI errors for bad input
(non-finite -p values, --out, --timeout, malformed JSON files, enormous grids), declared
records, timings kept apart from results."""
import ast
import json
import math
import os
from pathlib import Path

import pytest

import labkit
from labkit.lab import session as params
from labkit.lab.cli import main
from labkit.core.checks import ParameterError

LABKIT = Path(labkit.__file__).resolve().parent
# Loaders that may run code shipped with a checkpoint unless told not to.
LOADERS = ("from_pretrained", "from_config")
# Files outside this change's reach that still load without the flag; strict xfail below
# says when someone fixes them (then drop them from this list).
NOT_YET: set[str] = set()  # loaders still to fix (a strict xfail each); none left


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_RUNS_ROOT", str(tmp_path / "runs"))
    monkeypatch.delenv("LABKIT_RUN_DIR", raising=False)
    yield
    if params._CURRENT is not None:
        params._CURRENT.close()
    params._CURRENT = None


# ---------------------------------------------------------------------------- trust_remote_code

def loader_calls(path: Path) -> list[tuple[int, str, object]]:
    """(line, call, value of trust_remote_code or 'missing') of every X.from_pretrained /
    X.from_config call in a source file."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr in LOADERS:
            kw = {k.arg: k.value for k in node.keywords if k.arg}
            value = kw.get("trust_remote_code")
            shown = "missing" if value is None else (
                value.value if isinstance(value, ast.Constant) else ast.unparse(value))
            out.append((node.lineno, ast.unparse(node.func), shown))
    return out


def _sources_with_loaders():
    return sorted(str(p.relative_to(LABKIT)) for p in LABKIT.rglob("*.py")
                  if any(a in p.read_text(encoding="utf-8") for a in LOADERS))


@pytest.mark.parametrize("rel", [
    pytest.param(r, marks=pytest.mark.xfail(strict=True, reason="outside this change's files"))
    if r in NOT_YET else r for r in _sources_with_loaders()])
def test_every_loader_call_says_trust_remote_code_false(rel):
    calls = loader_calls(LABKIT / rel)
    bad = [(line, call, v) for line, call, v in calls if v is not False]
    assert not bad, f"labkit/{rel}: trust_remote_code must be False, explicitly: {bad}"


def test_the_checker_catches_a_missing_or_true_flag(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("A.from_pretrained(p)\nB.from_pretrained(p, trust_remote_code=True)\n"
                   "C.from_config(c, trust_remote_code=False)\n")
    assert [v for _, _, v in loader_calls(src)] == ["missing", True, False]


def test_the_policy_and_vision_loaders_are_found_and_still_load():
    assert {"core/policy/loading.py", "core/vision/model.py"} <= set(_sources_with_loaders())
    pol = labkit.load_policy("tiny")
    assert pol.model.config.model_type == "llama"
    assert "trust_remote_code" not in pol.model.config.to_dict()


# ---------------------------------------------------------------------------- bad CLI input

def _notebook(tmp_path):
    """A notebook file with a parameters cell (the CLI reads it; no kernel starts)."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["labkit"] = {"papers": ["sec"], "records": ["y"], "workshop_minutes": 1}
    nb.cells = [new_markdown_cell("# 95 · Input"), new_code_cell(
        'scale = "workshop"\nseed = 0\ndevice = "auto"\nlr = None\narms = "add:1-2"\n'
        'x = 1\nwhich = None', metadata={"tags": ["parameters"]}),
        new_code_cell('raise SystemExit("a kernel was started")')]
    path = tmp_path / "nbs" / "95_input.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def one_line_exit_2(argv, capsys, fragments):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and err.startswith("error: "), err
    for fragment in fragments:
        assert fragment in err, err
    assert "Traceback" not in captured.out + err
    return err


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "Infinity", "-Infinity",
                                   "1e999", "[1, NaN]", " INF "])
def test_non_finite_p_values_are_refused_before_a_kernel(tmp_path, capsys, command, value):
    nb = _notebook(tmp_path)
    one_line_exit_2([command, str(nb), "--scale", "smoke", "-p", "lr", value, "--out",
                     str(tmp_path / "out")], capsys,
                    [f"-p lr: {value.strip()} is not a finite value; accepted: finite numbers"])
    assert not (tmp_path / "out").exists()


def test_finite_values_and_strings_that_look_numeric_still_parse():
    from labkit.lab.cli import _parse_value

    assert _parse_value("3e-4") == 3e-4 and _parse_value("[1, 2.5]") == [1, 2.5]
    assert _parse_value("nano") == "nano" and _parse_value("info") == "info"
    assert _parse_value("null") is None and _parse_value("true") is True


def test_negative_scientific_values_reach_the_notebook_checks(tmp_path):
    from labkit.lab.cli import build_parser

    nb = str(_notebook(tmp_path))
    args = build_parser().parse_args(["run", nb, "-p", "lr", "-3e-4", "-p", "x", "-2"])
    assert args.param == [["lr", "-3e-4"], ["x", "-2"]]
    args = build_parser().parse_args(["sweep", nb, "-p", "lr", "-1e-3", "-.5", "2"])
    assert args.param == [["lr", "-1e-3", "-.5", "2"]]


def test_non_finite_values_are_refused_by_the_python_api_too(tmp_path):
    from labkit.lab.runs import check_params

    nb = _notebook(tmp_path)
    for bad in (math.nan, math.inf, [1.0, -math.inf], {"a": math.nan}):
        with pytest.raises(ParameterError, match="lr must be finite"):
            check_params(nb, {"lr": bad})
    assert check_params(nb, {"lr": 0.1}) == {"lr": 0.1}


@pytest.mark.parametrize("command", ["run", "sweep"])
def test_bad_out_is_one_line_exit_2(tmp_path, capsys, command):
    nb = _notebook(tmp_path)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    base = [command, str(nb), "--scale", "smoke", "--out"]
    one_line_exit_2(base + [str(a_file)], capsys,
                    [f"--out {a_file} is a file, not a directory",
                     "accepted: a writable directory, existing or new"])
    one_line_exit_2(base + [str(a_file / "sub" / "dir")], capsys,
                    [f"is under {a_file}, which is a file", "accepted: a writable directory"])
    if os.geteuid() == 0:   # root writes through permissions: use a place nobody can write
        locked = Path("/proc/labkit-out")
    else:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
    try:
        one_line_exit_2(base + [str(locked / "out")], capsys,
                        ["cannot write in", "accepted: a writable directory"])
    finally:
        if locked.parent == tmp_path:
            locked.chmod(0o700)
    assert a_file.read_text() == "x"


@pytest.mark.parametrize("value, fragment", [
    ("0", "timeout must be a finite number > 0; got 0.0"),
    ("-1.5", "timeout must be a finite number > 0; got -1.5"),
    ("nan", "timeout must be a finite number > 0; got nan"),
    ("inf", "timeout must be a finite number > 0; got inf"),
    ("soon", "argument --timeout: invalid float value: 'soon'"),
])
@pytest.mark.parametrize("command", ["run", "sweep"])
def test_bad_timeout_is_one_line_exit_2(tmp_path, capsys, command, value, fragment):
    nb = _notebook(tmp_path)
    one_line_exit_2([command, str(nb), "--scale", "smoke", "--timeout", value, "--out",
                     str(tmp_path / "out")], capsys, [fragment])


def test_timeout_accepts_fractions():
    from labkit.core.checks import check_timeout

    assert check_timeout(1.5) == 1.5 and check_timeout(2) == 2.0 and check_timeout(None) is None
    with pytest.raises(ParameterError, match="timeout must be a finite number > 0"):
        check_timeout(True)


@pytest.mark.parametrize("command", ["run", "sweep"])
@pytest.mark.parametrize("value, fragment", [
    ("add:1-1000000000", "arms: the range add:1-1000000000 spans 1000000000 difficulties; "
                         "at most 1000 accepted (add takes 1..8)"),
    ("add:0-99999999999999999999", "spans 100000000000000000000 difficulties"),
    ("nope:1", "arms: unknown category 'nope'"),
    ("add:9", "arms: difficulty 9 out of range for add"),
])
def test_arms_are_checked_without_expanding_them(tmp_path, capsys, command, value, fragment):
    nb = _notebook(tmp_path)
    one_line_exit_2([command, str(nb), "--scale", "smoke", "-p", "arms", value, "--out",
                     str(tmp_path / "out")], capsys, [fragment])


def test_an_enormous_sweep_grid_is_refused_before_expanding(tmp_path, capsys):
    from labkit.lab.sweep import MAX_CELLS, expand_grid

    nb = _notebook(tmp_path)
    values = [str(i) for i in range(101)]
    seeds = [str(s) for s in range(100)]
    err = one_line_exit_2(["sweep", str(nb), "--scale", "smoke", "-p", "x", *values,
                           "-p", "which", "1", "2", "--seed", *seeds, "--out",
                           str(tmp_path / "s")], capsys,
                          ["the grid has 20,200 cells (101 x x 2 which x 100 seeds)",
                           f"at most {MAX_CELLS:,} accepted"])
    assert not (tmp_path / "s").exists()
    # the limit is counted, not found by expanding: a grid of 10**30 cells answers at once
    huge = {f"k{i}": list(range(1000)) for i in range(10)}
    with pytest.raises(ParameterError, match=r"the grid has [\d,]+ cells"):
        expand_grid(huge, [0])
    assert len(expand_grid({"x": list(range(100))}, range(100))) == MAX_CELLS
    assert err


# ---------------------------------------------------------------------------- results files

def _run_dir(parent, name="20260101-000000-smoke-seed0-1-abcdef", results=None, run=None):
    d = parent / name
    d.mkdir(parents=True)
    (d / "results.json").write_text(json.dumps({"acc": 0.5} if results is None else results)
                                    if not isinstance(results, str) else results)
    (d / "run.json").write_text(run if isinstance(run, str) else json.dumps(
        run or {"notebook": "x.ipynb", "status": "ok"}))
    return d


@pytest.mark.parametrize("content, fragment", [
    ("[1, 2]", "results.json holds a list, not a JSON object; expected recorded values"),
    ('"acc"', "results.json holds a string, not a JSON object"),
    ("3", "results.json holds a number, not a JSON object"),
    ("null", "results.json holds null, not a JSON object"),
    ("{acc: 1", "results.json is not valid JSON (Expecting property name"),
    ("", "results.json is not valid JSON (Expecting value: line 1 column 1 (char 0))"),
    (b"\xff\xfe{}", "results.json is not valid JSON ("),
])
def test_malformed_results_json_is_one_line_exit_2(tmp_path, capsys, content, fragment):
    d = _run_dir(tmp_path, results="{}")
    path = d / "results.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    for argv in (["results", str(d)], ["results", str(d), "--json"], ["results", str(path)]):
        one_line_exit_2(argv, capsys, [fragment])


@pytest.mark.parametrize("content, fragment", [
    ("[]", "run.json holds a list, not a JSON object; expected what ran"),
    ("{", "run.json is not valid JSON"),
    ('{"timings": [1]}', "run.json: timings is not a JSON object"),
])
def test_malformed_run_json_is_one_line_exit_2(tmp_path, capsys, content, fragment):
    d = _run_dir(tmp_path, run=content)
    one_line_exit_2(["results", str(d)], capsys, [fragment])


@pytest.mark.parametrize("doc, fragment", [
    ([], "summary.json holds a list, not a JSON object; expected a summary"),
    ("{", "summary.json is not valid JSON"),
    ({"summary": {"acc": 1}}, "'summary' is not a list"),
    ({"summary": [{"name": "acc"}]}, "summary row 0 lacks n, mean, std, values, seeds"),
    ({"summary": ["acc"]}, "summary row 0 is malformed"),
    ({"summary": [], "by": "lr"}, "'by' is not a list of parameter names"),
    ({"summary": [{"name": "a", "n": 1, "mean": 1, "std": 0, "values": 1, "seeds": [0]}]},
     "summary row 0 is malformed"),
])
def test_malformed_summary_json_is_one_line_exit_2(tmp_path, capsys, doc, fragment):
    g = tmp_path / "group"
    g.mkdir()
    (g / "summary.json").write_text(doc if isinstance(doc, str) else json.dumps(doc))
    for argv in (["results", str(g)], ["results", str(g), "--json"]):
        one_line_exit_2(argv, capsys, [fragment])


def test_a_malformed_notebook_is_one_line_exit_2(tmp_path, capsys):
    path = tmp_path / "x.ipynb"
    path.write_text("[]")
    one_line_exit_2(["results", str(path)], capsys, ["x.ipynb holds a list"])
    path.write_text('{"cells": [1, {"outputs": "no"}, {"outputs": [{"data": 3}]}]}')
    assert main(["results", str(path)]) == 0
    assert "(no recorded values)" in capsys.readouterr().out


# ---------------------------------------------------------------------------- the --out parent

def test_results_of_the_out_directory_with_one_run(tmp_path, capsys):
    out = tmp_path / "out"
    _run_dir(out, results={"acc": 0.25})
    assert main(["results", str(out)]) == 0
    assert "acc  0.25" in capsys.readouterr().out
    assert main(["results", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"acc": 0.25}


def test_results_of_the_out_directory_with_one_group(tmp_path, capsys):
    from labkit.lab.runs import write_summary

    group = tmp_path / "out" / "20260101-000000-smoke-seeds0-1-1-abcdef"
    group.mkdir(parents=True)
    write_summary(group, [], [{"name": "acc", "n": 2, "mean": 0.5, "std": 0.1,
                               "values": [0.4, 0.6], "seeds": [0, 1]}])
    assert main(["results", str(tmp_path / "out")]) == 0
    assert "0.5 ± 0.1" in capsys.readouterr().out


def test_results_of_an_out_directory_with_several_runs_lists_them(tmp_path, capsys):
    out = tmp_path / "out"
    a = _run_dir(out, name="20260101-000000-smoke-seed0-1-aaaaaa")
    b = _run_dir(out, name="20260101-000001-smoke-seed0-1-bbbbbb")
    (out / "notes").mkdir()   # not a run: not listed
    one_line_exit_2(["results", str(out)], capsys,
                    [f"{out} holds 2 runs ({a.name}, {b.name}); accepted: one run directory",
                     f"labkit results {b}"])


def test_results_of_an_empty_directory_says_what_is_expected(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    one_line_exit_2(["results", str(tmp_path / "empty")], capsys,
                    ["has no results.json and no executed notebook; expected a run directory"])


# ---------------------------------------------------------------------------- timings

def test_record_time_keeps_timings_out_of_results(tmp_path):
    run = labkit.setup(scale="smoke", seed=0)
    labkit.record("acc", 0.5)
    assert labkit.lab.record.record_time("train_minutes", 1.25) is None
    labkit.lab.record.record_time("eval_s", 3)
    assert json.loads((run.dir / "results.json").read_text()) == {"acc": 0.5}
    assert json.loads((run.dir / "timings.json").read_text()) == {"train_minutes": 1.25,
                                                                   "eval_s": 3.0}
    assert run.timings == {"train_minutes": 1.25, "eval_s": 3.0}
    assert not list(run.dir.glob(".*.tmp"))          # written atomically, nothing left over
    from labkit.lab.record import read_timings

    assert read_timings(run.dir) == {"train_minutes": 1.25, "eval_s": 3.0}


@pytest.mark.parametrize("name, seconds, message", [
    ("t", -1, "record_time('t', ...): the time must be a finite number >= 0; got -1"),
    ("t", math.nan, "must be a finite number >= 0; got nan"),
    ("t", math.inf, "must be a finite number >= 0; got inf"),
    ("t", "3s", "must be a finite number >= 0; got '3s'"),
    ("t", None, "must be a finite number >= 0; got None"),
    ("", 1.0, "record_time: name must be a non-empty string; got ''"),
    (3, 1.0, "record_time: name must be a non-empty string; got 3"),
])
def test_record_time_rejects_bad_input(name, seconds, message):
    run = labkit.setup(scale="smoke", seed=0)
    with pytest.raises(ValueError) as e:
        labkit.lab.record.record_time(name, seconds)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not (run.dir / "timings.json").exists()


def test_results_shows_timings_apart(tmp_path, capsys):
    d = _run_dir(tmp_path, results={"acc": 0.5},
                 run={"status": "ok", "timings": {"train_minutes": 1.5}})
    assert main(["results", str(d)]) == 0
    out = capsys.readouterr().out
    values, timings = out.split("timings (labkit.record_time)")
    assert "acc" in values and "train_minutes  1.5" in timings
    assert main(["results", str(d), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"acc": 0.5}


def test_missing_records_match_names_exactly():
    from labkit.lab.notebooks import missing_records

    assert missing_records(["a", "b", "c"], {"b": 1}) == ["a", "c"]
    assert missing_records(["acc"], {"acc_after": 1}) == ["acc"]
    assert missing_records([], {}) == []
