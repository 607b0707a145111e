"""NT-Xent, the contrastive loss of self-supervised pretraining, and the LOEV combination.

**NT-Xent** (normalised temperature-scaled cross-entropy; Chen et al.'s SimCLR):
``N`` items seen twice, ``z1[i]`` and ``z2[i]``, are ``2N`` views. Every view
is L2-normalised; ``s(u, v) = u.v / temperature``. Each view ``u`` of item
``i`` has one positive (the other view of ``i``) and as negatives the other
``2N - 2`` views of the batch, plus the ``E`` ``hard_negatives[i]`` when given::

    loss(u) = -log( exp s(u, pos) / (exp s(u, pos) + sum over negatives v of exp s(u, v)) )

averaged over the ``2N`` views. The temperature defaults to 0.1 (SPEC.md:
"temperature 0.1, common default").

**LOEV** (Guinot et al., after Xiao et al.'s leave-one-out contrastive
learning): a batch holds, for each of ``N`` tracks, the views
``a, b, b_1 .. b_K``. ``a`` and ``b`` differ in every augmentation (each
variant augmentation ``T_k`` is drawn twice with two distinct values); ``b_k``
is ``b`` with ``T_k``'s value taken from ``a``. The subspaces of the model's
output are scored:

- ``invariant``: NT-Xent of ``(a, b)``: invariant to every augmentation;
- variant subspace ``k``: NT-Xent of ``(a, b_k)``, with the same track's views
  that differ from ``a`` in ``T_k`` (``b`` and every ``b_j``, ``j != k``) as
  hard negatives: invariant to the others, variant in ``T_k``.

This is the pairing rule of :func:`loev_loss`, tested on a hand-built batch in
``tests/test_contrastive.py``. The total is ``invariant_weight * L_invariant +
variant_weight * sum_k L_k``.
"""

from __future__ import annotations

import keras
from keras import ops

from mdsim.errors import InputError
from mdsim.metric.losses import _PooledStatistic

#: The NT-Xent temperature (SimCLR's common default; SPEC.md).
TEMPERATURE = 0.1
#: Added to the squared norm before the square root of the normalisation.
NORM_EPSILON = 1e-12
#: The invariant subspace's name; every other subspace of a LOEV model is variant in one augmentation.
INVARIANT = "invariant"


def check_temperature(temperature) -> float:
    t = float(temperature)
    if not (t > 0.0 and t < float("inf")):
        raise InputError(f"temperature must be a positive number, got {temperature!r}")
    return t


def _normalise(z):
    return z / ops.sqrt(ops.sum(ops.square(z), axis=-1, keepdims=True) + NORM_EPSILON)


def nt_xent(z1, z2, *, temperature=TEMPERATURE, hard_negatives=None):
    """Mean NT-Xent loss of ``N`` pairs of views, ``tensor [shape=(), float32]``.

    Parameters
    ----------
    z1, z2 : tensor [shape=(N, d)]
        Embeddings of the two views of each item (row ``i`` of both is item ``i``);
        normalised here.
    temperature : float
        Divides the cosine similarities (0.1 by default).
    hard_negatives : tensor [shape=(N, E, d)], optional
        More negatives of item ``i``'s two views (e.g. the same track's views
        that differ from them in the augmentation a subspace must see).

    >>> import numpy as np
    >>> z = np.eye(2, dtype="float32")                    # two items, both views identical
    >>> round(float(nt_xent(z, z, temperature=1.0)), 4)    # -log(e / (e + 1 + 1))
    0.5514
    """
    t = check_temperature(temperature)
    n = ops.shape(z1)[0]
    z = _normalise(ops.concatenate([z1, z2], axis=0))
    logits = ops.matmul(z, ops.transpose(z)) / t
    # a view is not its own negative: -inf on the diagonal (a large finite number keeps
    # the gradient finite in float16 too)
    eye = ops.eye(2 * n, dtype=logits.dtype)
    logits = logits - eye * ops.cast(1e9, logits.dtype)
    index = ops.concatenate([ops.arange(n) + n, ops.arange(n)], axis=0)
    positive = ops.take_along_axis(logits, ops.expand_dims(index, 1), axis=1)[:, 0]
    if hard_negatives is not None:
        h = _normalise(hard_negatives)
        h = ops.concatenate([h, h], axis=0)                          # (2N, E, d): both views of item i
        extra = ops.einsum("nd,ned->ne", z, ops.cast(h, z.dtype)) / t
        logits = ops.concatenate([logits, extra], axis=1)
    return ops.mean(ops.logsumexp(logits, axis=1) - positive)


def track_contrast(anchor, positive, negatives, *, temperature=TEMPERATURE):
    """Mean contrastive loss of each item against its own negatives only, ``tensor [shape=()]``.

    ``anchor``, ``positive`` ``(N, d)``; ``negatives`` ``(N, E, d)``. For item ``i``:
    ``-log(exp s(a_i, p_i) / (exp s(a_i, p_i) + sum_e exp s(a_i, n_ie)))``, and the same
    with ``p_i`` as the anchor; no other item takes part. A LOEV variant subspace trained
    with it (``variant_negatives="track"``) only has to tell apart the values of its
    augmentation, not the tracks.
    """
    t = check_temperature(temperature)
    a, p, n = _normalise(anchor), _normalise(positive), _normalise(negatives)
    pos = ops.sum(a * p, axis=-1, keepdims=True) / t
    loss = 0.0
    for u in (a, p):
        neg = ops.einsum("nd,ned->ne", u, ops.cast(n, u.dtype)) / t
        loss = loss + ops.mean(ops.logsumexp(ops.concatenate([pos, neg], axis=1), axis=1) - pos[:, 0])
    return loss / 2


#: What a variant subspace's views are contrasted with: ``"all"`` (every view of the batch, and
#: the same track's views that differ in its augmentation) or ``"track"`` (those alone).
VARIANT_NEGATIVES = ("all", "track")


def loev_view_count(n_variants: int) -> int:
    """Views per track of a LOEV batch: ``a``, ``b`` and one ``b_k`` per variant."""
    return 2 + int(n_variants)


def loev_loss(views, subspaces, *, temperature=TEMPERATURE, invariant_weight=1.0, variant_weight=1.0,
              variant_negatives="all"):
    """The LOEV loss of one batch, and each subspace's NT-Xent.

    Parameters
    ----------
    views : tensor [shape=(V, N, D)]
        The model's output for the views of ``N`` tracks, in the order
        ``a, b, b_1 .. b_K`` (``V = K + 2``).
    subspaces : list of (str, int, int)
        ``(name, start, stop)`` of each subspace in ``D``: :data:`INVARIANT` first,
        then the ``K`` variant ones in the order of ``b_1 .. b_K``. With no variant
        subspace (``V = 2``) this is SimCLR.
    temperature, invariant_weight, variant_weight : float
    variant_negatives : {"all", "track"}
        A variant subspace's negatives: every view of the batch plus the track's own views
        that differ in its augmentation (``"all"``, :func:`nt_xent` with hard negatives), or
        the latter alone (``"track"``, :func:`track_contrast`).

    Returns
    -------
    (tensor [shape=()], list of tensor [shape=()])
        The weighted total and the NT-Xent of each subspace, in ``subspaces`` order.
    """
    if variant_negatives not in VARIANT_NEGATIVES:
        raise InputError(f"variant_negatives {variant_negatives!r} is not one of {', '.join(VARIANT_NEGATIVES)}")
    if not subspaces or subspaces[0][0] != INVARIANT:
        raise InputError(f"the first subspace of a LOEV loss is {INVARIANT!r}; got "
                         f"{[s[0] for s in subspaces]}")
    k = len(subspaces) - 1
    if views.shape[0] is not None and views.shape[0] != loev_view_count(k):
        raise InputError(f"{len(subspaces)} subspaces need {loev_view_count(k)} views per track, got {views.shape[0]}")
    parts = []
    name, lo, hi = subspaces[0]
    parts.append(nt_xent(views[0, :, lo:hi], views[1, :, lo:hi], temperature=temperature))
    for j, (name, lo, hi) in enumerate(subspaces[1:]):
        # the views that differ from a in T_j: b, and every b_i but b_j
        others = [1] + [2 + i for i in range(k) if i != j]
        hard = ops.stack([views[v, :, lo:hi] for v in others], axis=1)
        if variant_negatives == "track":
            parts.append(track_contrast(views[0, :, lo:hi], views[2 + j, :, lo:hi], hard, temperature=temperature))
        else:
            parts.append(nt_xent(views[0, :, lo:hi], views[2 + j, :, lo:hi], temperature=temperature,
                                 hard_negatives=hard))
    total = invariant_weight * parts[0]
    for p in parts[1:]:
        total = total + variant_weight * p
    return total, parts


@keras.saving.register_keras_serializable(package="mdsim")
class NTXentLoss(keras.losses.Loss):
    """:func:`nt_xent` as a Keras loss: ``y_pred`` is ``(2N, d)``, the first views then the
    second ones (``z1`` stacked on ``z2``); ``y_true`` is ignored (pairs are positives by
    construction)."""

    def __init__(self, *, temperature=TEMPERATURE, name="nt_xent", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.temperature = check_temperature(temperature)

    def call(self, y_true, y_pred):
        n = ops.shape(y_pred)[0] // 2
        return nt_xent(y_pred[:n], y_pred[n:], temperature=self.temperature)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="mdsim")
class LOEVLoss(keras.losses.Loss):
    """:func:`loev_loss` as a Keras loss.

    ``y_pred`` is the embeddings of a whole LOEV batch, ``(V * N, D)`` view-major (all
    ``a`` views, then all ``b``, then each ``b_k``): what the model outputs for the
    inputs of :class:`mdsim.training.pretrain.ViewBatches`. ``y_true`` is ignored.
    :meth:`statistics` gives a metric per subspace fed by the loss.
    """

    def __init__(self, *, subspaces, temperature=TEMPERATURE, invariant_weight=1.0, variant_weight=1.0,
                 variant_negatives="all", name="loev_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.subspaces = [(str(n), int(a), int(b)) for n, a, b in subspaces]
        self.temperature = check_temperature(temperature)
        self.invariant_weight, self.variant_weight = float(invariant_weight), float(variant_weight)
        if variant_negatives not in VARIANT_NEGATIVES:
            raise InputError(f"variant_negatives {variant_negatives!r} is not one of {', '.join(VARIANT_NEGATIVES)}")
        self.variant_negatives = variant_negatives
        for name, value in (("invariant_weight", self.invariant_weight), ("variant_weight", self.variant_weight)):
            if not value >= 0.0:
                raise InputError(f"{name} must be >= 0, got {value!r}")
        self._statistics: list = []

    def call(self, y_true, y_pred):
        v = loev_view_count(len(self.subspaces) - 1)
        views = ops.reshape(y_pred, (v, -1, ops.shape(y_pred)[-1]))
        total, parts = loev_loss(views, self.subspaces, temperature=self.temperature,
                                 invariant_weight=self.invariant_weight, variant_weight=self.variant_weight,
                                 variant_negatives=self.variant_negatives)
        for statistic, part in zip(self._statistics, parts):
            statistic.record(part)
        return total

    def statistics(self) -> list:
        """A metric ``"<subspace>_nt_xent"`` per subspace, the mean of its NT-Xent since the last reset."""
        self._statistics = [HeadLoss(name=f"{n}_nt_xent") for n, _, _ in self.subspaces]
        return list(self._statistics)

    def get_config(self):
        return {**super().get_config(), "subspaces": [list(s) for s in self.subspaces],
                "temperature": self.temperature, "invariant_weight": self.invariant_weight,
                "variant_weight": self.variant_weight, "variant_negatives": self.variant_negatives}


@keras.saving.register_keras_serializable(package="mdsim")
class HeadLoss(_PooledStatistic):
    """The mean of one subspace's loss over the batches since the last reset, recorded by the
    loss (:meth:`LOEVLoss.statistics`); ``update_state`` does nothing."""

    def __init__(self, *, name, dtype=None):
        super().__init__(name=name, dtype=dtype)

    def record(self, value) -> None:
        self._accumulate(value, 1.0)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Nothing: the loss has recorded this batch already."""
