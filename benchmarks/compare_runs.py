"""Did a refactor move any notebook's numbers? Compare the recorded values of two sets of runs.

    python benchmarks/compare_runs.py OLD_DIR NEW_DIR [--old-rev REV] [--notebooks 01 02 ...]

For each notebook, the workshop runs of seeds 0-4 are looked up under OLD_DIR (runs of the
notebook as it was at git revision REV, default the newest such run per seed) and NEW_DIR
(runs of today's notebook). Per recorded number it prints how many seeds are byte-identical,
the largest difference, and Welch's t of the difference of the means (|t| < 2: within noise).
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
from labkit.core.stats import mean_std  # noqa: E402
from test_effects import SEEDS, _code_cells, runs_with_code  # noqa: E402  (the slow suite's run lookup)


def welch_t(a: list[float], b: list[float]) -> float:
    (ma, sa), (mb, sb) = mean_std(a), mean_std(b)
    se = math.sqrt(sa ** 2 / len(a) + sb ** 2 / len(b))
    return 0.0 if se == 0 and ma == mb else (mb - ma) / se if se else math.inf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--old-rev", required=True, help="the git revision the old runs were made with")
    ap.add_argument("--notebooks", nargs="*", help="NN prefixes (default: all)")
    args = ap.parse_args()
    paths = sorted((REPO / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if args.notebooks:
        paths = [p for p in paths if p.name[:2] in args.notebooks]
    print("| nb | records | identical on every seed | within noise (abs t < 2) | largest abs difference |")
    print("|---|---|---|---|---|")
    for path in paths:
        old_text = subprocess.run(["git", "show", f"{args.old_rev}:notebooks/{path.name}"], cwd=REPO,
                                  capture_output=True, text=True).stdout
        old = runs_with_code(args.old, path.name, _code_cells(json.loads(old_text))) if old_text else {}
        new = runs_with_code(args.new, path.name, _code_cells(json.loads(path.read_text())))
        seeds = [s for s in SEEDS if s in old and s in new]
        if len(seeds) < 2:
            print(f"| {path.name[:2]} | runs missing: old seeds {sorted(old)}, new seeds {sorted(new)} | | | |")
            continue
        names = sorted(k for k in new[seeds[0]] if not k.startswith("held/")
                       and all(isinstance(new[s].get(k), (int, float)) and isinstance(old[s].get(k), (int, float))
                               and not isinstance(new[s].get(k), bool) for s in seeds))
        identical = [k for k in names if all(old[s][k] == new[s][k] for s in seeds)]
        ts = {k: welch_t([float(old[s][k]) for s in seeds], [float(new[s][k]) for s in seeds]) for k in names}
        noisy = [k for k in names if abs(ts[k]) >= 2]
        biggest = max(names, key=lambda k: max(abs(new[s][k] - old[s][k]) for s in seeds), default=None)
        diff = "" if biggest is None else f"{biggest}: {max(abs(new[s][biggest] - old[s][biggest]) for s in seeds):.4g}"
        print(f"| {path.name[:2]} | {len(names)} numbers x {len(seeds)} seeds | {len(identical)} of {len(names)} | "
              f"{len(names) - len(noisy)} of {len(names)}" + (f" (|t| >= 2: {', '.join(noisy)})" if noisy else "")
              + f" | {diff} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
