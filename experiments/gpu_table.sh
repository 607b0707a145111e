#!/usr/bin/env bash
# The training-throughput table of docs/training.md ("On a GPU"), in one command, on a machine
# with an accelerator: a compact store of generated tracks, its loader, the step from it with
# the tempogram computed in the loader and in the step, the paper-size step at three batch sizes
# and three precisions with its share of the measured matmul peak, the first step with and
# without the compilation cache, and PyTorch eager against torch.compile. Raw outputs in OUT.
#
#   bash experiments/gpu_table.sh OUT            # the paper's size (width 1.0, 384-d)
#   WIDTH=0.25 EMB=48 STEPS=3 TRACKS=40 BATCHES="8 16" MATMUL=512 bash experiments/gpu_table.sh OUT   # a quick check
#
# Needs mdsim importable (PYTHONPATH=. in a checkout) with Keras 3 on JAX and/or PyTorch;
# TensorFlow is not needed. A row that fails says why in its table and the script goes on.
set -uo pipefail
OUT=${1:?usage: bash experiments/gpu_table.sh OUT}
WIDTH=${WIDTH:-1.0}; EMB=${EMB:-384}; STEPS=${STEPS:-20}; TRACKS=${TRACKS:-400}
BATCHES=${BATCHES:-"64 256 1024"}; MATMUL=${MATMUL:-8192}; PY=${PYTHON:-python}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
export PYTHONPATH="$HERE/..${PYTHONPATH:+:$PYTHONPATH}"
size=(--width "$WIDTH" --embedding-size "$EMB" --steps "$STEPS")
log() { echo "$(date +%H:%M:%S) $*" | tee -a "$OUT/progress.log"; }

if [ ! -f "$OUT/compact.h5" ]; then
  log "generating a compact store of $TRACKS tracks"
  "$PY" -c "import sys; sys.path.insert(0, '$HERE'); from pathlib import Path; from bench_loader import generate_store; \
generate_store(Path('$OUT/compact.h5'), $TRACKS, 'compact')" || exit 1
fi
log "loader"
KERAS_BACKEND=jax "$PY" "$HERE/bench_loader.py" "$OUT/compact.h5" --batch-sizes $BATCHES > "$OUT/loader.md" 2> "$OUT/loader.err"
log "step from the compact store: tempogram in the loader against in the step"
for b in $BATCHES; do
  "$PY" "$HERE/bench_train.py" --backends jax --store "$OUT/compact.h5" "${size[@]}" --batch-size "$b"
done 2> "$OUT/store_step.err" | awk '!seen[$0]++' > "$OUT/store_step.md"  # one header
log "paper-size step: batch x precision"
{
  echo "| batch | backend | jit | metrics | devices | precision | first step (s) | steps/s | windows/s | GFLOP/s | peak GFLOP/s | % peak |"
  echo "|---:|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|"
  for b in $BATCHES; do
    for mp in off mixed_bfloat16 mixed_float16; do
      "$PY" "$HERE/bench_train.py" --backends jax "${size[@]}" --batch-size "$b" --mixed-precision "$mp" \
        --matmul-size "$MATMUL" | grep -v '^| backend \|^|---' | sed "s/^| /| $b | /"
    done
  done
} > "$OUT/step.md" 2> "$OUT/step.err"
log "first step with and without the compilation cache"
"$PY" "$HERE/bench_train.py" --backends jax --compile-cache "${size[@]}" --batch-size 64 \
  > "$OUT/compile_cache.md" 2> "$OUT/compile_cache.err"
log "PyTorch: eager against torch.compile"
"$PY" "$HERE/bench_train.py" --backends torch --jit off on "${size[@]}" --batch-size 64 --matmul-size "$MATMUL" \
  > "$OUT/torch.md" 2> "$OUT/torch.err"
log "done: $OUT/*.md"
