"""Metric learning for subspace embeddings: distances, masks, mining, losses.

Pure ``keras.ops`` functions with small contracts, then thin Keras objects:

============================  ====================================================
:func:`subspace_cosine_distances`  embeddings ``(B, D)`` -> distances ``(S, B, B)``
:func:`similarity_masks`       packed labels ``(B, W)`` -> positive, negative ``(S, B, B)``
:func:`mine_semihard`          distances + masks -> :class:`MinedTriplets`
:func:`triplet_loss`           distances + mined triplets -> loss, per-dimension loss
:func:`conditional_triplet_loss`  all of the above -> :class:`TripletLossResult`
:class:`ConditionalTripletLoss`   the Keras loss (``y_true`` packed labels, ``y_pred`` embeddings)
:class:`SubspaceTripletMetric`    one dimension's loss or semi-hard fraction, for ``compile``
:class:`LossStatistic`            the same, recorded by the loss (``loss.statistics()``)
:func:`ternary_loss`           anchor, positive, negative ``(B, D)`` -> Humphrey's ternary loss
:func:`nt_xent`                two views ``(N, d)`` -> NT-Xent (self-supervised pretraining)
:func:`loev_loss`              views ``(2 + K, N, D)`` -> the LOEV loss and each subspace's NT-Xent
:class:`NTXentLoss`, :class:`LOEVLoss`  their Keras losses
============================  ====================================================

Exact definitions and benchmark figures: ``docs/metric.md``.
"""

from mdsim.metric.contrastive import TEMPERATURE, LOEVLoss, NTXentLoss, loev_loss, nt_xent
from mdsim.metric.distances import NORM_EPSILON, check_subspaces, subspace_cosine_distances
from mdsim.metric.losses import (
    STATISTICS,
    TRIPLET_MARGIN,
    ConditionalTripletLoss,
    LossStatistic,
    SubspaceTripletMetric,
    TripletLossResult,
    conditional_triplet_loss,
    subspace_metrics,
    triplet_loss,
)
from mdsim.metric.masks import similarity_masks
from mdsim.metric.ternary import NEGATIVE_MARGIN, POSITIVE_MARGIN, TernaryLoss, ternary_loss, ternary_terms
from mdsim.metric.mining import (
    DEFAULT_FALLBACK,
    FALLBACKS,
    MINING_MARGIN,
    MinedTriplets,
    mine_semihard,
)

__all__ = [
    "NORM_EPSILON", "check_subspaces", "subspace_cosine_distances",
    "similarity_masks",
    "DEFAULT_FALLBACK", "FALLBACKS", "MINING_MARGIN", "MinedTriplets", "mine_semihard",
    "STATISTICS", "TRIPLET_MARGIN", "TripletLossResult", "triplet_loss",
    "conditional_triplet_loss", "ConditionalTripletLoss", "SubspaceTripletMetric",
    "subspace_metrics", "LossStatistic",
    "NEGATIVE_MARGIN", "POSITIVE_MARGIN", "TernaryLoss", "ternary_loss", "ternary_terms",
    "TEMPERATURE", "nt_xent", "loev_loss", "NTXentLoss", "LOEVLoss",
]
