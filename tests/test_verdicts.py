"""labkit.verdict: a single run states each claimed effect, records it, and never fails on it."""
import json
import math

import numpy as np
import pytest
import torch

import labkit
from labkit.lab.verdicts import verdict


@pytest.fixture
def run(tmp_path, monkeypatch):
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path / "run"))
    return labkit.setup(scale="workshop", seed=0, device="cpu")


def results(run) -> dict:
    return json.loads((run.dir / "results.json").read_text())


def test_held_and_not_held_are_printed_and_recorded(run, capsys):
    assert verdict("gap", 0.12, above=0.1, claim="the mechanism beats the baseline") is True
    assert verdict("drop", -0.05, above=0) is False
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "verdict  gap: held on this seed (+0.120; claimed > +0.1): the mechanism beats the baseline"
    assert out[1].startswith("verdict  drop: NOT on this seed (-0.050; claimed > +0)")
    assert results(run) == {"gap": 0.12, "held/gap": True, "drop": -0.05, "held/drop": False}


def test_bounds_are_strict_and_can_be_two_sided(run):
    assert verdict("at_bound", 0.8, above=0.8) is False
    assert verdict("inside", 0.5, above=0.0, below=1.0) is True
    assert verdict("above_upper", 1.5, above=0.0, below=1.0) is False
    assert verdict("upper_only", -2, below=0) is True


def test_a_non_finite_value_never_holds_and_is_recorded(run, capsys):
    assert verdict("nan_gap", float("nan"), above=0) is False
    assert "NOT on this seed" in capsys.readouterr().out
    data = results(run)
    assert data["nan_gap"] == "NaN" and data["held/nan_gap"] is False


def test_numpy_and_torch_scalars_are_numbers(run):
    assert verdict("np_gap", np.float32(0.3), above=0) is True
    assert verdict("torch_gap", torch.tensor(0.3), above=0) is True


def test_smoke_scale_says_the_verdict_is_informational(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("LABKIT_RUN_DIR", str(tmp_path / "smoke"))
    labkit.setup(scale="smoke", seed=0, device="cpu")
    verdict("gap", 0.2, above=0)
    assert "[smoke scale: too short for effects; informational]" in capsys.readouterr().out


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="", value=1.0, above=0), "non-empty string"),
    (dict(name="a/b", value=1.0, above=0), "without '/'"),
    (dict(name="gap", value=1.0), "give the claimed bound"),
    (dict(name="gap", value="0.3", above=0), "value must be a number"),
    (dict(name="gap", value=True, above=0), "value must be a number"),
    (dict(name="gap", value=None, above=0), "value must be a number"),
    (dict(name="gap", value=1.0, above=math.inf), "bounds must be finite"),
    (dict(name="gap", value=1.0, below="1"), "bounds must be finite"),
])
def test_a_malformed_call_is_a_one_line_error(run, kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        verdict(**kwargs)
    assert "\n" not in str(err.value)
