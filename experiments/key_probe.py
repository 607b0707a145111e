"""Can key be learned from the CENS a window holds, by a learner that sees it whole?

The diagnosis of docs/key_tempo.md: the network's CENS branch, alone and on the key loss alone,
stays near chance in-batch. This probe trains, on the same windows, loss and split, a small
network that reads the window's CENS averaged over time (12 numbers, standardised), through
two dense layers, into a key subspace; and, as its control, the same network on the CENS
averaged over time after a random rotation of the pitch classes per window (the key's
information destroyed, everything else kept). It then scores the held-out key triplets (track
embedding: the mean over the track's windows) beside the key-profile baseline.

``--key-profiles K`` adds the probe with K learned key profiles before its dense layers
(``mdsim train --key-profiles``); ``--tonic`` (with ``--key-profiles K``) adds the tonic key
head itself (``mdsim.model.backbones.tonic_subspace``, ``mdsim train --key-head tonic``) on the
same mean chroma, so the head is measured apart from the network it joins.

    python experiments/key_probe.py STORE.h5 --split RUN/split.json --triplets KEY_HELD_OUT.csv \
        [--steps 1500 --key-profiles 8 --tonic]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store", type=Path)
    p.add_argument("--split", type=Path, required=True, help="a run's split.json (its training tracks are used)")
    p.add_argument("--triplets", type=Path, required=True, help="held-out key triplets (mdsim triplets)")
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--key-profiles", type=int, default=0, metavar="K",
                   help="also train the probe with K learned key profiles before its dense layers "
                        "(mdsim train --key-profiles; default 0: not)")
    p.add_argument("--tonic", action="store_true",
                   help="also train the tonic key head (mdsim train --key-head tonic) with --key-profiles K")
    args = p.parse_args(argv)
    if args.tonic and not args.key_profiles:
        p.error("--tonic needs --key-profiles K (the tonic head's profiles), e.g. --key-profiles 8")

    import keras

    from key_tempo_baselines import baseline_embeddings
    from mdsim.evaluation import EmbeddingSet, evaluate, load_triplets
    from mdsim.features.store import FeatureStore
    from mdsim.labels import LabelLayout
    from mdsim.metric import ConditionalTripletLoss
    from mdsim.model.backbones import KeyProfiles, tonic_subspace
    from mdsim.model.config import ModelConfig
    from mdsim.training.data import TrackTable, WindowBatches

    split = json.loads(args.split.read_text())
    with FeatureStore(args.store) as store:
        table, _ = TrackTable.from_store(store, min_frames=259)
        ids = list(table.track_ids)
        train = table.subset([ids.index(t) for t in split["train"]])
        layout = LabelLayout.from_records(("key",), train.labels)
        data = WindowBatches(args.store, train, layout, inputs=("cens",), batch_size=args.batch_size,
                             steps=args.steps, segment_frames=259, seed=args.seed)
        data.stored_dtype = False
        # input statistics of the time-averaged CENS, from training windows
        sample = np.concatenate([data[i][0]["cens"].mean(axis=2) for i in range(8)])
        mean, std = sample.mean(axis=0), sample.std(axis=0) + 1e-6
        triplets = load_triplets(args.triplets, min_agreement=0.0)
        held = sorted(set(triplets.anchor) | set(triplets.positive) | set(triplets.negative))
        results = {}
        # (name, pitch classes rotated, key profiles, head)
        variants = [("probe: mean CENS -> dense", False, 0, "dense"),
                    ("control: pitch classes rotated", True, 0, "dense")]
        if args.key_profiles:
            variants.append((f"probe: {args.key_profiles} key profiles -> dense", False, args.key_profiles, "dense"))
        if args.tonic:
            variants.append((f"probe: tonic key head, {args.key_profiles} profiles", False, args.key_profiles,
                             "tonic"))
        for name, rotate, n_profiles, head in variants:
            keras.utils.set_random_seed(args.seed)
            rng = np.random.default_rng(args.seed)
            # the key profiles read the raw mean chroma, as in the network (mdsim train --key-profiles)
            shift, scale = (0.0, 1.0) if n_profiles else (mean, std)
            if head == "tonic":  # the network's tonic head, on the mean chroma as a one-frame window
                config = ModelConfig(dimensions=("key",), embedding_size=32, key_profiles=n_profiles,
                                     key_head="tonic")
                inp = keras.Input((12,))
                out = tonic_subspace(keras.layers.Reshape((12, 1))(inp), config, 32)
                model = keras.Model(inp, keras.layers.UnitNormalization()(out))
            else:
                first = [KeyProfiles(n_profiles)] if n_profiles else []
                model = keras.Sequential([keras.Input((12,)), *first, keras.layers.Dense(64, activation="relu"),
                                          keras.layers.Dense(32), keras.layers.UnitNormalization()])
            model.compile(optimizer=keras.optimizers.Adam(args.learning_rate),
                          loss=ConditionalTripletLoss(layout=layout, subspaces=[(0, 32)]))
            for i in range(args.steps):
                x, y = data[i]
                c = x["cens"].mean(axis=2)
                if rotate:
                    c = np.stack([np.roll(v, int(rng.integers(12))) for v in c])
                model.train_on_batch((c - shift) / scale, y)
            vectors = []
            for t in held:
                cens = store.features(t, names=("cens",))["cens"]
                starts = range(0, max(cens.shape[1] - 259, 0) + 1, 130)
                windows = np.stack([cens[:, s:s + 259].mean(axis=1) for s in starts])
                vectors.append(np.asarray(model.predict((windows - shift) / scale, verbose=0)).mean(axis=0))
            emb = EmbeddingSet(np.array(held), np.array(vectors, dtype=np.float32), name=name)
            r = evaluate(triplets, emb, n_bootstrap=500)["full"]
            results[name] = (r["score"], r["ci_low"], r["ci_high"])
    base = baseline_embeddings(args.store, held)["key profile"]
    r = evaluate(triplets, base, n_bootstrap=500)["full"]
    results["key profile (baseline)"] = (r["score"], r["ci_low"], r["ci_high"])
    print("| embedding | held-out key |\n|---|---:|")
    for name, (s, lo, hi) in results.items():
        print(f"| {name} | {s:.3f} [{lo:.3f}, {hi:.3f}] |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
