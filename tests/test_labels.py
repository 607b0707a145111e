import numpy as np
import pytest

from mdsim.errors import InputError
from mdsim.labels import (DIMENSIONS, KEY_NAMES, LabelLayout, camelot, check_dimensions, key_harmonic, key_name,
                          parse_key, parse_tags, parse_tempo, similar, similarity_matrix, tempo_similar)


@pytest.mark.parametrize("text,expected", [
    ("C major", 0), ("C minor", 12), ("F# minor", 18), ("Gb minor", 18), ("Bb major", 10),
    ("A#:min", 22), ("Am", 21), ("a", 21), ("E", 4), ("Db maj", 1), ("B# major", 0), ("", None), (None, None),
])
def test_parse_key(text, expected):
    assert parse_key(text) == expected


def test_key_names_round_trip():
    assert len(KEY_NAMES) == 24
    for i in range(24):
        assert parse_key(key_name(i)) == i


@pytest.mark.parametrize("bad", ["H major", "C dorian", "12", "C##"])
def test_parse_key_rejects(bad):
    with pytest.raises(InputError, match="cannot read key"):
        parse_key(bad)


def test_parse_tags_and_tempo():
    assert parse_tags(" rock; pop ;;rock") == ["rock", "pop"]
    assert parse_tags("") == [] and parse_tags(None) == []
    assert parse_tempo("120.5") == 120.5 and parse_tempo("") is None and parse_tempo(float("nan")) is None
    with pytest.raises(InputError, match="cannot read tempo 'fast'"):
        parse_tempo("fast")
    for bad in ("0", "-5", "nan", "1e9", 1e9):  # once silently "unknown" (or kept, 1e9)
        with pytest.raises(InputError, match=r"is not a tempo in 20\.\.400 BPM"):
            parse_tempo(bad)


def test_check_dimensions():
    assert check_dimensions("genre, tempo") == ("genre", "tempo")
    assert check_dimensions("tempo,key,sound") == ("tempo", "key", "sound")  # the self-supervised one
    with pytest.raises(InputError, match="unknown dimension 'colour'.*valid: genre"):
        check_dimensions(["colour"])


def test_tempo_octaves_are_similar_and_symmetric():
    assert tempo_similar(120, 60) and tempo_similar(60, 240) and tempo_similar(120, 124.9)
    assert not tempo_similar(120, 90) and not tempo_similar(120, 20)
    assert tempo_similar(300, 147) == tempo_similar(147, 300) is True  # 3 BPM one way, 6 the other
    assert not tempo_similar(100, 25 * 0.5)  # k = -3 is out of range


def test_parallel_keys_are_similar():
    assert similar("key", parse_key("C major"), parse_key("C minor"))
    assert not similar("key", parse_key("C major"), parse_key("A minor"))  # relative, not parallel


#: The Camelot wheel as DJ charts print it (number: minor "A", major "B").
CAMELOT = {"1A": "Ab minor", "1B": "B major", "2A": "Eb minor", "2B": "F# major", "3A": "Bb minor",
           "3B": "Db major", "4A": "F minor", "4B": "Ab major", "5A": "C minor", "5B": "Eb major",
           "6A": "G minor", "6B": "Bb major", "7A": "D minor", "7B": "F major", "8A": "A minor",
           "8B": "C major", "9A": "E minor", "9B": "G major", "10A": "B minor", "10B": "D major",
           "11A": "F# minor", "11B": "A major", "12A": "Db minor", "12B": "E major"}


def test_camelot_matches_the_printed_wheel():
    assert {camelot(parse_key(name)): name for name in CAMELOT.values()} == CAMELOT


@pytest.mark.parametrize("key,compatible", [
    ("A minor", {"A minor", "C major", "E minor", "D minor"}),
    ("C major", {"C major", "A minor", "G major", "F major"}),
    ("B major", {"B major", "Ab minor", "E major", "F# major"}),   # 1B: 12B and 2B across the wrap
    ("Ab minor", {"Ab minor", "B major", "Db minor", "Eb minor"}),
])
def test_harmonic_keys_by_hand(key, compatible):
    assert {n for n in KEY_NAMES if key_harmonic(parse_key(key), parse_key(n))} == compatible
    assert all(key_harmonic(parse_key(n), parse_key(key)) for n in compatible)  # symmetric


def test_similarity_matrix_matches_pairwise_rule(rng):
    tempi = [None if rng.random() < 0.2 else float(rng.uniform(50, 200)) for _ in range(40)]
    sim, lab = similarity_matrix("tempo", tempi)
    for i, a in enumerate(tempi):
        for j, b in enumerate(tempi):
            expected = a is not None and b is not None and tempo_similar(a, b)
            assert sim[i, j] == expected
    assert np.array_equal(lab, [t is not None for t in tempi])
    sim, lab = similarity_matrix("sound", [3, 0, 3, None])  # the same track number only
    assert sim.astype(int).tolist() == [[1, 0, 1, 0], [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 0, 0]]
    assert lab.tolist() == [True, True, True, False]
    tags = [["a"], ["b", "a"], [], ["c"], None]
    sim, lab = similarity_matrix("genre", tags)
    assert sim[0, 1] and not sim[0, 3] and not sim[2, 2] and not lab[4]


def test_label_layout_packs_and_round_trips():
    records = [{"genre": ["rock", "pop"], "tempo": 120.0, "key": 3},
               {"genre": [], "tempo": None, "key": None}]
    layout = LabelLayout.from_records(["genre", "tempo", "key"], records)
    packed = layout.encode(records)
    assert layout.offsets == {"genre": (0, 2), "tempo": (2, 3), "key": (3, 4)}
    np.testing.assert_array_equal(packed, [[1, 1, 120, 3], [0, 0, 0, -1]])
    assert LabelLayout.from_dict(layout.to_dict()) == layout
    assert set(DIMENSIONS) >= set(layout.dimensions)


@pytest.mark.parametrize("value, expected", [("60", 60), (" 69 ", 69), (61, 61), (60.0, 60), ("C4", 60),
                                             ("c#4", 61), ("Db4", 61), ("Bb3", 58), ("B#3", 60),
                                             ("Cb4", 59), ("A0", 21), ("C-1", 0), ("G9", 127),
                                             ("", None), (None, None), (float("nan"), None)])
def test_parse_pitch(value, expected):
    from mdsim.labels import parse_pitch

    assert parse_pitch(value) == expected


@pytest.mark.parametrize("bad, message", [("H4", "cannot read pitch 'H4'"), ("C", "cannot read pitch 'C'"),
                                          ("60.5", "not a whole MIDI note number"),
                                          ("128", "outside the MIDI range 0..127"),
                                          ("G#9", "MIDI 128, outside 0..127"), ("-1", "outside the MIDI range")])
def test_parse_pitch_rejects(bad, message):
    from mdsim.labels import parse_pitch

    with pytest.raises(InputError, match=message):
        parse_pitch(bad)


def test_pitch_names_round_trip():
    from mdsim.labels import parse_pitch, pitch_name

    assert all(parse_pitch(pitch_name(m)) == m for m in range(128))
