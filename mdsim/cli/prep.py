"""``mdsim prep``: features and annotations of audio into a features store."""

from __future__ import annotations

from mdsim.cli.options import positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "prep", help="extract features and annotations into an HDF5 store",
        description="Decode audio, compute log-mel, CENS and tempogram from one STFT per track, "
                    "estimate tempo and key where the manifest gives none, and write everything to a "
                    "features store (layout in docs/store.md). Re-running the same command resumes: "
                    "unchanged tracks are skipped (manifest label edits are applied to them), changed "
                    "and failed ones computed again. One writer per store at a time.")
    p.add_argument("input", help="a folder (searched recursively for wav, flac, ogg, mp3, aiff) "
                                 "or a manifest CSV with columns track_id, path and optional "
                                 "genre, mood, instrument, era, tempo, key, group")
    p.add_argument("--out", required=True, help="the features store to create or extend (.h5)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="worker processes on this machine (default: number of cores; 1 = no subprocesses)")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="run on an existing Dask cluster at ADDRESS (e.g. tcp://10.0.0.5:8786) "
                        "instead of local workers")
    p.add_argument("--annotate", choices=("madmom", "fast", "none"), default="madmom",
                   help="how tempo and key the manifest does not give are estimated: madmom (default; "
                        "accurate, about 2x real time per core, source decoded at 44.1 kHz), fast "
                        "(onset tempogram and CENS key profiles, no madmom, hundreds of times real "
                        "time) or none (left unknown)")
    p.add_argument("--tempo-mode", choices=("full", "fast"), default="full",
                   help="madmom beat ensemble for tempo: full (8 networks, default) or fast (2)")
    p.add_argument("--float32", action="store_true",
                   help="store feature matrices as float32 instead of float16 (twice the size)")
    p.add_argument("--features", choices=("stft", "cqt"), default="stft",
                   help="stft: log-mel, CENS and tempogram from one STFT (default; what `mdsim train` "
                        "and the Inception backbones of `mdsim manifold train` read); cqt: the deep-manifold "
                        "input, log(50|CQT| + 1) at 16 kHz, 20 frames/s, 24 bins/octave from 27.5 Hz, 192 "
                        "bins (what `mdsim manifold train --backbone manifold` reads)")
    p.add_argument("--estimate-tuning", action="store_true",
                   help="estimate each track's tuning for the chroma (slower; default assumes A440)")
    p.add_argument("--chroma-n-fft", type=positive_int, metavar="SAMPLES",
                   help="compute CENS from a second STFT of this window on the same frames, e.g. 4096: "
                        "resolves the pitch classes of bass and chords that the 512-sample STFT blurs "
                        "(default: the one STFT, as stores of earlier versions)")
    p.add_argument("--cyclic-tempogram", action="store_true",
                   help="fold the tempogram into tempo octaves")
    p.add_argument("--full-tempogram", action="store_true",
                   help="a new store keeps the tempogram itself (90 KB per audio second instead of 25; "
                        "no tempogram computation when reading) rather than the onset envelope it comes from")
    p.add_argument("--verify", action="store_true",
                   help="check the stored features of unchanged inputs against their checksums and "
                        "compute damaged ones again")
    p.add_argument("--overwrite", action="store_true",
                   help="rebuild the store from scratch instead of resuming")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(run=run)


def run(args) -> int:
    from mdsim.config import FeatureConfig
    from mdsim.features.pipeline import prep

    dtype = "float32" if args.float32 else "float16"
    if args.features == "cqt":
        config = FeatureConfig.constant_q(dtype=dtype)
    else:
        config = FeatureConfig(dtype=dtype, tuning=None if args.estimate_tuning else 0.0,
                               cyclic_tempogram=args.cyclic_tempogram,
                               chroma_n_fft=args.chroma_n_fft)
    summary = prep(args.input, args.out, workers=args.workers, scheduler=args.scheduler,
                   tempo_mode=args.tempo_mode, annotate=args.annotate, config=config,
                   layout="full" if args.full_tempogram else "compact", overwrite=args.overwrite,
                   verify=args.verify, progress=not args.quiet)
    return 0 if summary.done + summary.skipped > 0 or summary.failed == 0 else 1
