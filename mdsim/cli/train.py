"""``mdsim train``: the masked subspace model on a features store."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdsim.cli.options import (AUGMENTATION_OPTIONS, NETWORK_OPTIONS, add_backbone_option, add_eq_options,
                               add_pitch_options, add_stretch_options, add_width_option, add_workers_option,
                               given_options, name_list, pair_shares, positive_int, read_track_list)
from mdsim.configs import config_names, find_config
from mdsim.labels import DIMENSIONS
from mdsim.model.config import KEY_HEADS, SUBSPACE_SIZE, TEMPO_HEADS


def add_parser(sub) -> None:
    p = sub.add_parser(
        "train", help="train the masked subspace model on a features store",
        description="Train a conditional similarity network: one forward pass per batch, a masked "
                    "triplet loss per dimension with semi-hard negatives mined in the batch, averaged "
                    "over dimensions. Settings come from --config (a TOML file with [model] and [training] "
                    "tables, or the name of one that ships with mdsim), then from the options below. "
                    "Checkpoints, a "
                    "CSV log and TensorBoard logs go to --out; Ctrl-C keeps every finished epoch.")
    p.add_argument("store", help="features store written by `mdsim prep`")
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", metavar="RUN_DIR", help="folder for a new run")
    where.add_argument("--resume", metavar="RUN_DIR", help="continue this run from its last finished epoch")
    p.add_argument("--config", metavar="NAME|FILE.toml",
                   help=f"model and training settings: a TOML file, or a named config: {', '.join(config_names())}")
    add_backbone_option(p)
    p.add_argument("--dims", help="comma-separated dimensions, in subspace order "
                                  "(default genre,mood,instrument,era,tempo,key); add sound for a "
                                  "self-supervised subspace that needs no labels (two windows of one "
                                  "recording are similar; with --augment, each augmented on its own)")
    p.add_argument("--embedding-size", type=positive_int,
                   help=f"embedding size, split evenly (default {SUBSPACE_SIZE} per dimension: "
                        f"{SUBSPACE_SIZE * len(DIMENSIONS)} for the six, {SUBSPACE_SIZE * 5} for five --dims)")
    add_width_option(p)
    p.add_argument("--tempo-axis", choices=("lag", "log"),
                   help="tempogram branch on the lags as they are (default lag, the paper) or on a log "
                        "tempo axis, where a tempo change is a shift (docs/augmentation.md)")
    p.add_argument("--chroma-padding", choices=("zero", "circular"),
                   help="pad CENS from 12 to 16 bins with zeros (default, the paper) or around the chroma "
                        "circle, where a transposition is a shift")
    p.add_argument("--summaries", type=name_list, metavar="INPUTS",
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
    p.add_argument("--tempo-head", choices=TEMPO_HEADS,
                   help="how the tempo subspace is made: a slice of the shared dense layer (default dense, the "
                        "paper) or tempogram: from the window's mean tempogram alone, which no timbre reaches "
                        "(docs/default_model.md)")
    p.add_argument("--epochs", type=positive_int, help="epochs in total (default 100)")
    p.add_argument("--steps-per-epoch", type=positive_int, help="batches per epoch (default: each track once)")
    p.add_argument("--batch-size", type=positive_int, help="windows per batch (default 64)")
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
    p.add_argument("--pair-shares", type=pair_shares, metavar="DIM=N,...",
                   help="draw N turns of pairs for DIM where the other dimensions get one, e.g. key=3: about 7 key "
                        "pairs in a batch of 32 of five dimensions instead of 3 (default: the dimensions in turn; "
                        "docs/key_tempo.md)")
    add_workers_option(p)
    p.add_argument("--seed", type=int, help="seed of the split, sampler and weights (default 0)")
    p.add_argument("--eager", action="store_true", default=None,
                   help="run steps op by op, without building a graph first: starts in seconds "
                        "instead of minutes, but each step is slower; for runs of a few dozen steps")
    p.add_argument("--mixed-precision", nargs="?", const="auto", metavar="POLICY",
                   choices=("off", "auto", "mixed_float16", "mixed_bfloat16"),
                   help="compute layers in 16 bits (weights and loss stay float32): mixed_float16, "
                        "mixed_bfloat16, or auto (the default when given without a value: float16 on a GPU, "
                        "bfloat16 elsewhere); default off")
    p.add_argument("--devices", type=positive_int,
                   help="data-parallel devices (JAX or TensorFlow backend); --batch-size is the global batch "
                        "(default 1). Over several processes or machines (JAX: KERAS_DISTRIBUTION_JOB_ADDRESSES, "
                        "_NUM_PROCESSES and _PROCESS_ID set for each), the devices of all of them "
                        "(docs/training.md)")
    p.add_argument("--tracks", metavar="FILE",
                   help="train on these tracks of the store only: one id per line, or a run's split.json "
                        "(its validation tracks); default: every track")
    p.add_argument("--init-from", metavar="MODEL.keras",
                   help="start from the layers of this model that match by name and shape, input statistics "
                        "included (e.g. a `mdsim pretrain` run's best.keras: docs/loev.md); `default`: the default "
                        "model, whose network settings (--config default_model) then apply unless --config is "
                        "given (docs/default_model.md); default: random weights")
    aug = p.add_argument_group("augmentation (docs/augmentation.md)")
    aug.add_argument("--augment", choices=("none", "invariance", "label"),
                     help="time-stretch, pitch-shift and EQ training windows; invariance: a window loses the "
                          "labels its transform touches (tempo, key); label: the transform moves them (tempo x "
                          "rate, key + semitones) (default none)")
    add_stretch_options(aug)
    add_pitch_options(aug)
    add_eq_options(aug)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def train_configs(args):
    from mdsim.labels import check_dimensions
    from mdsim.model import ModelConfig
    from mdsim.training import TrainConfig, read_run_config

    from mdsim.models import is_default

    from_default = args.init_from is not None and is_default(args.init_from)
    # fine-tuning the default model starts from its network (width, summaries, key head), not the paper's
    config = find_config(args.config) if args.config else (find_config("default_model") if from_default else None)
    model, training = (ModelConfig(), TrainConfig()) if config is None else read_run_config(config)
    if from_default and not args.config:
        # the shipped model's own network, as its file records it; the recipe's training settings
        from mdsim.model.saving import read_model_config
        from mdsim.models import model_path

        model = read_model_config(model_path(args.init_from))
    model_changes = given_options(args, NETWORK_OPTIONS + ("key_head", "tempo_head"))
    if args.dims:
        model_changes["dimensions"] = check_dimensions(args.dims)
        if "embedding_size" not in model_changes and from_default and not args.config:
            model_changes["embedding_size"] = model.embedding_size // len(model.dimensions) * len(
                model_changes["dimensions"])  # the default model's subspace size for every dimension
        elif "embedding_size" not in model_changes and not _sets_embedding_size(config):
            model_changes["embedding_size"] = SUBSPACE_SIZE * len(model_changes["dimensions"])
    training_changes = given_options(args, ("epochs", "steps_per_epoch", "batch_size", "learning_rate", "fallback",
                                            "workers", "validation_fraction", "seed", "eager", "pad_short", "augment",
                                            "min_key_probability", "pair_shares", *AUGMENTATION_OPTIONS,
                                            "mixed_precision", "devices"))
    if args.init_from:
        from mdsim.models import model_path

        training_changes["init_from"] = str(model_path(args.init_from).resolve())
    return model.replace(**model_changes), training.replace(**training_changes), training_changes


def _sets_embedding_size(config) -> bool:
    """Whether the --config file fixes the embedding's size (then --dims keeps it)."""
    from mdsim.config import read_toml

    return config is not None and bool({"embedding_size", "subspace_sizes"} & set(read_toml(config).get("model", {})))


def run(args) -> int:
    from mdsim.training import train

    model_config, train_config, changes = train_configs(args)
    if args.resume:
        unsupported = sorted(set(changes) - {"epochs", "eager", "devices"})
        if unsupported or args.config or args.backbone or args.dims or args.embedding_size or args.width \
                or args.tempo_axis or args.chroma_padding or args.summaries or args.key_profiles is not None \
                or args.key_head or args.tempo_head:
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
                       tracks=read_track_list(args.tracks) if args.tracks else None,
                       verbose=0 if args.quiet else 1)
    watched = "validation" if result.monitor == "val_loss" else "training"
    print(f"train: {result.epochs_done} epochs done, best {watched} loss {result.best_val_loss:.4f}, "
          f"model {result.run_dir / 'best.keras'}")
    return 0
