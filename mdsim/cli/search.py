"""``mdsim search``: the tracks of a catalog most like a query."""

from __future__ import annotations

from mdsim.cli.options import add_filter_options, filters_of, positive_int


def add_parser(sub) -> None:
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
    p.add_argument("-k", "--k", type=positive_int, default=10, help="results (default 10)")
    p.add_argument("--model", help="model for an audio query (default: the one the catalog names)")
    add_filter_options(p)
    p.add_argument("--min-score", type=float, help="drop results below this score (-1 to 1)")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(run=run)


def run(args) -> int:
    import json

    from mdsim.search import Catalog
    from mdsim.search.query import format_table, parse_weights, resolve_queries

    catalog = Catalog.load(args.catalog)
    hits = catalog.search(resolve_queries(catalog, args.query, model=args.model),
                          weights=parse_weights(args.dims), k=args.k,
                          filters=filters_of(args, min_score=args.min_score))
    if args.json:
        query = args.query[0] if len(args.query) == 1 else args.query
        print(json.dumps({"query": query, "weights": parse_weights(args.dims),
                          "results": [h.to_dict() for h in hits]}, indent=2))
    else:
        print(format_table(hits, catalog.dimensions) if hits else "search: no track passes the filters")
    return 0
