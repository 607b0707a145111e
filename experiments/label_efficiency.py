"""Label efficiency of the default model: fine-tuned on a share of a corpus's labels against
trained from scratch, the same network and budget.

Generates (or reuses) the synthetic corpus and store of ``experiments/synthetic_disentanglement.py``
in ``--out`` (six labelled dimensions: genre, mood, instrument, era, tempo, key; music the default
model never heard, with labels it was never trained on). The tracks are split by synthetic artist
(``mdsim train``'s own rule, ``--validation-fraction``); of the training side, 10 %, 30 % and
100 % (``--fractions``) are given to ``mdsim train --tracks`` twice:

- ``scratch``: ``mdsim train --config default_model --dims genre,mood,instrument,era,tempo,key``;
- ``default``: the same with ``--init-from default``, the shipped model's branches, trunk, input
  statistics and the subspace heads whose shapes match (the new dimensions' slices start anew).

Each run is scored on the held-out artists' triplets of every dimension in its own subspace
(track mode). Writes ``label_efficiency.md`` and ``label_efficiency.json`` to ``--out``; every
step resumes.

    python experiments/label_efficiency.py --out runs/eff                 # the recipe
    python experiments/label_efficiency.py --out /tmp/eff --smoke         # minutes
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

from synthetic_disentanglement import (DIMS, add_run_arguments, efficiency_markdown,  # noqa: E402
                                       label_efficiency, prepare)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p, epochs=20, triplets=300)
    p.add_argument("--fractions", default="0.1,0.3,1.0", help="shares of the training tracks labelled")
    p.add_argument("--starts", default="scratch,default", help="which runs: scratch, default or both (default)")
    p.add_argument("--smoke", action="store_true", help="tiny corpus and budget: runs in minutes")
    args = p.parse_args(argv)
    if args.smoke:
        args.n, args.duration, args.epochs, args.steps, args.triplets = 48, (6.0, 8.0), 2, 3, 30
    args.fractions = [float(f) for f in args.fractions.split(",") if f.strip()]

    import mdsim as api
    from mdsim.cli import main as mdsim
    from mdsim.features.store import FeatureStore
    from mdsim.models import describe
    from mdsim.training.data import TrackTable, split_tracks

    store, _ = prepare(args, mdsim)
    # the default model's network and training settings for both starts (no augmentation); this run's budget
    common = ["--config", "default_model", "--dims", ",".join(DIMS), "--embedding-size", str(args.embedding_size),
              "--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps), "--batch-size",
              str(args.batch_size), "--learning-rate", str(args.learning_rate), "--validation-fraction",
              str(args.validation_fraction), "--seed", str(args.seed), "--augment", "none", "--quiet"]
    with FeatureStore(store) as s:
        table, _ = TrackTable.from_store(s, min_frames=0, pad_short=True)
    pool, held = split_tracks(table, validation_fraction=args.validation_fraction, seed=args.seed)
    starts = {name: init for name, init in (("scratch", None), ("default", "default"))
              if name in args.starts.split(",")}
    results = label_efficiency(args, store, pool, held, starts, mdsim, common)
    about = describe(api.load_model())
    text = [f"## Label efficiency of the default model ({args.n} synthetic tracks, {len(held)} held out by artist; "
            f"{args.epochs} epochs x {args.steps} batches of {args.batch_size}, the default model's network)", "",
            f"`default` starts from {about}; own-subspace scores of {args.triplets} held-out "
            "triplets per dimension (chance 0.5):", "", efficiency_markdown(results)]
    (args.out / "label_efficiency.json").write_text(json.dumps(results, indent=1))
    (args.out / "label_efficiency.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
