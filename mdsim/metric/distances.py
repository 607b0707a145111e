"""Pairwise cosine distances inside each subspace of an embedding.

All subspaces are handled in one batched matrix product: the slices are
gathered into a zero-padded ``(B, S, k)`` tensor (``k`` = the largest slice),
so slices of different sizes need no Python loop over dimensions and the
padding changes neither norms nor dot products.
"""

from __future__ import annotations

import numpy as np
from keras import ops

from mdsim.errors import InputError

#: Floor of a squared slice norm, so that an all-zero slice has a finite
#: gradient (it gets distance 1 to everything) instead of a 0/0.
NORM_EPSILON = 1e-12


def check_subspaces(subspaces, *, width=None) -> tuple[tuple[int, int], ...]:
    """Validate ``[(start, stop), ...]`` column ranges of the subspaces.

    Parameters
    ----------
    subspaces : sequence of (int, int)
        Half-open column range of each subspace in the embedding.
    width : int or None
        Embedding size ``D``; when given, every ``stop`` must be ``<= width``.

    Returns
    -------
    tuple of (int, int)
    """
    out = []
    for bounds in subspaces:
        try:
            start, stop = (int(b) for b in bounds)
        except (TypeError, ValueError):
            raise InputError(f"subspace {bounds!r} is not a (start, stop) pair of ints") from None
        if not 0 <= start < stop:
            raise InputError(f"subspace ({start}, {stop}) is empty or negative: need 0 <= start < stop")
        if width is not None and stop > width:
            raise InputError(f"subspace ({start}, {stop}) ends past the embedding size {width}")
        out.append((start, stop))
    if not out:
        raise InputError("no subspace given: pass one (start, stop) column range per dimension")
    return tuple(out)


def _padded_columns(subspaces, width) -> np.ndarray:
    """Column index of each slice, padded with ``width`` (a zero column).

    Returns ``int32 [shape=(S, k)]`` with ``k`` the largest slice size.
    """
    size = max(stop - start for start, stop in subspaces)
    columns = np.full((len(subspaces), size), width, dtype=np.int32)
    for s, (start, stop) in enumerate(subspaces):
        columns[s, : stop - start] = np.arange(start, stop)
    return columns


def subspace_cosine_distances(embeddings, *, subspaces):
    """Cosine distance between every two items, in every subspace.

    Parameters
    ----------
    embeddings : tensor [shape=(B, D), float]
        A batch of embeddings; cast to float32.
    subspaces : sequence of (int, int)
        ``S`` half-open column ranges ``[start, stop)``, one per dimension.
        Sizes may differ; ranges are usually contiguous and disjoint but need
        not be.

    Returns
    -------
    tensor [shape=(S, B, B), float32]
        ``1 - cos`` of the two slices, in ``[0, 2]`` up to rounding. An
        all-zero slice is at distance 1 from everything.

    Examples
    --------
    Three items, two subspaces of two columns each (any Keras backend):

    >>> import numpy as np
    >>> from keras import ops
    >>> x = np.array([[1, 0, 1, 0],
    ...               [1, 0, 0, 1],
    ...               [0, 1, 1, 0]], dtype="float32")
    >>> d = ops.convert_to_numpy(subspace_cosine_distances(x, subspaces=[(0, 2), (2, 4)]))
    >>> d.shape
    (2, 3, 3)
    >>> d[0].round(3) + 0.0          # columns 0-1: items 0 and 1 point the same way
    array([[0., 0., 1.],
           [0., 0., 1.],
           [1., 1., 0.]], dtype=float32)
    >>> d[1].round(3) + 0.0          # columns 2-3: items 0 and 2 do
    array([[0., 1., 0.],
           [1., 0., 1.],
           [0., 1., 0.]], dtype=float32)
    """
    x = ops.cast(ops.convert_to_tensor(embeddings), "float32")
    width = x.shape[-1]
    if width is None:
        raise InputError("the embedding size (last axis) must be known to slice subspaces")
    subspaces = check_subspaces(subspaces, width=width)
    columns = _padded_columns(subspaces, width)
    padded = ops.concatenate([x, ops.zeros_like(x[:, :1])], axis=1)
    slices = ops.take(padded, ops.convert_to_tensor(columns), axis=1)  # (B, S, k)
    squared_norm = ops.sum(ops.square(slices), axis=-1, keepdims=True)
    unit = slices * ops.rsqrt(ops.maximum(squared_norm, NORM_EPSILON))
    cosine = ops.einsum("ask,bsk->sab", unit, unit)
    return 1.0 - cosine
