"""`mdsim serve`: a local page to browse a catalog, listen, and search by example.

:func:`create_app` builds the ASGI app (Starlette); :func:`serve` runs it with
uvicorn. Both are imported only by ``mdsim serve``: ``import mdsim`` never
loads a web server.
"""

from __future__ import annotations

import sys
import warnings

LOCALHOST = ("127.0.0.1", "localhost", "::1")


def serve(catalog, *, audio_root, host: str = "127.0.0.1", port: int = 8000, model=None) -> None:
    """Serve the browse page until interrupted; warns when ``host`` is not local,
    since the page then lets anyone who reaches it listen to the catalog."""
    import uvicorn

    from mdsim.serve.app import create_app

    if host not in LOCALHOST:
        warnings.warn(f"serving on {host}: anyone who can reach this address can browse and play "
                      "the catalog (there is no login)", stacklevel=2)
    app = create_app(catalog, audio_root=audio_root, model=model, host=host, port=port)
    if getattr(app, "uploads", None):
        print(f"serve: {app.uploads}", file=sys.stderr)
    print(f"serve: http://{'[' + host + ']' if ':' in host else host}:{port}/  (Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def serve_manifold(points: dict, *, audio_root, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve the 3-D page of a manifold run's notes (:mod:`mdsim.serve.manifold`) until interrupted."""
    import uvicorn

    from mdsim.serve.manifold import create_manifold_app

    if host not in LOCALHOST:
        warnings.warn(f"serving on {host}: anyone who can reach this address can browse and play "
                      "the library (there is no login)", stacklevel=2)
    app = create_manifold_app(points, audio_root=audio_root)
    print(f"serve: http://{'[' + host + ']' if ':' in host else host}:{port}/  (Ctrl-C stops)", file=sys.stderr)
    uvicorn.run(app, host=host, port=port, log_level="warning")


def create_app(catalog, *, audio_root, model=None, host: str = "127.0.0.1", port: int | None = None):
    """See :func:`mdsim.serve.app.create_app`."""
    from mdsim.serve.app import create_app as _create

    return _create(catalog, audio_root=audio_root, model=model, host=host, port=port)
