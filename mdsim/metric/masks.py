"""Who is a positive and who a negative, per dimension, from packed labels.

The ``keras.ops`` twin of :func:`mdsim.labels.similarity_matrix`, reading
the rows packed by :class:`mdsim.labels.LabelLayout`; ``tests/test_metric.py``
checks one against the other. The rules:

- tag dimensions: the multi-hot blocks share at least one tag; an all-zero
  block is unlabelled;
- tempo: ``|t_a - t_b * 2**k| <= tolerance_bpm`` for an integer
  ``|k| <= MAX_TEMPO_OCTAVE``, read either way round (``(a, b)`` or
  ``(b, a)``) so that the relation is symmetric, compared in float32; 0 BPM
  is unlabelled;
- key: same pitch class (``index % 12``: same or parallel key); -1 is
  unlabelled;
- sound: the same track number (two windows of one recording); -1 is
  unlabelled.

An unlabelled item takes no part in that dimension: it is neither anchor,
positive nor negative.
"""

from __future__ import annotations

from keras import ops

from mdsim.labels import MAX_TEMPO_OCTAVE, SOUND, TAG_DIMENSIONS, TEMPO_TOLERANCE_BPM, check_dimensions


def _tag_similarity(block):
    """``(B, V)`` multi-hot block -> similar ``(B, B)``, labelled ``(B,)``."""
    shared = ops.matmul(block, ops.transpose(block))
    return shared > 0.5, ops.sum(block, axis=-1) > 0.5


def _tempo_similarity(bpm, *, tolerance_bpm):
    """``(B,)`` BPM (0 = missing) -> similar ``(B, B)``, labelled ``(B,)``."""
    one_way = None
    for k in range(-MAX_TEMPO_OCTAVE, MAX_TEMPO_OCTAVE + 1):
        close = ops.abs(bpm[:, None] - bpm[None, :] * 2.0**k) <= tolerance_bpm
        one_way = close if one_way is None else ops.logical_or(one_way, close)
    return ops.logical_or(one_way, ops.transpose(one_way)), bpm > 0


def _key_similarity(key):
    """``(B,)`` key index (-1 = missing) -> similar ``(B, B)``, labelled ``(B,)``."""
    index = ops.cast(ops.round(key), "int32")
    pitch_class = ops.mod(index, 12)
    return pitch_class[:, None] == pitch_class[None, :], index >= 0


def _same_track(track):
    """``(B,)`` track number (-1 = missing) -> similar ``(B, B)``, labelled ``(B,)``."""
    index = ops.cast(ops.round(track), "int32")
    return index[:, None] == index[None, :], index >= 0


def similarity_masks(labels, *, layout, dimensions=None, tolerance_bpm=TEMPO_TOLERANCE_BPM):
    """Positive and negative masks of every dimension for a batch.

    Parameters
    ----------
    labels : tensor [shape=(B, W), float]
        Packed label rows, ``W = layout.total_width``
        (:meth:`mdsim.labels.LabelLayout.encode`).
    layout : mdsim.labels.LabelLayout
        How the rows are packed.
    dimensions : sequence of str or None
        Which of ``layout.dimensions`` to return, in this order; ``None``
        (default) for all of them.
    tolerance_bpm : float
        Tempo tolerance, in BPM.

    Returns
    -------
    positive : tensor [shape=(S, B, B), bool]
        ``positive[s, a, p]``: ``a`` and ``p`` are both labelled in dimension
        ``s``, similar, and ``a != p``.
    negative : tensor [shape=(S, B, B), bool]
        ``negative[s, a, n]``: both labelled and not similar.

    Examples
    --------
    >>> from keras import ops
    >>> from mdsim.labels import LabelLayout, parse_key
    >>> tracks = [{"mood": ["sad"], "key": parse_key("C major")},
    ...           {"mood": ["sad"], "key": parse_key("C minor")},
    ...           {"mood": ["happy"], "key": None}]
    >>> layout = LabelLayout.from_records(["mood", "key"], tracks)
    >>> positive, negative = similarity_masks(layout.encode(tracks), layout=layout)
    >>> ops.convert_to_numpy(positive[0]).astype(int)     # mood: 0 and 1 share "sad"
    array([[0, 1, 0],
           [1, 0, 0],
           [0, 0, 0]])
    >>> ops.convert_to_numpy(negative[0]).astype(int)
    array([[0, 0, 1],
           [0, 0, 1],
           [1, 1, 0]])
    >>> ops.convert_to_numpy(negative[1]).astype(int)     # key: track 2 has none, so no negatives
    array([[0, 0, 0],
           [0, 0, 0],
           [0, 0, 0]])
    """
    dimensions = layout.dimensions if dimensions is None else check_dimensions(
        dimensions, allowed=layout.dimensions)
    y = ops.cast(ops.convert_to_tensor(labels), "float32")
    offsets = layout.offsets
    similar, labelled = [], []
    for dim in dimensions:
        start, stop = offsets[dim]
        if dim in TAG_DIMENSIONS:
            sim, lab = _tag_similarity(y[:, start:stop])
        elif dim == "tempo":
            sim, lab = _tempo_similarity(y[:, start], tolerance_bpm=tolerance_bpm)
        elif dim == SOUND:
            sim, lab = _same_track(y[:, start])
        else:
            sim, lab = _key_similarity(y[:, start])
        similar.append(sim)
        labelled.append(lab)
    similar = ops.stack(similar)  # (S, B, B)
    labelled = ops.stack(labelled)  # (S, B)
    both = ops.logical_and(labelled[:, :, None], labelled[:, None, :])
    items = ops.arange(ops.shape(y)[0])
    other = (items[:, None] != items[None, :])[None]
    positive = ops.logical_and(ops.logical_and(similar, both), other)
    negative = ops.logical_and(ops.logical_not(similar), both)
    return positive, negative
