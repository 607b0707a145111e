"""Neighbourhood definitions on a hand-built set of notes, and the triple sampler."""

from __future__ import annotations

import numpy as np
import pytest

from mdsim.errors import InputError
from mdsim.training.neighbourhoods import NEIGHBOURHOODS, get_neighbourhood, knn_masks, sample_triples

#: Six notes: (instrument, pitch). Note 5 has no instrument, note 4 no pitch.
NOTES = [("flute", 60), ("flute", 62), ("flute", 60), ("piano", 60), ("piano", None), ("", 61)]
INSTRUMENT = [i for i, _ in NOTES]
PITCH = [p for _, p in NOTES]


def pairs(mask):
    return {(int(i), int(j)) for i, j in zip(*np.nonzero(mask))}


def test_instrument():
    pos, neg = NEIGHBOURHOODS["instrument"].masks(instrument=INSTRUMENT, pitch=PITCH)
    assert pairs(pos) == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1), (3, 4), (4, 3)}
    assert pairs(neg) == {(i, j) for i in (0, 1, 2) for j in (3, 4)} | {(j, i) for i in (0, 1, 2) for j in (3, 4)}


def test_pitch():
    pos, neg = NEIGHBOURHOODS["pitch"].masks(instrument=INSTRUMENT, pitch=PITCH)
    same60 = {(i, j) for i in (0, 2, 3) for j in (0, 2, 3) if i != j}
    assert pairs(pos) == same60
    labelled = (0, 1, 2, 3, 5)
    assert pairs(neg) == {(i, j) for i in labelled for j in labelled if i != j} - same60


def test_instrument_and_pitch():
    pos, neg = NEIGHBOURHOODS["instrument+pitch"].masks(instrument=INSTRUMENT, pitch=PITCH)
    assert pairs(pos) == {(0, 2), (2, 0)}
    assert pairs(neg) == {(i, j) for i in range(4) for j in range(4) if i != j} - {(0, 2), (2, 0)}


def test_instrument_and_pitch_within_two():
    pos, neg = NEIGHBOURHOODS["instrument+pitch2"].masks(instrument=INSTRUMENT, pitch=PITCH)
    # flute 60, 62, 60 are within 2 semitones of each other; piano 60 has no other pitched piano
    assert pairs(pos) == {(0, 1), (1, 0), (0, 2), (2, 0), (1, 2), (2, 1)}
    assert (3, 0) in pairs(neg) and not (pos | neg)[4].any() and not (pos | neg)[:, 5].any()


def test_masks_are_disjoint_without_diagonal():
    rng = np.random.default_rng(0)
    for nb in NEIGHBOURHOODS.values():
        pos, neg = nb.masks(instrument=INSTRUMENT, pitch=PITCH, inputs=rng.normal(size=(6, 4)))
        assert not (pos & neg).any() and not np.diag(pos | neg).any()


def test_knn_in_input_space():
    x = np.array([[0.0], [1.0], [3.0], [10.0], [10.5]])
    pos, neg = knn_masks(x, k=1)
    assert pairs(pos) == {(0, 1), (1, 0), (2, 1), (3, 4), (4, 3)}
    assert pairs(neg) == {(i, j) for i in range(5) for j in range(5) if i != j} - pairs(pos)
    pos2, _ = NEIGHBOURHOODS["knn"].masks(inputs=np.arange(12.0)[:, None])
    assert pos2.sum(axis=1).tolist() == [5] * 12


def test_sampler_draws_only_valid_triples_and_every_usable_anchor():
    pos, neg = NEIGHBOURHOODS["instrument+pitch"].masks(instrument=INSTRUMENT, pitch=PITCH)
    triples = sample_triples(pos, neg, 400, np.random.default_rng(1))
    assert pos[triples[:, 0], triples[:, 1]].all() and neg[triples[:, 0], triples[:, 2]].all()
    assert set(triples[:, 0]) == {0, 2}  # the only notes with a positive
    assert set(triples[:, 2]) == {1, 3}


def test_errors_name_the_problem():
    with pytest.raises(InputError, match="unknown neighbourhood 'timbre' \\(valid: instrument, pitch"):
        get_neighbourhood("timbre")
    with pytest.raises(InputError, match="no note has both a neighbour and a non-neighbour"):
        sample_triples(np.zeros((3, 3), bool), ~np.eye(3, dtype=bool), 4, np.random.default_rng(0))
    with pytest.raises(InputError, match="needs the notes' pitch labels"):
        NEIGHBOURHOODS["pitch"].masks(instrument=INSTRUMENT)
