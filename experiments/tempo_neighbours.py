"""Where a model's tempo subspace puts real recordings among rendered ones of known tempo.

For each track of each ``STORE`` (with a tempo label), its five nearest tracks of the
``--reference`` store (rendered, exact tempi) in the model's ``tempo`` subspace (cosine), their
tempi, and the median octave-folded distance between those tempi and the track's own
(``|log2(a / b)|`` folded into 0..0.5 octaves; 0.25 is what random neighbours give on average).
A subspace that reads the beat gives small errors and different neighbours for different tempi;
one that reads the timbre of the reference corpus sends every real recording to the same few.

    git show 6e7ee4b:mdsim/models/default.keras > before.keras      # the model shipped before
    python experiments/tempo_neighbours.py beatles.h5 --reference runs/default/test.h5 --model before.keras
    python experiments/tempo_neighbours.py beatles.h5 --reference runs/default/test.h5   # the default model
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def octaves_apart(a, b):
    """Octave-folded distance between tempi, in octaves (0 to 0.5)."""
    d = np.abs(np.log2(np.asarray(a, float) / np.asarray(b, float))) % 1.0
    return np.minimum(d, 1.0 - d)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stores", nargs="+", help="stores of recordings with a tempo label")
    p.add_argument("--reference", required=True, help="store of rendered tracks with exact tempi")
    p.add_argument("--model", default=None, help="model file (default: the default model)")
    p.add_argument("-k", type=int, default=5)
    args = p.parse_args(argv)

    import mdsim
    from mdsim.embed import store_embedding_set
    from mdsim.features.store import FeatureStore

    model = mdsim.load_model(args.model)
    tempo = model.slices["tempo"]

    def embedded(path):
        emb = store_embedding_set(model, path, progress=False)
        x = emb.embeddings[:, tempo]
        with FeatureStore(path) as s:
            tempi = [s.labels(t)["tempo"] for t in emb.track_ids]
        return list(emb.track_ids), x / np.linalg.norm(x, axis=1, keepdims=True), tempi

    _, ref, ref_tempi = embedded(args.reference)
    ref_tempi = np.array(ref_tempi, float)
    for path in args.stores:
        ids, x, tempi = embedded(path)
        errors, chance = [], []
        print(f"\n{path}: the {args.k} nearest reference tracks in the tempo subspace")
        for tid, v, t in zip(ids, x, tempi):
            if t is None:
                continue
            near = ref_tempi[np.argsort(-(ref @ v))[:args.k]]
            errors.append(np.median(octaves_apart(near, t)))
            chance.append(np.median(octaves_apart(ref_tempi, t)))
            print(f"  {tid[:40]:40s} {t:6.1f} BPM: {' '.join(f'{n:.0f}' for n in near)}")
        print(f"  median octave-folded error of the neighbours: {np.mean(errors):.3f} (random neighbours "
              f"{np.mean(chance):.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
