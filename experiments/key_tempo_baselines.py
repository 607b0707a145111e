"""What a one-line feature achieves on key and tempo triplets: the baselines every report shows.

Scores the triplets of a store's tracks (``mdsim triplets`` files) with embeddings that
need no training:

- **key profile**: the correlations of the track's mean chroma (the store's CENS) with
  the 24 rotated Krumhansl-Kessler key profiles (24 numbers);
- **mean chroma**: the track's mean CENS itself (12 numbers);
- **tempo (tempogram peak)**: the strongest lag of the track's mean tempogram between
  30 and 300 BPM, as a point on the tempo-octave circle ``(cos 2 pi log2 T, sin 2 pi
  log2 T)``, so that cosine distance follows the octave-folded tempo difference;
- **mean tempogram**: the track's mean tempogram (384 numbers).

Each is scored on the triplets of its dimension with the evaluator ``mdsim evaluate``
uses (normalised distance, bootstrap interval). With ``--tracks`` it also says how many of
those tracks' labelled keys the key profile finds (exact, and the tonic) and how many
tempi the tempogram peak finds (within 4 %, up to tempo octaves).

    python experiments/key_tempo_baselines.py STORE.h5 --triplets key=KEY.csv tempo=TEMPO.csv \
        [--tracks HELD_OUT.txt]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

#: Krumhansl-Kessler probe-tone profiles, C major and C minor.
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def key_profile_vector(chroma_mean) -> np.ndarray:
    """Pearson correlations of a 12-bin mean chroma with the 24 keys (index ``pc + 12 mode``)."""
    c = np.asarray(chroma_mean, dtype=np.float64)
    out = []
    for profile in (KK_MAJOR, KK_MINOR):
        for pc in range(12):
            out.append(np.corrcoef(c, np.roll(profile, pc))[0, 1] if c.std() > 0 else 0.0)
    return np.nan_to_num(np.array(out))


def key_estimate(chroma_mean) -> int:
    """The key index of the best-correlated profile."""
    return int(np.argmax(key_profile_vector(chroma_mean)))


def tempo_estimate(tempogram_mean, *, sr=22050, hop=256, lo_bpm=30.0, hi_bpm=300.0) -> float:
    """BPM of the strongest lag of a mean tempogram within ``[lo_bpm, hi_bpm]``."""
    lags = np.arange(len(tempogram_mean))
    bpm = np.where(lags > 0, 60.0 * sr / (hop * np.maximum(lags, 1)), np.inf)
    ok = (bpm >= lo_bpm) & (bpm <= hi_bpm)
    k = lags[ok][np.argmax(np.asarray(tempogram_mean)[ok])]
    return float(60.0 * sr / (hop * k))


def tempo_circle(bpm) -> np.ndarray:
    a = 2 * np.pi * np.log2(bpm)
    return np.array([np.cos(a), np.sin(a)])


def baseline_embeddings(store_path, track_ids=None) -> dict:
    """``{name: EmbeddingSet}`` of the four baselines for the store's tracks."""
    from mdsim.evaluation import EmbeddingSet
    from mdsim.features.store import FeatureStore

    rows = {"key profile": [], "mean chroma": [], "tempo (tempogram peak)": [], "mean tempogram": []}
    with FeatureStore(store_path) as store:
        ids = list(track_ids) if track_ids is not None else store.track_ids()
        cfg = store.feature_config
        for t in ids:
            f = store.features(t, names=("cens", "tempogram"))
            c, T = f["cens"].mean(axis=1), f["tempogram"].mean(axis=1)
            rows["key profile"].append(key_profile_vector(c))
            rows["mean chroma"].append(c)
            rows["tempo (tempogram peak)"].append(tempo_circle(tempo_estimate(T, sr=cfg.sample_rate,
                                                                              hop=cfg.hop_length)))
            rows["mean tempogram"].append(T)
    return {name: EmbeddingSet(np.array(ids), np.array(v, dtype=np.float32), name=name) for name, v in rows.items()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store")
    p.add_argument("--triplets", nargs="+", required=True, metavar="DIM=FILE",
                   help="triplet files by dimension, e.g. key=key.csv tempo=tempo.csv")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--tracks", help="file of track ids (one per line) whose keys and tempi to check")
    args = p.parse_args(argv)

    from mdsim.evaluation import evaluate, load_triplets

    files = dict(item.split("=", 1) for item in args.triplets)
    embeddings = baseline_embeddings(args.store)
    lines = ["| baseline | " + " | ".join(f"{d} triplets" for d in files) + " |", "|---|" + "---:|" * len(files)]
    for name, emb in embeddings.items():
        cells = []
        for dim, path in files.items():
            r = evaluate(load_triplets(path, min_agreement=0.0), emb, n_bootstrap=args.bootstrap)["full"]
            cells.append(f"{r['score']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if args.tracks:
        print(estimate_accuracy(args.store, Path(args.tracks).read_text().split()))
    return 0


def estimate_accuracy(store_path, track_ids) -> str:
    """How many of the tracks' labelled keys and tempi the two one-line estimators find."""
    from mdsim.analysis.locality import octave_distance
    from mdsim.features.store import FeatureStore

    exact = tonic = n_key = tempo = n_tempo = 0
    with FeatureStore(store_path) as store:
        cfg = store.feature_config
        for t in track_ids:
            f, lab = store.features(t, names=("cens", "tempogram")), store.labels(t)
            if lab.get("key") is not None:
                k = key_estimate(f["cens"].mean(axis=1))
                n_key += 1
                exact += k == lab["key"]
                tonic += k % 12 == lab["key"] % 12
            if lab.get("tempo") is not None:
                bpm = tempo_estimate(f["tempogram"].mean(axis=1), sr=cfg.sample_rate, hop=cfg.hop_length)
                n_tempo += 1
                tempo += bool(octave_distance(lab["tempo"], bpm) < np.log2(1.04))
    return (f"key profile: key found for {exact} of {n_key} tracks ({exact / max(n_key, 1):.2f}), tonic for "
            f"{tonic} ({tonic / max(n_key, 1):.2f}); tempogram peak: tempo within 4 % (up to octaves) for "
            f"{tempo} of {n_tempo} ({tempo / max(n_tempo, 1):.2f})")


if __name__ == "__main__":
    sys.exit(main())
