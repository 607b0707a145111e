"""The ``mdsim`` command: a thin shell over the library, one call per subcommand.

Nothing here imports TensorFlow or Keras at module level: ``mdsim --help``
and ``mdsim prep`` stay light; only subcommands that run a network load it.
"""

from __future__ import annotations

import argparse
import sys

from mdsim import __version__
from mdsim.errors import MdsimError


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


# -- prep ----------------------------------------------------------------------------------
def _add_prep(sub) -> None:
    p = sub.add_parser(
        "prep", help="extract features and annotations into an HDF5 store",
        description="Decode audio, compute log-mel, CENS and tempogram from one STFT per track, "
                    "estimate tempo and key with madmom where the manifest gives none, and write "
                    "everything to a features store. Re-running the same command resumes: "
                    "finished tracks are skipped, failed ones retried.")
    p.add_argument("input", help="a folder (searched recursively for wav, flac, ogg, mp3, aiff) "
                                 "or a manifest CSV with columns track_id, path and optional "
                                 "genre, mood, instrument, era, tempo, key, group")
    p.add_argument("--out", required=True, help="the features store to create or extend (.h5)")
    p.add_argument("--workers", type=_positive_int, default=None,
                   help="worker processes on this machine (default: number of cores; 1 = no subprocesses)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing Dask cluster at ADDRESS (e.g. tcp://10.0.0.5:8786) "
                        "instead of local workers")
    p.add_argument("--tempo-mode", choices=("full", "fast"), default="full",
                   help="madmom beat ensemble for tempo: full (8 networks, default) or fast (2)")
    p.add_argument("--float32", action="store_true",
                   help="store feature matrices as float32 instead of float16 (twice the size)")
    p.add_argument("--estimate-tuning", action="store_true",
                   help="estimate each track's tuning for the chroma (slower; default assumes A440)")
    p.add_argument("--cyclic-tempogram", action="store_true",
                   help="fold the tempogram into tempo octaves")
    p.add_argument("--overwrite", action="store_true",
                   help="rebuild the store from scratch instead of resuming")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(run=_run_prep)


def _run_prep(args) -> int:
    from mdsim.config import FeatureConfig
    from mdsim.features.pipeline import prep

    config = FeatureConfig(dtype="float32" if args.float32 else "float16",
                           tuning=None if args.estimate_tuning else 0.0,
                           cyclic_tempogram=args.cyclic_tempogram)
    summary = prep(args.input, args.out, workers=args.workers, scheduler=args.scheduler,
                   tempo_mode=args.tempo_mode, config=config, overwrite=args.overwrite,
                   progress=not args.quiet)
    return 0 if summary.done + summary.skipped > 0 or summary.failed == 0 else 1


# -- inspect -------------------------------------------------------------------------------
def _add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="list the tracks of a features store",
                       description="Print one line per track of a features store (duration, frames, "
                                   "tempo, key, labels) and the failed inputs with their reasons.")
    p.add_argument("store", help="a features store written by `mdsim prep`")
    p.set_defaults(run=_run_inspect)


def _run_inspect(args) -> int:
    from mdsim.features.store import FeatureStore
    from mdsim.labels import TAG_DIMENSIONS

    with FeatureStore(args.store) as store:
        print(f"{args.store}: {len(store)} tracks, {len(store.failures())} failed, "
              f"{store.n_parts()} unmerged parts")
        print(f"{'track':<28} {'seconds':>8} {'frames':>7} {'tempo':>7}  {'key':<9} labels")
        for tid in store.track_ids():
            a = store.attrs(tid)
            tags = "; ".join(f"{d}={a[d]}" for d in TAG_DIMENSIONS if a.get(d))
            flag = " (shorter than 3 s)" if a.get("too_short") else ""
            print(f"{tid:<28} {a['duration']:>8.1f} {a['n_frames']:>7d} {a['tempo']:>7.1f}  "
                  f"{a['key'] or '-':<9} {tags}{flag}")
        for tid, path, reason in store.failures():
            print(f"FAILED {tid}: {reason}")
    return 0


# -- entry point ---------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mdsim",
        description="Multi-dimensional music similarity: features, training, evaluation and "
                    "subspace embeddings (genre, mood, instrument, era, tempo, key).")
    parser.add_argument("--version", action="version", version=f"mdsim {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for add in (_add_prep, _add_inspect):
        add(sub)
    return parser


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv=None) -> int:
    """Run the ``mdsim`` command; returns the exit status."""
    args = parse_args(argv)
    try:
        return args.run(args)
    except MdsimError as e:
        print(f"mdsim {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mdsim {args.command}: interrupted; finished work is kept, run the same command to resume",
              file=sys.stderr)
        return 130
