"""The 3-D page of a sound library's manifold: rotate, zoom, colour, click to play.

Routes:

- ``GET /``: the page (``static/manifold.html`` and ``static/manifold.js``: a
  canvas, orthographic projection, drag to rotate, wheel to zoom; no library)
- ``GET /api/points``: the neighbourhood and, per note, its id, ``xyz`` (scaled
  to [-1, 1]), instrument, pitch (MIDI and name) and split (train or held-out)
- ``GET /audio/{track_id}``: the note's audio file, confined to the audio roots
  like the catalog page's (:func:`mdsim.serve.app.confined_file`)

The points come from :func:`mdsim.manifold.manifold_points` (the caller embeds;
the app never loads a model or reads a store).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from mdsim.serve.app import STATIC_DIR, _media_type, confined_file


def create_manifold_app(points: dict, *, audio_root) -> Starlette:
    """The ASGI app over ``points`` (the dict :func:`mdsim.manifold.manifold_points` returns)."""
    roots = [audio_root] if isinstance(audio_root, (str, Path)) else list(audio_root)
    audio_roots = [Path(r).resolve() for r in roots]
    xyz = np.asarray(points["xyz"], np.float64)
    if len(xyz):
        xyz = xyz - xyz.mean(axis=0)
        xyz = xyz / max(float(np.abs(xyz).max()), 1e-12)
    sources = dict(zip(points["track_ids"], points["source_path"]))
    notes = [{"id": t, "xyz": [round(float(v), 5) for v in p], "instrument": i, "pitch": int(m),
              "pitch_name": n, "split": s}
             for t, p, i, m, n, s in zip(points["track_ids"], xyz, points["instrument"], points["pitch"],
                                          points["pitch_name"], points["split"])]
    payload = {"neighbourhood": points["neighbourhood"], "n_notes": len(notes), "notes": notes}

    async def index(request: Request):
        return FileResponse(STATIC_DIR / "manifold.html", media_type="text/html")

    async def api_points(request: Request):
        return JSONResponse(payload)

    async def audio(request: Request):
        track_id = request.path_params["track_id"]
        if track_id not in sources:
            raise HTTPException(404, "no such note")
        path = confined_file(sources[track_id], audio_roots)
        return FileResponse(path, media_type=_media_type(path))

    async def http_error(request: Request, exc: HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)

    routes = [Route("/", index), Route("/api/points", api_points), Route("/audio/{track_id:path}", audio),
              Mount("/static", StaticFiles(directory=STATIC_DIR), name="static")]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error})
