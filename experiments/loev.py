"""LOEV and LOEV++ on the synthetic corpus: retrieval without labels, sensitivity, label efficiency.

Generates (or reuses) the synthetic corpus and store of
``experiments/synthetic_disentanglement.py`` in ``--out``, then:

1. pretrains each ``--objectives`` model without labels (``mdsim pretrain``; same
   split, seed and budget), and on the tracks its pretraining held out reports
2. the locality table of each subspace (``invariant``, ``pitch``, ``tempo``, and the
   full embedding) against random neighbours: targeted retrieval with no label seen;
3. the distance of each subspace to the original window against pitch-shift and
   time-stretch applied on the features (the transforms pretraining draws from),
   over the mean distance between different tracks: the paper's Figure 3;
4. label efficiency (``--fractions``): the 6-dimension CSN trained from scratch and
   from the LOEV++ backbone (``mdsim train --init-from``) on 10 %, 30 % and 100 % of
   the pretraining's training tracks (``mdsim train --tracks``), each scored on the
   held-out tracks' triplets (the 6 x 6 matrix; its diagonal).

Writes ``loev.md``, ``loev.json``, ``locality_<objective>.png`` and ``sensitivity_<objective>.png``
to ``--out``. Every step resumes.

    python experiments/loev.py --out runs/loev --n 300 --duration 10 30
    python experiments/loev.py --out /tmp/loev --smoke                      # minutes
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

from synthetic_disentanglement import (add_run_arguments, efficiency_markdown, label_efficiency,  # noqa: E402
                                       markdown, prepare)

def pretrain_suffix(args) -> str:
    """Run-folder suffix of the non-default pretraining options (``_track``, ``_summaries``)."""
    return ("_track" if args.variant_negatives == "track" else "") + ("_summaries" if args.summaries else "")


def pretrain_runs(args, store, mdsim) -> dict:
    runs = {}
    for objective in args.objectives:
        run = args.out / f"pre_{objective.replace('+', 'p')}{pretrain_suffix(args)}"
        if (run / "state.json").exists():
            status = mdsim(["pretrain", str(store), "--resume", str(run), "--epochs", str(args.pretrain_epochs),
                            "--quiet"])
        else:
            status = mdsim(["pretrain", str(store), "--out", str(run), "--objective", objective,
                            "--variants", args.variants, "--width", str(args.width),
                            "--embedding-size", str(args.pretrain_embedding_size),
                            "--epochs", str(args.pretrain_epochs), "--steps-per-epoch", str(args.pretrain_steps),
                            "--batch-size", str(args.pretrain_batch), "--learning-rate",
                            str(args.pretrain_learning_rate), "--validation-fraction", str(args.validation_fraction),
                            "--seed", str(args.seed), "--variant-negatives", args.variant_negatives, "--quiet"]
                           + (["--summaries", args.summaries] if args.summaries else []))
        assert status == 0, f"pretraining {objective} failed"
        runs[objective] = run
    return runs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, epochs=12, triplets=200)
    p.add_argument("--objectives", default="loev,loev++", help="pretraining objectives (default loev,loev++)")
    p.add_argument("--variants", default="pitch,tempo", help="mdsim pretrain --variants (default pitch,tempo)")
    p.add_argument("--variant-negatives", choices=("all", "track"), default="all",
                   help="mdsim pretrain --variant-negatives (default all)")
    p.add_argument("--pretrain-epochs", type=int, default=20)
    p.add_argument("--pretrain-steps", type=int, default=15, help="pretraining steps per epoch")
    p.add_argument("--pretrain-batch", type=int, default=16, help="tracks per pretraining step")
    p.add_argument("--pretrain-learning-rate", type=float, default=1e-3)
    p.add_argument("--pretrain-embedding-size", type=int, help="default: --embedding-size")
    p.add_argument("--fractions", default="0.1,0.3,1.0", help="shares of the labels for the CSN ('' to skip)")
    p.add_argument("--k", type=int, default=5, help="neighbours of the locality table (default 5)")
    p.add_argument("--sensitivity-tracks", type=int, default=24, help="held-out tracks manipulated (default 24)")
    p.add_argument("--smoke", action="store_true", help="tiny corpus and budget: runs in minutes")
    args = p.parse_args(argv)
    if args.smoke:
        args.n, args.duration, args.epochs, args.steps, args.triplets = 48, (6.0, 8.0), 2, 4, 30
        args.pretrain_epochs, args.pretrain_steps, args.pretrain_batch = 2, 3, 8
        args.sensitivity_tracks, args.width, args.embedding_size = 4, 0.25, 48
    args.objectives = [o.strip() for o in args.objectives.split(",") if o.strip()]
    args.fractions = [float(f) for f in args.fractions.split(",") if f.strip()]
    args.pretrain_embedding_size = args.pretrain_embedding_size or args.embedding_size

    import mdsim as api
    from mdsim.analysis.locality import heatmap, locality
    from mdsim.analysis.locality import markdown as locality_md
    from mdsim.analysis.sensitivity import feature_sensitivity, plot
    from mdsim.analysis.sensitivity import markdown as sensitivity_md
    from mdsim.cli import main as mdsim
    from mdsim.embed import store_embedding_set
    from mdsim.evaluation import EmbeddingSet
    from mdsim.search.build import info_from_store

    out = args.out
    store, common = prepare(args, mdsim)
    runs = pretrain_runs(args, store, mdsim)
    splits = [json.loads((r / "split.json").read_text()) for r in runs.values()]
    assert all(s == splits[0] for s in splits), "pretraining runs must share the split"
    pool, held = splits[0]["train"], splits[0]["validation"]
    labels, _, _ = info_from_store(store)
    probe = sorted(np.random.default_rng(args.seed).choice(held, size=min(args.sensitivity_tracks, len(held)),
                                                           replace=False).tolist())
    results = {"locality": {}, "sensitivity": {}, "efficiency": {}}
    text = [f"## LOEV on the synthetic corpus ({args.n} tracks; pretraining {args.pretrain_epochs} epochs x "
            f"{args.pretrain_steps} steps of {args.pretrain_batch} tracks, width {args.width}; "
            f"{len(held)} held-out tracks)", ""]
    for objective, run in runs.items():
        model = api.load_model(run / "best.keras")
        emb = store_embedding_set(model, store, progress=False, name=objective)
        keep = np.isin(emb.track_ids, held)
        held_emb = EmbeddingSet(emb.track_ids[keep], emb.embeddings[keep], dimensions=emb.dimensions,
                                slices=emb.slices)
        loc = locality(held_emb, labels, k=args.k, seed=args.seed)
        results["locality"][objective] = loc
        heatmap(loc, out / f"locality_{objective.replace('+', 'p')}.png", title=f"locality, {objective}")
        text += [locality_md(loc, f"{objective}: locality of the held-out tracks")]
        sens = feature_sensitivity(model, store, probe, seed=args.seed)
        results["sensitivity"][objective] = sens
        plot(sens, out / f"sensitivity_{objective.replace('+', 'p')}.png", title=f"{objective}, on the features")
        text += [sensitivity_md(sens, f"{objective}: distance to the original window against manipulation of "
                                      "its features (held-out tracks)")]
    if args.fractions and "loev++" in runs:
        starts = {"scratch": None, "loev++": runs["loev++"] / "best.keras"}
        results["efficiency"] = label_efficiency(args, store, pool, held, starts, mdsim, common,
                                                 suffix=pretrain_suffix(args))
        text += [f"### Label efficiency: the CSN on a share of the labelled tracks ({args.epochs} epochs x "
                 f"{args.steps} batches of {args.batch_size}), own-subspace scores of held-out triplets", "",
                 efficiency_markdown(results["efficiency"])]
        for key, r in results["efficiency"].items():
            results["efficiency"][key]["markdown"] = markdown(r["matrix"], key)
    (out / "loev.json").write_text(json.dumps(results, indent=1))
    (out / "loev.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))
    print(f"\nwrote {out / 'loev.md'}, {out / 'loev.json'} and the figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
