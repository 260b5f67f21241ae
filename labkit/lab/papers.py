"""The paper registry: paper id -> title, track, planned notebook and place on the surveys' axes.

The data live in ``labkit/lab/papers.json`` (shipped inside the package; CI has no ``../shared``).
Titles and code links are the papers' own (from their abstracts); ``track`` and
``planned_notebook`` come from the series table in DESIGN.md; ``year`` is ``None`` where the
abstract gives none (at present for every paper). The survey axes are judgements made from each
abstract; ``axes_note`` says why wherever the call was not obvious.

Which notebooks *implement* a paper is deliberately not stored: :func:`coverage` reads it from the
notebooks' own metadata (``metadata.labkit.papers``), so it cannot drift from the truth.
``planned_notebook`` is the plan; ``coverage()`` is what exists. Notebook 00_map explains the axes.

    >>> from labkit.lab import papers
    >>> papers.get("sec").planned_notebook
    '07_curriculum_bandit'
    >>> papers.validate_ids(["sec", "sppo"])
    ['sec', 'sppo']
"""
from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Iterable

__all__ = [
    "Paper", "PAPERS", "UnknownPaperError", "get", "validate_ids", "declared", "coverage",
    "as_rows", "TRACKS", "KINDS", "WHAT", "WHEN", "HOW", "AGENTS",
]

# Series tracks of DESIGN.md ("0" = foundations: the surveys and the substrate).
TRACKS = {
    "0": "foundations", "A": "exploration", "B": "curricula", "C": "self-reward",
    "D": "self-play", "E": "memory", "F": "evolution", "G": "agents", "H": "control",
}
KINDS = {
    "survey": "survey of the field",
    "method": "proposes a mechanism",
    "study": "empirical, risk or position study",
}
# The surveys' axes (value -> label). What evolves (ASI survey: "what to evolve"; the
# Comprehensive survey's components of the agent system):
WHAT = {
    "model": "model (weights / policy)",
    "context": "context / prompt",
    "memory": "memory",
    "tools": "tools",
    "architecture": "architecture / workflow",
    "reward": "reward",
}
# When it evolves (ASI survey: intra-test-time / inter-test-time; plus learning from fixed data):
WHEN = {
    "within-task": "within a task (intra-test-time)",
    "between-tasks": "between tasks (inter-test-time)",
    "offline": "offline (from fixed data)",
}
# How it evolves (ASI survey: "how to evolve"):
HOW = {
    "scalar-reward": "scalar reward",
    "textual-feedback": "textual feedback",
    "imitation": "imitation / demonstrations",
    "population": "population / evolution",
    "self-play": "self-play",
}
# "multi": two or more agents or roles interact as players (proposer/solver, attacker/defender,
# collaborators); a model judging or playing against itself symmetrically stays "single".
AGENTS = {"single": "single-agent", "multi": "multi-agent", "both": "single- and multi-agent"}

_DATA = "papers.json"


class UnknownPaperError(ValueError, KeyError):
    """An id that is not in the registry. A ValueError (and a KeyError) with a one-line message."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Paper:
    id: str
    title: str
    year: int | None          # None: the abstract gives no year
    code: str | None          # code link given by the abstract
    project_page: str | None  # a non-code link given by the abstract
    track: str                # key of TRACKS
    kind: str                 # key of KINDS
    planned_notebook: str     # from DESIGN.md's series table: the plan, not coverage()
    what: tuple[str, ...]     # keys of WHAT
    when: tuple[str, ...]     # keys of WHEN
    how: tuple[str, ...]      # keys of HOW
    agents: str               # key of AGENTS
    evolves_tasks: bool       # the system also generates / selects its own training tasks
    summary: str              # the mechanism in one line
    axes_note: str            # judgement calls on the axes ("" when none)

    def __post_init__(self):
        def bad(msg):
            raise ValueError(f"labkit/lab/papers.json: paper {self.id!r}: {msg}")

        for name, allowed in (("what", WHAT), ("when", WHEN), ("how", HOW)):
            vals = getattr(self, name)
            if not isinstance(vals, tuple) or not vals:
                bad(f"{name} must be a non-empty tuple")
            if len(set(vals)) != len(vals) or any(v not in allowed for v in vals):
                bad(f"{name}={list(vals)}; allowed (no repeats): {', '.join(allowed)}")
        for name, allowed in (("track", TRACKS), ("kind", KINDS), ("agents", AGENTS)):
            if getattr(self, name) not in allowed:
                bad(f"{name}={getattr(self, name)!r}; allowed: {', '.join(allowed)}")
        if not (self.title and self.summary and self.planned_notebook):
            bad("title, summary and planned_notebook must be non-empty")
        if self.year is not None and not (isinstance(self.year, int) and 1950 <= self.year <= 2100):
            bad(f"year={self.year!r}")
        for name in ("code", "project_page"):
            link = getattr(self, name)
            if link is not None and not link.startswith("https://"):
                bad(f"{name}={link!r} is not an https link")
        if not isinstance(self.evolves_tasks, bool):
            bad("evolves_tasks must be a bool")

    @property
    def track_name(self) -> str:
        return TRACKS[self.track]

    @property
    def track_label(self) -> str:
        """E.g. ``'A exploration'``, as in DESIGN.md's series table."""
        return f"{self.track} {self.track_name}"


def _load() -> dict[str, Paper]:
    raw = json.loads(resources.files("labkit.lab").joinpath(_DATA).read_text(encoding="utf-8"))
    out: dict[str, Paper] = {}
    for rec in raw["papers"]:
        rec = dict(rec)
        for key in ("what", "when", "how"):
            rec[key] = tuple(rec[key])
        paper = Paper(**rec)
        if paper.id in out:
            raise ValueError(f"labkit/lab/papers.json: duplicate paper id {paper.id!r}")
        out[paper.id] = paper
    return out


PAPERS: dict[str, Paper] = _load()


def _close(paper_id: str) -> list[str]:
    key = str(paper_id).strip().lower()
    subs = [p for p in PAPERS if key and (key in p or p in key)]
    near = difflib.get_close_matches(key, list(PAPERS), n=4, cutoff=0.6)
    return list(dict.fromkeys(subs + near))[:4]


def _unknown_message(unknown: list, where: str = "") -> str:
    parts = []
    for pid in unknown:
        close = _close(pid)
        hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
        parts.append(f"{pid!r}{hint}")
    prefix = f"{where}: " if where else ""
    return (f"{prefix}unknown paper id{'s' if len(unknown) > 1 else ''} {'; '.join(parts)}; "
            f"the {len(PAPERS)} known ids are listed in labkit.lab.papers.PAPERS")


def get(paper_id: str) -> Paper:
    """The registry entry for one paper id; an unknown id raises UnknownPaperError with close matches."""
    if isinstance(paper_id, str) and paper_id in PAPERS:
        return PAPERS[paper_id]
    raise UnknownPaperError(_unknown_message([paper_id]))


def validate_ids(ids: str | Iterable[str], where: str = "") -> list[str]:
    """Return ``ids`` as a list when every one is a known paper id; else raise UnknownPaperError
    naming each unknown id and its close matches (``where`` prefixes the message, e.g. a notebook).
    A single string is taken as one id. An empty list is valid (e.g. the substrate notebook)."""
    if isinstance(ids, str):
        ids = [ids]
    try:
        ids = list(ids)
    except TypeError:
        raise UnknownPaperError(f"{where + ': ' if where else ''}paper ids must be a list of strings, "
                                f"got {type(ids).__name__}") from None
    unknown = [i for i in ids if not (isinstance(i, str) and i in PAPERS)]
    if unknown:
        raise UnknownPaperError(_unknown_message(list(dict.fromkeys(map(str, unknown))), where))
    return ids


def _notebooks_dir(notebooks_dir) -> Path:
    if notebooks_dir is None:
        from labkit.core.paths import NOTEBOOKS_DIR
        notebooks_dir = NOTEBOOKS_DIR
    return Path(notebooks_dir)


def declared(notebooks_dir: str | Path | None = None) -> dict[str, list]:
    """Notebook name (file stem) -> the paper ids it declares in ``metadata.labkit.papers``, as
    written (not validated), for every ``*.ipynb`` directly in ``notebooks_dir`` (default
    ``labkit.core.paths.NOTEBOOKS_DIR``). A notebook without the key declares ``[]``; a value that is not
    a list raises ValueError. Reads the JSON directly: no kernel, no nbformat validation."""
    out = {}
    for path in sorted(_notebooks_dir(notebooks_dir).glob("*.ipynb")):
        try:
            meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read notebook JSON ({exc})") from None
        ids = (meta.get("labkit") or {}).get("papers", [])
        if not isinstance(ids, list):
            raise ValueError(f"{path.name}: metadata labkit.papers must be a list of paper ids, "
                             f"got {type(ids).__name__}")
        out[path.stem] = ids
    return out


def coverage(notebooks_dir: str | Path | None = None) -> dict[str, list[str]]:
    """Paper id -> names of the notebooks that declare it (``[]`` = not yet implemented), for all
    papers in series order, computed from the notebooks themselves. A notebook declaring an unknown
    id raises UnknownPaperError naming the notebook."""
    cov: dict[str, list[str]] = {pid: [] for pid in PAPERS}
    for name, ids in declared(notebooks_dir).items():
        for pid in validate_ids(ids, where=f"notebook {name}"):
            if name not in cov[pid]:
                cov[pid].append(name)
    return cov


def as_rows(notebooks_dir: str | Path | None = None) -> list[dict]:
    """One JSON-serialisable dict per paper (series order), with the implementing ``notebooks``
    from :func:`coverage` beside the ``planned_notebook``; for tables, plots and ``labkit list``."""
    cov = coverage(notebooks_dir)
    rows = []
    for p in PAPERS.values():
        rows.append({
            "id": p.id, "title": p.title, "year": p.year, "track": p.track,
            "track_name": p.track_name, "kind": p.kind, "planned_notebook": p.planned_notebook,
            "notebooks": list(cov[p.id]), "what": list(p.what), "when": list(p.when),
            "how": list(p.how), "agents": p.agents, "evolves_tasks": p.evolves_tasks,
            "code": p.code, "project_page": p.project_page, "summary": p.summary,
            "axes_note": p.axes_note,
        })
    return rows
