"""``mdsim triplets``: evaluation triplets of one dimension from labels."""

from __future__ import annotations

from mdsim.cli.options import positive_int, read_track_list


def add_parser(sub) -> None:
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
    p.add_argument("-n", "--n", type=positive_int, default=1000, help="number of triplets (default 1000)")
    p.add_argument("--tracks", metavar="FILE",
                   help="only these tracks: a text file of track ids, or a run's split.json "
                        "(its validation tracks)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--at-most", action="store_true",
                   help="where fewer than N distinct triplets exist, write them all instead of refusing")
    p.set_defaults(run=run)


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


def run(args) -> int:
    from mdsim.evaluation import generate_triplets, write_triplets

    tracks = read_track_list(args.tracks) if args.tracks else None
    labels, durations = _labels_of(args.source, tracks)
    table = generate_triplets(labels, args.dimension, args.n, seed=args.seed, track_ids=tracks,
                              durations=durations, at_most=args.at_most)
    write_triplets(args.out, table)
    print(f"triplets: wrote {len(table)} {args.dimension} triplets to {args.out}")
    return 0
