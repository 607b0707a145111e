"""``mdsim serve``: the browse page of a catalog."""

from __future__ import annotations

from mdsim.cli.options import positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "serve", help="a local page to browse a catalog, listen and search by example",
        description="Serve the browse page of a catalog: a 2-D map of the tracks coloured by a label, "
                    "hover for labels, click to play, one slider per dimension to steer the search, "
                    "query by a catalog track or an uploaded file. Only audio files of the catalog "
                    "under --audio-root are served. The model that embeds uploads is loaded at start, "
                    "and the first lines say whether uploads are on, and why not.")
    p.add_argument("catalog", help="a catalog folder from `mdsim index`")
    p.add_argument("--audio-root", required=True, action="append",
                   help="folder holding the catalog's audio (repeatable), also where a catalog copied to "
                        "another machine or folder now finds it; files outside these folders are never served")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; another address "
                        "lets others on the network browse and play the catalog, with a warning)")
    p.add_argument("--port", type=positive_int, default=8000, help="port (default 8000)")
    p.add_argument("--model", help="model to embed uploaded queries; refused unless it embedded the catalog "
                                   "(default: the catalog's, where `mdsim index` found it or, by name or "
                                   "content, a .keras file in or beside the catalog folder)")
    p.set_defaults(run=run)


def run(args) -> int:
    from mdsim.serve import serve

    serve(args.catalog, audio_root=args.audio_root, host=args.host, port=args.port, model=args.model)
    return 0
