"""Neighbourhoods of a sound library (Humphrey): who is a positive, who a negative.

Each definition is data (:data:`NEIGHBOURHOODS`): the labels that must agree,
an optional pitch tolerance, or a number of nearest neighbours in the input
space. A definition turns the labels of N notes into two disjoint ``(N, N)``
boolean masks (the paper's contrastive partition Gamma_k and its complement);
:func:`sample_triples` then draws (anchor, positive, negative) index triples
from them.

==================  ======================================================
name                ``j`` is a positive of ``i`` when
==================  ======================================================
instrument          same instrument
pitch               same pitch (MIDI number)
instrument+pitch    same instrument and same pitch
instrument+pitch2   same instrument and pitches at most 2 semitones apart
knn                 ``j`` is one of the ``k`` nearest notes of ``i`` in the
                    input space (Euclidean, mean constant-Q frame; k = 5)
==================  ======================================================

Every other labelled note is a negative. A note missing a label a definition
needs is neither positive nor negative of anyone (it takes no part); the
diagonal is never either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mdsim.errors import InputError


@dataclass(frozen=True)
class Neighbourhood:
    """One neighbourhood definition.

    Attributes
    ----------
    name : str
    same : tuple of str
        Labels (``"instrument"``, ``"pitch"``) that must be equal.
    pitch_within : int or None
        Pitches may differ by up to this many semitones (instead of being equal).
    input_neighbours : int or None
        ``k`` of the input-space nearest-neighbour rule (no labels needed).
    """

    name: str
    same: tuple = ()
    pitch_within: int | None = None
    input_neighbours: int | None = None

    @property
    def labels(self) -> tuple:
        """The labels this definition reads."""
        return self.same + (("pitch",) if self.pitch_within is not None else ())

    def masks(self, *, instrument=None, pitch=None, inputs=None) -> tuple[np.ndarray, np.ndarray]:
        """``(positive, negative)``, boolean ``(N, N)``, disjoint, empty diagonal.

        Parameters
        ----------
        instrument : sequence of str, optional
            One instrument per note (``""`` or ``None``: unlabelled).
        pitch : sequence of int, optional
            One MIDI number per note (``None`` or negative: unlabelled).
        inputs : np.ndarray [shape=(N, F)], optional
            One input-space vector per note (the ``knn`` rule).
        """
        if self.input_neighbours is not None:
            if inputs is None:
                raise InputError(f"neighbourhood {self.name!r} needs the notes' input vectors")
            return knn_masks(np.asarray(inputs, dtype=np.float64), k=self.input_neighbours)
        given = {"instrument": instrument, "pitch": pitch}
        n = None
        labelled = None
        positive = None
        for label in self.labels:
            values = given[label]
            if values is None:
                raise InputError(f"neighbourhood {self.name!r} needs the notes' {label} labels")
            if label == "pitch":
                v = np.array([-1 if p is None else int(p) for p in values])
                has = v >= 0
            else:
                v = np.array(["" if s is None else str(s) for s in values], dtype=object)
                has = v != ""
            n = len(v) if n is None else n
            if len(v) != n:
                raise InputError(f"{len(v)} {label} labels for {n} notes")
            if label == "pitch" and self.pitch_within is not None:
                agree = np.abs(v[:, None] - v[None, :]) <= self.pitch_within
            else:
                agree = v[:, None] == v[None, :]
            both = has[:, None] & has[None, :]
            labelled = both if labelled is None else labelled & both
            positive = agree if positive is None else positive & agree
        off_diagonal = ~np.eye(n, dtype=bool)
        return positive & labelled & off_diagonal, ~positive & labelled & off_diagonal


def knn_masks(inputs: np.ndarray, *, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Positives: each note's ``k`` nearest other notes (Euclidean); negatives: all others.

    Not symmetric: ``j`` may be among ``i``'s neighbours but not ``i`` among ``j``'s.
    Ties are broken by index (a stable sort).
    """
    n = len(inputs)
    if not 1 <= k < n:
        raise InputError(f"knn neighbourhood: k = {k} needs at least {k + 1} notes and k >= 1 (have {n})")
    sq = np.sum(inputs ** 2, axis=1)
    d = sq[:, None] + sq[None, :] - 2.0 * inputs @ inputs.T
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    positive = np.zeros((n, n), dtype=bool)
    positive[np.arange(n)[:, None], order] = True
    negative = ~positive & ~np.eye(n, dtype=bool)
    return positive, negative


#: The paper's five definitions, by name (docs/manifold.md).
NEIGHBOURHOODS = {
    nb.name: nb for nb in (
        Neighbourhood("instrument", same=("instrument",)),
        Neighbourhood("pitch", same=("pitch",)),
        Neighbourhood("instrument+pitch", same=("instrument", "pitch")),
        Neighbourhood("instrument+pitch2", same=("instrument",), pitch_within=2),
        Neighbourhood("knn", input_neighbours=5),
    )
}


def get_neighbourhood(name: str) -> Neighbourhood:
    """The definition called ``name``; an error lists the valid ones."""
    try:
        return NEIGHBOURHOODS[name]
    except KeyError:
        raise InputError(f"unknown neighbourhood {name!r} (valid: {', '.join(NEIGHBOURHOODS)})") from None


def sample_triples(positive: np.ndarray, negative: np.ndarray, n: int, rng) -> np.ndarray:
    """``n`` (anchor, positive, negative) index triples, ``int64 [shape=(n, 3)]``.

    Anchors are drawn uniformly among the notes that have at least one positive
    and one negative; then a positive and a negative of that anchor, uniformly.

    Raises
    ------
    InputError
        When no note has both a positive and a negative.
    """
    positive, negative = np.asarray(positive, bool), np.asarray(negative, bool)
    usable = np.flatnonzero(positive.any(axis=1) & negative.any(axis=1))
    if len(usable) == 0:
        raise InputError("no note has both a neighbour and a non-neighbour under this neighbourhood: "
                         "check the labels (instrument, pitch) of the training notes")
    anchors = rng.choice(usable, size=n)
    out = np.empty((n, 3), dtype=np.int64)
    out[:, 0] = anchors
    for row, a in enumerate(anchors):
        out[row, 1] = rng.choice(np.flatnonzero(positive[a]))
        out[row, 2] = rng.choice(np.flatnonzero(negative[a]))
    return out
