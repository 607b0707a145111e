"""Humphrey's ternary (anchor, positive, negative) loss for a low-dimensional manifold.

For embeddings ``Z_i, Z_p, Z_n`` of an observation, a neighbour and a
non-neighbour, with Euclidean distances ``D_p = |Z_i - Z_p|`` and
``D_n = |Z_i - Z_n|``::

    L = max(0, D_p**2 - positive_margin) + max(0, negative_margin - D_n)**2

averaged over the triples of a batch. The positive term pulls a neighbour
inside a ball of squared radius ``positive_margin``; the negative term pushes
a non-neighbour out to at least ``negative_margin``. Unlike the triplet hinge
the two terms are independent, so the loss fixes an absolute scale of the map
(neighbours near 0, others at least ``negative_margin`` away), which is what a
map meant to be looked at needs.

Defaults ``positive_margin = 0``, ``negative_margin = 1``: the paper gives no
values; these are the ones of its public configuration as quoted in the
project's SPEC (``SPEC.md``, companion systems, "deep manifold"). Both are
options of :class:`TernaryLoss` and of ``mdsim manifold train``.
"""

from __future__ import annotations

import keras
from keras import ops

from mdsim.errors import InputError

#: Floor on the squared positive distance below which it costs nothing (paper: m_p).
POSITIVE_MARGIN = 0.0
#: Distance a negative must reach before it costs nothing (paper: m_n).
NEGATIVE_MARGIN = 1.0
#: Added under the square root of D_n: the gradient of sqrt is infinite at 0.
DISTANCE_EPSILON = 1e-12


def check_margins(positive_margin: float, negative_margin: float) -> tuple[float, float]:
    """Validate the two margins (both finite, ``>= 0``); returns them as floats."""
    p, n = float(positive_margin), float(negative_margin)
    for name, value in (("positive_margin", p), ("negative_margin", n)):
        if not (value >= 0.0 and value < float("inf")):
            raise InputError(f"{name} must be a finite number >= 0, got {value!r}")
    return p, n


def ternary_terms(anchor, positive, negative, *, positive_margin=POSITIVE_MARGIN,
                  negative_margin=NEGATIVE_MARGIN):
    """The loss of every triple, as its two terms.

    Parameters
    ----------
    anchor, positive, negative : tensor [shape=(B, D), float32]
        Embeddings of the observations, their neighbours and non-neighbours.
    positive_margin, negative_margin : float
        ``m_p`` (squared-distance units) and ``m_n`` (distance units).

    Returns
    -------
    pull : tensor [shape=(B,), float32]
        ``max(0, D_p**2 - m_p)``.
    push : tensor [shape=(B,), float32]
        ``max(0, m_n - D_n)**2``; its gradient stays finite when ``Z_n = Z_i``.
    """
    positive_margin, negative_margin = check_margins(positive_margin, negative_margin)
    dp2 = ops.sum(ops.square(anchor - positive), axis=-1)
    dn2 = ops.sum(ops.square(anchor - negative), axis=-1)
    dn = ops.sqrt(dn2 + DISTANCE_EPSILON)
    pull = ops.relu(dp2 - positive_margin)
    push = ops.square(ops.relu(negative_margin - dn))
    return pull, push


def ternary_loss(anchor, positive, negative, *, positive_margin=POSITIVE_MARGIN,
                 negative_margin=NEGATIVE_MARGIN):
    """Mean ternary loss of a batch of triples, ``tensor [shape=(), float32]``.

    >>> import numpy as np
    >>> a = np.zeros((1, 3), "float32"); p = np.array([[0.5, 0, 0]], "float32")
    >>> n = np.array([[0.25, 0, 0]], "float32")
    >>> round(float(ternary_loss(a, p, n)), 4)   # 0.5**2 + (1 - 0.25)**2
    0.8125
    """
    pull, push = ternary_terms(anchor, positive, negative, positive_margin=positive_margin,
                               negative_margin=negative_margin)
    return ops.mean(pull + push)


@keras.saving.register_keras_serializable(package="mdsim")
class TernaryLoss(keras.losses.Loss):
    """:func:`ternary_loss` as a Keras loss.

    ``y_pred`` is the stacked embeddings ``(B, 3, D)`` (anchor, positive,
    negative, as :func:`mdsim.model.manifold.build_ternary_model` outputs);
    ``y_true`` is ignored (neighbourhoods decide the triples, not targets).
    """

    def __init__(self, *, positive_margin=POSITIVE_MARGIN, negative_margin=NEGATIVE_MARGIN,
                 name="ternary_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.positive_margin, self.negative_margin = check_margins(positive_margin, negative_margin)

    def call(self, y_true, y_pred):
        return ternary_loss(y_pred[:, 0], y_pred[:, 1], y_pred[:, 2],
                            positive_margin=self.positive_margin, negative_margin=self.negative_margin)

    def get_config(self):
        return {**super().get_config(), "positive_margin": self.positive_margin,
                "negative_margin": self.negative_margin}
