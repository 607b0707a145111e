"""The key and tempo labels behind docs/key_tempo.md's diagnosis: their strength and the sampler.

Two checks on a store with exact key and tempo labels (the rendered corpus, prepped with
``--annotate none``):

- ``--sampler``: draws ``--batches`` training batches as ``mdsim train`` does
  (:class:`mdsim.training.data.ConditionalSampler`, the store's tracks, all five dimensions)
  and checks every pair drawn for key shares its tonic and every pair drawn for tempo is
  similar in tempo (:func:`mdsim.labels.similar`), and counts each anchor's positives in its
  batch: a sampler that mixed up the pairs shows here.
- ``--madmom STORE``: the same audio prepped with ``--annotate madmom`` from a manifest
  without the ``key`` and ``tempo`` cells (the labels a user without ground truth has);
  reports how often madmom's key is the written one (or its relative, or shares its tonic),
  and madmom's tempo within 5 BPM, similar by the project's rule (:func:`mdsim.labels.tempo_similar`:
  5 BPM, octave errors folded) and within 4 % up to a factor of 2 or 3:2 (metrical-level errors).

    python experiments/key_tempo_labels.py rendered.h5 --sampler
    python experiments/key_tempo_labels.py rendered.h5 --madmom rendered_madmom.h5
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DIMENSIONS = ("genre", "mood", "instrument", "tempo", "key")
#: Tempo ratios counted as metrical-level errors (octaves and 3:2).
METRICAL = (1 / 3, 1 / 2, 2 / 3, 1.0, 3 / 2, 2.0, 3.0)


def sampler_check(store_path, *, batches: int = 200, batch_size: int = 32, seed: int = 0) -> dict:
    """Pairs drawn by the training sampler: how many for key and tempo, how many right."""
    from mdsim.features.store import FeatureStore
    from mdsim.labels import similar
    from mdsim.training.data import ConditionalSampler, TrackTable

    with FeatureStore(store_path) as store:
        table, _ = TrackTable.from_store(store, min_frames=1)
    sampler = ConditionalSampler(table, DIMENSIONS, batch_size=batch_size)
    rng = np.random.default_rng(seed)
    out = {d: {"pairs": 0, "right": 0, "positives": []} for d in ("key", "tempo")}
    for _ in range(batches):
        idx, dims = sampler.batch_pairs(rng)
        for j in range(0, len(idx) - 1, 2):
            d = dims[j]
            if d in out:
                a, p = (table.labels[int(i)][d] for i in idx[j:j + 2])
                out[d]["pairs"] += 1
                out[d]["right"] += bool(similar(d, a, p))
        for d in out:  # every item of the batch as an anchor: its positives among the others
            values = [table.labels[int(i)][d] for i in idx]
            for j, v in enumerate(values):
                if v is not None:
                    out[d]["positives"].append(sum(similar(d, v, w) for k, w in enumerate(values)
                                                   if k != j and w is not None))
    return {d: {"pairs": o["pairs"], "right": o["right"], "positives_per_anchor": float(np.mean(o["positives"]))}
            for d, o in out.items()}


#: Bars of madmom's key probability reported by :func:`madmom_check` (``mdsim train --min-key-probability``).
PROBABILITY_BARS = (0.6, 0.9)


def madmom_check(truth_path, madmom_path) -> dict:
    """madmom's key and tempo on the same tracks against the written ones."""
    from bench_annotate import key_scores

    from mdsim.features.store import FeatureStore
    from mdsim.labels import tempo_similar

    with FeatureStore(truth_path) as truth, FeatureStore(madmom_path) as est:
        ids = sorted(set(truth.track_ids()) & set(est.track_ids()))
        pairs = [(truth.labels(t), est.labels(t)) for t in ids]
        probability = [float(est.attrs(t).get("key_probability", np.nan)) for t in ids]
    keyed = [(a["key"], b["key"], q) for (a, b), q in zip(pairs, probability)
             if a["key"] is not None and b["key"] is not None]
    key = [(a, b) for a, b, _ in keyed]
    tempo = [(a["tempo"], b["tempo"]) for a, b in pairs if a["tempo"] is not None and b["tempo"] is not None]

    scores = [key_scores(b, a) for a, b in key]  # (estimate, truth)
    return {
        "tracks": len(ids), "key_labelled": len(key), "tempo_labelled": len(tempo),
        "key_exact": sum(k["key_exact"] for k in scores),
        "key_exact_or_relative": sum(k["key_exact"] or k["key_relative"] for k in scores),
        "key_same_tonic": sum(k["key_exact"] or k["key_parallel"] for k in scores),
        "tempo_within_5bpm": sum(abs(a - b) <= 5 for a, b in tempo),
        "tempo_similar": sum(bool(tempo_similar(a, b)) for a, b in tempo),
        "tempo_metrical": sum(any(abs(b / (a * f) - 1) <= 0.04 for f in METRICAL) for a, b in tempo),
        # how sure madmom was of its right and wrong keys: (keys at or above the bar, of them same tonic)
        "key_same_tonic_by_probability": {
            bar: (sum(q >= bar for *_, q in keyed),
                  sum(q >= bar and (k["key_exact"] or k["key_parallel"]) for (*_, q), k in zip(keyed, scores)))
            for bar in PROBABILITY_BARS},
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("store", help="store with the exact key and tempo labels")
    p.add_argument("--sampler", action="store_true", help="check the training sampler's key and tempo pairs")
    p.add_argument("--batches", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--madmom", metavar="STORE", help="the same tracks with madmom's key and tempo")
    args = p.parse_args(argv)
    if not args.sampler and not args.madmom:
        p.error("give --sampler, --madmom STORE or both")
    if args.sampler:
        for d, r in sampler_check(args.store, batches=args.batches, batch_size=args.batch_size).items():
            print(f"sampler, {d}: {r['right']} of {r['pairs']} pairs drawn for {d} are similar in {d}; "
                  f"{r['positives_per_anchor']:.1f} positives per anchor in a batch of {args.batch_size}")
    if args.madmom:
        r = madmom_check(args.store, args.madmom)
        k, t = r["key_labelled"], r["tempo_labelled"]
        print(f"madmom on {r['tracks']} tracks: key {r['key_exact']}/{k} exact, {r['key_exact_or_relative']}/{k} "
              f"exact or relative, {r['key_same_tonic']}/{k} same tonic; tempo {r['tempo_within_5bpm']}/{t} "
              f"within 5 BPM, {r['tempo_similar']}/{t} similar (5 BPM, octaves folded), {r['tempo_metrical']}/{t} "
              f"within 4 % up to octave and 3:2 errors")
        for bar, (n, right) in r["key_same_tonic_by_probability"].items():
            print(f"madmom keys with probability >= {bar}: {n}/{k}, {right} of them same tonic "
                  f"({right / max(n, 1):.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
