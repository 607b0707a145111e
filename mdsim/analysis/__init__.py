"""What an embedding is organised by: neighbourhood locality and sensitivity to manipulation.

Reads embeddings files, labels and audio; never trains. ``mdsim analyze locality``
and ``mdsim analyze sensitivity`` are thin shells over :func:`locality` and
:func:`sensitivity` (docs/augmentation.md).
"""

from mdsim.analysis.locality import METRICS, label_locality, locality, nearest_neighbours
from mdsim.analysis.sensitivity import DEFAULT_AMOUNTS, manipulate, sensitivity

__all__ = ["METRICS", "DEFAULT_AMOUNTS", "label_locality", "locality", "manipulate", "nearest_neighbours",
           "sensitivity"]
