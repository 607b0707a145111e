"""The conditional (per-subspace) triplet loss, and its Keras wrappers.

Per dimension ``s``, over the triplets the miner chose::

    L_s = mean over (a, p) of max(0, d_s(a, p) - d_s(a, n*) + triplet_margin)

and the total is the mean of ``L_s`` over the dimensions that have at least
one triplet in the batch (0 when none has). The pure functions come first;
:class:`ConditionalTripletLoss` and :class:`SubspaceTripletMetric` only hold
settings and call them. :class:`LossStatistic` computes nothing: the loss
that created it (:meth:`ConditionalTripletLoss.statistics`) records its
per-dimension figures into it, so a training step mines once for the loss
and all of its metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import keras
from keras import ops

from mdsim.errors import InputError
from mdsim.labels import LabelLayout, check_dimensions
from mdsim.metric.distances import check_subspaces, subspace_cosine_distances
from mdsim.metric.masks import similarity_masks
from mdsim.metric.mining import DEFAULT_FALLBACK, MINING_MARGIN, check_fallback, mine_semihard

#: Default margin of the triplet loss (SPEC), in cosine-distance units.
TRIPLET_MARGIN = 0.1
#: What :class:`SubspaceTripletMetric` can report.
STATISTICS = ("loss", "semihard", "accuracy")


class TripletLossResult(NamedTuple):
    """The loss of a batch with its per-dimension breakdown.

    Attributes
    ----------
    loss : tensor [shape=(), float32]
        Mean of ``dimension_loss`` over dimensions with ``n_triplets > 0``.
    dimension_loss : tensor [shape=(S,), float32]
        Mean hinge over the triplets of each dimension (0 without triplets).
    n_triplets : tensor [shape=(S,), float32]
        Anchor-positive pairs that got a negative (the loss's denominators).
    n_pairs : tensor [shape=(S,), float32]
        Anchor-positive pairs whose anchor has at least one negative.
    n_semihard : tensor [shape=(S,), float32]
        Pairs whose negative is a true semi-hard one.
    n_ordered, n_all : tensor [shape=(S,), float32]
        Of every triplet of the batch (each anchor-positive pair with each negative of
        the anchor), those whose positive is the closer one, and all of them: their
        ratio is the batch's triplet accuracy in the dimension's subspace, the
        in-batch counterpart of ``mdsim evaluate``'s score.
    """

    loss: object
    dimension_loss: object
    n_triplets: object
    n_pairs: object
    n_semihard: object
    n_ordered: object = None
    n_all: object = None

    @property
    def semihard_fraction(self):
        """``n_semihard / n_pairs`` per dimension (0 without pairs), ``(S,)``."""
        return self.n_semihard / ops.maximum(self.n_pairs, 1.0)


def _count(mask):
    return ops.sum(ops.cast(mask, "float32"), axis=(1, 2))


def triplet_loss(distances, mined, *, triplet_margin=TRIPLET_MARGIN):
    """Margin triplet loss on mined triplets, per dimension and in total.

    Parameters
    ----------
    distances : tensor [shape=(S, B, B), float32]
        ``d_s(a, x)``, differentiable.
    mined : MinedTriplets
        From :func:`mine_semihard` on the same distances.
    triplet_margin : float
        The margin of the hinge, in distance units.

    Returns
    -------
    loss : tensor [shape=(), float32]
    dimension_loss : tensor [shape=(S,), float32]
    """
    to_negative = ops.take_along_axis(distances, mined.negative, axis=-1)
    hinge = ops.relu(distances - to_negative + triplet_margin)
    # A product, not ops.where, so skipped pairs add exact zeros to the gradient.
    n_triplets = _count(mined.triplet)
    dimension_loss = (ops.sum(hinge * ops.cast(mined.triplet, "float32"), axis=(1, 2))
                      / ops.maximum(n_triplets, 1.0))
    active = ops.cast(n_triplets > 0, "float32")
    loss = ops.sum(dimension_loss * active) / ops.maximum(ops.sum(active), 1.0)
    return loss, dimension_loss


def conditional_triplet_loss(labels, embeddings, *, layout, subspaces, dimensions=None,
                             triplet_margin=TRIPLET_MARGIN, mining_margin=MINING_MARGIN,
                             fallback=DEFAULT_FALLBACK) -> TripletLossResult:
    """Distances, masks, semi-hard mining and the triplet loss of one batch.

    Parameters
    ----------
    labels : tensor [shape=(B, W), float]
        Packed labels (:meth:`mdsim.labels.LabelLayout.encode`).
    embeddings : tensor [shape=(B, D), float]
        The model's output.
    layout : mdsim.labels.LabelLayout
        How ``labels`` are packed; its dimensions name the subspaces.
    subspaces : sequence of (int, int)
        Column range ``[start, stop)`` of each of ``layout.dimensions``, in
        that order.
    dimensions : sequence of str or None
        Restrict the loss to these dimensions (``None``: all).
    triplet_margin, mining_margin : float
        Hinge margin of the loss; width of the semi-hard window.
    fallback : str
        Mining fallback, one of :data:`mdsim.metric.FALLBACKS`.

    Returns
    -------
    TripletLossResult
        Per-dimension entries in the order of ``dimensions``.
    """
    subspaces = _subspaces_by_dimension(layout, subspaces)
    dimensions = layout.dimensions if dimensions is None else check_dimensions(
        dimensions, allowed=layout.dimensions)
    distances = subspace_cosine_distances(embeddings, subspaces=[subspaces[d] for d in dimensions])
    positive, negative = similarity_masks(labels, layout=layout, dimensions=dimensions)
    mined = mine_semihard(distances, positive, negative, mining_margin=mining_margin,
                          fallback=fallback)
    loss, dimension_loss = triplet_loss(distances, mined, triplet_margin=triplet_margin)
    n_ordered, n_all = triplet_order_counts(ops.stop_gradient(distances), positive, negative)
    return TripletLossResult(loss=loss, dimension_loss=dimension_loss,
                             n_triplets=_count(mined.triplet), n_pairs=_count(mined.pair),
                             n_semihard=_count(mined.semihard), n_ordered=n_ordered, n_all=n_all)


def triplet_order_counts(distances, positive, negative):
    """``(ordered, all)`` per dimension, ``(S,)`` each: of every triplet ``(a, p, n)`` of the
    batch (``positive[s, a, p]`` and ``negative[s, a, n]``), how many have ``d(a, p) < d(a, n)``,
    and how many there are.

    Without comparing every pair with every negative (``S * B**3``): per anchor, the count is
    the Mann-Whitney statistic of its negatives' distances against its positives', read from
    the ranks of the anchor's row (two sorts, ``S * B**2 * log B``). Distances tied between
    a positive and a negative are ordered either way.
    """
    distances = ops.cast(distances, "float32")
    positive = ops.cast(positive, "float32")
    negative = ops.cast(negative, "float32")
    member = positive + negative  # disjoint masks
    # the other columns sort last, so the members' ranks are among themselves
    row = distances * member + (1.0 - member) * 1e9
    rank = ops.cast(ops.argsort(ops.argsort(row, axis=-1), axis=-1), "float32") + 1.0
    n_neg = ops.sum(negative, axis=-1)
    n_pos = ops.sum(positive, axis=-1)
    # ranks of an anchor's negatives among its members, less their least possible sum: the
    # (positive, negative) pairs with the negative farther
    ordered = ops.sum(negative * rank, axis=-1) - n_neg * (n_neg + 1.0) / 2.0
    return ops.sum(ordered, axis=-1), ops.sum(n_pos * n_neg, axis=-1)


def _subspaces_by_dimension(layout, subspaces) -> dict:
    subspaces = check_subspaces(subspaces)
    if len(subspaces) != len(layout.dimensions):
        raise InputError(
            f"{len(subspaces)} subspaces for {len(layout.dimensions)} label dimensions "
            f"({', '.join(layout.dimensions)}): give one (start, stop) per dimension")
    return dict(zip(layout.dimensions, subspaces))


@dataclass(frozen=True)
class _Settings:
    """The settings a loss or metric object holds, validated once."""

    layout: LabelLayout
    subspaces: tuple
    triplet_margin: float
    mining_margin: float
    fallback: str

    def __post_init__(self):
        if not isinstance(self.layout, LabelLayout):
            raise InputError(f"layout must be a mdsim.labels.LabelLayout, not {type(self.layout).__name__}")
        subspaces = tuple(_subspaces_by_dimension(self.layout, self.subspaces).values())
        object.__setattr__(self, "subspaces", subspaces)
        check_fallback(self.fallback)

    def config(self) -> dict:
        return {"layout": self.layout.to_dict(), "subspaces": [list(b) for b in self.subspaces],
                "triplet_margin": self.triplet_margin, "mining_margin": self.mining_margin,
                "fallback": self.fallback}

    @staticmethod
    def parse_config(config: dict) -> dict:
        """A ``get_config`` dict with the layout turned back into a :class:`LabelLayout`."""
        return {**config, "layout": LabelLayout.from_dict(config["layout"])}

    def compute(self, y_true, y_pred, dimensions=None) -> TripletLossResult:
        return conditional_triplet_loss(
            y_true, y_pred, layout=self.layout, subspaces=self.subspaces, dimensions=dimensions,
            triplet_margin=self.triplet_margin, mining_margin=self.mining_margin,
            fallback=self.fallback)


@keras.saving.register_keras_serializable(package="mdsim")
class ConditionalTripletLoss(keras.losses.Loss):
    """:func:`conditional_triplet_loss` as a Keras loss.

    ``y_true`` are packed labels ``(B, W)`` float32, ``y_pred`` embeddings
    ``(B, D)``; the call returns the scalar total loss. The loss is a property
    of the whole batch, so per-sample weights are refused.
    """

    def __init__(self, *, layout, subspaces, triplet_margin=TRIPLET_MARGIN,
                 mining_margin=MINING_MARGIN, fallback=DEFAULT_FALLBACK,
                 name="conditional_triplet_loss", reduction="sum_over_batch_size", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.settings = _Settings(layout, subspaces, float(triplet_margin), float(mining_margin),
                                  fallback)
        self._statistics: list = []

    def __call__(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise InputError("ConditionalTripletLoss takes no sample_weight: the loss is a "
                             "mean over the batch's triplets, not over samples")
        return super().__call__(y_true, y_pred)

    def call(self, y_true, y_pred):
        result = self.settings.compute(y_true, y_pred)
        for statistic in self._statistics:
            statistic.record(result)
        return result.loss

    def statistics(self) -> list:
        """A :class:`LossStatistic` for every dimension and statistic, fed by this loss.

        For ``model.compile(metrics=...)`` in place of :func:`subspace_metrics`:
        same names (``"genre_loss"``, ``"genre_semihard"``, ... in the order of
        the layout's dimensions) and values, but every call of the loss records
        its per-dimension figures into them, so nothing is computed twice. Keras
        calls the loss before the metrics in ``fit`` and ``evaluate`` steps on
        every backend (the metrics' variables are in the step's state, JAX's
        stateless step included). The link is not serialised: a reloaded model
        is compiled again with a new loss and its statistics.
        """
        self._statistics = [LossStatistic(dimension=dim, statistic=statistic, layout=self.settings.layout)
                            for dim in self.settings.layout.dimensions for statistic in STATISTICS]
        return list(self._statistics)

    def get_config(self):
        return {**super().get_config(), **self.settings.config()}

    @classmethod
    def from_config(cls, config):
        return cls(**_Settings.parse_config(config))


class _PooledStatistic(keras.metrics.Metric):
    """A ratio pooled over batches: ``total / max(count, 1)`` since the last reset."""

    def __init__(self, *, name, dtype):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def _add(self, result: TripletLossResult, index: int, statistic: str) -> None:
        """Add dimension ``index`` of a batch's result: its hinge sum and triplets, or its
        semi-hard and all pairs."""
        if statistic == "loss":
            total, count = result.dimension_loss[index] * result.n_triplets[index], result.n_triplets[index]
        elif statistic == "accuracy":
            total, count = result.n_ordered[index], result.n_all[index]
        else:
            total, count = result.n_semihard[index], result.n_pairs[index]
        self._accumulate(total, count)

    def _accumulate(self, total, count) -> None:
        self.total.assign_add(ops.cast(ops.stop_gradient(total), self.total.dtype))
        self.count.assign_add(ops.cast(ops.stop_gradient(count), self.count.dtype))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)


@keras.saving.register_keras_serializable(package="mdsim")
class SubspaceTripletMetric(_PooledStatistic):
    """One dimension's triplet loss or semi-hard fraction, pooled over batches.

    ``statistic="loss"`` reports the dimension's loss averaged over all its
    triplets seen since the last reset; ``statistic="semihard"`` the fraction
    of its anchor-positive pairs that found a true semi-hard negative. Only
    that dimension's subspace is mined, so a metric costs about ``1/S`` of
    the loss. Default name: ``"{dimension}_{statistic}"``.
    """

    def __init__(self, *, dimension, statistic, layout, subspaces, triplet_margin=TRIPLET_MARGIN,
                 mining_margin=MINING_MARGIN, fallback=DEFAULT_FALLBACK, name=None, dtype=None):
        super().__init__(name=name or f"{dimension}_{statistic}", dtype=dtype)
        self.settings = _Settings(layout, subspaces, float(triplet_margin), float(mining_margin),
                                  fallback)
        (self.dimension,) = check_dimensions([dimension], allowed=layout.dimensions)
        if statistic not in STATISTICS:
            raise InputError(f"unknown statistic {statistic!r} (valid: {', '.join(STATISTICS)})")
        self.statistic = statistic

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._add(self.settings.compute(y_true, y_pred, dimensions=[self.dimension]), 0, self.statistic)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "dimension": self.dimension,
                "statistic": self.statistic, **self.settings.config()}

    @classmethod
    def from_config(cls, config):
        return cls(**_Settings.parse_config(config))


@keras.saving.register_keras_serializable(package="mdsim")
class LossStatistic(_PooledStatistic):
    """One dimension's triplet loss or semi-hard fraction, as the loss computed it.

    Made by :meth:`ConditionalTripletLoss.statistics`; pools over batches
    exactly as :class:`SubspaceTripletMetric` does (same ``result``), but its
    ``update_state`` does nothing: the loss calls :meth:`record` with the
    batch's :class:`TripletLossResult`. Default name ``"{dimension}_{statistic}"``.
    """

    def __init__(self, *, dimension, statistic, layout, name=None, dtype=None):
        super().__init__(name=name or f"{dimension}_{statistic}", dtype=dtype)
        if not isinstance(layout, LabelLayout):
            layout = LabelLayout.from_dict(layout)
        (self.dimension,) = check_dimensions([dimension], allowed=layout.dimensions)
        if statistic not in STATISTICS:
            raise InputError(f"unknown statistic {statistic!r} (valid: {', '.join(STATISTICS)})")
        self.layout, self.statistic = layout, statistic
        self._index = layout.dimensions.index(self.dimension)

    def record(self, result: TripletLossResult) -> None:
        """Add one batch's figures (a result over all of the layout's dimensions)."""
        self._add(result, self._index, self.statistic)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Nothing: the loss has recorded this batch already (:meth:`record`)."""

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "dimension": self.dimension,
                "statistic": self.statistic, "layout": self.layout.to_dict()}


def subspace_metrics(*, layout, subspaces, triplet_margin=TRIPLET_MARGIN,
                     mining_margin=MINING_MARGIN, fallback=DEFAULT_FALLBACK) -> list:
    """A loss and a semi-hard metric for every dimension of ``layout``.

    For ``model.compile(metrics=...)``; names ``"genre_loss"``,
    ``"genre_semihard"``, ... in the order of ``layout.dimensions``. Each one
    mines its own dimension again: with the loss's own
    :meth:`ConditionalTripletLoss.statistics` a step mines once.
    """
    return [SubspaceTripletMetric(dimension=dim, statistic=statistic, layout=layout,
                                  subspaces=subspaces, triplet_margin=triplet_margin,
                                  mining_margin=mining_margin, fallback=fallback)
            for dim in layout.dimensions for statistic in STATISTICS]
