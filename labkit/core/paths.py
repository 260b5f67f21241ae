"""Where the shipped artefacts live. Notebooks resolve data through here, never through their cwd."""
import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = Path(os.environ.get("LABKIT_DATA", REPO_ROOT / "data"))
MODELS_DIR = DATA_DIR / "models"
EVAL_DIR = DATA_DIR / "eval"
NOTEBOOKS_DIR = Path(os.environ.get("LABKIT_NOTEBOOKS", REPO_ROOT / "notebooks"))
