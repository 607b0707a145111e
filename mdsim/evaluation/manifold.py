"""Scores of a low-dimensional map of notes, as in Humphrey's evaluation.

Pure functions of point coordinates and labels (NumPy, scikit-learn):

* :func:`knn_accuracy`: classify each held-out note by the majority label of
  its ``k`` nearest training notes in the map (``k = 5``);
* :func:`precision_at_k`: ranked retrieval, the fraction of a held-out note's
  ``k`` nearest training notes that share its label (``k = 10``);
* :func:`analogies`: ``b - a + c`` where ``b`` is ``a`` an octave up; the
  nearest other note should be ``c``'s instrument an octave above ``c``;
* the baselines the learned map is compared with: :func:`pca_map` (PCA to
  3-D of the mean constant-Q frames, fitted on the training notes) and
  :func:`tsne_map` (3-D t-SNE of the same vectors; t-SNE has no mapping for
  new points, so it embeds training and held-out notes together, which can
  only help it).

A label of ``""`` (instrument) or ``-1`` (pitch) is missing: such notes are
left out of that label's scores.
"""

from __future__ import annotations

import numpy as np

from mdsim.errors import InputError

#: Neighbours of the k-NN classifier.
KNN_K = 5
#: Depth of ranked retrieval.
PRECISION_K = 10
#: Semitones of the analogy's interval (an octave).
ANALOGY_INTERVAL = 12


def _labelled(labels) -> np.ndarray:
    labels = np.asarray(labels)
    return labels >= 0 if labels.dtype.kind in "iu" else np.array([str(v) != "" for v in labels])


def knn_accuracy(train_x, train_y, test_x, test_y, *, k: int = KNN_K) -> float:
    """Fraction of labelled held-out notes whose k-NN vote (Euclidean) is their label."""
    from sklearn.neighbors import KNeighborsClassifier

    tr, te = _labelled(train_y), _labelled(test_y)
    if tr.sum() < k or te.sum() == 0:
        raise InputError(f"k-NN needs at least {k} labelled training notes and 1 labelled held-out note "
                         f"(have {int(tr.sum())} and {int(te.sum())})")
    clf = KNeighborsClassifier(n_neighbors=k).fit(np.asarray(train_x)[tr], np.asarray(train_y)[tr])
    return float(np.mean(clf.predict(np.asarray(test_x)[te]) == np.asarray(test_y)[te]))


def precision_at_k(train_x, train_y, test_x, test_y, *, k: int = PRECISION_K) -> float:
    """Mean over labelled held-out notes of the fraction of their ``k`` nearest training notes sharing the label."""
    tr, te = _labelled(train_y), _labelled(test_y)
    X, Y = np.asarray(train_x, np.float64)[tr], np.asarray(train_y)[tr]
    Q, L = np.asarray(test_x, np.float64)[te], np.asarray(test_y)[te]
    d = ((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    nearest = np.argsort(d, axis=1, kind="stable")[:, :k]
    return float(np.mean(Y[nearest] == L[:, None]))


def chance_accuracy(train_y, test_y) -> float:
    """Accuracy of always answering the most common training label (the floor a map must beat)."""
    tr, te = _labelled(train_y), _labelled(test_y)
    values, counts = np.unique(np.asarray(train_y)[tr], return_counts=True)
    return float(np.mean(np.asarray(test_y)[te] == values[np.argmax(counts)]))


def pca_map(train_inputs, test_inputs, *, dims: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """PCA fitted on the training vectors; ``(train, test)`` coordinates ``(N, dims)``."""
    from sklearn.decomposition import PCA

    pca = PCA(n_components=dims, random_state=0).fit(train_inputs)
    return pca.transform(train_inputs), pca.transform(test_inputs)


def tsne_map(inputs, *, dims: int = 3, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """t-SNE of all notes together, ``(N, dims)`` (Barnes-Hut; PCA initialisation)."""
    from sklearn.manifold import TSNE

    perplexity = min(perplexity, (len(inputs) - 1) / 3)
    return TSNE(n_components=dims, perplexity=perplexity, init="pca", random_state=seed).fit_transform(
        np.asarray(inputs, np.float64))


def analogies(z, instrument, pitch, *, n: int = 500, seed: int = 0, interval: int = ANALOGY_INTERVAL) -> dict:
    """Octave analogies ``z[b] - z[a] + z[c]``: is the nearest other note ``c``'s instrument at ``c``'s pitch + 12?

    ``a`` and ``b`` are notes of one instrument ``interval`` semitones apart;
    ``c`` is a note of another instrument whose instrument has a note
    ``interval`` above it (so the answer exists). The nearest note is searched
    among all notes but ``a``, ``b`` and ``c``.

    Returns
    -------
    dict
        ``{"queries", "instrument", "pitch", "both"}``: the number of queries and
        the fraction whose nearest note has the expected instrument, pitch, both
        (NaN when no note has one of its instrument ``interval`` above it).
    """
    z = np.asarray(z, np.float64)
    instrument = np.asarray(instrument, dtype=object)
    pitch = np.asarray(pitch)
    have = {(i, int(p)) for i, p in zip(instrument, pitch) if i != "" and p >= 0}
    up = [i for i in range(len(z)) if instrument[i] != "" and pitch[i] >= 0
          and (instrument[i], int(pitch[i]) + interval) in have]
    if not up:  # e.g. a library spanning less than an octave: nothing to ask
        return {"queries": 0, "instrument": float("nan"), "pitch": float("nan"), "both": float("nan")}
    by_label: dict = {}
    for i in range(len(z)):
        by_label.setdefault((instrument[i], int(pitch[i])), []).append(i)
    rng = np.random.default_rng(seed)
    hits = np.zeros(3)
    count = 0
    for _ in range(n):
        a = int(rng.choice(up))
        b = int(rng.choice(by_label[(instrument[a], int(pitch[a]) + interval)]))
        others = [i for i in up if instrument[i] != instrument[a]]
        if not others:
            continue
        c = int(rng.choice(others))
        q = z[b] - z[a] + z[c]
        d = ((z - q) ** 2).sum(axis=1)
        d[[a, b, c]] = np.inf
        nearest = int(np.argmin(d))
        inst_ok = instrument[nearest] == instrument[c]
        pitch_ok = int(pitch[nearest]) == int(pitch[c]) + interval
        hits += (inst_ok, pitch_ok, inst_ok and pitch_ok)
        count += 1
    rates = hits / max(count, 1)
    return {"queries": count, "instrument": float(rates[0]), "pitch": float(rates[1]), "both": float(rates[2])}


def map_scores(train_x, test_x, train_labels: dict, test_labels: dict, *, k: int = KNN_K,
               precision_k: int = PRECISION_K) -> dict:
    """k-NN accuracy and precision@k of one map for each label: ``{label: {"knn", "precision"}}``."""
    return {label: {"knn": knn_accuracy(train_x, train_labels[label], test_x, test_labels[label], k=k),
                    "precision": precision_at_k(train_x, train_labels[label], test_x, test_labels[label],
                                                k=precision_k)}
            for label in train_labels}
