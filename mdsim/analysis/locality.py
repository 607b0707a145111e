"""What an embedding's neighbourhoods are organised by: tempo, key and tag locality.

For every item, its ``k`` nearest neighbours (cosine distance) in each subspace and
in the full embedding, and how alike their labels are (after McCallum et al.):

- ``tempo``: the root mean square, over queries and their neighbours, of the tempo
  difference in octaves, folded to the nearest tempo octave (``min_j |log2(t_n /
  t_q) - j|``, ``j`` in -2..2, the octaves :mod:`mdsim.labels` counts as similar),
  reported as a ratio in percent (``100 (2 ** rms - 1)``): lower is more local.
- ``key``: precision@k of the same key; ``tonic``: of the same tonic (the key or
  its parallel, the project's key similarity).
- ``genre``, ``mood``, ``instrument``, ``era``: precision@k of sharing a tag.

Only queries labelled in a dimension count for it, and only their labelled
neighbours. Each figure comes with the same figure for ``k`` random neighbours per
query (seeded), the baseline it must beat, and its lift over it.
"""

from __future__ import annotations

import numpy as np

from mdsim.errors import InputError
from mdsim.labels import MAX_TEMPO_OCTAVE, TAG_DIMENSIONS

#: Metrics of :func:`locality`, in table order.
METRICS = ("tempo", "key", "tonic", "genre", "mood", "instrument", "era")


def nearest_neighbours(X, k: int, *, chunk: int = 2048) -> np.ndarray:
    """Indices ``(N, k)`` of each row's ``k`` nearest other rows by cosine distance.

    Brute force in chunks of ``chunk`` queries (memory ``chunk * N`` floats); ties
    broken by index. Rows of zeros are as far from everything as can be.
    """
    X = np.asarray(X, dtype=np.float32)
    n = X.shape[0]
    if not 1 <= k < n:
        raise InputError(f"k = {k} neighbours need at least {k + 1} items; there are {n}: ask for fewer")
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    U = np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)
    out = np.empty((n, k), dtype=np.int64)
    for lo in range(0, n, chunk):
        sim = U[lo:lo + chunk] @ U.T
        rows = np.arange(sim.shape[0])
        sim[rows, lo + rows] = -np.inf                     # not one's own neighbour
        part = np.argpartition(-sim, k - 1, axis=1)[:, :k]
        order = np.lexsort((part, -np.take_along_axis(sim, part, axis=1)), axis=1)
        out[lo:lo + chunk] = np.take_along_axis(part, order, axis=1)
    return out


def random_neighbours(n: int, k: int, *, seed: int = 0) -> np.ndarray:
    """``k`` distinct random other items per item, ``(n, k)``."""
    if not 1 <= k < n:
        raise InputError(f"k = {k} neighbours need at least {k + 1} items; there are {n}: ask for fewer")
    rng = np.random.default_rng(seed)
    draw = np.array([rng.choice(n - 1, size=k, replace=False) for _ in range(n)])
    return draw + (draw >= np.arange(n)[:, None])        # skip the item itself


def octave_distance(a, b) -> np.ndarray:
    """``|log2(b / a)|`` folded to the nearest tempo octave (at most 2 octaves away)."""
    r = np.log2(np.asarray(b, dtype=np.float64) / np.asarray(a, dtype=np.float64))
    j = np.clip(np.round(r), -MAX_TEMPO_OCTAVE, MAX_TEMPO_OCTAVE)
    return np.abs(r - j)


def label_locality(neighbours: np.ndarray, labels: list) -> dict:
    """The metrics of :data:`METRICS` for given neighbours of items with ``labels``
    (dicts of the :mod:`mdsim.labels` contract); ``nan`` where no query is labelled."""
    out = {}
    tempo = np.array([np.nan if lab.get("tempo") is None else float(lab["tempo"]) for lab in labels])
    key = np.array([-1 if lab.get("key") is None else int(lab["key"]) for lab in labels])
    has_t = np.isfinite(tempo)
    q = np.flatnonzero(has_t)
    nb = neighbours[q]
    ok = has_t[nb]
    d = octave_distance(tempo[q][:, None], np.where(ok, tempo[nb], 1.0))
    out["tempo"] = float(100 * (2 ** np.sqrt(np.mean(d[ok] ** 2)) - 1)) if ok.any() else float("nan")
    has_k = key >= 0
    q = np.flatnonzero(has_k)
    nb = neighbours[q]
    ok = has_k[nb]
    same = key[nb] == key[q][:, None]
    tonic = key[nb] % 12 == key[q][:, None] % 12
    out["key"] = float(same[ok].mean()) if ok.any() else float("nan")
    out["tonic"] = float(tonic[ok].mean()) if ok.any() else float("nan")
    for dim in TAG_DIMENSIONS:
        tags = [frozenset(lab.get(dim) or ()) for lab in labels]
        has = np.array([bool(t) for t in tags])
        hits, total = 0, 0
        for i in np.flatnonzero(has):
            for j in neighbours[i]:
                if has[j]:
                    total += 1
                    hits += bool(tags[i] & tags[j])
        out[dim] = hits / total if total else float("nan")
    return out


def spaces_of(embeddings) -> dict:
    """``{"full": (N, D), subspace: (N, d), ...}`` of an :class:`~mdsim.evaluation.EmbeddingSet`."""
    X = embeddings.embeddings
    out = {"full": X}
    for dim, (a, b) in zip(embeddings.dimensions, embeddings.slices):
        out[dim] = X[:, a:b]
    return out


def locality(embeddings, labels: dict, *, k: int = 10, seed: int = 0) -> dict:
    """Locality of each space of ``embeddings`` (an EmbeddingSet), against random neighbours.

    Parameters
    ----------
    embeddings : mdsim.evaluation.EmbeddingSet
    labels : dict
        ``{track_id: labels}``; tracks without an entry count as unlabelled.
    k : int
        Neighbours per query (10).
    seed : int
        Seeds the random-neighbour baseline.

    Returns
    -------
    dict
        ``{"k": k, "n": N, "random": {metric: value}, "spaces": {space: {metric: value}},
        "lift": {space: {metric: lift}}}``; lift is the precision over the random
        precision, and for tempo the random distance over the distance (> 1: more
        local than chance).
    """
    ids = embeddings.track_ids.tolist()
    labs = [labels.get(t, {}) for t in ids]
    if not any(labels.get(t) for t in ids):
        raise InputError("none of the embedded tracks has labels: give the store or manifest they came from")
    random = label_locality(random_neighbours(len(ids), k, seed=seed), labs)
    spaces, lift = {}, {}
    for name, X in spaces_of(embeddings).items():
        m = label_locality(nearest_neighbours(X, k), labs)
        spaces[name] = m
        lift[name] = {key: _lift(key, v, random[key]) for key, v in m.items()}
    return {"k": k, "n": len(ids), "random": random, "spaces": spaces, "lift": lift}


def _lift(metric: str, value: float, baseline: float) -> float:
    if not (np.isfinite(value) and np.isfinite(baseline)):
        return float("nan")
    if metric == "tempo":
        return baseline / value if value > 0 else float("inf")
    return value / baseline if baseline > 0 else float("nan")


def markdown(result: dict, title: str = "") -> str:
    """The locality table: one row per space, then the random baseline."""
    cols = [m for m in METRICS if np.isfinite(result["random"][m])]
    head = [f"### {title}", ""] if title else []
    lines = head + [f"k = {result['k']} neighbours, {result['n']} tracks; tempo: RMS octave-folded tempo "
                    "difference in % (lower is more local); others: precision@k (higher is more local); "
                    "in brackets the lift over random neighbours", "",
                    "| space | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, m in result["spaces"].items():
        cells = []
        for c in cols:
            fmt = f"{m[c]:.1f}" if c == "tempo" else f"{m[c]:.3f}"
            lift = result["lift"][name][c]
            cells.append(f"{fmt} ({lift:.2f})" if np.isfinite(lift) else f"{fmt} (-)")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| random | " + " | ".join(f"{result['random'][c]:.1f}" if c == "tempo"
                                              else f"{result['random'][c]:.3f}" for c in cols) + " |")
    return "\n".join(lines) + "\n"


def heatmap(result: dict, path, title: str = "") -> None:
    """Lift over random neighbours, space x metric, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [m for m in METRICS if np.isfinite(result["random"][m])]
    rows = list(result["lift"])
    grid = np.array([[result["lift"][r][c] for c in cols] for r in rows], dtype=float)
    fig, ax = plt.subplots(figsize=(1.0 * len(cols) + 2.5, 0.5 * len(rows) + 1.8))
    im = ax.imshow(np.log2(np.clip(grid, 1 / 8, 8)), cmap="RdBu_r", vmin=-2, vmax=2)
    ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
    ax.set_yticks(range(len(rows)), rows)
    for i in range(len(rows)):
        for j in range(len(cols)):
            ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8)
    ax.set_xlabel("neighbours alike in")
    ax.set_ylabel("space")
    ax.set_title(title or f"locality: lift over random neighbours (k = {result['k']})")
    fig.colorbar(im, ax=ax, shrink=0.8, label="log2 lift")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)
