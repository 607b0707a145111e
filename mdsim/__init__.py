"""mdsim: multi-dimensional music similarity.

One embedding per 3 s of audio, split into a named subspace per dimension
(genre, mood, instrument, era, tempo, key).
"""

import os as _os

# First: notes whether the user set TF_CPP_MIN_LOG_LEVEL, then sets mdsim's default (2).
from mdsim import native_log as _native_log  # noqa: F401, E402

# TensorFlow's oneDNN CPU kernels, unless the user chose: TensorFlow turns them on by default on
# some processors only, and elsewhere its own kernels train and embed about 3.5x slower (measured
# on an AMD EPYC; docs/installation.md, "TensorFlow's CPU kernels"). Read when TensorFlow is
# first imported, so it does nothing where TensorFlow was imported before mdsim.
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
from mdsim._version import __version__  # noqa: E402
from mdsim.errors import MdsimError  # noqa: E402
from mdsim.labels import DIMENSIONS  # noqa: E402

__all__ = ["__version__", "MdsimError", "DIMENSIONS", "load_model", "Model", "Embedding", "Catalog",
           "load_manifold"]


def __getattr__(name):
    # The API imports Keras when a model is loaded, not when mdsim is imported.
    if name in ("load_model", "Model", "Embedding"):
        from mdsim import api

        return getattr(api, name)
    if name == "Catalog":  # FAISS loads when an index is built or read, not here
        from mdsim.search import Catalog

        return Catalog
    if name == "load_manifold":  # a sound library's 3-D map (mdsim.manifold)
        from mdsim.manifold import load_manifold

        return load_manifold
    raise AttributeError(f"module 'mdsim' has no attribute {name!r}")
