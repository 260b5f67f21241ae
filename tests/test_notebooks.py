"""Every notebook in notebooks/ (discovered, so a new notebook is tested without editing this
file): committed clean, and executed by papermill at smoke scale with its recorded values checked.
"""
import json
import math
import os

import pytest

from labkit.lab.notebooks import check_notebook, discover
from labkit.lab.runs import execute
from test_effects import claims_of  # tests/ is on sys.path under pytest's default (prepend) import mode

NOTEBOOKS = discover()
IDS = [nb.stem for nb in NOTEBOOKS]
# A smoke run is meant to take seconds; this generous bound only catches a notebook that
# ignores its scale (the machine is shared, so timing is noisy).
SMOKE_LIMIT_S = float(os.environ.get("LABKIT_SMOKE_LIMIT_S", "300"))


def _finite(value) -> bool:
    if isinstance(value, bool):
        return True
    if isinstance(value, (int, float)):
        return math.isfinite(value)
    if isinstance(value, list):
        return bool(value) and all(_finite(v) for v in value)
    return False


def test_there_are_notebooks():
    assert NOTEBOOKS, "no NN_name.ipynb found in notebooks/"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_committed_clean(nb):
    """No outputs, a `parameters` cell with scale/seed/device, papers and records declared."""
    problems = check_notebook(nb.path)
    assert not problems, f"{nb.path.name}: " + "; ".join(problems)


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=IDS)
def test_smoke_execution(nb, tmp_path):
    # under pytest -n, each kernel gets one thread so parallel workers do not oversubscribe
    threads = 1 if os.environ.get("PYTEST_XDIST_WORKER") else None
    r = execute(nb, scale="smoke", seed=0, out_dir=tmp_path, threads=threads)
    assert r.ok, f"{nb.stem} failed at smoke scale: {r.error}\n  executed notebook: {r.notebook_out}"
    for name in nb.records:
        assert name in r.results, (f"{nb.stem} did not record {name!r} (metadata labkit.records); "
                                   f"recorded: {sorted(r.results)}")
        assert _finite(r.results[name]), f"{nb.stem}: {name} = {r.results[name]!r} is not finite"
    assert (r.run_dir / "results.json").is_file()
    metrics = r.run_dir / "metrics.jsonl"
    assert metrics.is_file()
    for line in metrics.read_text().splitlines():
        assert isinstance(json.loads(line), dict)
    assert r.duration < SMOKE_LIMIT_S, f"{nb.stem} smoke run took {r.duration:.0f}s"
    # every claim a notebook states (labkit.verdict) is asserted over seeds in the slow suite
    stated = sorted(name.removeprefix("held/") for name in r.results if name.startswith("held/"))
    listed = {c.name for c in claims_of(nb.stem[:2])}
    unlisted = [name for name in stated if name not in listed]
    assert not unlisted, f"{nb.stem}: verdicts {unlisted} have no Claim in tests/test_effects.py"


def test_a_real_notebook_gives_byte_identical_results_for_the_same_seed(tmp_path):
    """The promise of `labkit run --seed`: with one thread, the same seed gives the same
    results.json, byte for byte (wall times live in timings.json and run.json)."""
    nb = next(nb for nb in NOTEBOOKS if nb.stem.startswith("01_"))
    runs = [execute(nb, scale="smoke", seed=5, out_dir=tmp_path / str(i), threads=1) for i in range(2)]
    assert all(r.ok for r in runs), [r.error for r in runs]
    first, second = ((r.run_dir / "results.json").read_bytes() for r in runs)
    assert first == second
    assert "train_minutes" not in json.loads(first)
    assert "train_minutes" in json.loads((runs[0].run_dir / "run.json").read_text())["timings"]


# ---------------------------------------------------------------------------- exported mechanisms

def test_every_exported_mechanism_matches_its_notebook():
    """labkit/nb/nNN_name.py is generated from the notebook's cells tagged `export`: edit the
    notebook, then `python -m labkit.lab.notebooks --export`."""
    from labkit.lab.notebooks import stale_exports

    assert stale_exports() == []


def test_export_writes_checks_and_finds_orphans(tmp_path):
    import nbformat
    from notebook_factory import write_notebook

    from labkit.lab.notebooks import export_all, info, stale_exports

    path = write_notebook(tmp_path / "nb" / "42_demo.ipynb", "42 · Demo", "scale = 'smoke'", ["y = 1"])
    nb = nbformat.read(str(path), as_version=4)
    nb.cells.insert(2, nbformat.v4.new_code_cell("def double(x):\n    return 2 * x", metadata={"tags": ["export"]}))
    nbformat.write(nb, str(path))
    demo, out = info(path), tmp_path / "exports"
    out.mkdir()
    assert stale_exports([demo], out) == ["labkit/nb/n42_demo.py is out of date with notebooks/42_demo.ipynb"]
    assert [p.name for p in export_all([demo], out)] == ["n42_demo.py"]
    assert stale_exports([demo], out) == [] and export_all([demo], out) == []
    namespace = {}
    exec(compile((out / "n42_demo.py").read_text(), "n42_demo.py", "exec"), namespace)  # our own generated code
    assert namespace["double"](21) == 42 and "Generated from" in namespace["__doc__"]
    (out / "n43_gone.py").write_text("")
    assert stale_exports([demo], out) == ["labkit/nb/n43_gone.py has no notebook cells tagged 'export'"]


def test_code_writes_each_notebooks_code_cells_without_the_export_cells(tmp_path):
    from labkit.lab.notebooks import write_code

    written = write_code(tmp_path)
    assert [p.stem for p in written] == IDS
    for nb, path in zip(NOTEBOOKS, written):
        cells = json.loads(nb.path.read_text())["cells"]
        exported = [c for c in cells if "export" in c.get("metadata", {}).get("tags", [])]
        text = path.read_text()
        compile(text, str(path), "exec")  # the series' code parses as plain Python
        assert all("".join(c["source"]).strip() not in text for c in exported)
