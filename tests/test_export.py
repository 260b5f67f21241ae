"""labkit export: a run's metrics.jsonl as TensorBoard event files, read back with
tensorboard's EventAccumulator; one-line errors for bad input."""
import datetime as dt
import importlib.util
import json

import pytest

from labkit.lab.cli import main
from labkit.lab.export import export_tensorboard, read_metrics, split_series

needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="tensorboard is not installed (pip install -e '.[tensorboard]')")
STARTED = "2026-01-02T03:04:05"


def _run(path, rows, started=STARTED):
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"notebook": "/x/02_entropy_mechanism.ipynb",
                                               "scale": "smoke", "seed": 0, "started": started}))
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows)
                                        + '{"step": 9, "los')   # an interrupted last line
    return path


ROWS = [
    {"step": 0, "time": 1.5, "method": "grpo", "reward/mean": 0.25, "entropy": 1.0, "ok": True,
     "kl": None, "phase": "warmup"},
    {"step": 1, "time": 2.5, "method": "grpo", "reward/mean": 0.5, "entropy": 0.9, "ok": False},
    {"step": 0, "time": 3.0, "method": "clip_cov", "reward/mean": 0.125, "entropy": 1.1},
    {"step": 0, "time": 4.0, "acc": 0.75},                      # no series: goes to "main"
]


def _accumulate(path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path))
    acc.Reload()
    return acc


def test_rows_split_by_series_with_scalars_only(tmp_path):
    run = _run(tmp_path / "run", ROWS)
    rows, bad = read_metrics(run)
    assert len(rows) == 4 and bad == 1
    series = split_series(rows)
    assert list(series) == ["grpo", "clip_cov", None]
    assert series["grpo"][0] == (0, 1.5, {"reward/mean": 0.25, "entropy": 1.0, "ok": 1.0})  # no null, no string
    assert series["grpo"][1][2]["ok"] == 0.0


@needs_tensorboard
def test_tensorboard_events_read_back(tmp_path):
    run = _run(tmp_path / "run", ROWS)
    out = tmp_path / "tb"
    assert export_tensorboard(run, out) == {"grpo": 6, "clip_cov": 2, "main": 1}
    grpo = _accumulate(out / "grpo")
    assert sorted(grpo.Tags()["scalars"]) == ["entropy", "ok", "reward/mean"]
    events = grpo.Scalars("reward/mean")
    assert [(e.step, e.value) for e in events] == [(0, 0.25), (1, 0.5)]
    t0 = dt.datetime.fromisoformat(STARTED).timestamp()
    assert [e.wall_time for e in events] == pytest.approx([t0 + 1.5, t0 + 2.5])
    assert [(e.step, e.value) for e in _accumulate(out / "clip_cov").Scalars("entropy")] == \
        [(0, pytest.approx(1.1))]
    assert _accumulate(out / "main").Scalars("acc")[0].value == 0.75


@needs_tensorboard
def test_one_series_goes_to_out_dir_and_seeds_to_their_own(tmp_path, capsys):
    plain = _run(tmp_path / "plain", [{"step": s, "time": s, "loss": 1.0 / (s + 1)} for s in range(3)])
    assert main(["export", str(plain), "--to", "tensorboard", str(tmp_path / "tb1")]) == 0
    assert "exported 3 scalars in 1 run" in capsys.readouterr().out
    assert [e.value for e in _accumulate(tmp_path / "tb1").Scalars("loss")] == pytest.approx([1, 0.5, 1 / 3])
    group = tmp_path / "group"
    for seed in (0, 1):
        _run(group / f"seed{seed}", [{"step": 0, "time": 0, "arm": "rm", "loss": float(seed)}])
    assert main(["export", str(group), "--to", "tensorboard", str(tmp_path / "tb2")]) == 0
    assert _accumulate(tmp_path / "tb2" / "seed1" / "rm").Scalars("loss")[0].value == 1.0


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    run = _run(tmp_path / "run", ROWS)
    cases = [
        (["export", str(tmp_path / "nope"), "--to", "tensorboard", str(tmp_path / "o")], "no such run directory"),
        (["export", str(tmp_path), "--to", "tensorboard", str(tmp_path / "o")], "has no metrics.jsonl"),
        (["export", str(run), "--to", "csv", str(tmp_path / "o")], "FORMAT one of tensorboard, trackio"),
        (["export", str(run), "--to", "tensorboard"], "needs OUT_DIR"),
        (["export", str(run)], "required: --to"),
    ]
    if importlib.util.find_spec("trackio") is None:
        cases.append((["export", str(run), "--to", "trackio"], 'pip install -e ".[trackio]"'))
    for argv, message in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
