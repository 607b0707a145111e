#!/bin/bash
# Several trainings at once on this machine: TensorFlow's own thread pools against one thread
# each (docs/training.md, "Several trainings on one machine").
#
#   bash experiments/trainings_side_by_side.sh [PROCESSES] [STEPS] [STORE]
#
# Without STORE each process is experiments/bench_train.py --backends tensorflow (the training
# step on generated inputs; a line per process, compare steps/s). With STORE each is
# `mdsim train STORE --config default_model` for 2 epochs of STEPS batches, the loader included,
# and prints its wall time. Defaults: 2 processes, 10 steps.
set -e
n=${1:-2}
steps=${2:-10}
store=${3:-}
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
one() {
    if [ -z "$store" ]; then
        "$PY" experiments/bench_train.py --backends tensorflow --steps "$steps" 2>/dev/null | grep '^| tensorflow'
    else
        local out="$scratch/run$1$RANDOM" start=$(date +%s.%N)
        "$PY" -m mdsim train "$store" --config default_model --epochs 2 --steps-per-epoch "$steps" --out "$out" \
            --quiet > /dev/null 2>&1
        echo "mdsim train, 2 epochs of $steps batches: $(echo "$(date +%s.%N) - $start" | bc) s"
    fi
}
many() { for i in $(seq "$n"); do one "$i" & done; wait; }
echo "$n at once, TensorFlow's own thread pools:"
many
echo "$n at once, one thread each (TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1):"
export TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1
many
