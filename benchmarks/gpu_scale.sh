#!/usr/bin/env bash
# Every notebook at `gpu` scale, side by side on one lent GPU machine, for a fixed time.
#
#   bash benchmarks/gpu_scale.sh check          # install + one smoke run: fails in a minute if the setup is wrong
#   bash benchmarks/gpu_scale.sh run SECONDS    # all notebooks at gpu scale, each stopped (SIGTERM) after SECONDS
#   NOTEBOOKS="notebooks/04_*.ipynb" bash benchmarks/gpu_scale.sh run 120   # only these
#
# Meant for the `device` tool: the machine has torch but no Jupyter stack, so the wheels in .whl/
# (made by benchmarks/gpu_wheels.sh) are installed into /tmp/site first. A run stopped by its time
# limit is `interrupted` and keeps what it measured (metrics.jsonl, timings.json); the summary
# printed at the end says, per notebook, how far it got and the projected time to finish.
set -uo pipefail
mode=${1:-check}
seconds=${2:-420}
out=${OUT:-/tmp/gpu_scale_out}
mkdir -p "$out"

if [ ! -f /tmp/site/.done ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl || exit 1
    touch /tmp/site/.done
fi
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
export LABKIT_RUNS_ROOT=/tmp/gpu_runs

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch, transformers, papermill, ipykernel, plotly, labkit; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'transformers', transformers.__version__)" || exit 1

if [ "$mode" = check ]; then
    time python3 -m labkit.lab.cli run 01 --scale smoke --seed 0 || { tail -50 /tmp/gpu_runs/*/*/kernel.log; exit 1; }
    exit 0
fi

rm -rf /tmp/gpu_runs
nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 15 > "$out/gpu_util.csv" &
smi=$!
for nb in ${NOTEBOOKS:-notebooks/[0-9][0-9]_*.ipynb}; do
    id=$(basename "$nb" | cut -c1-2)
    timeout -s TERM "$seconds" python3 -m labkit.lab.cli run "$id" --scale gpu --seed 0 > "$out/run_$id.log" 2>&1 &
done
wait $(jobs -p | grep -v "^$smi$") 2>/dev/null
kill $smi
python3 benchmarks/gpu_scale_summary.py /tmp/gpu_runs "$seconds" | tee "$out/summary.md"
tar -czf "$out/gpu_runs.tar.gz" -C /tmp gpu_runs --exclude='*.ipynb' 2>/dev/null
tar -czf "$out/logs.tar.gz" -C "$out" $(cd "$out" && ls run_*.log)
