"""Triplet scores: validate the inputs, pure metric functions, one ``evaluate``.

A triplet is predicted correctly when the distance from the anchor to the
positive is *strictly* smaller than to the negative; equal distances count as
incorrect, so a constant embedding scores 0, not 0.5.

Two distances over a combination of subspaces (``DISTANCES``):

- ``"normalised"`` (default): each slice is L2-normalised before the slices
  are put together, then Euclidean; the squared distance over a combination
  is ``2 * sum(1 - cos)`` of its subspaces, i.e. the sum of per-subspace
  cosine distances. Every subspace counts the same whatever its norm,
  training compares slices by cosine distance, and
  :meth:`mdsim.Model.similarity` and :meth:`mdsim.Model.nearest` rank by the
  mean of the same per-subspace cosines.
- ``"paper"``: Euclidean distance on the raw concatenated slices, the protocol
  of Ribecky et al.; a subspace with larger norms counts more.

The multi-dimensional analysis scores every non-empty combination of named
subspaces. Under either distance the (squared) distance over a combination is
the sum of per-subspace terms, so those are computed once, ``(n_triplets,
n_dims)``, and every combination follows from one product with the 0/1
combination matrix.
"""

from __future__ import annotations

import itertools

import numpy as np

from mdsim.errors import InputError
from mdsim.evaluation.embeddings import EmbeddingSource, check_layout, gather
from mdsim.evaluation.triplets import Triplets

#: Schema tag of the dict :func:`evaluate` returns (docs/evaluation.md).
RESULT_SCHEMA = "mdsim.evaluation/1"
#: How many missing track ids an error message quotes.
_QUOTE = 5
#: The distances :func:`evaluate` offers, the default first (module docstring).
DISTANCES = ("normalised", "paper")
#: What the result's ``"distance"`` key says for each of them.
_DISTANCE_NAMES = {"normalised": "normalised-euclidean", "paper": "euclidean"}
#: Norms (and products of norms) are floored at this: a zero slice stays zero, cosine 0.
_NORM_FLOOR = 1e-12


# --------------------------------------------------------------------------------------
# Pure metrics


def combinations(dimensions) -> list[tuple[str, ...]]:
    """Every non-empty combination of ``dimensions``: by size, then in the given order.

    ``2**k - 1`` of them for ``k`` dimensions (63 for six).

    >>> combinations(["mood", "tempo", "key"])
    [('mood',), ('tempo',), ('key',), ('mood', 'tempo'), ('mood', 'key'), ('tempo', 'key'), ('mood', 'tempo', 'key')]
    >>> len(combinations(["genre", "mood", "instrument", "era", "tempo", "key"]))
    63
    """
    dimensions = tuple(dimensions)
    return [c for size in range(1, len(dimensions) + 1) for c in itertools.combinations(dimensions, size)]


def combination_matrix(n_dims: int) -> np.ndarray:
    """``float64 [shape=(2**n_dims - 1, n_dims)]``, row c is 1 on the subspaces of combination c.

    Rows are in the order of :func:`combinations`.
    """
    rows = combinations(range(n_dims))
    matrix = np.zeros((len(rows), n_dims))
    for i, c in enumerate(rows):
        matrix[i, list(c)] = 1.0
    return matrix


def subspace_sq_distances(x, y, slices) -> np.ndarray:
    """Squared Euclidean distance between rows of ``x`` and ``y`` within each slice.

    Parameters
    ----------
    x, y : np.ndarray [shape=(n, D)]
    slices : sequence of (start, stop)

    Returns
    -------
    np.ndarray [shape=(n, len(slices)), dtype=float64]
    """
    sq = (np.asarray(x, dtype=np.float64) - np.asarray(y, dtype=np.float64)) ** 2
    return np.stack([sq[:, a:b].sum(axis=1) for a, b in slices], axis=1)


def cosine_similarity(x, y) -> np.ndarray:
    """Cosine similarity of ``x`` and ``y`` along the last axis (broadcast), float64.

    A zero vector has similarity 0 with anything (its norm is floored at
    1e-12), so it is neither similar nor opposite.

    >>> cosine_similarity([1.0, 0.0], [[2.0, 0.0], [0.0, 3.0], [0.0, 0.0]]).tolist()
    [1.0, 0.0, 0.0]
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    norms = np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1)
    return (x * y).sum(axis=-1) / np.maximum(norms, _NORM_FLOOR)


def _normalised_sq_distances(x, y, slices) -> np.ndarray:
    """Squared Euclidean distance between L2-normalised slices, ``(n, len(slices))`` float64.

    ``|x/|x| - y/|y||**2 = 2 (1 - cos)`` for non-zero slices; a zero slice stays
    zero, so identical items are always at distance 0.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)

    def unit(v):
        return v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), _NORM_FLOOR)

    return np.stack([((unit(x[:, a:b]) - unit(y[:, a:b])) ** 2).sum(axis=1) for a, b in slices], axis=1)


def subspace_distances(x, y, slices, *, distance: str = DISTANCES[0]) -> np.ndarray:
    """Per-subspace terms of ``distance`` (see :data:`DISTANCES`), ``(n, len(slices))`` float64:
    squared Euclidean distances between the slices, L2-normalised first for ``"normalised"``
    (``2 (1 - cos)``), raw for ``"paper"``. Their sum over a combination is the squared
    distance of the combination."""
    if distance == "normalised":
        return _normalised_sq_distances(x, y, slices)
    if distance == "paper":
        return subspace_sq_distances(x, y, slices)
    raise InputError(f"distance is {distance!r}, expected one of {', '.join(DISTANCES)}")


def triplet_correct(anchor, positive, negative) -> np.ndarray:
    """``bool [shape=(n,)]``: ``d(anchor, positive) < d(anchor, negative)`` over the full vectors.

    Inputs are ``(n, D)``; distances are Euclidean; ties are incorrect.
    """
    a = np.asarray(anchor, dtype=np.float64)
    d_pos = ((a - positive) ** 2).sum(axis=1)
    d_neg = ((a - negative) ** 2).sum(axis=1)
    return d_pos < d_neg


def combination_correct(anchor, positive, negative, slices, matrix, *,
                        distance: str = DISTANCES[0]) -> np.ndarray:
    """``bool [shape=(n, n_combinations)]``: correctness of each triplet in each combination.

    ``matrix`` is :func:`combination_matrix` over the ``slices``. The margin
    ``d(a, n)**2 - d(a, p)**2`` of a combination is the sum of per-subspace
    margins (:func:`subspace_distances`); the triplet is correct where it is
    strictly positive.
    """
    margin = (subspace_distances(anchor, negative, slices, distance=distance)
              - subspace_distances(anchor, positive, slices, distance=distance))
    return (margin @ np.asarray(matrix).T) > 0


def bootstrap_ci(correct, *, n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0):
    """Percentile bootstrap interval of the mean of each column of ``correct``.

    Triplets (rows) are resampled with replacement, the same resamples for
    every column, so intervals of different combinations are paired.

    Parameters
    ----------
    correct : np.ndarray [shape=(n, m)], bool or 0/1
    n_resamples : int
    confidence : float
        E.g. 0.95 for the 2.5 % and 97.5 % percentiles.
    seed : int

    Returns
    -------
    low, high : np.ndarray [shape=(m,), dtype=float64]
    """
    correct = np.asarray(correct, dtype=np.float64)
    n = correct.shape[0]
    rng = np.random.default_rng(seed)
    # counts[r, i] = how often triplet i is drawn in resample r: the same
    # distribution as drawing n indices, without an (r, n, m) array.
    counts = rng.multinomial(n, np.full(n, 1.0 / n), size=n_resamples).astype(np.float64)
    means = counts @ correct / n
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail], axis=0)
    return low, high


def competition_rank(scores) -> np.ndarray:
    """Ranks by descending score, equal scores sharing the best rank ("1224" ranking), int64."""
    scores = np.asarray(scores)
    return (scores[None, :] > scores[:, None]).sum(axis=1) + 1


# --------------------------------------------------------------------------------------
# Validate and evaluate


def validate(triplets: Triplets, source: EmbeddingSource, *, strict: bool = False):
    """Keep the triplets whose three tracks the source has.

    Returns
    -------
    kept : Triplets
    missing : list of str
        Sorted ids of the tracks referred to but not in ``source.track_ids``.

    Raises
    ------
    InputError
        With ``strict=True`` when any track is missing (quoting a few and the
        count), and always when no triplet is left (saying whether the
        selection kept none or the tracks are missing).
    """
    if not isinstance(triplets, Triplets):
        raise InputError(f"expected Triplets (from load_triplets or select_triplets), got {type(triplets).__name__}")
    if len(triplets) == 0:
        sel = triplets.selection
        if sel is None:
            raise InputError("no triplets to score: the Triplets given are empty")
        raise InputError(f"no triplets to score: {sel.source or 'the triplet file'} has {sel.n_read} row(s) and "
                         f"none was kept ({sel.n_dropped_tie} tie(s), {sel.n_dropped_low_agreement} below "
                         f"agreement {sel.min_agreement:g}); lower the minimum agreement (--min-agreement) "
                         "or check the votes")
    available = set(source.track_ids)
    missing = sorted(t for t in triplets.track_ids() if t not in available)
    if missing and strict:
        raise InputError(f"{len(missing)} track(s) of the triplets have no embedding, e.g. "
                         f"{', '.join(missing[:_QUOTE])}; embed them, or drop strict to score the rest")
    gone = set(missing)
    keep = np.array([not ({a, p, q} & gone) for a, p, q in zip(triplets.anchor, triplets.positive, triplets.negative)],
                    dtype=bool)
    if not keep.any():
        raise InputError(f"none of the {len(triplets)} triplets has all three tracks embedded "
                         f"({len(missing)} track(s) missing, e.g. {', '.join(missing[:_QUOTE])})")
    return triplets.take(keep), missing


def evaluate(triplets: Triplets, source: EmbeddingSource, *, mode: str = "track", distance: str = DISTANCES[0],
             model_name: str | None = None, strict: bool = False, n_bootstrap: int = 1000,
             confidence: float = 0.95, seed: int = 0) -> dict:
    """Score embeddings on triplets: the full embedding and every combination of subspaces.

    Parameters
    ----------
    triplets : Triplets
        From :func:`~mdsim.evaluation.load_triplets` (its selection counts go
        into the result) or built by hand.
    source : EmbeddingSource
        An :class:`~mdsim.evaluation.EmbeddingSet` (track mode) or
        :class:`~mdsim.evaluation.ClipEmbeddings` (clip mode), or anything
        with the same ``get`` and attributes. Without named subspaces only
        the full embedding is scored.
    mode : {"track", "clip"}
        Track mode asks ``source.get(track_id)``; clip mode
        ``source.get(track_id, start_seconds)`` with each triplet's start times.
    distance : {"normalised", "paper"}
        ``"normalised"``: Euclidean distance after L2-normalising each slice,
        i.e. the sum of per-subspace cosine distances, what training
        optimises and ``Model.similarity`` ranks by; the full embedding is
        the combination of all named subspaces (the whole vector when there
        are none). ``"paper"``:
        Euclidean distance on the raw slices (full: the whole vector), the
        protocol of Ribecky et al., for comparing with the paper's figures.
    model_name : str, optional
        Default: ``source.name``, else ``"embeddings"``.
    strict : bool
        Fail when a track is missing instead of scoring the rest.
    n_bootstrap : int
        Bootstrap resamples for the intervals; 0 gives no intervals (null).
    confidence : float
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    dict
        Stable keys, JSON-serialisable; the schema is in docs/evaluation.md.

    Examples
    --------
    Three tracks with a 4-d embedding, ``mood`` in columns 0-1 and ``tempo`` in
    2-3; the one triplet is right by mood and a tie (so wrong) by tempo:

    >>> from mdsim.evaluation import EmbeddingSet, Triplets
    >>> source = EmbeddingSet(["a", "b", "c"],
    ...                       [[1, 0, 0.5, 0], [1, 0.2, 0, 0], [0, 1, 0, 0]],
    ...                       dimensions=("mood", "tempo"))
    >>> result = evaluate(Triplets(anchor=["a"], positive=["b"], negative=["c"]), source,
    ...                   n_bootstrap=0)
    >>> result["full"]["score"], result["triplets"]["n_scored"]
    (1.0, 1)
    >>> [(c["dims"], c["score"], c["rank"]) for c in result["combinations"]]
    [(['mood'], 1.0, 1), (['mood', 'tempo'], 1.0, 1), (['tempo'], 0.0, 3)]
    """
    if mode not in ("track", "clip"):
        raise InputError(f"mode is {mode!r}, expected 'track' or 'clip'")
    if distance not in DISTANCES:
        raise InputError(f"distance is {distance!r}, expected one of {', '.join(DISTANCES)}")
    if int(n_bootstrap) != n_bootstrap or n_bootstrap < 0:
        raise InputError(f"n_bootstrap is {n_bootstrap}, expected a whole number >= 0")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence is {confidence}, expected a fraction such as 0.95")
    kept, missing = validate(triplets, source, strict=strict)

    def embed(ids, starts):
        return gather(source, ids, starts if mode == "clip" else None)

    anchor = embed(kept.anchor, kept.anchor_start)
    positive = embed(kept.positive, kept.positive_start)
    negative = embed(kept.negative, kept.negative_start)
    if not anchor.shape[1] == positive.shape[1] == negative.shape[1]:
        raise InputError("anchor, positive and negative embeddings differ in size")
    dims, slices = check_layout(source.dimensions, source.slices, anchor.shape[1])
    combos = combinations(dims)

    if distance == "paper":
        correct = triplet_correct(anchor, positive, negative)[:, None]
    else:  # all subspaces together, or the whole vector as one
        every = slices or ((0, anchor.shape[1]),)
        correct = combination_correct(anchor, positive, negative, every, np.ones((1, len(every))),
                                      distance=distance)
    if dims:
        per_combo = combination_correct(anchor, positive, negative, slices, combination_matrix(len(dims)),
                                        distance=distance)
        correct = np.concatenate([correct, per_combo], axis=1)
    scores = correct.mean(axis=0)
    if n_bootstrap:
        low, high = bootstrap_ci(correct, n_resamples=int(n_bootstrap), confidence=confidence, seed=seed)
    else:
        low = high = [None] * len(scores)
    n_correct = correct.sum(axis=0)

    def entry(i):
        return {"score": float(scores[i]), "ci_low": _float(low[i]), "ci_high": _float(high[i]),
                "n_correct": int(n_correct[i])}

    ranks = competition_rank(scores[1:])
    order = sorted(range(len(combos)), key=lambda c: (ranks[c], len(combos[c]), c))
    selection = kept.selection.to_dict() if kept.selection is not None else {
        "source": None, "min_agreement": None, "n_read": len(triplets), "n_kept": len(triplets),
        "n_dropped_tie": 0, "n_dropped_low_agreement": 0}
    return {
        "schema": RESULT_SCHEMA,
        "model": model_name or getattr(source, "name", None) or "embeddings",
        "mode": mode,
        "distance": _DISTANCE_NAMES[distance],
        "ties": "incorrect",
        "triplets": {**selection, "n_dropped_missing": len(triplets) - len(kept), "n_scored": len(kept)},
        "missing_tracks": missing,
        "dimensions": list(dims),
        "slices": [list(s) for s in slices],
        "bootstrap": {"method": "percentile", "n_resamples": int(n_bootstrap), "confidence": float(confidence),
                      "seed": int(seed)},
        "full": entry(0),
        "combinations": [{"dims": list(combos[c]), **entry(c + 1), "rank": int(ranks[c])} for c in order],
    }


def _float(x):
    return None if x is None else float(x)
