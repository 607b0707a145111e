"""``mdsim embed``: embeddings files of audio, folders, manifests or stores."""

from __future__ import annotations

from mdsim.cli.options import add_model_option, load_cli_model, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "embed", help="embed audio files, folders, manifests or stores with a trained model",
        description="Embed every track of the inputs: the mean of non-overlapping 3 s segment "
                    "embeddings per track (or every segment with --segments). Writes an embeddings "
                    "file (HDF5, layout in docs/evaluation.md) that `mdsim evaluate --embeddings` and "
                    "h5py read. Re-running skips tracks the output already holds; failures are "
                    "reported and skipped.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="audio files, folders, manifest CSVs or features stores (.h5 from `mdsim prep`)")
    add_model_option(p, "the model that embeds, e.g. RUN_DIR/best.keras")
    p.add_argument("--out", required=True, help="embeddings file to write (.h5)")
    p.add_argument("--dims", help="comma-separated subspaces to keep (default: all)")
    p.add_argument("--segments", action="store_true", help="also keep every 3 s segment's embedding")
    p.add_argument("--batch-size", type=positive_int, default=64, help="segments per network call (default 64)")
    p.add_argument("--checkpoint-seconds", type=float, default=60.0,
                   help="write the tracks embedded so far at least this often (default 60)")
    p.add_argument("--checkpoint-tracks", type=positive_int, default=1000,
                   help="... or whenever this many new tracks wait, whichever comes first (default 1000)")
    p.add_argument("--overwrite", action="store_true",
                   help="start the output over (it is otherwise resumed, and refused if another model wrote it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(run=run)


def run(args) -> int:
    from mdsim.embed import embed_to_file

    model = load_cli_model(args.model, "embed")
    summary = embed_to_file(args.inputs, model, args.out, dims=args.dims, segments=args.segments,
                            batch_size=args.batch_size, checkpoint_seconds=args.checkpoint_seconds,
                            checkpoint_tracks=args.checkpoint_tracks, overwrite=args.overwrite,
                            progress=not args.quiet)
    return 0 if summary.done + summary.skipped > 0 or not summary.failed else 1
