"""Augmentation on the synthetic corpus: none, invariance and label-transforming, side by side.

Generates (or reuses) the synthetic corpus and store of
``experiments/synthetic_disentanglement.py`` in ``--out``, trains the multi-input
model three times with the same budget, split and seed (``mdsim train --augment
none | invariance | label``), and for each run reports, on the held-out tracks:

- the 6 x 6 matrix "triplets of dimension i scored in subspace j";
- the locality table (``mdsim analyze locality``: tempo, key, tonic and tag
  locality of each subspace's nearest neighbours against random neighbours);
- the sensitivity matrix (``mdsim analyze sensitivity``: distance to the original
  against pitch shift, time-stretch and EQ of the audio) on ``--sensitivity-tracks``
  held-out tracks.

Writes ``augmentation.md``, ``augmentation.json`` and per run ``locality_<mode>.png``,
``sensitivity_<mode>.png`` to ``--out``. Every step resumes (training runs too).

    python experiments/augmentation.py --out runs/aug --n 300 --epochs 24 --steps 20 --triplets 300
    python experiments/augmentation.py --out /tmp/aug --smoke           # minutes
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from synthetic_disentanglement import (DIMS, add_run_arguments, markdown, model_suffix, prepare,  # noqa: E402
                                       split_triplets, subspace_matrix)

MODES = ("none", "invariance", "label")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, epochs=24, triplets=300)
    p.add_argument("--modes", default=",".join(MODES), help="augmentation modes to train (default all three)")
    p.add_argument("--k", type=int, default=5, help="neighbours of the locality table (default 5)")
    p.add_argument("--sensitivity-tracks", type=int, default=8, help="held-out tracks manipulated (default 8)")
    p.add_argument("--smoke", action="store_true", help="tiny corpus and budget: runs in minutes")
    args = p.parse_args(argv)
    if args.smoke:
        args.n, args.duration, args.epochs, args.steps, args.triplets = 48, (6.0, 8.0), 2, 4, 30
        args.sensitivity_tracks, args.width, args.embedding_size = 2, 0.25, 48

    import numpy as np

    import mdsim as api
    from mdsim.analysis.locality import heatmap, locality
    from mdsim.analysis.locality import markdown as locality_md
    from mdsim.analysis.sensitivity import plot, sensitivity
    from mdsim.analysis.sensitivity import markdown as sensitivity_md
    from mdsim.cli import main as mdsim
    from mdsim.embed import store_embedding_set
    from mdsim.evaluation import EmbeddingSet
    from mdsim.search.build import info_from_store

    out = args.out
    store, common = prepare(args, mdsim)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    runs = {}
    for mode in modes:
        # the folder names of synthetic_disentanglement.py --augment, so its runs are reused
        run = out / (("run_multi_input" if mode == "none" else f"run_multi_input_{mode}") + model_suffix(args))
        if (run / "state.json").exists():
            status = mdsim(["train", str(store), "--resume", str(run), "--epochs", str(args.epochs), "--quiet"])
        else:
            status = mdsim(["train", str(store), "--out", str(run), *common, "--augment", mode])
        assert status == 0, f"training {mode} failed"
        runs[mode] = run
    split, triplet_files = split_triplets(runs.values(), "validation", store, args, mdsim)
    held = split["validation"]

    labels, _, sources = info_from_store(store)
    rng = np.random.default_rng(args.seed)
    probe = sorted(rng.choice(held, size=min(args.sensitivity_tracks, len(held)), replace=False).tolist())
    results, text = {}, [f"## Augmentation on the synthetic corpus ({args.n} tracks; {args.epochs} epochs x "
                         f"{args.steps} batches of {args.batch_size}; {len(held)} held-out tracks, "
                         f"{args.triplets} triplets per dimension)", ""]
    suffix = model_suffix(args)
    for mode, run in runs.items():
        cached = out / f"analysis_{mode}{suffix}.json"
        if cached.exists() and cached.stat().st_mtime > (run / "best.keras").stat().st_mtime:
            results[mode] = json.loads(cached.read_text())
        else:
            model = api.load_model(run / "best.keras")
            matrix = subspace_matrix(model, store, triplet_files, model_name=mode)
            emb = store_embedding_set(model, store, progress=False, name=mode)
            keep = np.isin(emb.track_ids, held)
            held_emb = EmbeddingSet(emb.track_ids[keep], emb.embeddings[keep], dimensions=emb.dimensions,
                                    slices=emb.slices)
            loc = locality(held_emb, labels, k=args.k, seed=args.seed)
            sens = sensitivity(model, [sources[t] for t in probe], progress=True)
            results[mode] = {"matrix": matrix, "locality": loc, "sensitivity": sens}
            cached.write_text(json.dumps(results[mode], indent=1))
        r = results[mode]
        heatmap(r["locality"], out / f"locality_{mode}{suffix}.png", title=f"locality, augment {mode}{suffix}")
        plot(r["sensitivity"], out / f"sensitivity_{mode}{suffix}.png", title=f"augment {mode}{suffix}")
        text += [f"### augment = {mode}", "", markdown(r["matrix"], "held-out triplets").replace("### ", "#### "),
                 locality_md(r["locality"], "locality (held-out tracks)").replace("### ", "#### "),
                 sensitivity_md(r["sensitivity"], "sensitivity (held-out tracks)").replace("### ", "#### ")]
    if len(results) > 1:
        text += ["### Own-subspace scores side by side", "", "| dimension | " + " | ".join(results) + " |",
                 "|---|" + "---:|" * len(results)]
        for d in DIMS:
            text.append(f"| {d} | " + " | ".join(f"{results[m]['matrix'][d][d]:.3f}" for m in results) + " |")
        text.append("")
    (out / f"augmentation{suffix}.json").write_text(json.dumps(results, indent=1))
    (out / f"augmentation{suffix}.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))
    print(f"\nwrote {out / f'augmentation{suffix}.md'}, {out / f'augmentation{suffix}.json'} and the figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
