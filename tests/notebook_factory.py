"""Tiny throwaway notebooks for the tests that execute the run machinery (not a test module)."""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def write_notebook(path: Path, title: str, params: str, bodies, records=("y",)) -> Path:
    """A notebook at ``path`` in the series' anatomy: a title cell, the Key equations and
    Pseudocode headings, a ``parameters`` cell, then one code cell per body (a string or a list of
    strings) under Mechanism/Experiment, empty Results and Notes, and the labkit metadata that
    declares ``records``."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["labkit"] = {"papers": ["sec"], "records": list(records), "workshop_minutes": 1}
    nb.cells = [new_markdown_cell(f"# {title}"), new_markdown_cell("## Key equations\n\n## Pseudocode"),
                new_code_cell(params, metadata={"tags": ["parameters"]}),
                new_markdown_cell("## Mechanism\n\n## Experiment")]
    nb.cells += [new_code_cell(b) for b in ([bodies] if isinstance(bodies, str) else bodies)]
    nb.cells += [new_markdown_cell("## Results"), new_markdown_cell("## Notes")]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
