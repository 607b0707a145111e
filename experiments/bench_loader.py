"""Training loader throughput: batches per second that ``WindowBatches`` delivers from a store.

Compare with the training step rate in ``mdsim train``'s progress bar: the loader should
be well ahead of the model. Several stores are measured in turn in one run (e.g. the same
tracks in the compact and the full layout: the compact one computes the tempogram when it
is read).

    python experiments/bench_loader.py STORE.h5 [STORE2.h5 ...] [--batch-sizes 32 64] [--batches 20]
"""

from __future__ import annotations

import argparse
import time


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stores", nargs="+", metavar="store")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    p.add_argument("--batches", type=int, default=20)
    args = p.parse_args(argv)

    from mdsim.features.store import FeatureStore
    from mdsim.labels import DIMENSIONS, LabelLayout
    from mdsim.training.data import TrackTable, WindowBatches, trainable_dimensions

    for path in args.stores:
        with FeatureStore(path) as store:
            table, _ = TrackTable.from_store(store, min_frames=259)
            kind = store.layout
        dims, _ = trainable_dimensions(table, DIMENSIONS)
        layout = LabelLayout.from_records(dims, table.labels)
        print(f"{path} ({kind} layout): {len(table)} tracks, dimensions {', '.join(dims)}, one process")
        for bs in args.batch_sizes:
            data = WindowBatches(path, table, layout, inputs=("mel", "cens", "tempogram"), batch_size=bs,
                                 steps=args.batches, segment_frames=259, seed=0)
            data[0]  # opens the store
            t = time.perf_counter()
            for i in range(args.batches):
                data[i]
            per_batch = (time.perf_counter() - t) / args.batches
            print(f"  batch {bs}: {1 / per_batch:.1f} batches/s ({bs / per_batch:.0f} windows/s)")

if __name__ == "__main__":
    main()
