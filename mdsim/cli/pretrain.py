"""``mdsim pretrain``: self-supervised subspaces (LOEV, LOEV++, SimCLR)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdsim.cli.options import (AUGMENTATION_OPTIONS, NETWORK_OPTIONS, add_backbone_option, add_eq_options,
                               add_pitch_options, add_stretch_options, add_width_option, add_workers_option,
                               given_options, name_list, positive_int)


def add_parser(sub) -> None:
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
    add_backbone_option(p)
    p.add_argument("--embedding-size", type=positive_int,
                   help="size of the output, split evenly over the subspaces, and of the superspace (default 384)")
    add_width_option(p)
    p.add_argument("--tempo-axis", choices=("lag", "log"), help="as for `mdsim train` (default lag)")
    p.add_argument("--chroma-padding", choices=("zero", "circular"), help="as for `mdsim train` (default zero)")
    p.add_argument("--summaries", type=name_list, metavar="INPUTS",
                   help="as for `mdsim train`: inputs (cens, tempogram) whose time average also reaches every "
                        "subspace's representation (default none; docs/loev.md)")
    p.add_argument("--key-profiles", type=int, metavar="K",
                   help="as for `mdsim train`: with --summaries cens, K learned pitch-class profiles (default 0)")
    p.add_argument("--epochs", type=positive_int, help="epochs in total (default 50)")
    p.add_argument("--steps-per-epoch", type=positive_int, help="steps per epoch (default: each track once)")
    p.add_argument("--batch-size", type=positive_int, help="tracks per step, each seen as 2 + K views (default 32)")
    p.add_argument("--learning-rate", type=float, help="Adam's initial learning rate (default 1e-4)")
    p.add_argument("--validation-fraction", type=float, help="share of tracks held out for the validation "
                                                              "loss that picks best.keras (default 0.1)")
    add_workers_option(p)
    p.add_argument("--prep-workers", type=int, help="worker processes of the prep of a folder or manifest "
                                                    "(default: the machine's cores)")
    p.add_argument("--seed", type=int, help="seed of the split, the views and the weights (default 0)")
    p.add_argument("--eager", action="store_true", default=None,
                   help="run steps op by op (starts in seconds; for runs of a few dozen steps)")
    aug = p.add_argument_group("augmentation (a variant augmentation is applied to every view)")
    add_stretch_options(aug)
    aug.add_argument("--min-stretch-ratio", type=float,
                     help="the two rates of a tempo-variant pair differ by at least this factor (default 1.08)")
    add_pitch_options(aug)
    aug.add_argument("--pitch-octaves", action=argparse.BooleanOptionalAction, default=None,
                     help="views of a pitch variant also move by random whole octaves, so the pitch subspace sees "
                          "the pitch class, not the register (default on)")
    add_eq_options(aug)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    from mdsim.training.pretrain import PretrainConfig, pretrain, pretrain_model_config, read_pretrain_config

    changes = given_options(args, ("objective", "temperature", "invariant_weight", "variant_weight",
                                   "variant_negatives", "epochs", "steps_per_epoch", "batch_size", "learning_rate",
                                   "validation_fraction", "workers", "seed", "eager", *AUGMENTATION_OPTIONS,
                                   "min_stretch_ratio", "pitch_octaves"))
    if args.variants is not None:
        changes["variants"] = name_list(args.variants)
    model_changes = given_options(args, NETWORK_OPTIONS)
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
