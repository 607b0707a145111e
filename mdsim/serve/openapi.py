"""The OpenAPI 3.1 description of the page's search API, served at ``/openapi.json``.

Written by hand: the routes read query parameters themselves (:mod:`mdsim.serve.app`),
so there are no models to generate it from; ``tests/test_serve.py`` checks that every
parameter described here is accepted and that the routes it names exist.
"""

from __future__ import annotations

#: Longest playlist or path the API makes (each track is one search); more is a 400.
MAX_PLAYLIST = 200


def _param(name: str, kind: str, description: str, *, required: bool = False, repeated: bool = False,
           **schema) -> dict:
    item = {"type": kind, **schema}
    return {"name": name, "in": "query", "required": required, "description": description,
            "schema": {"type": "array", "items": item} if repeated else item,
            **({"style": "form", "explode": True} if repeated else {})}


WEIGHTS = _param("dims", "string", "weights per subspace, e.g. mood=1,tempo=0.5, or names for equal weights "
                                   "(default: all subspaces, equal weights)")
FILTERS = [
    _param("exclude_group", "string", "1: leave out tracks of the query's group (e.g. artist)", enum=["0", "1"]),
    _param("tempo", "string", "LOW:HIGH: keep tracks with a tempo in this BPM range (an open end: 90: or :120)"),
    _param("tempo_tolerance", "number", "keep tracks within this many percent of the query's tempo, or of half "
                                        "or double it", minimum=0, exclusiveMaximum=100),
    _param("key", "string", "keep tracks in this key, e.g. A minor"),
    _param("key_compatible", "string", "1: the query's key (or key) or its parallel key", enum=["0", "1"]),
    _param("harmonic", "string", "1: keys that mix with the query's (or key) by the Camelot wheel",
           enum=["0", "1"]),
    _param("max_per_group", "integer", "at most this many tracks of one group", minimum=1),
    _param("dedupe", "number", "drop tracks whose mean cosine over all subspaces to one ranked (or played) "
                               "before is at least this", minimum=-1, maximum=1),
]
LENGTH = _param("n", "integer", "tracks to add (default 20)", minimum=1, maximum=MAX_PLAYLIST)

TRACK = {"type": "object", "description": "a track with its scores (mdsim.search.Hit.to_dict)", "properties": {
    "track_id": {"type": "string"}, "score": {"type": ["number", "null"]},
    "scores": {"type": ["object", "null"], "additionalProperties": {"type": "number"}},
    "labels": {"type": "object"}, "key_name": {"type": ["string", "null"]}, "group": {"type": "string"},
    "source_path": {"type": "string"}}}
PLAYLIST = {"type": "object", "properties": {
    "mode": {"type": "string", "enum": ["continue", "walk"]},
    "weights": {"type": "object", "additionalProperties": {"type": "number"}},
    "tracks": {"type": "array", "items": {"allOf": [TRACK, {"properties": {
        "role": {"type": "string", "enum": ["seed", "start", "end", "next"]}}}]}}}}
ERROR = {"description": "a parameter is missing, not a number, out of range, or names no track",
         "content": {"application/json": {"schema": {"type": "object", "properties": {"error": {"type": "string"}}}}}}


def _get(summary: str, parameters: list, schema: dict) -> dict:
    return {"get": {"summary": summary, "parameters": parameters,
                    "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}},
                                  "400": ERROR}}}


OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "mdsim serve", "version": "1",
             "description": "Query by example over a catalog of multi-dimensional music embeddings "
                            "(docs/search.md)."},
    "paths": {
        "/api/search": _get(
            "the tracks most like a query, by the weighted mean of per-subspace cosines",
            [_param("track", "string", "a catalog track id; repeated: several seeds (their mean)",
                    required=True, repeated=True),
             _param("k", "integer", "results (default 10; above the catalog's size: all)", minimum=1),
             WEIGHTS, *FILTERS,
             _param("min_score", "number", "drop results below this score", minimum=-1, maximum=1)],
            {"type": "object", "properties": {"query": {}, "results": {"type": "array", "items": {
                "allOf": [TRACK, {"properties": {"rank": {"type": "integer"}, "parts": {
                    "type": "object", "additionalProperties": {"type": "number"},
                    "description": "per dimension, normalised weight x cosine; they sum to score"}}}]}}}}),
        "/api/playlist": _get(
            "the seeds, then n tracks, each the nearest unused one to the track before",
            [_param("seed", "string", "a catalog track id, repeated for several", required=True, repeated=True),
             LENGTH, WEIGHTS, *FILTERS], PLAYLIST),
        "/api/path": _get(
            "from one track to another in n steps, each the nearest unused track to a point on the way",
            [_param("from", "string", "the first track", required=True),
             _param("to", "string", "the last track", required=True), LENGTH, WEIGHTS, *FILTERS], PLAYLIST),
    },
}
