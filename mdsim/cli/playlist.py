"""``mdsim playlist``: continue from seed tracks, or walk from one track to another."""

from __future__ import annotations

from pathlib import Path

from mdsim.cli.options import add_filter_options, filters_of, positive_int


def add_parser(sub) -> None:
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
    p.add_argument("-n", "--n", type=positive_int, default=20,
                   help="tracks to add (after the seeds, or between --from and --to; default 20)")
    p.add_argument("--dims", help="weights per subspace, e.g. mood=1,tempo=0.5 (default: all, equal)")
    add_filter_options(p)
    p.add_argument("--out", nargs="+", default=[], metavar="FILE",
                   help="files to write, by suffix: .m3u8 or .m3u (extended M3U), .json")
    p.add_argument("--audio-root", action="append", default=[], metavar="FOLDER",
                   help="where the catalog's audio is now (repeatable), for a catalog copied to another "
                        "machine or folder: the M3U8 names the files found there (default: the paths "
                        "the catalog recorded)")
    p.set_defaults(run=run)


def run(args) -> int:
    from mdsim.errors import InputError
    from mdsim.search import Catalog, continue_from, walk
    from mdsim.search.playlist import write_json, write_m3u8
    from mdsim.search.query import format_playlist, parse_weights

    roots = [Path(r).resolve() for r in args.audio_root]
    m3u8 = lambda f, playlist: write_m3u8(f, playlist, audio_roots=roots)  # noqa: E731
    writers = {".m3u8": m3u8, ".m3u": m3u8, ".json": write_json}
    bad = [f for f in args.out if Path(f).suffix.lower() not in writers]
    if bad:
        raise InputError(f"cannot tell the format of {bad[0]}: name it .m3u8 or .json")
    if (args.start is None) != (args.end is None):
        raise InputError("a walk needs both --from and --to (--seed continues from tracks instead)")
    catalog = Catalog.load(args.catalog)
    weights, filters = parse_weights(args.dims), filters_of(args)
    if args.seed:
        playlist = continue_from(catalog, args.seed, n=args.n, weights=weights, filters=filters)
    else:
        playlist = walk(catalog, args.start, args.end, n=args.n, weights=weights, filters=filters)
    print(format_playlist(playlist))
    for f in args.out:
        writers[Path(f).suffix.lower()](f, playlist)
        print(f"playlist: wrote {f}")
    return 0
