"""Named subspaces of an embedding: contiguous slices, one per dimension.

The embedding ``(..., D)`` is cut into ``config.dimensions`` in order, with
the sizes ``config.sizes`` (equal by default: 6 x 64 = 384). These helpers
work on NumPy arrays (returning NumPy) and on backend tensors (through
``keras.ops``, imported only then), so evaluation code can use them without
Keras and a loss can use them inside a traced function.
"""

from __future__ import annotations

import numpy as np

from mdsim.errors import InputError
from mdsim.model.config import ModelConfig


def subspace_slices(config: ModelConfig) -> dict[str, slice]:
    """``{dimension: slice}`` into the last axis of the embedding, in embedding order."""
    out, start = {}, 0
    for name, size in zip(config.dimensions, config.sizes):
        out[name] = slice(start, start + size)
        start += size
    return out


def check_dims(config: ModelConfig, dims) -> tuple[str, ...]:
    """Validate dimension names against the model's and return them in embedding order.

    ``dims`` is a sequence of names or a comma-separated string.

    Raises
    ------
    InputError
        On an empty selection or a name the model has no subspace for.
    """
    if isinstance(dims, str):
        dims = [d.strip() for d in dims.split(",") if d.strip()]
    dims = list(dims)
    valid = ", ".join(config.dimensions)
    if not dims:
        raise InputError(f"no dimension selected (valid: {valid})")
    for d in dims:
        if d not in config.dimensions:
            raise InputError(f"unknown dimension {d!r} (this model has: {valid})")
    return tuple(d for d in config.dimensions if d in dims)


def subspace_mask(config: ModelConfig, dims) -> np.ndarray:
    """float32 ``(D,)`` vector: 1 on the slices of ``dims``, 0 elsewhere."""
    out = np.zeros(config.embedding_size, dtype=np.float32)
    slices = subspace_slices(config)
    for d in check_dims(config, dims):
        out[slices[d]] = 1.0
    return out


def select(embedding, config: ModelConfig, dims):
    """The sub-embedding of ``dims``: their slices concatenated in embedding order.

    Parameters
    ----------
    embedding : ndarray or tensor, shape (..., D)
    config : ModelConfig
    dims : sequence of str or comma-separated str

    Returns
    -------
    Same kind as ``embedding``, shape (..., sum of the selected sizes).

    Examples
    --------
    >>> import numpy as np
    >>> config = ModelConfig(dimensions=("mood", "tempo", "key"), embedding_size=6)
    >>> subspace_slices(config)["tempo"]
    slice(2, 4, None)
    >>> embedding = np.arange(6, dtype="float32")
    >>> select(embedding, config, ["key", "mood"])      # embedding order, whatever the request order
    array([0., 1., 4., 5.], dtype=float32)
    >>> mask(embedding, config, "tempo")                 # full size, other slices zeroed
    array([0., 0., 2., 3., 0., 0.], dtype=float32)
    """
    _check_size(embedding, config)
    slices = subspace_slices(config)
    parts = [embedding[..., slices[d]] for d in check_dims(config, dims)]
    if len(parts) == 1:
        return parts[0]
    if isinstance(embedding, np.ndarray):
        return np.concatenate(parts, axis=-1)
    from keras import ops

    return ops.concatenate(parts, axis=-1)


def mask(embedding, config: ModelConfig, dims):
    """The full embedding with every dimension outside ``dims`` set to zero.

    Same kind, shape and dtype as ``embedding`` ``(..., D)``; a product with a
    constant 0/1 vector, so it traces on every backend and passes gradients
    to the kept slices only.
    """
    _check_size(embedding, config)
    weights = subspace_mask(config, dims)
    if isinstance(embedding, np.ndarray):
        return embedding * weights.astype(embedding.dtype, copy=False)
    from keras import ops

    return ops.multiply(embedding, ops.cast(weights, embedding.dtype))


def _check_size(embedding, config: ModelConfig) -> None:
    size = embedding.shape[-1]
    if size is not None and size != config.embedding_size:
        raise InputError(
            f"embedding has {size} values on its last axis, the model's config says "
            f"{config.embedding_size} ({', '.join(config.dimensions)})")
