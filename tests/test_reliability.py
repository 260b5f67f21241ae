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
from labkit import params
from labkit.cli import main
from labkit.params import ParameterError

LABKIT = Path(labkit.__file__).resolve().parent
# Loaders that may run code shipped with a checkpoint unless told not to.
LOADERS = ("from_pretrained", "from_config")
# Files outside this change's reach that still load without the flag; strict xfail below
# says when someone fixes them (then drop them from this list).
NOT_YET = {"vision/coldstart.py"}


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
    assert {"policy/loading.py", "vision/model.py"} <= set(_sources_with_loaders())
    pol = labkit.load_policy("tiny")
    assert pol.model.config.model_type == "llama"
    assert "trust_remote_code" not in pol.model.config.to_dict()
