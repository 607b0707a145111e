"""``mdsim evaluate``: triplet scores per subspace combination, table and radar chart."""

from __future__ import annotations

import sys


def add_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="triplet score per subspace combination, table and radar chart",
        description="Score human or generated similarity triplets (Dim-sim CSV format): the fraction "
                    "with d(anchor, positive) < d(anchor, negative), for the full embedding and every "
                    "combination of subspaces, with bootstrap 95 % intervals. Writes "
                    "evaluation.json, evaluation.md and evaluation_radar.png to --out. Give several "
                    "--model or --embeddings to compare them side by side.")
    p.add_argument("--triplets", required=True, help="triplets CSV (Dim-sim raw or clean format)")
    p.add_argument("--model", action="append", default=[],
                   help="a trained model (.keras, or `default`); repeatable (default with --store alone: the "
                        "default model, docs/default_model.md)")
    p.add_argument("--store", help="features store holding the triplets' tracks (needed with --model)")
    p.add_argument("--embeddings", action="append", default=[],
                   help="an embeddings file (HDF5 or NPZ, e.g. from `mdsim embed`); repeatable")
    p.add_argument("--compare", nargs="+", default=[], metavar="PATH",
                   help="more models (.keras, scored on --store) or embeddings files to put side by "
                        "side with the first in one table and one chart")
    p.add_argument("--name", action="append", default=[],
                   help="display name for each --model, then each --embeddings, then each --compare "
                        "path, in order")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--min-agreement", type=float, default=0.9,
                   help="keep triplets whose vote agreement is at least this (default 0.9)")
    p.add_argument("--mode", choices=("track", "clip"), default="track",
                   help="track: mean over the track's 3 s segments (default); clip: the 3 s at the "
                        "triplet's start time (needs --model)")
    p.add_argument("--distance", choices=("normalised", "paper"), default="normalised",
                   help="normalised: sum of per-subspace cosine distances, each subspace counting the "
                        "same, as in training and Model.similarity (default); paper: Euclidean "
                        "distance on the raw slices, Ribecky et al.'s protocol, for the paper's figures")
    p.add_argument("--strict", action="store_true", help="fail when a triplet's track is missing")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--top", type=int, default=None, help="rows of the ranked table (default all)")
    p.set_defaults(run=run)


def run(args) -> int:
    from mdsim.errors import InputError
    from mdsim.evaluation import evaluate, format_score, load_triplets, read_embeddings, write_report

    for path in args.compare:  # a .keras file is a model, anything else an embeddings file
        (args.model if str(path).endswith(".keras") else args.embeddings).append(path)
    if not args.model and not args.embeddings:
        if not args.store:
            raise InputError("give --store (its tracks are embedded by the default model, or by --model) or "
                             "at least one --embeddings file")
        args.model = ["default"]
    if args.model and not args.store:
        raise InputError("--model needs --store, the features store with the triplets' tracks")
    if args.mode == "clip" and args.embeddings:
        raise InputError("--mode clip needs --model: an embeddings file holds one vector per track")
    triplets = load_triplets(args.triplets, min_agreement=args.min_agreement)
    sel = triplets.selection
    print(f"evaluate: {args.triplets}: read {sel.n_read}, kept {sel.n_kept} "
          f"(dropped {sel.n_dropped_tie} ties, {sel.n_dropped_low_agreement} below agreement "
          f"{args.min_agreement})", file=sys.stderr)
    names = list(args.name)
    sources = []
    if args.model:
        from mdsim.cli.options import load_cli_model
        from mdsim.embed import store_clip_embeddings, store_embedding_set

        for path in args.model:
            name = names.pop(0) if names else path
            model = load_cli_model(path, "evaluate")
            if args.mode == "clip":
                sources.append(store_clip_embeddings(model, args.store, name=name))
            else:
                sources.append(store_embedding_set(model, args.store, sorted(triplets.track_ids()), name=name))
    for path in args.embeddings:
        sources.append(read_embeddings(path, name=names.pop(0) if names else None))
    results = [evaluate(triplets, s, mode=args.mode, distance=args.distance, strict=args.strict,
                        n_bootstrap=args.bootstrap, seed=args.seed) for s in sources]
    files = write_report(results[0] if len(results) == 1 else results, args.out, top=args.top)
    for r in results:
        t = r["triplets"]
        print(f"evaluate: {r['model']}: scored {t['n_scored']} triplets "
              f"({t['n_dropped_missing']} dropped for missing tracks); full embedding {format_score(r['full'])}")
    print("evaluate: wrote " + ", ".join(str(p) for p in files.values()))
    return 0
