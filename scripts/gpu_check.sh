#!/usr/bin/env bash
# The checks a GPU session runs, prepared to fit a short lease on one card:
#   scripts/gpu_check.sh bench            # every benchmark on the GPU -> $OUT/RESULTS_GPU.md
#   scripts/gpu_check.sh recipe DATA_ROOT # experiment=cifar10 (3 seeds) and seed 0 with airbench's whitening stem, side by side
# DATA_ROOT holds cifar-10-batches-py. Results go to $OUT (default logs/gpu_check): the
# benchmark tables, each run's log, and scripts/report.py's table of the recipe runs, whose
# folders are in $RUNS (default logs/gpu_check_runs). $EXTRA: overrides added to every run.
# The recipe runs share the card: each is launch-bound (batch 256 of 32x32 images); on one
# H200 four at once took about 2 min each (README, CIFAR-10).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-logs/gpu_check}"
RUNS="${RUNS:-logs/gpu_check_runs}"
PYTHON="${PYTHON:-python3}"
case "${1:-}" in
bench | recipe) ;;
*)
    echo "usage: $0 bench | recipe DATA_ROOT" >&2
    exit 2
    ;;
esac
if ! command -v nvidia-smi >/dev/null; then
    echo "$0: no NVIDIA GPU here (nvidia-smi not found); run it on a GPU machine" >&2
    exit 2
fi
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"

case "${1:-}" in
bench)
    "$PYTHON" -m benchmarks --device cuda --threads 2 --output "$OUT/RESULTS_GPU.md" 2>&1 | tee "$OUT/bench.log"
    ;;
recipe)
    root="${2:?give the folder holding cifar-10-batches-py}"
    declare -A variants=(
        [seed0]="seed=0"
        [seed1]="seed=1"
        [seed2]="seed=2"
        [whitened]="seed=0 +callbacks.whitening={_target_:lregloss.callbacks.WhiteningInit,images:5000}"
    )
    pids=()
    for name in "${!variants[@]}"; do
        # shellcheck disable=SC2086  # the variant's overrides are separate words
        OMP_NUM_THREADS=2 "$PYTHON" scripts/train.py experiment=cifar10 data.root="$root" \
            hydra.run.dir="$RUNS/$name" callbacks.rich_progress_bar=null +trainer.enable_progress_bar=false \
            ${variants[$name]} ${EXTRA:-} \
            >"$OUT/$name.log" 2>&1 &
        pids+=($!)
    done
    status=0
    for pid in "${pids[@]}"; do wait "$pid" || status=1; done
    "$PYTHON" scripts/report.py "$RUNS" --output "$OUT/report" || status=1
    exit "$status"
    ;;
esac
