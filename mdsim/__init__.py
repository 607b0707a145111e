"""mdsim: multi-dimensional music similarity.

One embedding per 3 s of audio, split into a named subspace per dimension
(genre, mood, instrument, era, tempo, key).
"""

__version__ = "0.1.0"

from mdsim.errors import MdsimError  # noqa: E402
from mdsim.labels import DIMENSIONS  # noqa: E402

__all__ = ["__version__", "MdsimError", "DIMENSIONS"]
