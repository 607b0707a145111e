"""A catalog's rows in tempo order: a tempo filter becomes a few contiguous blocks.

A tempo filter keeps the tracks whose tempo lies in a union of closed BPM bands: a
range is one band, a tolerance three (half, the same and double the query's tempo).
In a copy of the block-normalised vectors sorted by tempo, each band is one
contiguous block of rows, found by binary search; a filtered query is then one
matrix-vector product per block, with no mask over the whole catalog and no gather
of scattered rows (docs/search.md, "Filtered queries and playlists").

The sorted copy holds the vectors a second time: ``N x D x 4`` bytes (1.5 GB at
10^6 x 384). :class:`mdsim.search.Catalog` builds it on the first tempo-filtered
query and drops it when tracks are added or removed.

>>> import numpy as np
>>> order = TempoOrder(np.array([120.0, np.nan, 90.0, 100.0]), np.eye(4, dtype=np.float32))
>>> order.blocks([(95, 130)])
[(1, 3)]
>>> order.rows([(1, 3)]).tolist()
[3, 0]
>>> tolerance_bands(100, 10)
[(45.0, 55.0), (90.0, 110.0), (180.0, 220.0)]
"""

from __future__ import annotations

import numpy as np

#: Half and double tempo count as the same pulse.
OCTAVES = (0.5, 1.0, 2.0)


def tolerance_bands(tempo: float, percent: float) -> list:
    """``[(low, high)]`` BPM: within ``percent`` % of ``tempo``, of half and of double it."""
    return [(tempo * m - tempo * m * percent / 100, tempo * m + tempo * m * percent / 100) for m in OCTAVES]


def intersect_bands(a, b) -> list:
    """The closed bands lying in both unions of bands ``a`` and ``b`` (empty ones dropped)."""
    out = [(max(lo1, lo2), min(hi1, hi2)) for lo1, hi1 in a for lo2, hi2 in b]
    return [(lo, hi) for lo, hi in out if lo <= hi]


def in_bands(tempo: np.ndarray, bands) -> np.ndarray:
    """Boolean mask of the tempi (BPM, NaN unknown: never kept) inside any band."""
    keep = np.zeros(len(tempo), dtype=bool)
    with np.errstate(invalid="ignore"):
        for lo, hi in bands:
            keep |= (tempo >= lo) & (tempo <= hi)
    return keep


class TempoOrder:
    """Vectors and tempi sorted by tempo, and the permutation back to catalog rows.

    Parameters
    ----------
    tempo : np.ndarray [shape=(N,), dtype=float64]
        BPM, NaN for unknown (sorted last, inside no band).
    vectors : np.ndarray [shape=(N, D), dtype=float32]
        Copied in tempo order (the memory cost of this class).
    """

    def __init__(self, tempo: np.ndarray, vectors: np.ndarray):
        #: ``order[j]`` is the catalog row of sorted row ``j``.
        self.order = np.argsort(tempo, kind="stable")
        self.tempo = np.asarray(tempo, dtype=np.float64)[self.order]
        self.vectors = np.ascontiguousarray(vectors[self.order], dtype=np.float32)

    @property
    def nbytes(self) -> int:
        return self.vectors.nbytes + self.tempo.nbytes + self.order.nbytes

    def blocks(self, bands) -> list:
        """``[(start, stop)]``: sorted rows whose tempo lies in a band, as disjoint
        ascending half-open ranges (overlapping bands merged, so no row comes twice)."""
        spans = sorted((int(np.searchsorted(self.tempo, lo, side="left")),
                        int(np.searchsorted(self.tempo, hi, side="right"))) for lo, hi in bands)
        merged = []
        for start, stop in spans:
            if start >= stop:
                continue
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], stop))
            else:
                merged.append((start, stop))
        return merged

    def rows(self, blocks) -> np.ndarray:
        """Catalog rows of the sorted ``blocks``, in sorted order (int64)."""
        if not blocks:
            return np.zeros(0, dtype=np.int64)
        return np.concatenate([self.order[a:b] for a, b in blocks]).astype(np.int64, copy=False)

    def scores(self, query: np.ndarray, blocks) -> np.ndarray:
        """Inner products of ``query`` (``(D,)`` float32) with the rows of ``blocks``, in the
        order of :meth:`rows`: one contiguous matrix-vector product per block (FAISS's
        kernel: :func:`mdsim.search.index.inner_products`)."""
        from mdsim.search.index import inner_products

        if not blocks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate([inner_products(self.vectors[a:b], query) for a, b in blocks])
