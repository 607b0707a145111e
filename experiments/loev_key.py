"""Neighbours in key without a label: what the LOEV++ pitch subspace needs (docs/loev.md).

Generates a small synthetic corpus (``mdsim.synth``; prepped with ``--chroma-n-fft 4096``,
so a window's chroma carries its key), pretrains LOEV++ with the invariant and the
pitch-variant subspace (``mdsim pretrain --variants pitch``, optionally ``tempo`` too) in
the four combinations of

- ``--summaries cens`` or none: the CENS time average reaching each subspace's
  representation directly, past the trunk's pooling (and the tempogram's, ``cens,tempogram``,
  when ``--variants`` has ``tempo``);
- ``--variant-negatives track`` or ``all``: the pitch subspace contrasted with the track's
  own views that differ in pitch only, or with every view of the batch as well,

and on the tracks the pretraining held out reports, per subspace, the share of each query's
``--k`` nearest neighbours (cosine) with the query's tonic (and key, and tempo by
:func:`mdsim.labels.similarity_matrix`), with the standard error over queries and the standard
error of the paired pitch-minus-invariant difference. ``--seeds`` repeats every combination
with other pretraining seeds (split, views, weights). Writes ``loev_key.md`` and
``loev_key.json`` to ``--out``; finished runs are reused.

    python experiments/loev_key.py --out runs/loev_key --epochs 20 --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: (name, extra ``mdsim pretrain`` options) of the combinations.
COMBINATIONS = (("plain", []), ("track", ["--variant-negatives", "track"]),
                ("summary", ["--summaries", "cens"]),
                ("summary+track", ["--summaries", "cens", "--variant-negatives", "track"]))


def neighbour_shares(emb, labels: dict, k: int) -> dict:
    """Per subspace: per-query shares of neighbours with the query's tonic, key and similar tempo."""
    from mdsim.analysis.locality import nearest_neighbours
    from mdsim.labels import similarity_matrix

    ids = emb.track_ids.tolist()
    keys = np.array([labels[t]["key"] for t in ids])
    same_tempo = similarity_matrix("tempo", [labels[t]["tempo"] for t in ids])[0]
    out = {}
    for name, (a, b) in zip(emb.dimensions, emb.slices):
        nb = nearest_neighbours(emb.embeddings[:, a:b], k)
        out[name] = {"tonic": (keys[nb] % 12 == keys[:, None] % 12).mean(axis=1),
                     "key": (keys[nb] == keys[:, None]).mean(axis=1),
                     "tempo": np.array([same_tempo[i, nb[i]].mean() for i in range(len(ids))])}
    out["random"] = {"tonic": np.array([(keys % 12 == q % 12).sum() - 1 for q in keys]) / (len(keys) - 1),
                     "key": np.array([(keys == q).sum() - 1 for q in keys]) / (len(keys) - 1),
                     "tempo": (same_tempo.sum(axis=1) - 1) / (len(keys) - 1)}
    return out


def _se(x) -> float:
    return float(np.std(x, ddof=1) / np.sqrt(len(x)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=72, help="synthetic tracks (default 72)")
    p.add_argument("--duration", type=float, nargs=2, default=(6.0, 8.0), metavar=("MIN", "MAX"))
    p.add_argument("--variants", default="pitch", help="mdsim pretrain --variants (default pitch)")
    p.add_argument("--combinations", default=",".join(c for c, _ in COMBINATIONS),
                   help="which of plain, track, summary, summary+track (default all)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--steps", type=int, default=12, help="steps per epoch")
    p.add_argument("--batch-size", type=int, default=16, help="tracks per step")
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--embedding-size", type=int, default=64)
    p.add_argument("--validation-fraction", type=float, default=0.5)
    p.add_argument("--seeds", default="0", help="pretraining seeds (default 0)")
    p.add_argument("--k", type=int, default=5)
    args = p.parse_args(argv)

    import mdsim
    from mdsim import synth
    from mdsim.cli import main as cli
    from mdsim.embed import store_embedding_set
    from mdsim.features.store import FeatureStore

    args.out.mkdir(parents=True, exist_ok=True)
    store = args.out / "store.h5"
    manifest = args.out / "corpus" / "manifest.csv"
    if not manifest.exists():
        synth.generate_corpus(args.out / "corpus", args.n, seed=1, duration_range=tuple(args.duration))
    assert cli(["prep", str(manifest), "--out", str(store), "--quiet", "--annotate", "none",
                "--chroma-n-fft", "4096"]) == 0
    with FeatureStore(store) as st:
        labels = {t: st.labels(t) for t in st.track_ids()}
    wanted = [c.strip() for c in args.combinations.split(",") if c.strip()]
    options = dict(COMBINATIONS)
    unknown = sorted(set(wanted) - set(options))
    if unknown:
        p.error(f"unknown combination(s) {', '.join(unknown)} (known: {', '.join(options)})")
    results, rows = {}, []
    variant = args.variants.split(",")[0].strip()
    for seed in [int(s) for s in args.seeds.split(",") if s.strip()]:
        for combination in wanted:
            tag = f"{combination}_{args.variants.replace(',', '+')}_s{seed}_e{args.epochs}"
            run = args.out / f"run_{tag}"
            extra = [("cens,tempogram" if o == "cens" and "tempo" in args.variants.split(",") else o)
                     for o in options[combination]]
            if not (run / "best.keras").exists():
                assert cli(["pretrain", str(store), "--out", str(run), "--objective", "loev++", "--variants",
                            args.variants, "--width", str(args.width), "--embedding-size", str(args.embedding_size),
                            "--batch-size", str(args.batch_size), "--steps-per-epoch", str(args.steps),
                            "--learning-rate", "1e-3", "--validation-fraction", str(args.validation_fraction),
                            "--seed", str(seed), "--epochs", str(args.epochs), "--quiet", *extra]) == 0
            model = mdsim.load_model(run / "best.keras")
            held = json.loads((run / "split.json").read_text())["validation"]
            shares = neighbour_shares(store_embedding_set(model, store, held, progress=False), labels, args.k)
            diff = shares[variant]["tonic"] - shares["invariant"]["tonic"]
            results[tag] = {space: {m: [float(np.mean(v)), _se(v)] for m, v in ms.items()}
                            for space, ms in shares.items()}
            results[tag]["difference_se"] = [float(diff.mean()), _se(diff)]
            rows.append((combination, seed, len(held), shares, diff))
            print(f"{tag}: tonic precision@{args.k} {variant} {shares[variant]['tonic'].mean():.3f}, invariant "
                  f"{shares['invariant']['tonic'].mean():.3f}, random {shares['random']['tonic'].mean():.3f}",
                  flush=True)
    spaces = ["invariant"] + [v.strip() for v in args.variants.split(",")]
    head = " | ".join(f"{s} tonic | {s} key | {s} tempo" for s in spaces)
    lines = [f"## Neighbours in key without a label ({args.n} tracks, LOEV++ {args.variants}, {args.epochs} epochs "
             f"x {args.steps} steps of {args.batch_size} tracks, width {args.width}; precision@{args.k} on the "
             "held-out tracks, standard error in brackets)", "",
             f"| combination | seed | held out | {head} | {variant} - invariant tonic |",
             "|---|---:|---:|" + "---:|" * (3 * len(spaces) + 1)]
    for combination, seed, n_held, shares, diff in rows:
        cells = " | ".join(f"{shares[s][m].mean():.3f} ({_se(shares[s][m]):.3f})" for s in spaces
                           for m in ("tonic", "key", "tempo"))
        lines.append(f"| {combination} | {seed} | {n_held} | {cells} | {diff.mean():+.3f} ({_se(diff):.3f}) |")
    if rows:
        r = rows[-1][3]["random"]
        lines += ["", f"Random neighbours (last run's held-out tracks): tonic {r['tonic'].mean():.3f}, key "
                      f"{r['key'].mean():.3f}, tempo {r['tempo'].mean():.3f}."]
    (args.out / "loev_key.md").write_text("\n".join(lines) + "\n")
    (args.out / "loev_key.json").write_text(json.dumps(results, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
