"""Semi-hard negative mining inside a batch, per dimension, in O(B²) memory.

For every anchor-positive pair ``(a, p)`` of a dimension the miner picks one
negative ``n*`` (FaceNet's semi-hard rule, as in TF-Addons'
``triplet_semihard_loss``):

1. the *nearest negative farther than the positive*, i.e. the smallest
   ``d(a, n) > d(a, p)``. When ``d(a, n*) < d(a, p) + mining_margin`` it is a
   true semi-hard negative, and among several semi-hard negatives it is the
   hardest one (ties: the lowest index);
2. otherwise the fallback (``fallback=``) decides:

   - ``"nearest-farthest"`` (default, SPEC; TF-Addons' rule): keep the nearest
     negative farther than ``d(a, p)`` when there is one, else take the
     farthest negative;
   - ``"nearest"``: keep the nearest farther negative; skip the pair when no
     negative is farther than the positive;
   - ``"farthest"``: take the farthest negative whenever there is no
     semi-hard one;
   - ``"none"``: skip the pair, so that only true semi-hard triplets count.

Distances are compared as they are, except that rounding below 0 (identical
slices can give -1e-7) counts as 0.

A brute-force search compares every ``d(a, n)`` with every ``d(a, p)``, a
``(B, B, B)`` tensor per dimension. Here the negatives of each anchor are
sorted once, each ``d(a, p)`` is located among them by binary search, and a
segment minimum maps each position back to a negative's index: ``(S, B, B)``
tensors only, and no shape depends on the data, so it traces under
``jax.jit`` and ``tf.function``. The sort is of int32 keys (the bit patterns
of non-negative float32 distances order like the distances), which XLA sorts
several times faster on CPU than float keys or key-index pairs. Flat int32
indices limit one call to ``S * B * (B + 1) < 2**31`` (B up to 18 918 for six
dimensions).
"""

from __future__ import annotations

from typing import NamedTuple

from keras import ops

from mdsim.errors import InputError

#: Default margin of the semi-hard window ``d(a,p) < d(a,n) < d(a,p) + mining_margin``.
MINING_MARGIN = 0.1
#: What to do when an anchor-positive pair has no semi-hard negative (module docstring).
FALLBACKS = ("nearest-farthest", "nearest", "farthest", "none")
DEFAULT_FALLBACK = "nearest-farthest"

# Sorts after every distance key: puts non-negatives behind the negatives.
_INT32_MAX = 2**31 - 1


class MinedTriplets(NamedTuple):
    """The miner's choice for every anchor-positive pair ``(s, a, p)``.

    Attributes
    ----------
    negative : tensor [shape=(S, B, B), int32]
        Index of the chosen negative ``n*``; meaningless where ``triplet`` is False.
    triplet : tensor [shape=(S, B, B), bool]
        A negative was chosen: the triplets the loss averages over.
    pair : tensor [shape=(S, B, B), bool]
        Anchor-positive pairs whose anchor has at least one negative (the
        denominator of the semi-hard fraction).
    semihard : tensor [shape=(S, B, B), bool]
        ``d(a,p) < d(a,n*) < d(a,p) + mining_margin``.
    """

    negative: object
    triplet: object
    pair: object
    semihard: object


def check_fallback(fallback: str) -> str:
    if fallback not in FALLBACKS:
        raise InputError(f"unknown mining fallback {fallback!r} (valid: {', '.join(FALLBACKS)})")
    return fallback


def _bitcast(x, dtype):
    """``ops.view`` between 32-bit types; the trailing axis of size 1 keeps Keras's
    TensorFlow ``view`` working when the batch size is unknown (it checks the last axis)."""
    return ops.view(ops.expand_dims(x, -1), dtype)[..., 0]


def _take_last(x, index):
    """``take_along_axis(x, index, axis=-1)`` for a rank-3 ``x``, as a flat gather
    (about 3x faster on XLA's CPU than its batched gather)."""
    n_items = ops.shape(x)[-1]
    rows = ops.reshape(ops.arange(ops.shape(x)[0] * ops.shape(x)[1], dtype="int32") * n_items,
                       (ops.shape(x)[0], ops.shape(x)[1], 1))
    return ops.take(ops.reshape(x, (-1,)), rows + index)


def _count_before(sorted_keys, keys, *, strict):
    """Binary search along the last axis, all rows at once.

    Returns how many entries of each row of ``sorted_keys`` are ``< keys``
    where ``strict``, ``<= keys`` elsewhere (int32, shape of ``keys``).
    """
    n_items = ops.shape(sorted_keys)[-1]
    low = ops.zeros_like(keys)
    high = low + n_items

    def step(low, high):
        middle = (low + high) // 2
        probe = _take_last(sorted_keys, ops.minimum(middle, n_items - 1))
        right = ops.logical_and(low < high, ops.where(strict, probe < keys, probe <= keys))
        return ops.where(right, middle + 1, low), ops.where(right, high, middle)

    if sorted_keys.shape[-1] is None:  # batch size unknown when traced: loop until settled
        low, _ = ops.while_loop(lambda low, high: ops.any(low < high), step, (low, high))
        return low
    for _ in range(int(sorted_keys.shape[-1]).bit_length()):  # unrolled, so that XLA fuses
        low, high = step(low, high)
    return low


def mine_semihard(distances, positive, negative, *, mining_margin=MINING_MARGIN,
                  fallback=DEFAULT_FALLBACK) -> MinedTriplets:
    """Choose one negative for every anchor-positive pair (module docstring).

    Parameters
    ----------
    distances : tensor [shape=(S, B, B), float]
        ``d(a, x)`` per dimension (:func:`subspace_cosine_distances`). The
        choice is not differentiated: gradients flow through the distances the
        loss gathers, not through the selection.
    positive, negative : tensor [shape=(S, B, B), bool]
        From :func:`similarity_masks`.
    mining_margin : float
        Width of the semi-hard window, in distance units.
    fallback : str
        One of :data:`FALLBACKS`.

    Returns
    -------
    MinedTriplets
    """
    fallback = check_fallback(fallback)
    negative = ops.convert_to_tensor(negative)
    positive = ops.convert_to_tensor(positive)
    keys = ops.maximum(_bitcast(ops.stop_gradient(ops.cast(distances, "float32")), "int32"), 0)
    d = _bitcast(keys, "float32")
    n_dims, n_anchors, n_items = ops.shape(keys)
    if None not in keys.shape and n_dims * n_anchors * (n_items + 1) > _INT32_MAX:
        raise InputError(f"{n_dims} x {n_anchors} x {n_items} distances are too many to mine at "
                         "once (flat int32 indices): use smaller batches or fewer dimensions per call")

    # Slot r of an anchor's row = its r-th nearest negative. ``slot`` of a negative is
    # where its group of equal distances starts; of any other item, the slot of the
    # nearest negative strictly farther than it (== the number of negatives, if none).
    sorted_keys = ops.sort(ops.where(negative, keys, _INT32_MAX), axis=-1)
    slot = _count_before(sorted_keys, keys, strict=negative)
    # Slot -> the lowest index in the group starting there (row r has B + 1 slots;
    # the last collects the non-negatives).
    rows = ops.reshape(ops.arange(n_dims * n_anchors, dtype="int32") * (n_items + 1),
                       (n_dims, n_anchors, 1))
    segment = ops.where(negative, rows + slot, rows + n_items)
    items = ops.broadcast_to(ops.arange(n_items, dtype="int32"), ops.shape(keys))
    negative_at_slot = ops.reshape(
        ops.segment_min(ops.reshape(items, (-1,)), ops.reshape(segment, (-1,)),
                        num_segments=n_dims * n_anchors * (n_items + 1)),
        (n_dims, n_anchors, n_items + 1))

    n_negatives = ops.sum(ops.cast(negative, "int32"), axis=-1, keepdims=True)  # (S, B, 1)
    has_farther = slot < n_negatives
    nearest = _take_last(negative_at_slot, slot)
    nearest = ops.where(has_farther, nearest, 0)
    farthest = ops.cast(ops.argmax(ops.where(negative, d, -1.0), axis=-1, keepdims=True), "int32")
    pair = ops.logical_and(positive, n_negatives > 0)
    semihard = ops.logical_and(
        ops.logical_and(positive, has_farther),
        _take_last(d, nearest) < d + mining_margin)

    if fallback == "nearest-farthest":
        chosen = ops.where(has_farther, nearest, farthest)
        triplet = pair
    elif fallback == "nearest":
        chosen = nearest
        triplet = ops.logical_and(positive, has_farther)
    elif fallback == "farthest":
        chosen = ops.where(semihard, nearest, farthest)
        triplet = pair
    else:
        chosen = nearest
        triplet = semihard
    return MinedTriplets(negative=chosen, triplet=triplet, pair=pair, semihard=semihard)
