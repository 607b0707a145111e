"""``mdsim index``: a search catalog from embeddings or a features store."""

from __future__ import annotations

import os
from pathlib import Path

from mdsim.cli.options import positive_int


def add_parser(sub) -> None:
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
    p.add_argument("--model", help="the model (.keras, or `default`) that embeds a features store's tracks, "
                                   "and later any query audio (default for a store: the default model, "
                                   "docs/default_model.md)")
    p.add_argument("--info", help="features store or manifest CSV with the tracks' labels, group and "
                                  "audio path (default: the source itself when it is a store)")
    p.add_argument("--index", choices=("flat", "hnsw"), default="flat",
                   help="flat: exact search (default); hnsw: approximate graph search for large catalogs")
    p.add_argument("--hnsw-m", type=positive_int, default=32, help="HNSW graph degree (default 32)")
    p.add_argument("--ef-construction", type=positive_int, default=80,
                   help="HNSW candidates while building (default 80)")
    p.add_argument("--ef-search", type=positive_int, default=128,
                   help="HNSW candidates while searching: recall against speed (default 128: "
                        "recall@10 0.97 at 10^6 items, docs/search.md)")
    p.add_argument("--add", action="store_true",
                   help="add the source's tracks that the catalog at --out lacks, keeping the others "
                        "(no rebuild for a flat index; a store is embedded for the new tracks only)")
    p.add_argument("--remove", nargs="+", metavar="TRACK_ID", default=[],
                   help="remove these tracks from the catalog at --out (with or without --add)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args) -> int:
    from mdsim.cli.options import load_cli_model
    from mdsim.features.store import is_store
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
    if args.model is None and is_store(args.source):
        args.model = "default"
    if args.model is not None:
        args.model = load_cli_model(args.model, "index")
    spec = IndexSpec(kind=args.index, hnsw_m=args.hnsw_m, ef_construction=args.ef_construction,
                     ef_search=args.ef_search)
    catalog = build_catalog(args.source, model=args.model, info=args.info, index=spec,
                            progress=not args.quiet)
    if args.model:  # by content and by a path relative to the catalog: found wherever both are copied
        from mdsim.models import DEFAULT_MODEL, DEFAULT_NAME

        path = Path(args.model.path).resolve()
        catalog.metadata["model"] = DEFAULT_NAME if path == DEFAULT_MODEL else Path(
            os.path.relpath(path, Path(args.out).resolve())).as_posix()
        catalog.metadata.setdefault("model_sha256", args.model.fingerprint)
    catalog.save(args.out)
    print(f"index: {len(catalog)} tracks, {args.index} index over {', '.join(catalog.dimensions)}; "
          f"wrote {args.out}")
    return 0
