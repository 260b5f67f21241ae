"""Summarise the runs of benchmarks/gpu_scale.sh: one markdown row per notebook.

    python benchmarks/gpu_scale_summary.py RUNS_ROOT SECONDS

For each run: its status, how long it ran, the rows it logged to metrics.jsonl, the last step,
the seconds per step over the last 20 rows, and the notebook's gpu-scale step count(s), read
from its `run.pick(<name>steps, ..., gpu=N)` lines.
"""
import json
import re
import sys
from pathlib import Path

root, seconds = Path(sys.argv[1]), sys.argv[2]
STEPS = re.compile(r"(\w*steps|iterations)\s*=\s*run\.pick\([^)]*gpu=(\d+)")

print(f"| notebook | status | wall s | rows | last step | s/step (last 20) | gpu steps |  (limit {seconds} s each)")
print("|---|---|---|---|---|---|---|")
for run_json in sorted(root.glob("*/*/run.json")):
    run_dir = run_json.parent
    run = json.loads(run_json.read_text())
    rows = []
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        rows = [json.loads(line) for line in metrics.read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "step" in r and "time" in r]
    last = steps[-1]["step"] if steps else "-"
    pace = "-"
    if len(steps) >= 2:
        tail = steps[-20:]
        span = tail[-1]["step"] - tail[0]["step"]
        if span > 0:
            pace = f"{(tail[-1]['time'] - tail[0]['time']) / span:.3f}"
    nb = next(run_dir.glob("*.ipynb"), None)
    gpu_steps = ""
    if nb is not None:
        source = "".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"])
        gpu_steps = ", ".join(f"{name}={n}" for name, n in STEPS.findall(source))
    print(f"| {run_dir.parent.name} | {run.get('status')} | {run.get('duration')} | {len(rows)} | {last} | {pace} | {gpu_steps} |")
