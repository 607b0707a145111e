"""The ``mdsim`` command: a thin shell over the library, one call per subcommand.

Nothing here imports TensorFlow or Keras at module level: ``mdsim --help``
and ``mdsim prep`` stay light; only subcommands that run a network load it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mdsim import __version__
from mdsim.errors import MdsimError
from mdsim.model.config import BACKBONES, KEY_HEADS


def _name_list(text: str) -> tuple:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def _pair_shares(text: str) -> dict:
    """``"key=3,tempo=2"`` as ``{"key": 3, "tempo": 2}``."""
    out = {}
    for item in _name_list(text):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected DIM=N, got {item!r} (e.g. key=3)")
        out[name.strip()] = _positive_int(value.strip())
    return out


# -- prep ----------------------------------------------------------------------------------
def _add_prep(sub) -> None:
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
    p.add_argument("--workers", type=_positive_int, default=None,
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
    p.add_argument("--chroma-n-fft", type=_positive_int, metavar="SAMPLES",
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
    p.set_defaults(run=_run_prep)


def _run_prep(args) -> int:
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


# -- inspect -------------------------------------------------------------------------------
def _add_inspect(sub) -> None:
    p = sub.add_parser("inspect", help="list the tracks of a features store",
                       description="Print one line per track of a features store (duration, frames, "
                                   "tempo, key, labels) and the failed inputs with their reasons.")
    p.add_argument("store", help="a features store written by `mdsim prep`")
    p.add_argument("--verify", action="store_true",
                   help="read every feature matrix through its checksums and list damaged tracks (exit 1 if any)")
    p.add_argument("--upgrade", action="store_true",
                   help="convert a version-1 store to the current layout (one copy; no audio needed)")
    p.set_defaults(run=_run_inspect)


def _run_inspect(args) -> int:
    from mdsim.features.store import FeatureStore, upgrade_store
    from mdsim.labels import TAG_DIMENSIONS

    if args.upgrade:
        upgrade_store(args.store, log=sys.stdout)
    with FeatureStore(args.store) as store:
        print(f"{args.store}: {len(store)} tracks, {len(store.failures())} failed, "
              f"{store.n_shards()} shards, {store.layout} layout")
        print(f"{'track':<28} {'seconds':>8} {'frames':>7} {'tempo':>7}  {'key':<9} labels")
        for tid in store.track_ids():
            a = store.attrs(tid)
            tags = "; ".join(f"{d}={a[d]}" for d in TAG_DIMENSIONS if a.get(d))
            flag = " (shorter than 3 s)" if a.get("too_short") else ""
            print(f"{tid:<28} {a['duration']:>8.1f} {a['n_frames']:>7d} {a['tempo']:>7.1f}  "
                  f"{a['key'] or '-':<9} {tags}{flag}")
        for tid, path, reason in store.failures():
            print(f"FAILED {tid}: {reason}")
        if args.verify:
            from tqdm import tqdm

            bad = store.verify(progress=lambda ids: tqdm(ids, desc="verify", unit="track", file=sys.stderr))
            for tid, reason in bad:
                print(f"DAMAGED {tid}: {reason}")
            print(f"verify: {len(bad)} of {len(store)} tracks damaged")
            return 1 if bad else 0
    return 0


# -- train -------------------------------------------------------------------------------
def _add_train(sub) -> None:
    p = sub.add_parser(
        "train", help="train the masked subspace model on a features store",
        description="Train a conditional similarity network: one forward pass per batch, a masked "
                    "triplet loss per dimension with semi-hard negatives mined in the batch, averaged "
                    "over dimensions. Settings come from --config (TOML with [model] and [training] "
                    "tables; see experiments/configs/), then from the options below. Checkpoints, a "
                    "CSV log and TensorBoard logs go to --out; Ctrl-C keeps every finished epoch.")
    p.add_argument("store", help="features store written by `mdsim prep`")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="RUN_DIR", help="folder for a new run")
    where.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last finished epoch")
    p.add_argument("--config", metavar="FILE.toml", help="model and training settings")
    p.add_argument("--backbone", choices=BACKBONES,
                   help="network (default multi_input; chroma and rhythm: the CENS or the tempogram branch alone)")
    p.add_argument("--dims", help="comma-separated dimensions, in subspace order "
                                  "(default genre,mood,instrument,era,tempo,key)")
    p.add_argument("--embedding-size", type=_positive_int, help="embedding size, split evenly (default 384)")
    p.add_argument("--width", type=float, help="multiplier of every filter count (default 1.0)")
    p.add_argument("--tempo-axis", choices=("lag", "log"),
                   help="tempogram branch on the lags as they are (default lag, the paper) or on a log "
                        "tempo axis, where a tempo change is a shift (docs/augmentation.md)")
    p.add_argument("--chroma-padding", choices=("zero", "circular"),
                   help="pad CENS from 12 to 16 bins with zeros (default, the paper) or around the chroma "
                        "circle, where a transposition is a shift")
    p.add_argument("--summaries", type=_name_list, metavar="INPUTS",
                   help="comma-separated inputs (cens, tempogram) whose time average also reaches the "
                        "embedding directly, past the trunk's pooling (default none, the paper; "
                        "docs/key_tempo.md)")
    p.add_argument("--key-profiles", type=int, metavar="K",
                   help="K learned pitch-class profiles, correlated with the window's mean chroma at all 12 "
                        "transpositions: with --summaries cens they also feed the CENS summary, and --key-head "
                        "tonic reads its own K (default 0, none; docs/key_tempo.md)")
    p.add_argument("--key-head", choices=KEY_HEADS,
                   help="how the key subspace is made: a slice of the shared dense layer (default dense, the "
                        "paper) or tonic: a tonic posterior from the mean chroma and --key-profiles K, the same "
                        "for every key (transposition-equivariant; docs/key_tempo.md)")
    p.add_argument("--epochs", type=_positive_int, help="epochs in total (default 100)")
    p.add_argument("--steps-per-epoch", type=_positive_int, help="batches per epoch (default: each track once)")
    p.add_argument("--batch-size", type=_positive_int, help="windows per batch (default 64)")
    p.add_argument("--learning-rate", type=float, help="Adam's initial learning rate (default 1e-5)")
    p.add_argument("--fallback", choices=("nearest-farthest", "nearest", "farthest", "none"),
                   help="negative for a pair with no semi-hard one (default nearest-farthest)")
    p.add_argument("--validation-fraction", type=float,
                   help="share of tracks (or groups) held out for validation (default 0.1)")
    p.add_argument("--pad-short", action=argparse.BooleanOptionalAction, default=None,
                   help="train on tracks shorter than one 3 s window, zero-padded as embedding pads "
                        "them (default); --no-pad-short leaves them out")
    p.add_argument("--min-key-probability", type=float, metavar="P",
                   help="do not train on estimated keys (madmom, fast) less sure than P: the track sits out the "
                        "key pairs (default 0: every key; keys from the manifest are always kept)")
    p.add_argument("--pair-shares", type=_pair_shares, metavar="DIM=N,...",
                   help="draw N turns of pairs for DIM where the other dimensions get one, e.g. key=3: about 7 key "
                        "pairs in a batch of 32 of five dimensions instead of 3 (default: the dimensions in turn; "
                        "docs/key_tempo.md)")
    p.add_argument("--workers", type=int, help="loader worker processes (default 0: in process)")
    p.add_argument("--seed", type=int, help="seed of the split, sampler and weights (default 0)")
    p.add_argument("--eager", action="store_true", default=None,
                   help="run steps op by op, without building a graph first: starts in seconds "
                        "instead of minutes, but each step is slower; for runs of a few dozen steps")
    p.add_argument("--mixed-precision", nargs="?", const="auto", metavar="POLICY",
                   choices=("off", "auto", "mixed_float16", "mixed_bfloat16"),
                   help="compute layers in 16 bits (weights and loss stay float32): mixed_float16, "
                        "mixed_bfloat16, or auto (the default when given without a value: float16 on a GPU, "
                        "bfloat16 elsewhere); default off")
    p.add_argument("--devices", type=_positive_int,
                   help="data-parallel devices (JAX or TensorFlow backend); --batch-size is the global batch "
                        "(default 1). Over several processes or machines (JAX: KERAS_DISTRIBUTION_JOB_ADDRESSES, "
                        "_NUM_PROCESSES and _PROCESS_ID set for each), the devices of all of them "
                        "(docs/training.md)")
    p.add_argument("--tracks", metavar="FILE",
                   help="train on these tracks of the store only: one id per line, or a run's split.json "
                        "(its validation tracks); default: every track")
    p.add_argument("--init-from", metavar="MODEL.keras",
                   help="start from the layers of this model that match by name and shape, input statistics "
                        "included (e.g. a `mdsim pretrain` run's best.keras: docs/loev.md); default: random weights")
    aug = p.add_argument_group("augmentation (docs/augmentation.md)")
    aug.add_argument("--augment", choices=("none", "invariance", "label"),
                     help="time-stretch, pitch-shift and EQ training windows; invariance: a window loses the "
                          "labels its transform touches (tempo, key); label: the transform moves them (tempo x "
                          "rate, key + semitones) (default none)")
    aug.add_argument("--stretch-probability", type=float, help="chance of a time-stretch (default 0.5)")
    aug.add_argument("--stretch-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                     help="time-stretch rates, drawn log-uniformly (default 0.8 1.25)")
    aug.add_argument("--pitch-probability", type=float, help="chance of a pitch-shift (default 0.5)")
    aug.add_argument("--pitch-range", type=int, nargs=2, metavar=("LOW", "HIGH"),
                     help="pitch-shift in whole semitones (default -5 6)")
    aug.add_argument("--eq-probability", type=float, help="chance of a random equalisation (default 0.5)")
    aug.add_argument("--eq-gain-db", type=float, help="largest gain of an EQ filter in dB (default 6)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_train)


def _train_configs(args):
    from mdsim.labels import check_dimensions
    from mdsim.model import ModelConfig
    from mdsim.training import TrainConfig, read_run_config

    model, training = (ModelConfig(), TrainConfig()) if not args.config else read_run_config(args.config)
    model_changes = {k: v for k, v in (("backbone", args.backbone), ("embedding_size", args.embedding_size),
                                       ("width", args.width), ("tempo_axis", args.tempo_axis),
                                       ("chroma_padding", args.chroma_padding),
                                       ("summaries", args.summaries),
                                       ("key_profiles", args.key_profiles),
                                       ("key_head", args.key_head)) if v is not None}
    if args.dims:
        model_changes["dimensions"] = check_dimensions(args.dims)
    training_changes = {k: v for k, v in (("epochs", args.epochs), ("steps_per_epoch", args.steps_per_epoch),
                                          ("batch_size", args.batch_size), ("learning_rate", args.learning_rate),
                                          ("fallback", args.fallback), ("workers", args.workers),
                                          ("validation_fraction", args.validation_fraction),
                                          ("seed", args.seed), ("eager", args.eager),
                                          ("pad_short", args.pad_short), ("augment", args.augment),
                                          ("min_key_probability", args.min_key_probability),
                                          ("pair_shares", args.pair_shares),
                                          ("stretch_probability", args.stretch_probability),
                                          ("stretch_range", args.stretch_range),
                                          ("pitch_probability", args.pitch_probability),
                                          ("pitch_range", args.pitch_range),
                                          ("eq_probability", args.eq_probability),
                                          ("eq_gain_db", args.eq_gain_db),
                                          ("mixed_precision", args.mixed_precision),
                                          ("devices", args.devices),
                                          ("init_from", args.init_from and str(Path(args.init_from).resolve())))
                        if v is not None}
    return model.replace(**model_changes), training.replace(**training_changes), training_changes


def _run_train(args) -> int:
    from mdsim.training import train

    model_config, train_config, changes = _train_configs(args)
    if args.resume:
        unsupported = sorted(set(changes) - {"epochs", "eager", "devices"})
        if unsupported or args.config or args.backbone or args.dims or args.embedding_size or args.width \
                or args.tempo_axis or args.chroma_padding or args.summaries or args.key_profiles is not None \
                or args.key_head:
            print("mdsim train: note: --resume keeps the run's own settings; only --epochs, --eager and "
                  "--devices are applied",
                  file=sys.stderr)
        from mdsim.training import read_run_config

        overrides = {k: changes[k] for k in ("epochs", "eager", "devices") if k in changes}
        saved = Path(args.resume) / "config.toml"
        given = read_run_config(saved)[1].replace(**overrides) if overrides and saved.exists() else None
        result = train(args.store, args.resume, train_config=given,
                       resume=True, verbose=0 if args.quiet else 1)
    else:
        result = train(args.store, args.out, model_config=model_config, train_config=train_config,
                       tracks=_read_track_list(args.tracks) if args.tracks else None,
                       verbose=0 if args.quiet else 1)
    watched = "validation" if result.monitor == "val_loss" else "training"
    print(f"train: {result.epochs_done} epochs done, best {watched} loss {result.best_val_loss:.4f}, "
          f"model {result.run_dir / 'best.keras'}")
    return 0


# -- embed -------------------------------------------------------------------------------
def _add_embed(sub) -> None:
    p = sub.add_parser(
        "embed", help="embed audio files, folders, manifests or stores with a trained model",
        description="Embed every track of the inputs: the mean of non-overlapping 3 s segment "
                    "embeddings per track (or every segment with --segments). Writes an embeddings "
                    "file (HDF5, layout in docs/evaluation.md) that `mdsim evaluate --embeddings` and "
                    "h5py read. Re-running skips tracks the output already holds; failures are "
                    "reported and skipped.")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="audio files, folders, manifest CSVs or features stores (.h5 from `mdsim prep`)")
    p.add_argument("--model", required=True, help="a trained model (.keras), e.g. RUN_DIR/best.keras")
    p.add_argument("--out", required=True, help="embeddings file to write (.h5)")
    p.add_argument("--dims", help="comma-separated subspaces to keep (default: all)")
    p.add_argument("--segments", action="store_true", help="also keep every 3 s segment's embedding")
    p.add_argument("--batch-size", type=_positive_int, default=64, help="segments per network call (default 64)")
    p.add_argument("--checkpoint-seconds", type=float, default=60.0,
                   help="write the tracks embedded so far at least this often (default 60)")
    p.add_argument("--checkpoint-tracks", type=_positive_int, default=1000,
                   help="... or whenever this many new tracks wait, whichever comes first (default 1000)")
    p.add_argument("--overwrite", action="store_true",
                   help="start the output over (it is otherwise resumed, and refused if another model wrote it)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(run=_run_embed)


def _run_embed(args) -> int:
    import mdsim
    from mdsim.embed import embed_to_file

    model = mdsim.load_model(args.model)
    summary = embed_to_file(args.inputs, model, args.out, dims=args.dims, segments=args.segments,
                            batch_size=args.batch_size, checkpoint_seconds=args.checkpoint_seconds,
                            checkpoint_tracks=args.checkpoint_tracks, overwrite=args.overwrite,
                            progress=not args.quiet)
    return 0 if summary.done + summary.skipped > 0 or not summary.failed else 1


# -- triplets ----------------------------------------------------------------------------
def _add_triplets(sub) -> None:
    p = sub.add_parser(
        "triplets", help="generate evaluation triplets of one dimension from labels",
        description="Draw triplets (anchor, a positive similar to it in one dimension, a negative that "
                    "is not) from the labels of a manifest or a features store, by the similarity rules "
                    "of docs/method.md, and write them in the Dim-sim CSV format. Each clip starts at "
                    "a random time (seeded) at which a whole 3 s clip fits in its track (0 for a track "
                    "shorter than 3 s), so `mdsim evaluate --mode clip` scores clips from all over "
                    "the tracks; durations come from the store, or from the audio files of a manifest.")
    p.add_argument("source", help="a manifest CSV or a features store (.h5)")
    p.add_argument("--dimension", required=True, choices=("genre", "mood", "instrument", "era", "tempo", "key"),
                   help="the dimension whose similarity rule picks positives and negatives")
    p.add_argument("--out", required=True, help="CSV file to write")
    p.add_argument("--n", type=_positive_int, default=1000, help="number of triplets (default 1000)")
    p.add_argument("--tracks", metavar="FILE",
                   help="only these tracks: a text file of track ids, or a run's split.json "
                        "(its validation tracks)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(run=_run_triplets)


def _labels_of(source, track_ids=None):
    """``({track_id: labels}, {track_id: seconds})`` of a manifest or a store; durations
    only of ``track_ids`` (default all), since a manifest's are read from the audio."""
    from pathlib import Path

    from mdsim.audio import audio_duration
    from mdsim.features.store import FeatureStore
    from mdsim.manifest import read_manifest

    path = Path(source)
    if path.suffix.lower() == ".csv":
        entries = read_manifest(path)
        wanted = set(track_ids) if track_ids is not None else None
        return ({e.track_id: e.labels for e in entries},
                {e.track_id: audio_duration(e.path) for e in entries if wanted is None or e.track_id in wanted})
    with FeatureStore(path) as store:
        ids = store.track_ids()
        return ({t: store.labels(t) for t in ids}, {t: store.attrs(t)["duration"] for t in ids})


def _read_track_list(path):
    import json
    from pathlib import Path

    text = Path(path).read_text()
    if str(path).endswith(".json"):
        return json.loads(text)["validation"]
    return [line.strip() for line in text.splitlines() if line.strip()]


def _run_triplets(args) -> int:
    from mdsim.evaluation import generate_triplets, write_triplets

    tracks = _read_track_list(args.tracks) if args.tracks else None
    labels, durations = _labels_of(args.source, tracks)
    table = generate_triplets(labels, args.dimension, args.n, seed=args.seed, track_ids=tracks,
                              durations=durations)
    write_triplets(args.out, table)
    print(f"triplets: wrote {args.n} {args.dimension} triplets to {args.out}")
    return 0


# -- evaluate ----------------------------------------------------------------------------
def _add_evaluate(sub) -> None:
    p = sub.add_parser(
        "evaluate", help="triplet score per subspace combination, table and radar chart",
        description="Score human or generated similarity triplets (Dim-sim CSV format): the fraction "
                    "with d(anchor, positive) < d(anchor, negative), for the full embedding and every "
                    "combination of subspaces, with bootstrap 95 % intervals. Writes "
                    "evaluation.json, evaluation.md and evaluation_radar.png to --out. Give several "
                    "--model or --embeddings to compare them side by side.")
    p.add_argument("--triplets", required=True, help="triplets CSV (Dim-sim raw or clean format)")
    p.add_argument("--model", action="append", default=[], help="a trained model (.keras); repeatable")
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
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args) -> int:
    from mdsim.errors import InputError
    from mdsim.evaluation import evaluate, format_score, load_triplets, read_embeddings, write_report

    for path in args.compare:  # a .keras file is a model, anything else an embeddings file
        (args.model if str(path).endswith(".keras") else args.embeddings).append(path)
    if not args.model and not args.embeddings:
        raise InputError("give at least one --model (with --store) or --embeddings file")
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
        import mdsim
        from mdsim.embed import store_clip_embeddings, store_embedding_set

        for path in args.model:
            name = names.pop(0) if names else path
            model = mdsim.load_model(path)
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


# -- index and search -----------------------------------------------------------------
def _add_index(sub) -> None:
    p = sub.add_parser(
        "index", help="build a search catalog from embeddings or a features store",
        description="Build a catalog for query by example: each subspace of every track's embedding "
                    "L2-normalised, in a FAISS inner-product index that answers any weighting of the "
                    "subspaces, with each track's labels, tempo, key, group and source path. "
                    "Writes a folder (docs/search.md).")
    p.add_argument("source", nargs="?", help="an embeddings file from `mdsim embed`, or a features store "
                                             "from `mdsim prep` (then --model embeds its tracks); not "
                                             "needed with --remove alone")
    p.add_argument("--out", required=True, help="catalog folder to write (replaced when it exists)")
    p.add_argument("--model", help="the model (.keras) that embeds a features store's tracks, and "
                                   "later any query audio")
    p.add_argument("--info", help="features store or manifest CSV with the tracks' labels, group and "
                                  "audio path (default: the source itself when it is a store)")
    p.add_argument("--index", choices=("flat", "hnsw"), default="flat",
                   help="flat: exact search (default); hnsw: approximate graph search for large catalogs")
    p.add_argument("--hnsw-m", type=_positive_int, default=32, help="HNSW graph degree (default 32)")
    p.add_argument("--ef-construction", type=_positive_int, default=80,
                   help="HNSW candidates while building (default 80)")
    p.add_argument("--ef-search", type=_positive_int, default=128,
                   help="HNSW candidates while searching: recall against speed (default 128: "
                        "recall@10 0.97 at 10^6 items, docs/search.md)")
    p.add_argument("--add", action="store_true",
                   help="add the source's tracks that the catalog at --out lacks, keeping the others "
                        "(no rebuild for a flat index; a store is embedded for the new tracks only)")
    p.add_argument("--remove", nargs="+", metavar="TRACK_ID", default=[],
                   help="remove these tracks from the catalog at --out (with or without --add)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_index)


def _run_index(args) -> int:
    from mdsim.search import build_catalog
    from mdsim.search.index import IndexSpec

    from mdsim.errors import InputError

    if args.source is None and (args.add or not args.remove):
        raise InputError("give the SOURCE to index: an embeddings file or a features store")
    if args.add or args.remove:
        from mdsim.search import update_catalog

        added, catalog = update_catalog(args.out, args.source if args.add else None, remove=args.remove,
                                        model=args.model, info=args.info, progress=not args.quiet)
        print(f"index: added {len(added)}, removed {len(set(args.remove))}; {args.out} holds {len(catalog)} tracks")
        return 0
    spec = IndexSpec(kind=args.index, hnsw_m=args.hnsw_m, ef_construction=args.ef_construction,
                     ef_search=args.ef_search)
    catalog = build_catalog(args.source, model=args.model, info=args.info, index=spec,
                            progress=not args.quiet)
    if args.model:
        catalog.metadata["model"] = str(args.model)
    catalog.save(args.out)
    print(f"index: {len(catalog)} tracks, {args.index} index over {', '.join(catalog.dimensions)}; "
          f"wrote {args.out}")
    return 0


def _add_search(sub) -> None:
    p = sub.add_parser(
        "search", help="the tracks of a catalog most like a query, per chosen dimensions",
        description="Query by example: rank a catalog's tracks by the weighted mean of per-subspace "
                    "cosine similarities to the query (a track of the catalog, or an audio file "
                    "embedded on the fly with the catalog's model).")
    p.add_argument("catalog", help="a catalog folder from `mdsim index`")
    p.add_argument("--query", required=True, nargs="+",
                   help="a track id of the catalog, or an audio file; several track ids: their mean "
                        "(each left out of the results)")
    p.add_argument("--dims", help="weights per subspace, e.g. mood=1,tempo=0.5, or names for equal "
                                  "weights (default: all subspaces, equal weights)")
    p.add_argument("-k", type=_positive_int, default=10, help="results (default 10)")
    p.add_argument("--model", help="model for an audio query (default: the one the catalog names)")
    _add_filter_options(p)
    p.add_argument("--min-score", type=float, help="drop results below this score (-1 to 1)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(run=_run_search)


def _run_search(args) -> int:
    import json

    from mdsim.search import Catalog
    from mdsim.search.query import format_table, parse_weights, resolve_queries

    catalog = Catalog.load(args.catalog)
    hits = catalog.search(resolve_queries(catalog, args.query, model=args.model),
                          weights=parse_weights(args.dims), k=args.k,
                          filters=_filters_of(args, min_score=args.min_score))
    if args.json:
        query = args.query[0] if len(args.query) == 1 else args.query
        print(json.dumps({"query": query, "weights": parse_weights(args.dims),
                          "results": [h.to_dict() for h in hits]}, indent=2))
    else:
        print(format_table(hits, catalog.dimensions) if hits else "search: no track passes the filters")
    return 0


# -- playlist (and the filter options it shares with search) ------------------------------
def _add_filter_options(p) -> None:
    p.add_argument("--exclude-group", action="store_true",
                   help="leave out tracks of the query's group (e.g. its artist)")
    p.add_argument("--tempo", metavar="LOW:HIGH", help="keep tracks with a tempo in this BPM range")
    p.add_argument("--tempo-tolerance", type=float, metavar="PERCENT",
                   help="keep tracks within this many percent of the query's tempo, or of half or "
                        "double it")
    p.add_argument("--key", help="keep tracks in this key, e.g. 'A minor'")
    p.add_argument("--key-compatible", action="store_true",
                   help="keep tracks in the query's key (or --key) or its parallel key")
    p.add_argument("--harmonic", action="store_true",
                   help="keep tracks whose key mixes with the query's (or --key) by the Camelot wheel: "
                        "the key, its relative major/minor, a fifth up or down")
    p.add_argument("--max-per-group", type=_positive_int, metavar="N",
                   help="at most N tracks of one group (e.g. artist)")
    p.add_argument("--dedupe", type=float, metavar="COSINE",
                   help="drop tracks whose mean cosine over all subspaces to a track ranked before "
                        "is at least this, e.g. 0.95 (other versions of one recording)")


def _filters_of(args, *, min_score=None):
    from mdsim.search import Filters
    from mdsim.search.query import parse_range

    return Filters(exclude_group=args.exclude_group, tempo_range=parse_range(args.tempo),
                   tempo_tolerance=args.tempo_tolerance, key=args.key, key_compatible=args.key_compatible,
                   harmonic=args.harmonic, max_per_group=args.max_per_group, dedupe=args.dedupe, min_score=min_score)


def _add_playlist(sub) -> None:
    p = sub.add_parser(
        "playlist", help="a playlist from seed tracks, or a walk from one track to another",
        description="Continue from seed tracks (--seed: each next track the nearest unused one to the "
                    "track before), or walk from --from to --to (each step the nearest unused track to "
                    "a point on the way between them), under the chosen subspace weights and filters. "
                    "Writes M3U8 (paths relative to the playlist's folder) and JSON (docs/search.md).")
    p.add_argument("catalog", help="a catalog folder from `mdsim index`")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--seed", nargs="+", metavar="TRACK_ID", help="continue from these catalog tracks")
    mode.add_argument("--from", dest="start", metavar="TRACK_ID", help="walk from this track (with --to)")
    p.add_argument("--to", dest="end", metavar="TRACK_ID", help="the track a walk ends at")
    p.add_argument("-n", type=_positive_int, default=20,
                   help="tracks to add (after the seeds, or between --from and --to; default 20)")
    p.add_argument("--dims", help="weights per subspace, e.g. mood=1,tempo=0.5 (default: all, equal)")
    _add_filter_options(p)
    p.add_argument("--out", nargs="+", default=[], metavar="FILE",
                   help="files to write, by suffix: .m3u8 or .m3u (extended M3U), .json")
    p.set_defaults(run=_run_playlist)


def _run_playlist(args) -> int:
    from mdsim.errors import InputError
    from mdsim.search import Catalog, continue_from, walk
    from mdsim.search.playlist import write_json, write_m3u8
    from mdsim.search.query import format_playlist, parse_weights

    writers = {".m3u8": write_m3u8, ".m3u": write_m3u8, ".json": write_json}
    bad = [f for f in args.out if Path(f).suffix.lower() not in writers]
    if bad:
        raise InputError(f"cannot tell the format of {bad[0]}: name it .m3u8 or .json")
    if (args.start is None) != (args.end is None):
        raise InputError("a walk needs both --from and --to (--seed continues from tracks instead)")
    catalog = Catalog.load(args.catalog)
    weights, filters = parse_weights(args.dims), _filters_of(args)
    if args.seed:
        playlist = continue_from(catalog, args.seed, n=args.n, weights=weights, filters=filters)
    else:
        playlist = walk(catalog, args.start, args.end, n=args.n, weights=weights, filters=filters)
    print(format_playlist(playlist))
    for f in args.out:
        writers[Path(f).suffix.lower()](f, playlist)
        print(f"playlist: wrote {f}")
    return 0


def _add_serve(sub) -> None:
    p = sub.add_parser(
        "serve", help="a local page to browse a catalog, listen and search by example",
        description="Serve the browse page of a catalog: a 2-D map of the tracks coloured by a label, "
                    "hover for labels, click to play, one slider per dimension to steer the search, "
                    "query by a catalog track or an uploaded file. Only audio files of the catalog "
                    "under --audio-root are served.")
    p.add_argument("catalog", help="a catalog folder from `mdsim index`")
    p.add_argument("--audio-root", required=True, action="append",
                   help="folder holding the catalog's audio (repeatable); files outside these folders "
                        "are never served")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; another address "
                        "lets others on the network browse and play the catalog, with a warning)")
    p.add_argument("--port", type=_positive_int, default=8000, help="port (default 8000)")
    p.add_argument("--model", help="model to embed uploaded queries (default: the one the catalog names)")
    p.set_defaults(run=_run_serve)


def _run_serve(args) -> int:
    from mdsim.serve import serve

    serve(args.catalog, audio_root=args.audio_root, host=args.host, port=args.port, model=args.model)
    return 0


# -- analyze -----------------------------------------------------------------------------
def _add_analyze(sub) -> None:
    p = sub.add_parser(
        "analyze", help="what an embedding is organised by: neighbourhood locality, sensitivity to manipulation",
        description="Analyses of a trained embedding (docs/augmentation.md): `locality` reads an embeddings "
                    "file and labels; `sensitivity` embeds audio and manipulated versions of it.")
    group = p.add_subparsers(dest="analysis", metavar="ANALYSIS")
    group.required = True
    q = group.add_parser(
        "locality", help="how alike in tempo, key and tags each item's nearest neighbours are, per subspace",
        description="For every track its k nearest neighbours (cosine) in each subspace and the full "
                    "embedding: tempo locality (RMS octave-folded tempo difference, %%), same-key and "
                    "same-tonic precision@k, tag precision@k for genre, mood, instrument and era, each "
                    "against k random neighbours. Prints a table; --out also writes locality.md, "
                    "locality.json and locality.png (a heat map of the lift over random).")
    q.add_argument("embeddings", help="embeddings file from `mdsim embed` (track mode)")
    q.add_argument("--labels", required=True, metavar="STORE_OR_MANIFEST",
                   help="features store or manifest CSV with the tracks' labels")
    q.add_argument("--k", type=_positive_int, default=10, help="neighbours per track (default 10)")
    q.add_argument("--seed", type=int, default=0, help="seed of the random-neighbour baseline (default 0)")
    q.add_argument("--out", metavar="DIR", help="folder for the table, JSON and heat map")
    q.set_defaults(run=_run_locality)
    q = group.add_parser(
        "sensitivity", help="distance of each subspace to the original against pitch shift, stretch and EQ",
        description="Embed each track and versions of it pitch-shifted, time-stretched and equalised on "
                    "the audio (librosa, scipy); per subspace the cosine distance to the original against "
                    "the amount (curves), and a subspace x manipulation matrix: the mean distance divided "
                    "by the mean distance between different tracks. Prints the matrix; --out also writes "
                    "sensitivity.md, sensitivity.json and sensitivity.png.")
    q.add_argument("audio", nargs="+", help="audio files (two or more for the normalised matrix)")
    q.add_argument("--model", required=True, help="trained model (.keras)")
    q.add_argument("--pitch", type=int, nargs="+", metavar="SEMITONES",
                   help="pitch shifts (default -6 .. 6)")
    q.add_argument("--stretch", type=float, nargs="+", metavar="RATE",
                   help="time-stretch rates, > 1 faster (default 0.7 0.8 .. 1.4)")
    q.add_argument("--eq", type=float, nargs="+", metavar="DB", help="EQ gains in dB (default 0 3 6 9 12)")
    q.add_argument("--out", metavar="DIR", help="folder for the table, JSON and curves")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(run=_run_sensitivity)


def _write_analysis(out, name: str, result: dict, text: str, draw) -> None:
    import json
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(text)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    draw(result, out / f"{name}.png")
    print(f"wrote {out / (name + '.md')}, {out / (name + '.json')}, {out / (name + '.png')}")


def _run_locality(args) -> int:
    from mdsim.analysis.locality import heatmap, locality, markdown
    from mdsim.evaluation import read_embeddings
    from mdsim.search.build import info_from

    result = locality(read_embeddings(args.embeddings), info_from(args.labels)[0], k=args.k, seed=args.seed)
    text = markdown(result)
    print(text, end="")
    if args.out:
        _write_analysis(args.out, "locality", result, text, heatmap)
    return 0


def _run_sensitivity(args) -> int:
    import mdsim
    from mdsim.analysis.sensitivity import DEFAULT_AMOUNTS, markdown, plot, sensitivity

    amounts = {k: tuple(v if v is not None else DEFAULT_AMOUNTS[k])
               for k, v in (("pitch", args.pitch), ("stretch", args.stretch), ("eq", args.eq))}
    result = sensitivity(mdsim.load_model(args.model), args.audio, amounts=amounts, progress=not args.quiet)
    text = markdown(result)
    print(text, end="")
    if args.out:
        _write_analysis(args.out, "sensitivity", result, text, plot)
    return 0


# -- pretrain -----------------------------------------------------------------------------
def _add_pretrain(sub) -> None:
    p = sub.add_parser(
        "pretrain", help="self-supervised subspaces (LOEV, LOEV++, SimCLR) on unlabelled audio",
        description="Contrastive pretraining without labels (docs/loev.md): every step embeds two "
                    "augmented views of each track, and one more per variant augmentation; an invariant "
                    "subspace learns what survives every augmentation, a variant subspace (pitch, tempo, eq) "
                    "what changes with its own. The run folder is like `mdsim train`'s; its best.keras "
                    "embeds with `mdsim embed` / mdsim.load_model (subspaces invariant, pitch, tempo, ...) and "
                    "starts a CSN with `mdsim train --init-from RUN/best.keras`. Ctrl-C keeps every "
                    "finished epoch; --resume continues.")
    p.add_argument("source", help="a features store, a folder of audio or a manifest CSV (a folder or manifest "
                                  "is prepped into RUN_DIR/features.h5 first, without annotation)")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="RUN_DIR", help="folder for a new run")
    where.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last finished epoch")
    p.add_argument("--objective", choices=("loev++", "loev", "simclr"),
                   help="loev++: a latent branch per variant subspace (default); loev: variant subspaces "
                        "projected from one superspace; simclr: the invariant subspace alone")
    p.add_argument("--variants", help="comma-separated augmentations with a variant subspace: pitch, tempo, eq "
                                      "(default pitch,tempo)")
    p.add_argument("--temperature", type=float, help="NT-Xent temperature (default 0.1)")
    p.add_argument("--invariant-weight", type=float, help="weight of the invariant subspace's loss (default 1)")
    p.add_argument("--variant-weight", type=float, help="weight of each variant subspace's loss (default 1)")
    p.add_argument("--variant-negatives", choices=("all", "track"),
                   help="a variant subspace's negatives: every view of the batch and the track's views that differ "
                        "in its augmentation (all, default), or those alone (track)")
    p.add_argument("--backbone", choices=BACKBONES,
                   help="network (default multi_input; chroma and rhythm: the CENS or the tempogram branch alone)")
    p.add_argument("--embedding-size", type=_positive_int,
                   help="size of the output, split evenly over the subspaces, and of the superspace (default 384)")
    p.add_argument("--width", type=float, help="multiplier of every filter count (default 1.0)")
    p.add_argument("--tempo-axis", choices=("lag", "log"), help="as for `mdsim train` (default lag)")
    p.add_argument("--chroma-padding", choices=("zero", "circular"), help="as for `mdsim train` (default zero)")
    p.add_argument("--summaries", type=_name_list, metavar="INPUTS",
                   help="as for `mdsim train`: inputs (cens, tempogram) whose time average also reaches every "
                        "subspace's representation (default none; docs/loev.md)")
    p.add_argument("--key-profiles", type=int, metavar="K",
                   help="as for `mdsim train`: with --summaries cens, K learned pitch-class profiles (default 0)")
    p.add_argument("--epochs", type=_positive_int, help="epochs in total (default 50)")
    p.add_argument("--steps-per-epoch", type=_positive_int, help="steps per epoch (default: each track once)")
    p.add_argument("--batch-size", type=_positive_int, help="tracks per step, each seen as 2 + K views (default 32)")
    p.add_argument("--learning-rate", type=float, help="Adam's initial learning rate (default 1e-4)")
    p.add_argument("--validation-fraction", type=float, help="share of tracks held out for the validation "
                                                              "loss that picks best.keras (default 0.1)")
    p.add_argument("--workers", type=int, help="loader worker processes (default 0: in process)")
    p.add_argument("--prep-workers", type=int, help="worker processes of the prep of a folder or manifest "
                                                    "(default: the machine's cores)")
    p.add_argument("--seed", type=int, help="seed of the split, the views and the weights (default 0)")
    p.add_argument("--eager", action="store_true", default=None,
                   help="run steps op by op (starts in seconds; for runs of a few dozen steps)")
    aug = p.add_argument_group("augmentation (a variant augmentation is applied to every view)")
    aug.add_argument("--stretch-probability", type=float, help="chance of a time-stretch (default 0.5)")
    aug.add_argument("--stretch-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                     help="time-stretch rates, drawn log-uniformly (default 0.8 1.25)")
    aug.add_argument("--min-stretch-ratio", type=float,
                     help="the two rates of a tempo-variant pair differ by at least this factor (default 1.08)")
    aug.add_argument("--pitch-probability", type=float, help="chance of a pitch-shift (default 0.5)")
    aug.add_argument("--pitch-range", type=int, nargs=2, metavar=("LOW", "HIGH"),
                     help="pitch-shift in whole semitones (default -5 6)")
    aug.add_argument("--pitch-octaves", action=argparse.BooleanOptionalAction, default=None,
                     help="views of a pitch variant also move by random whole octaves, so the pitch subspace sees "
                          "the pitch class, not the register (default on)")
    aug.add_argument("--eq-probability", type=float, help="chance of a random equalisation (default 0.5)")
    aug.add_argument("--eq-gain-db", type=float, help="largest gain of an EQ filter in dB (default 6)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=_run_pretrain)


def _run_pretrain(args) -> int:
    from mdsim.training.pretrain import PretrainConfig, pretrain, pretrain_model_config, read_pretrain_config

    names = ("objective", "temperature", "invariant_weight", "variant_weight", "variant_negatives", "epochs", "steps_per_epoch",
             "batch_size", "learning_rate", "validation_fraction", "workers", "seed", "eager",
             "stretch_probability", "stretch_range", "min_stretch_ratio", "pitch_probability", "pitch_range", "pitch_octaves",
             "eq_probability", "eq_gain_db")
    changes = {n: getattr(args, n) for n in names if getattr(args, n) is not None}
    if args.variants is not None:
        changes["variants"] = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    model_names = ("backbone", "embedding_size", "width", "tempo_axis", "chroma_padding", "summaries",
                   "key_profiles")
    model_changes = {n: getattr(args, n) for n in model_names if getattr(args, n) is not None}
    verbose = 0 if args.quiet else 1
    if args.resume:
        ignored = sorted((set(changes) - {"epochs", "eager", "workers"}) | set(model_changes))
        if ignored:
            print(f"mdsim pretrain: note: --resume keeps the run's own settings; {', '.join(ignored)} "
                  "not applied (only --epochs, --eager and --workers are)", file=sys.stderr)
        saved = Path(args.resume) / "pretrain.toml"
        given = None
        if saved.exists():
            keep = {k: changes[k] for k in ("epochs", "eager", "workers") if k in changes}
            given = read_pretrain_config(saved)[1].replace(**keep)
        result = pretrain(args.source, args.resume, config=given, resume=True, prep_workers=args.prep_workers,
                          verbose=verbose)
    else:
        config = PretrainConfig(**changes)
        model_config = pretrain_model_config(config, **model_changes)
        result = pretrain(args.source, args.out, model_config=model_config, config=config,
                          prep_workers=args.prep_workers, verbose=verbose)
    print(f"pretrain: {result.epochs_done} epochs done, best validation loss {result.best_val_loss:.4f}, "
          f"model {result.run_dir / 'best.keras'} (subspaces {', '.join(result.subspaces)})")
    return 0


# -- manifold -----------------------------------------------------------------------------
def _add_manifold(sub) -> None:
    p = sub.add_parser(
        "manifold", help="a 3-D map of a sound library (Humphrey's deep manifold)",
        description="Learn a 3-D embedding of short instrument notes from neighbourhood relations "
                    "(instrument, pitch, both, both within 2 semitones, or nearest neighbours in the "
                    "input), score it against PCA and t-SNE maps, and draw it. The manifold backbone reads "
                    "a constant-Q store (`mdsim prep MANIFEST --out STORE --features cqt --annotate none` "
                    "on a manifest with instrument and pitch columns), the Inception backbones (baseline, "
                    "multi_input) an STFT store of the same manifest (`mdsim prep MANIFEST --out STORE "
                    "--annotate none`) (docs/manifold.md).")
    group = p.add_subparsers(dest="manifold_command", metavar="ACTION")
    group.required = True

    t = group.add_parser("train", help="train a manifold network with the ternary loss",
                         description="Train a manifold network on the training notes of a store: the five-layer "
                                     "manifold backbone on a constant-Q store, or an Inception backbone with a "
                                     "3-D head on an STFT store; a quarter of the notes is held out for evaluate.")
    t.add_argument("store", help="features store: constant-Q (`mdsim prep ... --features cqt`) for the manifold "
                                 "backbone, STFT (`mdsim prep ...`) for baseline and multi_input")
    t.add_argument("--out", required=True, metavar="RUN_DIR", help="folder for the new run")
    from mdsim.training.neighbourhoods import NEIGHBOURHOODS

    t.add_argument("--neighbourhood", choices=tuple(NEIGHBOURHOODS), default="instrument",
                   help="who counts as a neighbour: same instrument (default), same pitch, both, "
                        "same instrument within 2 semitones (instrument+pitch2), or the 5 nearest notes "
                        "in the input space (knn)")
    t.add_argument("--steps", type=_positive_int, default=2000, help="optimiser steps (default 2000)")
    t.add_argument("--batch-size", type=_positive_int, default=32, help="triples per step (default 32, the paper's)")
    t.add_argument("--learning-rate", type=float, default=1e-3, help="Adam step size (default 1e-3)")
    t.add_argument("--positive-margin", type=float, default=0.0,
                   help="m_p: squared distance a neighbour may keep for free (default 0)")
    t.add_argument("--negative-margin", type=float, default=1.0,
                   help="m_n: distance a non-neighbour must reach (default 1)")
    from mdsim.model.manifold import DEFAULT_WIDTH, MANIFOLD_BACKBONES

    t.add_argument("--backbone", choices=MANIFOLD_BACKBONES, default="manifold",
                   help="manifold (default: Humphrey's five layers, 8 constant-Q frames); baseline (mel) or "
                        "multi_input (mel, CENS, tempogram): the Inception backbones with a 3-D head, one 3 s "
                        "window per note")
    t.add_argument("--width", type=float, default=None,
                   help=f"filter multiplier of the Inception backbones (default {DEFAULT_WIDTH})")
    t.add_argument("--output-dim", type=_positive_int, default=3, help="embedding size (default 3)")
    t.add_argument("--window", type=_positive_int, default=None,
                   help="frames per input window (default: 8 = 0.4 s at 20 frames/s for manifold; the "
                        "store's 3 s segment, 259 frames, for the Inception backbones)")
    t.add_argument("--held-out", type=float, default=0.25, help="fraction of notes kept out (default 0.25)")
    t.add_argument("--seed", type=int, default=0, help="seed of the split, weights and sampling (default 0)")
    t.set_defaults(run=_run_manifold_train)

    e = group.add_parser("evaluate", help="k-NN, precision@k and analogies against PCA and t-SNE",
                         description="Score the run's 3-D map of its held-out notes: k-NN classification of "
                                     "instrument and pitch, precision@k, octave analogies (b - a + c), next "
                                     "to PCA-3D and t-SNE-3D of the notes' mean input frames (constant-Q, or "
                                     "mel, CENS and tempogram concatenated). Writes a Markdown table and a "
                                     "JSON file beside it.")
    e.add_argument("runs", nargs="+", metavar="RUN_DIR", help="one or more manifold runs (one table)")
    e.add_argument("--out", required=True, metavar="REPORT.md", help="the Markdown report (JSON beside it)")
    e.add_argument("--store", help="store of the runs' kind, constant-Q or STFT (default: the one each run was "
                                   "trained on)")
    e.add_argument("--k", type=_positive_int, default=5, help="neighbours of the k-NN classifier (default 5)")
    e.add_argument("--precision-k", type=_positive_int, default=10, help="depth of ranked retrieval (default 10)")
    e.set_defaults(run=_run_manifold_evaluate)

    m = group.add_parser("map", help="a static 3-D figure of every note",
                         description="Draw every note of the store in the run's 3-D map (PNG).")
    m.add_argument("run_dir", metavar="RUN_DIR", help="a manifold run")
    m.add_argument("--out", required=True, metavar="FIG.png", help="the figure")
    m.add_argument("--colour", choices=("instrument", "pitch"), default="instrument",
                   help="colour the notes by instrument (default) or pitch")
    m.add_argument("--store", help="store of the run's kind (default: the run's)")
    m.set_defaults(run=_run_manifold_map)

    j = group.add_parser("trajectory", help="one note's path through the map, frame by frame",
                         description="Embed every window of an audio file (a sustained note) and draw its "
                                     "path through the map over the library's notes (the paper's ADSR figure). "
                                     "Manifold-backbone runs only: an Inception run's 3 s window holds a whole note.")
    j.add_argument("run_dir", metavar="RUN_DIR", help="a manifold run")
    j.add_argument("audio", help="an audio file (any rate; analysed at the run's 16 kHz)")
    j.add_argument("--out", required=True, metavar="FIG.png", help="the figure")
    j.set_defaults(run=_run_manifold_trajectory)

    v = group.add_parser("serve", help="a local page showing the library in 3-D",
                         description="Serve a page with every note of the run's store in its 3-D map: drag to "
                                     "rotate, wheel to zoom, colour by instrument or pitch, click a note to "
                                     "play it. Only files under --audio-root are served.")
    v.add_argument("run_dir", metavar="RUN_DIR", help="a manifold run")
    v.add_argument("--audio-root", required=True, action="append",
                   help="folder holding the notes' audio (repeatable); files outside it are never served")
    v.add_argument("--store", help="store of the run's kind (default: the run's)")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=_positive_int, default=8000, help="port (default 8000)")
    v.set_defaults(run=_run_manifold_serve)


def _run_manifold_train(args) -> int:
    from mdsim.model.manifold import ManifoldConfig
    from mdsim.training.manifold import train_manifold

    run = train_manifold(args.store, args.out, neighbourhood=args.neighbourhood, steps=args.steps,
                         batch_size=args.batch_size, learning_rate=args.learning_rate,
                         positive_margin=args.positive_margin, negative_margin=args.negative_margin,
                         held_out=args.held_out, seed=args.seed,
                         config=ManifoldConfig(backbone=args.backbone, output_dim=args.output_dim,
                                               n_frames=args.window, width=args.width))
    print(f"manifold train: {run.run_dir}: {run.steps} steps in {run.seconds:.0f} s, final loss {run.final_loss:.4f}")
    return 0


def _run_manifold_evaluate(args) -> int:
    from mdsim.manifold import evaluate_manifold, report_rows, write_report

    results = [evaluate_manifold(r, args.store, k=args.k, precision_k=args.precision_k) for r in args.runs]
    write_report(results, args.out)
    print(report_rows(results), end="")
    return 0


def _run_manifold_map(args) -> int:
    import numpy as np

    from mdsim.evaluation.manifold_figures import plot_map
    from mdsim.manifold import load_manifold

    model = load_manifold(args.run_dir)
    notes = model.notes(args.store)
    labels = np.array(notes.instrument, dtype=object) if args.colour == "instrument" else notes.pitch
    plot_map(model.embed_notes(notes.frames), labels, args.out, colour_by=args.colour,
             title=f"neighbourhood {model.settings['neighbourhood']}: {len(notes)} notes by {args.colour}")
    print(args.out)
    return 0


def _run_manifold_trajectory(args) -> int:
    from pathlib import Path

    from mdsim.evaluation.manifold_figures import plot_trajectory
    from mdsim.manifold import load_manifold

    model = load_manifold(args.run_dir)
    path = model.embed_audio(args.audio)  # first: an Inception run refuses before the library is read
    cfg = model.feature_config
    plot_trajectory(path, args.out, context=model.embed_notes(model.notes().frames),
                    frame_rate=cfg.sample_rate / cfg.hop_length,
                    title=f"{Path(args.audio).name} through the {model.settings['neighbourhood']} map")
    print(args.out)
    return 0


def _run_manifold_serve(args) -> int:
    from mdsim.manifold import manifold_points
    from mdsim.serve import serve_manifold

    serve_manifold(manifold_points(args.run_dir, args.store), audio_root=args.audio_root, host=args.host,
                   port=args.port)
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
    for add in (_add_prep, _add_inspect, _add_train, _add_pretrain, _add_embed, _add_triplets, _add_evaluate,
                _add_index, _add_search, _add_playlist, _add_serve, _add_analyze, _add_manifold):
        add(sub)
    return parser


def help_markdown() -> str:
    """The CLI reference (docs/cli.md): every subcommand's ``--help``, at 100 columns."""
    import os

    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"
    try:
        parser = build_parser()
        out = ["# Command-line reference", "",
               "Generated from `mdsim COMMAND --help` by `python -m mdsim.cli --markdown`; "
               "a test keeps it in sync.", "", "```", parser.format_help().rstrip(), "```", ""]
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        for name, p in sub.choices.items():
            out += [f"## mdsim {name}", "", "```", p.format_help().rstrip(), "```", ""]
            nested = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
            for group in nested:  # a command group: each of its commands too
                for inner, q in group.choices.items():
                    out += [f"### mdsim {name} {inner}", "", "```", q.format_help().rstrip(), "```", ""]
        return "\n".join(out)
    finally:
        if old is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = old


def parse_args(argv=None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv=None) -> int:
    """Run the ``mdsim`` command; returns the exit status."""
    args = parse_args(argv)
    import warnings

    # A user's warning is a sentence, not a source line.
    warnings.formatwarning = lambda message, category, *a, **k: f"mdsim {args.command}: warning: {message}\n"
    try:
        return args.run(args)
    except MdsimError as e:
        print(f"mdsim {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mdsim {args.command}: interrupted; finished work is kept, run the same command to resume",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader left (`mdsim inspect STORE | head`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 141


if __name__ == "__main__":
    if sys.argv[1:] == ["--markdown"]:
        print(help_markdown(), end="")
        raise SystemExit(0)
    raise SystemExit(main())
