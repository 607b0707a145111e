"""CPU speed of the mdsim backbones, next to the machine's own matrix-multiply speed.

For each backbone: parameters, forward FLOPs per 3 s segment (2 x the MACs of
every convolution and dense layer, from the layer shapes), segments per second
for inference and for a training step (Adam, mean squared error to random
targets, compiled by ``model.compile`` + ``train_on_batch``), and the GFLOP/s
they reach. A training step is counted as 3 x the forward FLOPs (the backward
pass computes gradients for both activations and weights). The reference is a
float32 square matrix multiply, timed with NumPy and with the Keras backend in
the same run; the ratio says how much of the machine the network uses.

Usage::

    python experiments/bench_model.py                      # both backbones, batch 64
    python experiments/bench_model.py --backbone multi_input --batch 32 --repeats 5
    KERAS_BACKEND=jax python experiments/bench_model.py

Figures and their discussion: docs/model.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

BACKBONE_CONFIGS = {
    # The paper's configurations: Lee et al.'s 4 x 64 baseline, Ribecky et al.'s best model.
    "baseline": dict(backbone="baseline", dimensions=("genre", "mood", "instrument", "era"),
                     embedding_size=256),
    "multi_input": dict(backbone="multi_input", embedding_size=384),
}
MATMUL_SIZE = 2048


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", choices=[*BACKBONE_CONFIGS, "both"], default="both")
    parser.add_argument("--batch", type=int, default=64, help="segments per batch (default 64)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed batches after one warm-up batch; the median is reported (default 3)")
    parser.add_argument("--width", type=float, default=1.0, help="filter-count multiplier (default 1)")
    parser.add_argument("--no-batch-norm", action="store_true", help="convolutions without batch norm")
    parser.add_argument("--skip-training", action="store_true", help="time inference only")
    return parser.parse_args(argv)


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(repeats: int) -> dict[str, float]:
    """float32 n x n matrix multiply speed (2 n^3 FLOPs) with NumPy and with the Keras backend."""
    import keras

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((MATMUL_SIZE, MATMUL_SIZE), dtype=np.float32) for _ in range(2))
    flops = 2 * MATMUL_SIZE**3
    np.matmul(a, b)
    numpy_s = median_seconds(lambda: np.matmul(a, b), max(repeats, 3))
    ta, tb = keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b)
    # convert_to_numpy waits for asynchronous backends (JAX) to finish
    run = lambda: keras.ops.convert_to_numpy(keras.ops.matmul(ta, tb))  # noqa: E731
    run()
    backend_s = median_seconds(run, max(repeats, 3))
    return {"numpy": flops / numpy_s / 1e9, keras.backend.backend(): flops / backend_s / 1e9}


def bench_backbone(name: str, args) -> dict:
    import keras

    from mdsim.model import ModelConfig, build_model, model_flops

    config = ModelConfig(**BACKBONE_CONFIGS[name], width=args.width, batch_norm=not args.no_batch_norm)
    start = time.perf_counter()
    model = build_model(config)
    build_s = time.perf_counter() - start
    rng = np.random.default_rng(0)
    x = {k: rng.standard_normal((args.batch, *shape), dtype=np.float32)
         for k, shape in config.input_shapes.items()}
    flops = model_flops(model)
    out = {"backbone": name, "params": model.count_params(), "flops": flops, "build_s": build_s}

    start = time.perf_counter()
    model.predict_on_batch(x)
    out["infer_first_s"] = time.perf_counter() - start
    seconds = median_seconds(lambda: model.predict_on_batch(x), args.repeats)
    out["infer_seg_s"] = args.batch / seconds
    out["infer_gflops"] = flops * out["infer_seg_s"] / 1e9

    if not args.skip_training:
        y = rng.standard_normal((args.batch, config.embedding_size), dtype=np.float32)
        model.compile(optimizer=keras.optimizers.Adam(1e-5), loss="mean_squared_error")
        start = time.perf_counter()
        model.train_on_batch(x, y)
        out["train_first_s"] = time.perf_counter() - start
        seconds = median_seconds(lambda: model.train_on_batch(x, y), args.repeats)
        out["train_seg_s"] = args.batch / seconds
        out["train_gflops"] = 3 * flops * out["train_seg_s"] / 1e9
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    import keras

    names = list(BACKBONE_CONFIGS) if args.backbone == "both" else [args.backbone]
    print(f"keras {keras.__version__}, backend {keras.backend.backend()}, numpy {np.__version__}, "
          f"{os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
          f"batch {args.batch}, median of {args.repeats}, width {args.width}, "
          f"batch norm {not args.no_batch_norm}")
    peak = matmul_gflops(args.repeats)
    print("float32 matmul %d x %d: %s" % (
        MATMUL_SIZE, MATMUL_SIZE, ", ".join(f"{k} {v:.1f} GFLOP/s" for k, v in peak.items())))
    best = max(peak.values())
    rows = [bench_backbone(name, args) for name in names]

    print()
    print("| backbone | params | GFLOP/segment | build s | inference seg/s | inference GFLOP/s "
          "| train seg/s | train GFLOP/s | first inference s | first train step s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        infer = f"{r['infer_seg_s']:.1f} | {r['infer_gflops']:.1f} ({r['infer_gflops'] / best:.0%})"
        if "train_seg_s" in r:
            train = f"{r['train_seg_s']:.1f} | {r['train_gflops']:.1f} ({r['train_gflops'] / best:.0%})"
            first_train = f"{r['train_first_s']:.1f}"
        else:
            train, first_train = "- | -", "-"
        print(f"| {r['backbone']} | {r['params']:,} | {r['flops'] / 1e9:.3f} | {r['build_s']:.1f} | "
              f"{infer} | {train} | {r['infer_first_s']:.1f} | {first_train} |")
    print(f"\npercentages: share of the best matmul speed measured above ({best:.1f} GFLOP/s)")


if __name__ == "__main__":
    main()
