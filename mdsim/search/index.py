"""The FAISS side of a catalog: the only module of mdsim that imports ``faiss``.

Every index here is an **inner-product** index over float32 rows. The catalog
(:mod:`mdsim.search.catalog`) stores block-normalised vectors and scales the
query's blocks by the weights, so an inner product is the weighted sum of
per-subspace cosines; this module knows nothing of subspaces.

Two kinds:

- ``"flat"`` (``IndexFlatIP``): exact, rows kept in insertion order; adding
  and removing rows need no rebuild.
- ``"hnsw"`` (``IndexHNSWFlat``): approximate graph search for large catalogs.
  Adding rows extends the graph; removing rows rebuilds it (FAISS cannot
  delete from an HNSW graph).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import faiss
import numpy as np

from mdsim.errors import InputError

KINDS = ("flat", "hnsw")

#: FAISS computes flat distances with BLAS when (queries x dimensions) reaches this, and with
#: its own one-query-at-a-time kernels below it. faiss-cpu 1.15.1 ships 128,000: at 384-d a
#: batch of 100 queries stays on the slow path (7.9 ms a query over 10^5 items, one thread,
#: against 1.0-2.1 ms through BLAS), while BLAS for a single query is 4x slower than the
#: kernels (27 against 6.7 ms). 2,048 uses BLAS from about 6 queries at 384-d. Only speed
#: depends on it; the results are the same exact neighbours (docs/search.md, "Benchmark").
BLAS_THRESHOLD = 2048
faiss.cvar.distance_compute_blas_threshold = BLAS_THRESHOLD


@dataclass(frozen=True)
class IndexSpec:
    """How to build an index.

    ``hnsw_m`` is the graph degree (FAISS's ``M``), ``ef_construction`` the
    candidate list while building and ``ef_search`` while searching (larger:
    better recall, slower). Ignored for ``"flat"``.
    """

    kind: str = "flat"
    hnsw_m: int = 32
    ef_construction: int = 80
    ef_search: int = 128

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InputError(f"unknown index kind {self.kind!r} (valid: {', '.join(KINDS)})")
        for name in ("hnsw_m", "ef_construction", "ef_search"):
            if int(getattr(self, name)) < 1:
                raise InputError(f"{name} must be 1 or more, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return asdict(self)


def build(spec: IndexSpec, vectors: np.ndarray):
    """A new index of ``spec.kind`` holding ``vectors`` (float32 ``(N, D)``) as rows 0..N-1."""
    d = vectors.shape[1]
    if spec.kind == "flat":
        index = faiss.IndexFlatIP(d)
    else:
        index = faiss.IndexHNSWFlat(d, int(spec.hnsw_m), faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = int(spec.ef_construction)
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def rows(index) -> np.ndarray:
    """The stored vectors, ``(N, D)`` float32, as a **view** into FAISS's memory
    (no copy; invalid after the index changes, so take it again then)."""
    flat = index if isinstance(index, faiss.IndexFlat) else faiss.downcast_index(index.storage)
    n, d = flat.ntotal, flat.d
    if n == 0:
        return np.zeros((0, d), np.float32)
    return faiss.rev_swig_ptr(flat.get_xb(), n * d).reshape(n, d)


def add(index, vectors: np.ndarray) -> None:
    """Append rows (ids continue from ``index.ntotal``)."""
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))


def remove(spec: IndexSpec, index, positions: np.ndarray):
    """Remove rows at ``positions``; later rows move up, order kept. Returns the index
    (the same one for flat, a rebuilt one for HNSW)."""
    positions = np.asarray(positions, dtype=np.int64)
    if spec.kind == "flat":
        index.remove_ids(faiss.IDSelectorBatch(positions))
        return index
    keep = np.ones(index.ntotal, dtype=bool)
    keep[positions] = False
    return build(spec, rows(index)[keep].copy())


def search(spec: IndexSpec, index, queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None):
    """The ``k`` largest inner products per query row.

    Parameters
    ----------
    queries : np.ndarray [shape=(n, D), dtype=float32]
    allowed : np.ndarray [shape=(N,), dtype=bool], optional
        Rows that may be returned (FAISS's ID selector: skipped rows cost
        nothing in flat search and are never returned by HNSW).

    Returns
    -------
    (scores, positions) : float32 and int64 ``(n, k)``; missing results
    (fewer than ``k`` allowed rows) have position -1.
    """
    params = None
    bitmap = None
    if allowed is not None:
        bitmap = np.packbits(allowed, bitorder="little")
        selector = faiss.IDSelectorBitmap(len(allowed), faiss.swig_ptr(bitmap))
    if spec.kind == "hnsw":
        params = faiss.SearchParametersHNSW(efSearch=max(int(spec.ef_search), k))
        if allowed is not None:
            params.sel = selector
    elif allowed is not None:
        params = faiss.SearchParameters(sel=selector)
    scores, positions = index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)
    del bitmap  # kept alive until the search is done: the selector points into it
    return scores, positions


def inner_products(rows: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``rows @ query``, float32 ``(m,)``, for float32 ``(m, D)`` rows and a ``(D,)`` query, with
    FAISS's kernel on one thread: over 50,000 x 384 rows, 8.2 ms against 9.4 for NumPy's BLAS
    product, timed in turn at load average 7 on the two-core development machine."""
    rows = np.ascontiguousarray(rows, dtype=np.float32)
    query = np.ascontiguousarray(query, dtype=np.float32)
    if rows.ndim != 2 or query.shape != (rows.shape[1],):
        raise InputError(f"inner products of rows {rows.shape} with a query {query.shape}: widths differ")
    out = np.empty(len(rows), dtype=np.float32)
    if len(rows):
        faiss.fvec_inner_products_ny(faiss.swig_ptr(out), faiss.swig_ptr(query), faiss.swig_ptr(rows),
                                     rows.shape[1], len(rows))
    return out


def write(index, path) -> None:
    faiss.write_index(index, str(path))


def read(path):
    return faiss.read_index(str(path))


def set_threads(n: int) -> None:
    """Threads FAISS (OpenMP) may use for a batch of queries."""
    faiss.omp_set_num_threads(int(n))
