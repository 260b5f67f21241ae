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
