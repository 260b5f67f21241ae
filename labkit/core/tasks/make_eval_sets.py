"""Regenerate data/eval/*.jsonl: `python -m labkit.core.tasks.make_eval_sets`."""
from __future__ import annotations

import json

from ..paths import EVAL_DIR
from .eval_sets import EVAL_SEED, EVAL_SETS
from .registry import make_tasks


def main() -> None:
    EVAL_DIR.mkdir(parents=True, exist_ok=True)
    for name, spec in EVAL_SETS.items():
        path = EVAL_DIR / f"{name}.jsonl"
        with open(path, "w", encoding="ascii") as out:
            for category, (difficulties, n) in spec.items():
                for difficulty in difficulties:
                    for task in make_tasks(category, difficulty, n, seed=EVAL_SEED):
                        out.write(json.dumps(task.to_json(), separators=(",", ":")) + "\n")
        print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
