"""Tiny throwaway notebooks for the tests that execute the run machinery (not a test module)."""
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook


def write_notebook(path: Path, title: str, params: str, bodies, records=("y",)) -> Path:
    """A notebook at ``path``: a title cell, a ``parameters`` cell, then one code cell per body
    (a string or a list of strings), with the labkit metadata that declares ``records``."""
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["labkit"] = {"papers": ["sec"], "records": list(records), "workshop_minutes": 1}
    nb.cells = [new_markdown_cell(f"# {title}"), new_code_cell(params, metadata={"tags": ["parameters"]})]
    nb.cells += [new_code_cell(b) for b in ([bodies] if isinstance(bodies, str) else bodies)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path
