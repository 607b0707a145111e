"""The browse page: a small Starlette (ASGI) app over a catalog.

Routes (JSON unless said otherwise):

- ``GET /``: the page (``static/index.html``; ``/static/*`` its script and style)
- ``GET /api/catalog``: dimensions, and per track its id, labels, group
- ``GET /api/map?dims=mood=1,tempo=0.5``: 2-D coordinates of every track, the
  first two principal components of the vectors with block k scaled by
  ``sqrt(w_k)`` (so squared distances there are the weighted sum of
  per-subspace cosine distances); computed once per weighting, then cached
- ``GET /api/search?track=ID&dims=...&k=10&exclude_group=1&tempo=LOW:HIGH&key=...&key_compatible=1&min_score=``
  (also ``tempo_tolerance``, ``harmonic=1``, ``max_per_group``, ``dedupe``; ``track``
  repeated: several seeds). Each result has ``parts``: per dimension, its normalised
  weight times its cosine, the share of the score it gives (they sum to ``score``)
- ``POST /api/search?dims=...&map_dims=...`` with the audio file as the body: query by an
  uploaded file (needs the catalog's model); the answer's ``xy`` places the file on the
  map of ``map_dims`` (as ``/api/map?dims=``)
- ``GET /api/playlist?seed=ID&n=20&dims=...`` and ``GET /api/path?from=ID&to=ID&n=10``:
  playlists (:mod:`mdsim.search.playlist`), ``n`` at most ``MAX_PLAYLIST``, the same filters
- ``GET /openapi.json``: the API described (OpenAPI 3.1, :mod:`mdsim.serve.openapi`)
- ``GET /audio/{track_id}``: the track's audio file, with HTTP Range requests.
  Only catalog tracks, and only files inside the audio root once symlinks are
  resolved: anything else is 404 (not a track) or 403 (outside the root).

The app calls :mod:`mdsim.search` only; it never reads a store or a model's
internals.
"""

from __future__ import annotations

import ipaddress
import os
import tempfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mdsim.errors import MdsimError, ModelError
from mdsim.search import Catalog, Filters, catalog_model, continue_from, walk
from mdsim.search.catalog import find_audio
from mdsim.search.query import parse_range, parse_weights
from mdsim.serve.openapi import MAX_PLAYLIST, OPENAPI

STATIC_DIR = Path(__file__).parent / "static"
#: Rows the projection's principal axes are fitted on (all rows are projected).
MAP_SAMPLE = 20_000
#: Weightings whose maps are kept.
MAP_CACHE = 32
#: Largest upload accepted as a query, in bytes.
MAX_UPLOAD = 64 << 20


def audio_file(catalog: Catalog, audio_roots, track_id: str) -> Path:
    """The audio file of a catalog track, or an HTTPException: 404 for a track not in
    the catalog or without a file, 403 for a file outside every one of ``audio_roots``
    (resolved folders; symlinks resolved). A relative path is read under the roots."""
    if track_id not in catalog:
        raise HTTPException(404, "no such track")
    return confined_file(catalog.info(track_id)["source_path"], audio_roots)


def confined_file(source, audio_roots) -> Path:
    """``source`` resolved (symlinks too) if it is a file inside one of ``audio_roots``;
    else an HTTPException (404 no path or no file, 403 outside every root). A catalog
    moved with its audio finds it under the new roots (:func:`mdsim.search.catalog.find_audio`)."""
    if not source:
        raise HTTPException(404, "this track has no audio path")
    path = find_audio(source, audio_roots)
    if path is None:
        raise HTTPException(404, "audio file not found")
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise HTTPException(404, "audio file not found") from None
    if not any(real.is_relative_to(root) for root in audio_roots) or not real.is_file():
        raise HTTPException(403, "outside the audio root")
    return real


class Projection:
    """The map's projection for one weighting: block k scaled by sqrt(w_k), centred, on the
    first two principal axes (fitted on at most ``MAP_SAMPLE`` rows), scaled so the
    catalog fills [-1, 1]. ``xy`` holds the catalog's points; :meth:`place` puts any
    block-normalised vector (an uploaded query) on the same map."""

    def __init__(self, catalog: Catalog, weights: np.ndarray):
        self.catalog, self.weights = catalog, np.sqrt(weights)
        X = catalog.scale(catalog.vectors(), self.weights)
        self.mean, self.axes, self.size = np.zeros(X.shape[1], np.float32), np.zeros((X.shape[1], 2), np.float32), 1.0
        if len(X) >= 2:
            sample = X if len(X) <= MAP_SAMPLE else X[np.random.default_rng(0).choice(len(X), MAP_SAMPLE, replace=False)]
            self.mean = sample.mean(axis=0)
            _, _, vt = np.linalg.svd(sample - self.mean, full_matrices=False)
            self.axes = np.pad(vt[:2].T, ((0, 0), (0, max(0, 2 - len(vt)))))
        xy = (X - self.mean) @ self.axes
        self.size = max(float(np.abs(xy).max(initial=0.0)), 1e-12)
        self.xy = (xy / self.size).astype(np.float32)

    def place(self, vector: np.ndarray) -> np.ndarray:
        """``(2,)`` map coordinates of one block-normalised ``(D,)`` vector."""
        return ((self.catalog.scale(vector[None], self.weights)[0] - self.mean) @ self.axes / self.size).astype(np.float32)


def projection(catalog: Catalog, weights: np.ndarray) -> np.ndarray:
    """``(N, 2)`` float32: the catalog's points on the map of ``weights`` (:class:`Projection`)."""
    return Projection(catalog, weights).xy


def _number(params, name: str, *, whole: bool = False):
    """A query parameter as a number (``None`` when absent); 400 when it is not one."""
    text = params.get(name)
    if not text:
        return None
    try:
        return int(text) if whole else float(text)
    except ValueError:
        kind = "a whole number" if whole else "a number"
        raise HTTPException(400, f"{name} must be {kind}, got {text[:40]!r}") from None


def _filters(params, *, track) -> Filters:
    flag = lambda name: params.get(name, "") in ("1", "true", "on")  # noqa: E731
    return Filters(exclude_query=track is not None, exclude_group=flag("exclude_group"),
                   tempo_range=parse_range(params.get("tempo")), key=params.get("key") or None,
                   key_compatible=flag("key_compatible"), min_score=_number(params, "min_score"),
                   tempo_tolerance=_number(params, "tempo_tolerance"), harmonic=flag("harmonic"),
                   max_per_group=_number(params, "max_per_group", whole=True), dedupe=_number(params, "dedupe"))


def _length(params) -> int:
    """A playlist's ``n``: 400 outside 1..``MAX_PLAYLIST`` (each track is one search)."""
    n = _number(params, "n", whole=True)
    n = 20 if n is None else n
    if not 1 <= n <= MAX_PLAYLIST:
        raise HTTPException(400, f"n must be from 1 to {MAX_PLAYLIST}, got {n}")
    return n


def local_names(host: str = "127.0.0.1") -> frozenset:
    """The host names the page answers to: the bound ``host``, ``127.0.0.1`` and ``localhost``
    (an IPv6 address in brackets, as a Host header writes it)."""
    names = {host.lower(), "127.0.0.1", "localhost"}
    return frozenset(f"[{n}]" if ":" in n and not n.startswith("[") else n for n in names)


def _split_host(value: str) -> tuple[str, str]:
    """``"name:port"`` (or ``"[v6]:port"``) to ``(name, port)``; port ``""`` when absent."""
    if value.startswith("["):
        name, _, rest = value.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else ""
    name, _, port = value.partition(":")
    return name, port


WILDCARDS = frozenset({"0.0.0.0", "::", "[::]", ""})


def _is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


class HostCheck:
    """ASGI middleware: answer only requests whose Host header names the address served.

    A page on another site can point a name it controls at 127.0.0.1 (DNS
    rebinding) and then read this one as same-origin; its requests still carry
    that name as Host, so they get a 400 instead. Served on every address
    (``--host 0.0.0.0``), any IP address is a valid Host too (a browser on the
    network opens the page by the machine's address; an address cannot be
    rebound), names other than ``localhost`` still are not. ``port`` None
    accepts any port (tests, or a port chosen by the system)."""

    def __init__(self, app, *, names: frozenset, port: int | None):
        self.app, self.names, self.port = app, names, port
        self.any_address = bool(names & WILDCARDS)

    def _known(self, name: str) -> bool:
        return name in self.names or (self.any_address and _is_ip_literal(name))

    async def __call__(self, scope, receive, send):
        if scope["type"] in ("http", "websocket"):
            value = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
            name, port = _split_host(value)
            if not self._known(name) or (self.port is not None and port != str(self.port)):
                response = JSONResponse({"error": "unknown Host header: open the address mdsim serve printed"},
                                        status_code=400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(catalog, *, audio_root, model=None, host: str = "127.0.0.1", port: int | None = None):
    """The ASGI app over ``catalog`` (a :class:`~mdsim.search.Catalog` or a catalog
    folder), serving audio from under ``audio_root`` (a folder or a list of folders).
    ``model`` (path or
    :class:`mdsim.Model`, default: the catalog's, found by
    :func:`mdsim.search.catalog_model`) embeds uploaded queries; it is loaded here, and a
    model given that did not embed the catalog raises ModelError. Requests
    whose Host header is not ``host``, ``127.0.0.1`` or ``localhost`` (with ``port``,
    unless None) are refused (:class:`HostCheck`)."""
    catalog = catalog if isinstance(catalog, Catalog) else Catalog.load(catalog)
    roots = [audio_root] if isinstance(audio_root, (str, Path)) else list(audio_root)
    audio_roots = [Path(r).resolve() for r in roots]
    maps: OrderedDict = OrderedDict()
    uploads_off = None  # why uploads cannot be embedded; the model is loaded now, not at the first upload
    if not hasattr(model, "embed"):
        try:
            model = catalog_model(catalog, model=model)
        except ModelError as e:
            if model is not None:  # the model given is refused: say so before serving
                raise
            model, uploads_off = None, str(e)

    def weights_of(request: Request) -> np.ndarray:
        return catalog.weights(weights=parse_weights(request.query_params.get("dims")))

    async def info(request: Request):
        tracks = [catalog.info(t) for t in catalog.track_ids]
        return JSONResponse({"dimensions": list(catalog.dimensions), "n_tracks": len(catalog),
                             "tracks": [dict(t, key_name=_key_name(t["labels"]["key"])) for t in tracks]})

    def map_of(dims) -> Projection:
        w = catalog.weights(weights=parse_weights(dims))
        key = tuple(np.round(w, 6))
        if key not in maps:
            maps[key] = Projection(catalog, w)
            while len(maps) > MAP_CACHE:
                maps.popitem(last=False)
        maps.move_to_end(key)
        return maps[key]

    async def map_(request: Request):
        return JSONResponse({"track_ids": catalog.track_ids,
                             "xy": map_of(request.query_params.get("dims")).xy.round(5).tolist()})

    async def search(request: Request):
        params = request.query_params
        k = _number(params, "k", whole=True)  # the catalog caps it at its size
        k = 10 if k is None else k
        placed = {}
        if request.method == "POST":
            query = await _embed_upload(request)
            track = None
            # Where the upload lies on the map the page shows (map_dims: that map's weights).
            placed["xy"] = map_of(params.get("map_dims")).place(catalog.query_vector(query)).round(5).tolist()
        else:
            tracks = [t for t in params.getlist("track") if t]
            if not tracks:
                raise HTTPException(400, "give ?track=ID (repeated for several seeds), or POST an audio file")
            track = query = tracks[0] if len(tracks) == 1 else tracks
        hits = catalog.search(query, weights=parse_weights(params.get("dims")), k=k,
                              filters=_filters(params, track=track))
        # What each dimension adds to the score (the page's "why is this similar" bars).
        w = dict(zip(catalog.dimensions, weights_of(request).tolist()))
        return JSONResponse({"query": track, **placed, "results": [
            dict(h.to_dict(), parts={d: w[d] * s for d, s in h.scores.items()}) for h in hits]})

    async def playlist(request: Request):
        params = request.query_params
        seeds = [t for t in params.getlist("seed") if t]
        if not seeds:
            raise HTTPException(400, "give ?seed=ID (repeated for several seeds)")
        return JSONResponse(continue_from(catalog, seeds, n=_length(params), weights=parse_weights(params.get("dims")),
                                          filters=_filters(params, track=seeds)).to_dict())

    async def path(request: Request):
        params = request.query_params
        start, end = params.get("from"), params.get("to")
        if not start or not end:
            raise HTTPException(400, "give ?from=ID&to=ID")
        return JSONResponse(walk(catalog, start, end, n=_length(params), weights=parse_weights(params.get("dims")),
                                 filters=_filters(params, track=start)).to_dict())

    async def openapi(request: Request):
        return JSONResponse(OPENAPI)

    async def _embed_upload(request: Request):
        from starlette.concurrency import run_in_threadpool

        from mdsim.search import query_embedding

        if model is None:
            raise HTTPException(400, f"uploads are off: {uploads_off}")
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_UPLOAD:
            raise HTTPException(413, f"uploads are limited to {MAX_UPLOAD >> 20} MiB")
        suffix = Path(request.headers.get("x-filename", "upload.wav")).suffix[:8] or ".wav"
        fd, tmp = tempfile.mkstemp(suffix=suffix)
        try:
            size = 0
            with os.fdopen(fd, "wb") as f:  # streamed to disk; the limit holds whatever the header said
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_UPLOAD:
                        raise HTTPException(413, f"uploads are limited to {MAX_UPLOAD >> 20} MiB")
                    f.write(chunk)
            if not size:
                raise HTTPException(400, "the request body is empty: send the audio file")
            try:
                return await run_in_threadpool(query_embedding, catalog, tmp, model=model)
            except MdsimError as e:  # the server's temporary path is no business of the page
                raise HTTPException(400, str(e).replace(tmp, "the uploaded file")) from None
        finally:
            os.unlink(tmp)

    async def audio(request: Request):
        path = audio_file(catalog, audio_roots, request.path_params["track_id"])
        return FileResponse(path, media_type=_media_type(path))

    async def index(request: Request):
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    async def user_error(request: Request, exc: MdsimError):
        return JSONResponse({"error": str(exc)}, status_code=400)

    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    routes = [Route("/", index), Route("/api/catalog", info), Route("/api/map", map_),
              Route("/api/search", search, methods=["GET", "POST"]),
              Route("/api/playlist", playlist), Route("/api/path", path), Route("/openapi.json", openapi),
              Route("/audio/{track_id:path}", audio),
              Mount("/static", StaticFiles(directory=STATIC_DIR), name="static")]
    app = Starlette(routes=routes, exception_handlers={MdsimError: user_error, HTTPException: http_error})
    checked = HostCheck(app, names=local_names(host), port=port)
    #: One line for the terminal: whether uploaded files can be searched, and why not.
    checked.uploads = f"uploads off: {uploads_off}" if model is None else \
        f"uploads on (model {getattr(model, 'path', None) or 'given'})"
    return checked


def _key_name(index):
    from mdsim.labels import key_name

    return key_name(index)


_MEDIA = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg",
          ".aiff": "audio/aiff", ".aif": "audio/aiff", ".m4a": "audio/mp4"}


def _media_type(path: Path) -> str:
    return _MEDIA.get(path.suffix.lower(), "application/octet-stream")
