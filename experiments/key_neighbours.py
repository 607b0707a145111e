"""What a key subspace confuses: the key of each track's nearest neighbour, as a relation.

For each track of each ``STORE`` (with a key label), its nearest track of another group (another
score of a rendered corpus; another recording where tracks have no group) by cosine, in the
model's ``key`` subspace and in the chroma key-profile baseline
(``experiments/key_tempo_baselines.py``), and how the neighbour's key relates to the track's:

- **same**: the same key; **parallel**: the same tonic, the other mode (both count as similar in
  mdsim's key triplets);
- **relative**: the same notes, another tonic (C major and A minor);
- **fifth**: a fifth up or down in the same mode (one sharp or flat apart);
- **other**: anything else.

``random`` is the share each relation has among all pairs of tracks of different groups. A
subspace that knows the notes but not the tonic puts its errors on ``relative`` and ``fifth``.

    python experiments/key_neighbours.py runs/default/test.h5 beatles.h5
    python experiments/key_neighbours.py runs/default/test.h5 --model other.keras
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

RELATIONS = ("same", "parallel", "relative", "fifth", "other")


def relation(a: int, b: int) -> str:
    """How key ``b`` relates to key ``a`` (mdsim's key index: 0-11 major, 12-23 minor)."""
    step, same_mode, a_minor = (b - a) % 12, a // 12 == b // 12, a >= 12
    if step == 0:
        return "same" if same_mode else "parallel"
    if not same_mode and step == (3 if a_minor else 9):
        return "relative"
    if same_mode and step in (5, 7):
        return "fifth"
    return "other"


def shares(pairs) -> dict:
    """The share of each relation among ``(a, b)`` key pairs."""
    counts = {r: 0 for r in RELATIONS}
    for a, b in pairs:
        counts[relation(a, b)] += 1
    total = max(sum(counts.values()), 1)
    return {r: counts[r] / total for r in RELATIONS}


def nearest_keys(x: np.ndarray, keys: np.ndarray, groups: np.ndarray) -> list:
    """``(key, neighbour's key)`` for each row of ``x``: its nearest row of another group (cosine)."""
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    sim = x @ x.T
    sim[groups[:, None] == groups[None, :]] = -np.inf  # itself and its own group's tracks
    return [(int(keys[i]), int(keys[int(np.argmax(sim[i]))])) for i in range(len(x))]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stores", nargs="+", help="stores of recordings with a key label")
    p.add_argument("--model", default=None, help="model file (default: the default model)")
    args = p.parse_args(argv)

    import mdsim
    from key_tempo_baselines import baseline_embeddings
    from mdsim.embed import store_embedding_set
    from mdsim.features.store import FeatureStore

    model = mdsim.load_model(args.model)
    key = model.slices["key"]
    print(f"{'store':28s} {'tracks':>6s} {'embedding':12s} " + " ".join(f"{r:>8s}" for r in RELATIONS))
    for path in args.stores:
        emb = store_embedding_set(model, path, progress=False)
        with FeatureStore(path) as s:
            rows = [(t, s.labels(t)["key"], s.attrs(t).get("group") or t) for t in emb.track_ids]
        kept = [i for i, (_, k, _) in enumerate(rows) if k is not None]
        ids = [rows[i][0] for i in kept]
        keys = np.array([rows[i][1] for i in kept])
        groups = np.array([rows[i][2] for i in kept])
        profile = baseline_embeddings(path, ids)["key profile"].embeddings
        other = groups[:, None] != groups[None, :]
        random = shares((int(keys[i]), int(keys[j])) for i, j in zip(*np.nonzero(other)))
        for name, x in (("key subspace", emb.embeddings[kept][:, key]), ("key profile", profile)):
            got = shares(nearest_keys(np.asarray(x, np.float64), keys, groups))
            print(f"{Path(path).name[:28]:28s} {len(ids):6d} {name:12s} "
                  + " ".join(f"{got[r]:8.3f}" for r in RELATIONS))
        print(f"{'':28s} {'':6s} {'random':12s} " + " ".join(f"{random[r]:8.3f}" for r in RELATIONS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
