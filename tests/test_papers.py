"""The paper registry (labkit.lab.papers): contents, errors, and the notebooks' paper declarations."""
import json

import pytest

from labkit.lab import papers
from labkit.core.paths import NOTEBOOKS_DIR

# The 53 ids of papers.md, copied here on purpose: CI has no ../shared to read them from.
PAPERS_MD_IDS = [
    "decision-mamba", "sec", "seagent", "evolver", "mstar", "deepverifier", "jarvisevo",
    "memskill", "agentevolver", "webrl", "doge", "dr-zero", "vision-sr1", "spark", "evocua",
    "ttcs", "comas", "survey-comprehensive", "yunjue", "survey-asi", "misevolve", "self", "exit",
    "pgd", "bupo", "ltm", "spc", "self-redteam", "spear", "drq", "agent0", "eva", "agentfly",
    "dsrl", "spo", "derl", "survey-foundation-agents", "polychromic", "loongflow", "doc",
    "guided-evolution", "relic", "agentgym", "memevolve", "webevolver", "entropy-mechanism",
    "se-agent", "sppo", "atp", "raptor", "videochat-m1", "sage", "memrl",
]
SURVEYS = ["survey-comprehensive", "survey-asi", "survey-foundation-agents"]


def test_exactly_the_53_ids_of_papers_md():
    assert len(PAPERS_MD_IDS) == len(set(PAPERS_MD_IDS)) == 53
    assert len(papers.PAPERS) == 53
    assert set(papers.PAPERS) == set(PAPERS_MD_IDS)
    assert all(p.id == pid for pid, p in papers.PAPERS.items())


@pytest.mark.parametrize("pid", PAPERS_MD_IDS)
def test_every_field_filled_with_allowed_values(pid):
    p = papers.get(pid)
    assert p.title.strip() and p.summary.strip()
    assert isinstance(p.axes_note, str)
    assert p.track in papers.TRACKS and p.kind in papers.KINDS and p.agents in papers.AGENTS
    for name, allowed in (("what", papers.WHAT), ("when", papers.WHEN), ("how", papers.HOW)):
        vals = getattr(p, name)
        assert isinstance(vals, tuple) and vals, name
        assert len(set(vals)) == len(vals) and set(vals) <= set(allowed), (name, vals)
    assert isinstance(p.evolves_tasks, bool)
    assert p.year is None or 1950 <= p.year <= 2100
    for link in (p.code, p.project_page):
        assert link is None or link.startswith("https://")
    assert len(p.planned_notebook) > 3 and p.planned_notebook[:2].isdigit() and p.planned_notebook[2] == "_"
    with pytest.raises(Exception):  # frozen
        p.title = "x"


def test_tracks_and_plan_follow_the_design():
    assert {p.kind for p in papers.PAPERS.values() if p.track == "0"} == {"survey"}
    assert [p for p in papers.PAPERS if papers.PAPERS[p].kind == "survey"] == SURVEYS
    assert all(papers.get(s).planned_notebook == "00_map" for s in SURVEYS)
    assert papers.get("sec").planned_notebook == "07_curriculum_bandit"
    assert papers.get("sec").track_label == "B curricula"
    assert papers.get("memrl").planned_notebook == papers.get("agentfly").planned_notebook
    assert papers.get("evolver").code == "https://github.com/Edaizi/EvolveR"
    assert papers.get("jarvisevo").code is None and papers.get("jarvisevo").project_page
    # series order: planned notebooks never go backwards
    planned = [p.planned_notebook for p in papers.PAPERS.values()]
    assert planned == sorted(planned)


@pytest.mark.parametrize("bad", ["sppo2", "Sec", "survey", "", "nope"])
def test_unknown_id_is_a_clear_one_line_error(bad):
    with pytest.raises(ValueError) as err:
        papers.get(bad)
    msg = str(err.value)
    assert "\n" not in msg and "unknown paper id" in msg and repr(bad) in msg
    with pytest.raises(KeyError):  # also catchable as a KeyError, like dict lookup
        papers.get(bad)


def test_unknown_id_suggests_close_matches():
    msg = str(pytest.raises(ValueError, papers.get, "sppo2").value)
    assert "'sppo'" in msg
    msg = str(pytest.raises(ValueError, papers.get, "survey").value)
    assert all(repr(s) in msg for s in SURVEYS)


def test_validate_ids():
    assert papers.validate_ids(["sec", "sppo"]) == ["sec", "sppo"]
    assert papers.validate_ids("sec") == ["sec"]
    assert papers.validate_ids([]) == []
    with pytest.raises(ValueError, match=r"nb: unknown paper ids 'secc'.*'zzz'"):
        papers.validate_ids(["sec", "secc", "zzz"], where="nb")
    with pytest.raises(ValueError):
        papers.validate_ids([1])
    with pytest.raises(ValueError):
        papers.validate_ids(None)


def _write_nb(path, ids=None, meta=None):
    metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    if ids is not None:
        metadata["labkit"] = {"papers": ids, "records": [], "workshop_minutes": 1.0}
    if meta is not None:
        metadata.update(meta)
    path.write_text(json.dumps({"cells": [], "metadata": metadata, "nbformat": 4, "nbformat_minor": 5}))


def test_coverage_is_computed_from_notebooks(tmp_path):
    _write_nb(tmp_path / "07_curriculum_bandit.ipynb", ["sec"])
    _write_nb(tmp_path / "22_value_aware_memory.ipynb", ["memrl", "agentfly"])
    _write_nb(tmp_path / "99_also_sec.ipynb", ["sec"])
    _write_nb(tmp_path / "01_tiny_reasoner.ipynb", [])
    _write_nb(tmp_path / "scratch.ipynb")  # no labkit metadata: declares nothing
    (tmp_path / ".ipynb_checkpoints").mkdir()
    _write_nb(tmp_path / ".ipynb_checkpoints" / "x.ipynb", ["nonsense"])  # not a notebook of the series
    cov = papers.coverage(tmp_path)
    assert list(cov) == list(papers.PAPERS)
    assert cov["sec"] == ["07_curriculum_bandit", "99_also_sec"]
    assert cov["memrl"] == cov["agentfly"] == ["22_value_aware_memory"]
    assert sum(bool(v) for v in cov.values()) == 3
    rows = papers.as_rows(tmp_path)
    assert len(rows) == 53 and json.loads(json.dumps(rows)) == rows
    row = next(r for r in rows if r["id"] == "sec")
    assert row["notebooks"] == ["07_curriculum_bandit", "99_also_sec"]
    assert row["planned_notebook"] == "07_curriculum_bandit"


def test_coverage_rejects_unknown_or_malformed_declarations(tmp_path):
    _write_nb(tmp_path / "05_x.ipynb", ["sage", "sagee"])
    with pytest.raises(ValueError, match=r"notebook 05_x: unknown paper id 'sagee'.*'sage'"):
        papers.coverage(tmp_path)
    _write_nb(tmp_path / "05_x.ipynb", meta={"labkit": {"papers": "sage"}})
    with pytest.raises(ValueError, match="must be a list"):
        papers.coverage(tmp_path)


def test_every_notebook_declares_only_known_paper_ids():
    """Runs over every notebook in notebooks/, present and future."""
    decl = papers.declared(NOTEBOOKS_DIR)
    problems = {}
    for name, ids in decl.items():
        try:
            papers.validate_ids(ids, where=f"notebook {name}")
        except ValueError as exc:
            problems[name] = str(exc)
    assert not problems, "\n".join(problems.values())
    papers.coverage(NOTEBOOKS_DIR)  # and coverage accepts them


def test_map_notebook_declares_the_surveys():
    path = NOTEBOOKS_DIR / "00_map.ipynb"
    if not path.exists():
        pytest.skip("notebooks/00_map.ipynb not present")
    meta = json.loads(path.read_text())["metadata"]
    assert meta["labkit"]["papers"] == SURVEYS
    assert {"papers_total", "papers_covered"} <= set(meta["labkit"]["records"])
    cov = papers.coverage(NOTEBOOKS_DIR)
    assert all("00_map" in cov[s] for s in SURVEYS)
