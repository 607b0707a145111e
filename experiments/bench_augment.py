"""Does augmentation keep the loader ahead of training? Loader windows/s with and without it,
and the training step, in one run.

Measures, on one store and in one process: ``WindowBatches`` without augmentation, with
the default label-transforming augmentation (each transform with probability 0.5), and
with every transform on every window (the worst case); then the compiled training step
of the multi-input network at the same batch size (the step ``mdsim train`` runs, loss
and per-dimension metrics included, after a warm-up step).

    python experiments/bench_augment.py STORE.h5 [--batch-size 32] [--batches 20] [--width 0.5]
"""

from __future__ import annotations

import argparse
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--steps", type=int, default=5, help="timed training steps (default 5)")
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--embedding-size", type=int, default=96)
    args = p.parse_args(argv)

    from mdsim.features.augment import AugmentConfig
    from mdsim.features.store import FeatureStore
    from mdsim.labels import DIMENSIONS, LabelLayout
    from mdsim.training.data import TrackTable, WindowBatches, trainable_dimensions

    with FeatureStore(args.store) as store:
        table, _ = TrackTable.from_store(store, min_frames=259)
        kind, feature_config = store.layout, store.feature_config
    dims, _ = trainable_dimensions(table, DIMENSIONS)
    layout = LabelLayout.from_records(dims, table.labels)
    bs = args.batch_size
    print(f"{args.store} ({kind} layout): {len(table)} tracks, batches of {bs}, one process")
    settings = {
        "none": None,
        "label, defaults (p = 0.5 each)": AugmentConfig(mode="label"),
        "label, every transform always": AugmentConfig(mode="label", stretch_probability=1.0,
                                                       pitch_probability=1.0, eq_probability=1.0),
    }
    rates = {}
    batch = None
    for name, aug in settings.items():
        data = WindowBatches(args.store, table, layout, inputs=("mel", "cens", "tempogram"), batch_size=bs,
                             steps=args.batches, segment_frames=259, seed=0, augment=aug)
        batch = data[0]  # opens the store, warms the caches
        t = time.perf_counter()
        for i in range(1, args.batches + 1):
            data[i]
        per_batch = (time.perf_counter() - t) / args.batches
        rates[name] = bs / per_batch
        print(f"  loader, augmentation {name}: {bs / per_batch:.0f} windows/s ({1000 * per_batch:.0f} ms/batch)")

    import keras

    from mdsim.metric import ConditionalTripletLoss, subspace_metrics
    from mdsim.model import ModelConfig, build_model, subspace_slices

    config = ModelConfig(dimensions=tuple(dims), width=args.width, embedding_size=args.embedding_size)
    s = subspace_slices(config)
    subspaces = [(s[d].start, s[d].stop) for d in dims]
    model = build_model(config, feature_config=feature_config)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False,
                  loss=ConditionalTripletLoss(layout=layout, subspaces=subspaces),
                  metrics=subspace_metrics(layout=layout, subspaces=subspaces))
    x, y = batch
    t = time.perf_counter()
    model.train_on_batch(x, y)
    first = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(args.steps):
        model.train_on_batch(x, y)
    step = (time.perf_counter() - t) / args.steps
    print(f"  training step (width {args.width:g}, {keras.backend.backend()}): {1000 * step:.0f} ms "
          f"= {bs / step:.0f} windows/s (first step with the graph build: {first:.1f} s)")
    for name, rate in rates.items():
        print(f"  loader / training step, augmentation {name}: {rate / (bs / step):.1f} x")


if __name__ == "__main__":
    main()
