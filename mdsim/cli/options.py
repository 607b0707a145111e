"""Argument types, option groups and helpers that more than one command uses.

An option that two commands share with the same meaning and help is added here, once;
``mdsim train`` and ``mdsim pretrain`` share the network, loader and augmentation options.
"""

from __future__ import annotations

import argparse

from mdsim.model.config import BACKBONES

#: The network settings that ``mdsim train`` and ``mdsim pretrain`` both take (ModelConfig fields).
NETWORK_OPTIONS = ("backbone", "embedding_size", "width", "tempo_axis", "chroma_padding", "summaries",
                   "key_profiles")
#: The augmentation settings they both take (TrainConfig and PretrainConfig fields).
AUGMENTATION_OPTIONS = ("stretch_probability", "stretch_range", "pitch_probability", "pitch_range",
                        "eq_probability", "eq_gain_db")


def name_list(text: str) -> tuple:
    return tuple(t.strip() for t in text.split(",") if t.strip())


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected 1 or more, got {value}")
    return value


def pair_shares(text: str) -> dict:
    """``"key=3,tempo=2"`` as ``{"key": 3, "tempo": 2}``."""
    out = {}
    for item in name_list(text):
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise argparse.ArgumentTypeError(f"expected DIM=N, got {item!r} (e.g. key=3)")
        out[name.strip()] = positive_int(value.strip())
    return out


def read_track_list(path):
    import json
    from pathlib import Path

    text = Path(path).read_text()
    if str(path).endswith(".json"):
        return json.loads(text)["validation"]
    return [line.strip() for line in text.splitlines() if line.strip()]


def add_backbone_option(parser) -> None:
    """``--backbone``: one of the Inception networks."""
    parser.add_argument("--backbone", choices=BACKBONES,
                        help="network (default multi_input; chroma and rhythm: the CENS or the tempogram "
                             "branch alone)")


def add_width_option(parser) -> None:
    """``--width``: the filter multiplier."""
    parser.add_argument("--width", type=float, help="multiplier of every filter count (default 1.0)")


def add_workers_option(parser) -> None:
    """``--workers``: processes of the training loader."""
    parser.add_argument("--workers", type=int, help="loader worker processes (default 0: in process)")


def add_stretch_options(group) -> None:
    """Chance and range of the time-stretch of a training window."""
    group.add_argument("--stretch-probability", type=float, help="chance of a time-stretch (default 0.5)")
    group.add_argument("--stretch-range", type=float, nargs=2, metavar=("LOW", "HIGH"),
                       help="time-stretch rates, drawn log-uniformly (default 0.8 1.25)")


def add_pitch_options(group) -> None:
    """Chance and range of the pitch-shift of a training window."""
    group.add_argument("--pitch-probability", type=float, help="chance of a pitch-shift (default 0.5)")
    group.add_argument("--pitch-range", type=int, nargs=2, metavar=("LOW", "HIGH"),
                       help="pitch-shift in whole semitones (default -5 6)")


def add_eq_options(group) -> None:
    """Chance and largest gain of the random equalisation of a training window."""
    group.add_argument("--eq-probability", type=float, help="chance of a random equalisation (default 0.5)")
    group.add_argument("--eq-gain-db", type=float, help="largest gain of an EQ filter in dB (default 6)")


def given_options(args, names) -> dict:
    """``{name: value}`` of the options among ``names`` that the command line set (not ``None``)."""
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def add_filter_options(p) -> None:
    """The filters of ``mdsim search`` and ``mdsim playlist`` (:class:`mdsim.search.Filters`)."""
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
    p.add_argument("--max-per-group", type=positive_int, metavar="N",
                   help="at most N tracks of one group (e.g. artist)")
    p.add_argument("--dedupe", type=float, metavar="COSINE",
                   help="drop tracks whose mean cosine over all subspaces to a track ranked before "
                        "is at least this, e.g. 0.95 (other versions of one recording)")


def filters_of(args, *, min_score=None):
    """The :class:`mdsim.search.Filters` of :func:`add_filter_options`' options."""
    from mdsim.search import Filters
    from mdsim.search.query import parse_range

    return Filters(exclude_group=args.exclude_group, tempo_range=parse_range(args.tempo),
                   tempo_tolerance=args.tempo_tolerance, key=args.key, key_compatible=args.key_compatible,
                   harmonic=args.harmonic, max_per_group=args.max_per_group, dedupe=args.dedupe, min_score=min_score)


def add_model_option(p, what: str) -> None:
    """``--model``, optional: the default model when it is left out (``docs/default_model.md``)."""
    p.add_argument("--model", help=f"{what} (a .keras file from `mdsim train`, or `default`; default: the "
                                   "default model that ships with mdsim, docs/default_model.md)")


def load_cli_model(spec, command: str):
    """Load ``--model`` (the default model when it is ``None``) and say once, on stderr, which one."""
    import sys

    import mdsim
    from mdsim.models import describe

    model = mdsim.load_model(spec)
    print(f"{command}: model: {describe(model)}", file=sys.stderr)
    return model
