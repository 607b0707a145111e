"""Benchmark: distances + masks + semi-hard mining + triplet loss, per batch.

Compares, in one run and on the same batches (6 dimensions x 64 = 384-d,
6 classes per dimension so that similarity is class equality):

- ``ours-jax``, ``ours-tf``, ``ours-tf-xla``, ``ours-torch``:
  :func:`mdsim.metric.conditional_triplet_loss` (packed labels and embeddings
  in, loss out) compiled with ``jax.jit``, ``tf.function`` (graph, and
  ``jit_compile=True``), and eager on PyTorch; ``ours-jax-grad`` times loss
  and gradient;
- ``loop``: the straightforward reference in NumPy: distances and similarity
  per dimension, then a Python loop over anchors and positives choosing each
  negative with NumPy over the negatives (nearest farther than the positive,
  else the farthest). For large batches it runs on a subsample of anchors and
  the loop time is scaled up by ``B / n_anchors`` (marked ``*``);
- ``pml``: pytorch-metric-learning's ``TripletMarginMiner(type_of_triplets=
  "semihard")`` + ``TripletMarginLoss`` with cosine similarity, looped over
  the 6 subspaces. Its semantics differ (it keeps *every* semi-hard triplet,
  builds all ``B**3`` triplets, and averages the non-zero losses), so only
  the time compares.

Every implementation runs in its own process, timed as the best of several
repeats after a warm-up (compilation excluded; the best, not the median,
because the machine is shared and load only ever adds time); memory is the peak resident
set size during warm-up and repeats minus the size just before, sampled every
millisecond (coarse: it includes allocator caches and, for compiled paths,
the compiler). For ``ours-jax`` XLA's own figure of the compiled temporary
buffers is reported as well.

Usage::

    .venv/bin/python experiments/bench_mining.py                 # all, B = 64 256 1024
    .venv/bin/python experiments/bench_mining.py --sizes 64 256 --impls ours-jax pml
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import threading
import time

import numpy as np

DIMENSION_SIZE = 64
N_CLASSES = 6
MARGIN = 0.1
#: Tempi without an octave or 5 BPM relation between any two: similar == same class.
TEMPI = (60.0, 75.0, 90.0, 105.0, 135.0, 165.0)
LOOP_ANCHORS = 128
#: Address-space cap of the pml process, so that its B**3 tensors cannot take the machine.
PML_MEMORY_CAP = 6 * 2**30

IMPLS = {  # name -> Keras backend it needs (None: no Keras)
    "ours-jax": "jax", "ours-jax-grad": "jax", "ours-tf": "tensorflow",
    "ours-tf-xla": "tensorflow", "ours-torch": "torch", "loop": None, "pml": None,
}


def make_batch(batch_size, seed=0):
    """Embeddings ``(B, 384)``, classes ``(6, B)``, the records and the packed labels."""
    from mdsim.labels import DIMENSIONS, TAG_DIMENSIONS, LabelLayout

    rng = np.random.default_rng(seed)
    x = rng.normal(size=(batch_size, DIMENSION_SIZE * len(DIMENSIONS))).astype(np.float32)
    classes = rng.integers(0, N_CLASSES, size=(len(DIMENSIONS), batch_size))
    records = []
    for i in range(batch_size):
        rec = {d: [f"{d}{classes[s, i]}"] for s, d in enumerate(DIMENSIONS) if d in TAG_DIMENSIONS}
        rec["tempo"] = TEMPI[classes[DIMENSIONS.index("tempo"), i]]
        rec["key"] = int(classes[DIMENSIONS.index("key"), i])
        records.append(rec)
    layout = LabelLayout(DIMENSIONS, {d: [f"{d}{c}" for c in range(N_CLASSES)] for d in TAG_DIMENSIONS})
    subspaces = [(s * DIMENSION_SIZE, (s + 1) * DIMENSION_SIZE) for s in range(len(DIMENSIONS))]
    return x, classes, records, layout, layout.encode(records), subspaces


# ----------------------------------------------------------------------------------------
# The implementations: each returns (step, extra) where step() computes one batch's loss


def ours(backend, batch, *, grad=False, xla=False):
    import keras

    from mdsim.metric import conditional_triplet_loss

    assert keras.backend.backend() == backend
    x, _, _, layout, y, subspaces = batch

    def loss(labels, embeddings):
        return conditional_triplet_loss(labels, embeddings, layout=layout, subspaces=subspaces,
                                        triplet_margin=MARGIN, mining_margin=MARGIN).loss

    if backend == "jax":
        import jax
        fn = jax.jit(jax.value_and_grad(loss, argnums=1) if grad else loss)
        compiled = fn.lower(y, x).compile()
        analysis = compiled.memory_analysis()
        extra = {"xla_temp_mib": analysis.temp_size_in_bytes / 2**20} if analysis else {}
        return lambda: jax.block_until_ready(fn(y, x)), extra
    if backend == "tensorflow":
        import tensorflow as tf
        fn = tf.function(loss, jit_compile=xla)
        y_t, x_t = tf.constant(y), tf.constant(x)
        return lambda: fn(y_t, x_t).numpy(), {}
    import torch
    y_t, x_t = torch.from_numpy(y), torch.from_numpy(x)

    def step():
        with torch.no_grad():
            return loss(y_t, x_t).item()
    return step, {}


def loop_reference(batch, *, n_anchors=None):
    """The straightforward reference; the loop covers ``n_anchors`` anchors (all by default)."""
    from mdsim.labels import DIMENSIONS, similarity_matrix

    x, _, records, _, _, subspaces = batch
    anchors = range(len(x) if n_anchors is None else min(n_anchors, len(x)))
    timing = {"setup": 0.0, "loop": 0.0}

    def step():
        start_time = time.perf_counter()
        per_dimension = []
        prepared = []
        for dim, (start, stop) in zip(DIMENSIONS, subspaces):
            e = x[:, start:stop].astype(np.float64)
            e = e / np.linalg.norm(e, axis=1, keepdims=True)
            similar, labelled = similarity_matrix(dim, [r[dim] for r in records])
            prepared.append((1.0 - e @ e.T, similar, labelled))
        loop_time = time.perf_counter()
        for d, similar, labelled in prepared:
            total, count = 0.0, 0
            for a in anchors:
                if not labelled[a]:
                    continue
                to_negatives = d[a, ~similar[a] & labelled]
                if not to_negatives.size:
                    continue
                for p in np.flatnonzero(similar[a]):
                    if p == a:
                        continue
                    farther = to_negatives[to_negatives > d[a, p]]
                    to_negative = farther.min() if farther.size else to_negatives.max()
                    total += max(0.0, d[a, p] - to_negative + MARGIN)
                    count += 1
            if count:
                per_dimension.append(total / count)
        end_time = time.perf_counter()
        timing["setup"] += loop_time - start_time
        timing["loop"] += end_time - loop_time
        return float(np.mean(per_dimension)) if per_dimension else 0.0

    return step, timing


def pml_reference(batch):
    import torch
    from pytorch_metric_learning import distances, losses, miners

    x, classes, _, _, _, subspaces = batch
    x_t, labels = torch.from_numpy(x), torch.from_numpy(classes)
    cosine = distances.CosineSimilarity()
    miner = miners.TripletMarginMiner(margin=MARGIN, type_of_triplets="semihard", distance=cosine)
    loss_fn = losses.TripletMarginLoss(margin=MARGIN, distance=cosine)

    def step():
        with torch.no_grad():
            total = 0.0
            for s, (start, stop) in enumerate(subspaces):
                e = x_t[:, start:stop]
                total += loss_fn(e, labels[s], miner(e, labels[s]))
            return float(total) / len(subspaces)
    return step, {}


# ----------------------------------------------------------------------------------------
# One measurement, in a child process


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakMemory:
    """Peak RSS above the level at entry, sampled from a thread every millisecond."""

    def __enter__(self):
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, _rss_bytes())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    @property
    def mib(self):
        return (self.peak - self.base) / 2**20


def limit_threads(impl, threads):
    """Pin the frameworks' own thread pools (the environment did the rest, see run_child)."""
    if impl == "pml" or IMPLS[impl] == "torch":
        import torch
        torch.set_num_threads(threads)
    elif IMPLS[impl] == "tensorflow":
        import tensorflow as tf
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def measure(impl, batch_size, repeats, threads):
    limit_threads(impl, threads)
    if impl == "pml":
        resource.setrlimit(resource.RLIMIT_AS, (PML_MEMORY_CAP, PML_MEMORY_CAP))
    batch = make_batch(batch_size)
    n_anchors = None
    if impl == "loop" and batch_size > LOOP_ANCHORS * 2:
        n_anchors = LOOP_ANCHORS
    started = time.perf_counter()
    if impl.startswith("ours"):
        step, extra = ours(IMPLS[impl], batch, grad=impl.endswith("grad"), xla=impl.endswith("xla"))
    elif impl == "loop":
        step, extra = loop_reference(batch, n_anchors=n_anchors)
    else:
        step, extra = pml_reference(batch)
    times = []
    try:
        with PeakMemory() as memory:
            value = step()  # warm-up: compilation, caches
            warmup = time.perf_counter() - started
            if impl == "loop":
                extra.update(setup=0.0, loop=0.0)
            for _ in range(repeats):
                t0 = time.perf_counter()
                step()
                times.append(time.perf_counter() - t0)
    except (MemoryError, RuntimeError) as error:
        message = f"{type(error).__name__}: {error}"[:200]
        if impl == "pml" and ("allocate" in message or isinstance(error, MemoryError)):
            message = f"out of memory under the {PML_MEMORY_CAP / 2**30:.0f} GiB cap"
        return {"impl": impl, "batch_size": batch_size, "error": message}
    seconds = min(times)
    if n_anchors is not None:  # scale the loop part up to all anchors
        setup, loop = extra.pop("setup") / repeats, extra.pop("loop") / repeats
        seconds = setup + loop * batch_size / n_anchors
        extra["extrapolated_from_anchors"] = n_anchors
    elif impl == "loop":
        extra.pop("setup"), extra.pop("loop")
    value = value[0] if isinstance(value, tuple) else value
    return {"impl": impl, "batch_size": batch_size, "seconds": seconds, "peak_mib": memory.mib,
            "first_call_s": warmup, "loss": float(np.asarray(value)), **extra}


# ----------------------------------------------------------------------------------------
# The run: one child per (implementation, batch size), a table at the end


def available(impl):
    backend = IMPLS[impl]
    needs = [backend] if backend else (["torch", "pytorch_metric_learning"] if impl == "pml" else [])
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    return ", ".join(missing) or None


def run_child(impl, batch_size, repeats, threads):
    n = str(threads)
    env = {**os.environ, "KERAS_BACKEND": IMPLS[impl] or "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3",
           "OMP_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "MKL_NUM_THREADS": n,
           "TF_NUM_INTRAOP_THREADS": n, "TF_NUM_INTEROP_THREADS": n,
           "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'} "
                        f"intra_op_parallelism_threads={n}"}
    child = subprocess.run(
        [sys.executable, __file__, "--worker", impl, "--sizes", str(batch_size),
         "--repeats", str(repeats), "--threads", n],
        env=env, capture_output=True, text=True)
    lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
    if child.returncode or not lines:
        return {"impl": impl, "batch_size": batch_size,
                "error": f"exit {child.returncode}: {child.stderr.strip().splitlines()[-1:]}"}
    return json.loads(lines[-1])


def table(results, sizes, baseline):
    by = {(r["impl"], r["batch_size"]): r for r in results}
    impls = list(dict.fromkeys(r["impl"] for r in results))
    head = "| implementation | " + " | ".join(f"B={b} ms/batch (peak MiB)" for b in sizes) + " |"
    rows = [head, "|" + "---|" * (len(sizes) + 1)]
    for impl in impls:
        cells = []
        for b in sizes:
            r = by.get((impl, b))
            if r is None:
                cells.append("—")
            elif "error" in r:
                cells.append(f"failed ({r['error'][:60]})")
            else:
                star = "*" if "extrapolated_from_anchors" in r else ""
                cells.append(f"{1e3 * r['seconds']:.1f}{star} ({r['peak_mib']:.0f})")
        rows.append(f"| {impl} | " + " | ".join(cells) + " |")
    rows.append("")
    for b in sizes:
        ours = by.get((baseline, b))
        if not ours or "error" in ours:
            continue
        ratios = [f"{impl} {by[impl, b]['seconds'] / ours['seconds']:.1f}x" for impl in impls
                  if impl != baseline and (impl, b) in by and "error" not in by[impl, b]]
        rows.append(f"- B={b}: time relative to {baseline}: " + ", ".join(ratios))
    return "\n".join(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--impls", nargs="+", default=list(IMPLS), choices=list(IMPLS))
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--loop-repeats", type=int, default=2)
    parser.add_argument("--baseline", default="ours-jax", choices=list(IMPLS))
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per implementation (default 1: fair and stable on a shared machine)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the whole sweep, keeping each best time (load only adds time)")
    parser.add_argument("--worker", choices=list(IMPLS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.worker, args.sizes[0], args.repeats, args.threads)))
        return
    impls = []
    for impl in args.impls:
        missing = available(impl)
        if missing:
            print(f"skipping {impl}: {missing} not installed", file=sys.stderr)
        else:
            impls.append(impl)
    best = {}
    for _ in range(args.rounds):  # rounds interleave the implementations, so load hits all alike
        for impl in impls:
            for b in args.sizes:
                repeats = args.loop_repeats if impl == "loop" else args.repeats
                result = run_child(impl, b, repeats, args.threads)
                print(json.dumps(result), file=sys.stderr)
                kept = best.get((impl, b))
                if kept is None or "error" in kept or result.get("seconds", float("inf")) < kept["seconds"]:
                    best[impl, b] = result
    print(f"threads per implementation: {args.threads}; best of {args.rounds} round(s) x "
          f"{args.repeats} repeats ({args.loop_repeats} for loop)\n")
    print(table(list(best.values()), args.sizes, args.baseline))


if __name__ == "__main__":
    main()
