"""Training loader throughput: windows per second that ``WindowBatches`` delivers from a store.

Compare with the training step rate (``bench_train.py``, or ``mdsim train``'s progress bar):
the loader should be well ahead of the model. Several stores are measured in turn in one run
(e.g. the same tracks in the compact and the full layout). A compact store is measured both
ways in the same run, alternating: ``tempogram CPU`` computes each window's tempogram in the
loader (as training did before, and still does with augmentation), ``envelope`` copies the
padded envelope slices the training step turns into tempograms (``WindowBatches.envelope``,
:class:`mdsim.model.tempogram.EnvelopeTrainer`); ``ratio`` is envelope over CPU. ``--baseline DIR`` measures the loader of another checkout of
mdsim too (e.g. ``git worktree add /tmp/mdsim-main main``), in the same run, alternating
with this one, and checks that both deliver the same batches. ``--workers N`` also reads
through Keras' own loader with N worker processes (``mdsim train --workers``), the way
``fit`` does, prefetch queue included. Each figure is the best of ``--repeats`` passes over
a warm store (the first pass warms the page cache), in windows per second of wall time and per
second of the process's CPU time (what one idle core would give; loader workers not counted). ``--layer`` times the tempogram itself on a
compact store's envelope batches, in one process: NumPy's ``tempogram_frames`` window by window
(the loader's work before) against ``OnsetTempogram`` on the whole batch, compiled as the
backend's training step is (``jax.jit``, ``tf.function``; PyTorch eager), on the backend's
default device: what the step pays instead.

    python experiments/bench_loader.py STORE.h5 [STORE2.h5 ...] [--batch-sizes 32 64] [--batches 20]
    python experiments/bench_loader.py --generate 200 --baseline /tmp/mdsim-main --workers 0 2
    KERAS_BACKEND=jax python experiments/bench_loader.py compact.h5 --layer --batch-sizes 64
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIMS = ("genre", "mood", "tempo", "key")


def generate_store(path, n_tracks: int, layout: str, *, seed: int = 0) -> Path:
    """A store of ``n_tracks`` tracks of 1500 to 3000 frames (17 to 35 s) of random features."""
    import numpy as np

    from mdsim.config import FeatureConfig
    from mdsim.features.spectral import tempogram_frames
    from mdsim.features.store import StoreWriter

    rng = np.random.default_rng(seed)
    with StoreWriter(path, FeatureConfig(), layout=layout, overwrite=True, shard_tracks=64) as writer:
        for i in range(n_tracks):
            n = int(rng.integers(1500, 3000))
            onset = np.abs(rng.standard_normal((1, n))).astype(np.float32)
            features = {"mel": rng.random((128, n), dtype=np.float32), "cens": rng.random((12, n), dtype=np.float32),
                        "onset": onset}
            if layout == "full":
                features["tempogram"] = tempogram_frames(onset[0], 0, n)
            attrs = {"n_frames": n, "genre": str(rng.choice(["rock", "jazz", "pop"])),
                     "mood": str(rng.choice(["sad", "happy"])), "tempo": float(rng.uniform(60, 180)),
                     "key_index": int(rng.integers(24))}
            writer.add_track(f"t{i:05d}", features, attrs)
    return Path(path)


def measure(path, batch_size: int, n_batches: int, workers: int, repeats: int, digest: bool,
            envelope: bool = False) -> dict:
    """Windows per second of this process's ``mdsim`` (the best of ``repeats`` passes); ``envelope``:
    a compact store's padded envelope slices instead of its tempograms."""
    import hashlib

    import numpy as np

    from mdsim.features.store import FeatureStore
    from mdsim.labels import LabelLayout
    from mdsim.training.data import TrackTable, WindowBatches

    with FeatureStore(path) as store:
        table, _ = TrackTable.from_store(store, min_frames=259)
    layout = LabelLayout.from_records(DIMS, table.labels)
    data = WindowBatches(path, table, layout, inputs=("mel", "cens", "tempogram"), batch_size=batch_size,
                         steps=n_batches, segment_frames=259, seed=0, workers=workers)
    data.envelope = envelope
    if workers:
        from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

        def batches():
            adapter = PyDatasetAdapter(data, shuffle=False)
            adapter.on_epoch_begin()
            yield from adapter.get_numpy_iterator()
            adapter.on_epoch_end()
    else:
        def batches():
            for i in range(n_batches):
                yield data[i]
    best, best_cpu = float("inf"), float("inf")
    h = hashlib.sha256()
    for r in range(repeats + 1):  # pass 0 warms the page cache (and starts the workers)
        t, c = time.perf_counter(), time.process_time()
        for x, y in batches():
            if digest and r == 0:
                for name in sorted(x):
                    h.update(np.ascontiguousarray(x[name], dtype=np.float32).tobytes())
                h.update(np.asarray(y, dtype=np.float32).tobytes())
        if r:
            best, best_cpu = min(best, time.perf_counter() - t), min(best_cpu, time.process_time() - c)
    # per CPU second of this process: what one core would give without other jobs (workers not counted)
    return {"windows_per_s": batch_size * n_batches / best, "windows_per_cpu_s": batch_size * n_batches / best_cpu,
            "digest": h.hexdigest() if digest else ""}


def measure_layer(path, batch_size: int, n_batches: int, repeats: int) -> dict:
    """Windows per second of the tempogram alone: NumPy in the loader against the layer in the step."""
    import keras
    import numpy as np

    from mdsim.features.spectral import tempogram_frames
    from mdsim.features.store import FeatureStore
    from mdsim.labels import LabelLayout
    from mdsim.model.tempogram import OnsetTempogram
    from mdsim.training.data import TrackTable, WindowBatches

    with FeatureStore(path) as store:
        table, _ = TrackTable.from_store(store, min_frames=259)
        config = store.feature_config
    data = WindowBatches(path, table, LabelLayout.from_records(DIMS, table.labels), inputs=("tempogram",),
                         batch_size=batch_size, steps=n_batches, segment_frames=259, seed=0)
    data.envelope = True
    batches = [data[i][0] for i in range(n_batches)]
    layer = OnsetTempogram(config.tempogram_win_length, config.cyclic_tempogram)
    step = layer
    if keras.backend.backend() == "jax":
        import jax

        step = jax.jit(lambda e, f: layer((e, f)))
    elif keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        step = tf.function(lambda e, f: layer((e, f)))
    tensors = [(keras.ops.convert_to_tensor(x["onset"]), keras.ops.convert_to_tensor(x["onset_frames"]))
               for x in batches]

    def on_device():
        for e, f in tensors:
            keras.ops.convert_to_numpy(keras.ops.sum(step(e, f) if step is not layer else layer((e, f))))

    def in_numpy():
        win = config.tempogram_win_length
        for x in batches:
            for env, n in zip(x["onset"][:, 0], x["onset_frames"]):
                # the padded slice is a whole envelope whose frames win // 2.. are the window's
                tempogram_frames(env, win // 2, win // 2 + int(n), win_length=win, cyclic=config.cyclic_tempogram,
                                 envelope_span=(0, env.size + win))

    best = {}
    for name, fn in (("numpy", in_numpy), ("layer", on_device)):
        fn()  # compiles
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        best[name] = batch_size * n_batches / min(times)
    return {"backend": keras.backend.backend(), **best}


def _in_checkout(src, args, path, batch_size, workers, envelope: bool = False) -> dict:
    """``measure`` in a fresh process that imports the ``mdsim`` of checkout ``src``."""
    code = ("import json, runpy, sys; m = runpy.run_path(sys.argv[1]); print('RESULT ' + json.dumps("
            "m['measure'](sys.argv[2], *map(int, sys.argv[3:7]), True, *map(int, sys.argv[7:]))))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", code, __file__, str(path), str(batch_size),
                          str(args.batches), str(workers), str(args.repeats)] + (["1"] if envelope else []),
                         env=env, capture_output=True, text=True, cwd=str(src))
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
    if run.returncode or not lines:
        raise RuntimeError(f"{src}: {run.stderr[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stores", nargs="*", metavar="store")
    p.add_argument("--generate", type=int, metavar="N",
                   help="measure a compact and a full store of N generated tracks (in a temporary folder)")
    p.add_argument("--baseline", type=Path, metavar="DIR", help="another mdsim checkout to compare with")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--workers", type=int, nargs="+", default=[0])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--layer", action="store_true",
                   help="time the tempogram alone on compact stores: NumPy against OnsetTempogram")
    args = p.parse_args(argv)
    if args.layer:
        print("| store | backend | batch | NumPy (loader, before) | OnsetTempogram (step) | ratio |\n"
              "|---|---|---:|---:|---:|---:|")
        for path in args.stores:
            for bs in args.batch_sizes:
                r = measure_layer(path, bs, args.batches, args.repeats)
                print(f"| {Path(path).name} | {r['backend']} | {bs} | {r['numpy']:.0f} windows/s "
                      f"| {r['layer']:.0f} windows/s | {r['layer'] / r['numpy']:.2f} |", flush=True)
        return

    with tempfile.TemporaryDirectory() as tmp:
        stores = [Path(s) for s in args.stores]
        if args.generate:
            stores += [generate_store(Path(tmp) / f"{layout}.h5", args.generate, layout) for layout in ("compact", "full")]
        if not stores:
            p.error("give a store, or --generate N")
        cols = ["this checkout"] + (["baseline", "ratio", "same batches"] if args.baseline else [])
        print(f"| store | batch | loader workers | {' | '.join(cols)} | envelope | ratio |\n|---|---:|---:|"
              + "---:|" * (len(cols) + 2))
        for path in stores:
            from mdsim.features.store import FeatureStore

            with FeatureStore(path) as store:
                kind = f"{store.layout}, {len(store)} tracks"
                compact = store.layout == "compact"
            for bs in args.batch_sizes:
                for workers in args.workers:
                    new = _in_checkout(ROOT, args, path, bs, workers)
                    row = f"| {Path(path).name} ({kind}{', tempogram CPU' if compact else ''}) | {bs} | {workers} " \
                          f"| {new['windows_per_s']:.0f} windows/s ({new['windows_per_cpu_s']:.0f} a CPU second)"
                    if args.baseline:
                        old = _in_checkout(args.baseline.resolve(), args, path, bs, workers)
                        row += (f" | {old['windows_per_s']:.0f} windows/s | {new['windows_per_s'] / old['windows_per_s']:.2f} | "
                                f"{'yes' if old['digest'] == new['digest'] else 'NO'}")
                    if compact:
                        env = _in_checkout(ROOT, args, path, bs, workers, envelope=True)
                        row += (f" | {env['windows_per_s']:.0f} windows/s ({env['windows_per_cpu_s']:.0f} a CPU "
                                f"second) | {env['windows_per_s'] / new['windows_per_s']:.1f}")
                    else:
                        row += " | | "
                    print(row + " |", flush=True)


if __name__ == "__main__":
    main()
