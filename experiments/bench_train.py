"""Training throughput per Keras backend: first-step (compile) time, steps and windows per second,
and achieved FLOP/s against the machine's matmul peak, in one run.

Every configuration runs in a fresh process (the backend is fixed when Keras is imported), on
generated inputs and labels (no store: the loader is measured by ``bench_loader.py``), with the
training step ``mdsim train`` compiles: the conditional triplet loss and its per-dimension
statistics, Adam. Rows:

- ``first step``: the first ``train_on_batch``, graph build / tracing / XLA compilation included;
- ``steps/s``, ``windows/s``: the next ``--steps`` steps;
- ``GFLOP/s``: 3 x the forward FLOPs of a window (forward + backward) x windows/s;
- ``peak``: a square float32 matmul on the same backend and device, timed in the same process;
  ``% peak`` their ratio.

    python experiments/bench_train.py                                 # every installed backend, as mdsim trains
    python experiments/bench_train.py --backends jax --jit on off     # JAX jitted against op by op
    python experiments/bench_train.py --backends tensorflow --metrics statistics subspace --steps 3
    XLA_FLAGS=--xla_force_host_platform_device_count=2 python experiments/bench_train.py --backends jax --devices 2

``--store COMPACT.h5`` measures instead a whole step from a compact store in one process, the
loader's read included, both ways in the same process, alternating step by step on the same
weights: ``tempogram CPU`` (the loader computes each window's tempogram, the model trains on it:
training before, and with augmentation) against ``envelope`` (the loader copies padded envelope
slices, :class:`mdsim.model.tempogram.EnvelopeTrainer` computes the tempograms in the compiled
step: what ``mdsim train`` does on a compact store now). The store's labels must hold genre,
mood, tempo and key (``bench_loader.py --generate`` writes such stores):

    python experiments/bench_train.py --backends jax --store compact.h5 --steps 10

``--jit``: ``auto`` is mdsim's per-backend choice (``mdsim.training.fit.jit_compile_for``), ``on`` /
``off`` force Keras' ``jit_compile``, ``eager`` is ``run_eagerly``. ``--metrics statistics``: the
per-dimension figures recorded by the loss (``ConditionalTripletLoss.statistics``, what ``mdsim
train`` uses); ``subspace``: the standalone ``subspace_metrics`` (each mines its own dimension).
Runs unchanged on a GPU machine (the peak is measured there too).

``--compile-cache``: the first step three ways, each in a fresh process: without JAX's
persistent compilation cache, with an empty one (the run that fills it), and with the filled one
(a resumed or repeated run: what ``mdsim train`` does by default, ``MDSIM_COMPILE_CACHE``)::

    python experiments/bench_train.py --backends jax --compile-cache

The other rows run without the cache, so that their first step is a compile.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIMS = ("genre", "mood", "instrument", "era", "tempo", "key")
TAGS = {"genre": ["rock", "pop", "jazz", "folk"], "mood": ["sad", "happy", "calm"],
        "instrument": ["guitar", "piano"], "era": ["80s", "90s", "00s"]}


def _records(rng, n):
    out = []
    for _ in range(n):
        rec = {d: [t for t in v if rng.random() < 0.4] for d, v in TAGS.items()}
        rec["tempo"] = float(rng.choice([60.0, 90.0, 120.0, 140.0]) + 0.5 * rng.integers(-12, 13))
        rec["key"] = int(rng.integers(24))
        out.append(rec)
    return out


def _sync(x):
    import keras

    return keras.ops.convert_to_numpy(x)


def matmul_peak(n: int, repeats: int = 5) -> float:
    """FLOP/s of an ``n x n`` float32 matmul on the backend's default device (best of ``repeats``)."""
    import keras
    import numpy as np

    a = keras.ops.convert_to_tensor(np.random.default_rng(0).standard_normal((n, n)).astype("float32"))
    _sync(keras.ops.sum(keras.ops.matmul(a, a)))
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        _sync(keras.ops.sum(keras.ops.matmul(a, a)))
        best = min(best, time.perf_counter() - t)
    return 2.0 * n ** 3 / best


def child(args) -> dict:
    """One configuration, in this process (KERAS_BACKEND set by the parent)."""
    import keras
    import numpy as np

    from mdsim.labels import LabelLayout
    from mdsim.metric import ConditionalTripletLoss, subspace_metrics
    from mdsim.model import ModelConfig, build_model, subspace_slices
    from mdsim.training.fit import compile_options, distribution_scope, precision_policy, use_compile_cache

    rng = np.random.default_rng(0)
    config = ModelConfig(backbone=args.backbone, dimensions=DIMS, embedding_size=args.embedding_size,
                         width=args.width)
    layout = LabelLayout.from_records(DIMS, _records(rng, 64))
    s = subspace_slices(config)
    subspaces = [(s[d].start, s[d].stop) for d in DIMS]
    keras.utils.set_random_seed(0)
    with precision_policy(args.mixed_precision), distribution_scope(args.devices):
        model = build_model(config)
        loss = ConditionalTripletLoss(layout=layout, subspaces=subspaces)
        metrics = loss.statistics() if args.metrics == "statistics" else subspace_metrics(layout=layout,
                                                                                          subspaces=subspaces)
        options = compile_options(eager=args.jit == "eager")
        if args.jit in ("on", "off"):
            options["jit_compile"] = args.jit == "on"
        use_compile_cache()  # as mdsim train does; the parent sets MDSIM_COMPILE_CACHE
        model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss, metrics=metrics, **options)
        return _time_steps(model, config, layout, args, rng)


def child_store(args) -> dict:
    """Loader + step from a compact store, the tempogram computed in the loader against in the step."""
    import keras
    import numpy as np

    from mdsim.features.store import FeatureStore
    from mdsim.labels import LabelLayout
    from mdsim.metric import ConditionalTripletLoss
    from mdsim.model import ModelConfig, build_model, subspace_slices
    from mdsim.model.tempogram import EnvelopeTrainer
    from mdsim.training.data import TrackTable, WindowBatches
    from mdsim.training.fit import _has_gpu, compile_options

    dims = ("genre", "mood", "tempo", "key")
    with FeatureStore(args.store) as store:
        table, _ = TrackTable.from_store(store, min_frames=259)
        feature_config = store.feature_config
    layout = LabelLayout.from_records(dims, table.labels)
    config = ModelConfig(backbone=args.backbone, dimensions=dims, embedding_size=args.embedding_size, width=args.width)
    s = subspace_slices(config)
    keras.utils.set_random_seed(0)
    model = build_model(config, feature_config=feature_config)
    loss = ConditionalTripletLoss(layout=layout, subspaces=[(s[d].start, s[d].stop) for d in dims])
    options = compile_options(eager=args.jit == "eager")
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=loss, metrics=loss.statistics(), **options)
    trainer = EnvelopeTrainer(model, win_length=feature_config.tempogram_win_length,
                              cyclic=feature_config.cyclic_tempogram)
    trainer.compile(optimizer=model.optimizer, loss=loss, metrics=loss.statistics(), **options)
    loaders = {}
    for way, fitted in (("cpu", model), ("envelope", trainer)):
        data = WindowBatches(args.store, table, layout, inputs=config.inputs, batch_size=args.batch_size,
                             steps=args.steps + 1, segment_frames=259, seed=0)
        data.stored_dtype = keras.backend.backend() != "tensorflow" or _has_gpu()
        data.envelope = way == "envelope"
        loaders[way] = (data, fitted)
    seconds, first = {"cpu": 0.0, "envelope": 0.0}, {}
    for i in range(args.steps + 1):  # step 0 compiles each
        for way, (data, fitted) in loaders.items():
            t = time.perf_counter()
            x, y = data[i]
            np.ravel(fitted.train_on_batch(x, y))
            if i:
                seconds[way] += time.perf_counter() - t
            else:
                first[way] = time.perf_counter() - t
    return {"backend": keras.backend.backend(), "device": _device_name(), "batch": args.batch_size,
            "first_step_s": first, "windows_per_s": {w: args.batch_size * args.steps / t for w, t in seconds.items()}}


def _time_steps(model, config, layout, args, rng) -> dict:
    import keras
    import numpy as np

    from mdsim.model import model_flops

    b = args.batch_size
    batches = []
    for _ in range(min(args.steps + 1, 4)):
        x = {name: rng.standard_normal((b, *shape)).astype("float32") for name, shape in config.input_shapes.items()}
        batches.append((x, layout.encode(_records(rng, b))))
    t = time.perf_counter()
    first_loss = model.train_on_batch(*batches[0])
    first = time.perf_counter() - t
    losses = []
    t = time.perf_counter()
    for i in range(args.steps):
        losses.append(model.train_on_batch(*batches[1 + i % (len(batches) - 1)]))
    np.asarray(losses)
    per_step = (time.perf_counter() - t) / args.steps
    flops = 3.0 * model_flops(model) * b / per_step
    peak = matmul_peak(args.matmul_size)
    devices = [str(d) for d in keras.distribution.list_devices()] if keras.backend.backend() == "jax" else []
    return {"backend": keras.backend.backend(), "jit": args.jit, "jit_compile": bool(model.jit_compile),
            "metrics": args.metrics, "devices": args.devices, "mixed_precision": args.mixed_precision,
            "device": devices[0] if devices else _device_name(), "batch": b, "first_step_s": first,
            "steps_per_s": 1.0 / per_step, "windows_per_s": b / per_step, "gflops": flops / 1e9,
            "peak_gflops": peak / 1e9, "first_loss": float(np.ravel(first_loss)[0]),
            "finite": bool(np.isfinite(np.asarray(losses, dtype=np.float64)).all())}


def _device_name() -> str:
    import keras

    if keras.backend.backend() == "torch":
        import torch

        return torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    if keras.backend.backend() == "jax":  # a GPU machine may have no TensorFlow
        import jax

        return str(jax.devices()[0])
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    return gpus[0].name if gpus else "cpu"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--backends", nargs="+", default=["tensorflow", "jax", "torch"])
    p.add_argument("--jit", nargs="+", default=["auto"], choices=["auto", "on", "off", "eager"])
    p.add_argument("--metrics", nargs="+", default=["statistics"], choices=["statistics", "subspace"])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--embedding-size", type=int, default=48)
    p.add_argument("--backbone", default="multi_input")
    p.add_argument("--devices", type=int, default=1, help="data-parallel devices (mdsim train --devices)")
    p.add_argument("--mixed-precision", default="off", help="a Keras dtype policy, e.g. mixed_bfloat16")
    p.add_argument("--matmul-size", type=int, default=2048)
    p.add_argument("--store", type=Path, help="a compact store: loader + step, tempogram in the loader or the step")
    p.add_argument("--compile-cache", action="store_true",
                   help="the first step without JAX's persistent compilation cache, with an empty one, with a filled one")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        args.jit, args.metrics = args.jit[0], args.metrics[0]
        print("RESULT " + json.dumps(child_store(args) if args.store else child(args)), flush=True)
        return 0
    if args.store:
        return _compare_store(args)
    if args.compile_cache:
        return _compare_cache(args)
    print("| backend | jit | metrics | devices | precision | first step (s) | steps/s | windows/s | GFLOP/s | peak GFLOP/s "
          "| % peak |\n|---|---|---|---:|---|---:|---:|---:|---:|---:|---:|", flush=True)
    for backend in args.backends:
        if importlib.util.find_spec(backend) is None:
            print(f"| {backend} | not installed |", flush=True)
            continue
        for jit in args.jit:
            for metrics in args.metrics:
                r = _run_child(args, backend, jit, metrics)
                if isinstance(r, str):
                    print(f"| {backend} | {jit} | {metrics} | failed: {r} |", flush=True)
                    continue
                print(f"| {backend} ({r['device']}) | {jit} ({'jit' if r['jit_compile'] else 'no jit'}) | {metrics} "
                      f"| {r['devices']} | {r['mixed_precision']} | {r['first_step_s']:.1f} | {r['steps_per_s']:.2f} | {r['windows_per_s']:.0f} "
                      f"| {r['gflops']:.1f} | {r['peak_gflops']:.0f} | {100 * r['gflops'] / r['peak_gflops']:.1f} |",
                      flush=True)
    return 0


def _run_child(args, backend: str, jit: str, metrics: str, cache: str = "off", extra=()) -> dict | str:
    """One configuration in a fresh process: its result, or the last line of its error."""
    cmd = [sys.executable, __file__, "--child", "--jit", jit, "--metrics", metrics,
           "--batch-size", str(args.batch_size), "--steps", str(args.steps), "--width", str(args.width),
           "--embedding-size", str(args.embedding_size), "--backbone", args.backbone,
           "--devices", str(args.devices), "--matmul-size", str(args.matmul_size),
           "--mixed-precision", args.mixed_precision, *extra]
    env = {**os.environ, "KERAS_BACKEND": backend, "MDSIM_COMPILE_CACHE": cache,
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    run = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
    if run.returncode or not lines:
        return str(run.stderr.strip().splitlines()[-1:])
    return json.loads(lines[-1][len("RESULT "):])


def _compare_cache(args) -> int:
    import tempfile

    print("| backend | first step, no cache (s) | first step, empty cache (s) | first step, filled cache (s) "
          "| no cache / filled | windows/s (filled) |\n|---|---:|---:|---:|---:|---:|", flush=True)
    for backend in args.backends:
        if importlib.util.find_spec(backend) is None:
            print(f"| {backend} | not installed |", flush=True)
            continue
        if backend != "jax":
            print(f"| {backend} | no persistent cache: mdsim trains a graph without XLA (TensorFlow) or eagerly "
                  f"(PyTorch) |", flush=True)
            continue
        with tempfile.TemporaryDirectory(prefix="mdsim_cache_") as folder:
            runs = [_run_child(args, backend, args.jit[0], args.metrics[0], cache)
                    for cache in ("off", folder, folder)]
        failed = [r for r in runs if isinstance(r, str)]
        if failed:
            print(f"| {backend} | failed: {failed[0]} |", flush=True)
            continue
        off, cold, warm = (r["first_step_s"] for r in runs)
        print(f"| {backend} ({runs[0]['device']}) | {off:.1f} | {cold:.1f} | {warm:.1f} | {off / warm:.1f} "
              f"| {runs[2]['windows_per_s']:.0f} |", flush=True)
    return 0


def _compare_store(args) -> int:
    print("| backend | batch | first step (s): tempogram CPU, envelope | tempogram CPU windows/s | envelope windows/s "
          "| ratio |\n|---|---:|---|---:|---:|---:|", flush=True)
    for backend in args.backends:
        if importlib.util.find_spec(backend) is None:
            print(f"| {backend} | not installed |", flush=True)
            continue
        r = _run_child(args, backend, args.jit[0], args.metrics[0], extra=["--store", str(args.store.resolve())])
        if isinstance(r, str):
            print(f"| {backend} | failed: {r} |", flush=True)
            continue
        w, f = r["windows_per_s"], r["first_step_s"]
        print(f"| {backend} ({r['device']}) | {r['batch']} | {f['cpu']:.1f}, {f['envelope']:.1f} | {w['cpu']:.1f} "
              f"| {w['envelope']:.1f} | {w['envelope'] / w['cpu']:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
