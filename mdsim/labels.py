"""Dimensions, label parsing and the similarity rule of each dimension.

This module is the single source of truth for *who is a positive*:

==========  =============================================================
dimension   two tracks are similar when
==========  =============================================================
genre,      they share at least one tag of that dimension; a track with no
mood,       tag in a dimension takes no part in that dimension
instrument,
era
tempo       ``|t1 - t2 * 2**k| <= 5`` BPM for some integer k in -2..2
key         same key, or the parallel key (same tonic, other mode)
sound       they are the same recording (self-supervised: no label needed;
            training draws two windows of one track, each augmented on its
            own when training augments, so the subspace learns what stays
            the same across a recording and its transforms)
==========  =============================================================

Labels of one track are a plain ``dict``: tag dimensions map to a list of
tag strings (empty: unlabelled), ``tempo`` to BPM as ``float`` or ``None``,
``key`` to a key index (see :func:`parse_key`) or ``None``, ``sound`` to the
track's number in the collection (given by training, never by a manifest).

For training, labels are packed into one float32 row per track by a
:class:`LabelLayout` (multi-hot blocks for the tag dimensions, one column of
BPM for tempo with 0 meaning missing, one column of key index with -1
meaning missing, one column of track number for sound with -1 meaning
missing) so that any Keras backend can carry them as ``y_true``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from mdsim.errors import InputError

#: The labelled dimensions, in the canonical subspace order (a model's default six).
DIMENSIONS = ("genre", "mood", "instrument", "era", "tempo", "key")
#: The self-supervised dimension: two windows of one recording are similar, so it needs
#: no label (:class:`mdsim.training.data.TrackTable` numbers the tracks).
SOUND = "sound"
#: Every dimension a model may have.
ALL_DIMENSIONS = DIMENSIONS + (SOUND,)
#: Dimensions whose labels are free-form multi-label tags.
TAG_DIMENSIONS = ("genre", "mood", "instrument", "era")

#: Default tolerance of the tempo rule, in BPM.
TEMPO_TOLERANCE_BPM = 5.0
#: Tempi a manifest may give, in BPM (anything else is a typo or a unit mix-up).
TEMPO_RANGE_BPM = (20.0, 400.0)
#: Tempo octaves 2**k with k in -MAX_TEMPO_OCTAVE..MAX_TEMPO_OCTAVE count as similar.
MAX_TEMPO_OCTAVE = 2

#: Pitch-class spelling used for key names (index 0 = C).
PITCH_CLASSES = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
_PITCH_INDEX = {
    "C": 0, "B#": 0, "C#": 1, "DB": 1, "D": 2, "D#": 3, "EB": 3, "E": 4, "FB": 4,
    "F": 5, "E#": 5, "F#": 6, "GB": 6, "G": 7, "G#": 8, "AB": 8, "A": 9,
    "A#": 10, "BB": 10, "B": 11, "CB": 11,
}
#: The 24 key names, index = pitch class + 12 * mode (mode 0 major, 1 minor).
KEY_NAMES = tuple(f"{p} major" for p in PITCH_CLASSES) + tuple(f"{p} minor" for p in PITCH_CLASSES)

_KEY_RE = re.compile(
    r"^\s*([A-Ga-g])\s*([#b\u266f\u266d]?)\s*[:_ ]?\s*(major|minor|maj|min|m|M)?\s*$"
)


def check_dimensions(dims, *, allowed=ALL_DIMENSIONS) -> tuple[str, ...]:
    """Validate dimension names and return them as a tuple (order kept).

    Accepts a sequence or a comma-separated string.
    """
    if isinstance(dims, str):
        dims = [d.strip() for d in dims.split(",") if d.strip()]
    dims = tuple(dims)
    if not dims:
        raise InputError(f"no dimension given (valid: {', '.join(allowed)})")
    for d in dims:
        if d not in allowed:
            raise InputError(f"unknown dimension {d!r} (valid: {', '.join(allowed)})")
    if len(set(dims)) != len(dims):
        raise InputError(f"dimension listed twice in {', '.join(dims)}")
    return dims


def parse_tags(cell) -> list[str]:
    """Split a ``;``-separated multi-label cell into stripped, unique tags."""
    if cell is None:
        return []
    if isinstance(cell, float) and math.isnan(cell):
        return []
    out: list[str] = []
    for tag in str(cell).split(";"):
        tag = tag.strip()
        if tag and tag not in out:
            out.append(tag)
    return out


def parse_key(text) -> int | None:
    """Parse a key name such as ``"F# minor"``, ``"Gb min"``, ``"a"`` or ``"Am"``.

    Returns the key index ``pitch_class + 12 * mode`` (0 = C major,
    12 = C minor), or ``None`` for an empty cell. A bare lower-case letter
    means minor and a bare upper-case letter major (``"a"`` is A minor).

    Raises
    ------
    InputError
        When the text is not a key name.

    Examples
    --------
    >>> parse_key("F# minor"), parse_key("Gb min"), parse_key("C"), parse_key("a")
    (18, 18, 0, 21)
    >>> key_name(parse_key("Am"))
    'A minor'
    >>> parse_key("") is None
    True
    """
    if text is None:
        return None
    if isinstance(text, (int, np.integer)):
        if 0 <= int(text) < 24:
            return int(text)
        raise InputError(f"key index {text} is out of range 0..23")
    text = str(text).strip()
    if not text:
        return None
    m = _KEY_RE.match(text)
    if not m:
        raise InputError(f"cannot read key {text!r}: write it like 'F# minor' or 'Bb major'")
    letter, accidental, mode = m.groups()
    accidental = {"\u266f": "#", "\u266d": "b"}.get(accidental, accidental)
    pitch = _PITCH_INDEX.get(letter.upper() + accidental.upper())
    if pitch is None:
        raise InputError(f"cannot read key {text!r}: unknown tonic")
    if mode is None:
        minor = letter.islower()
    else:
        minor = mode in ("minor", "min", "m")
    return pitch + 12 * int(minor)


def key_name(index: int | None) -> str | None:
    """The canonical name of a key index (``18 -> "F# minor"``)."""
    if index is None or index < 0:
        return None
    return KEY_NAMES[int(index)]


def parse_tempo(value) -> float | None:
    """Parse a BPM cell: ``None`` for an empty cell (estimate it), else a checked BPM.

    A float NaN object (what pandas gives for an empty cell) also counts as
    empty; the text ``"nan"`` does not.

    Raises
    ------
    InputError
        When the value is not a number, or not a finite tempo in
        ``TEMPO_RANGE_BPM`` (20..400 BPM): ``1e9``, ``-5``, ``0``, ``"nan"``
        and ``"inf"`` are errors, not "unknown".

    Examples
    --------
    >>> parse_tempo("120.5"), parse_tempo(" "), parse_tempo(None)
    (120.5, None, None)
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"cannot read tempo {text!r}: give beats per minute, e.g. 120, "
                             "or leave it empty to estimate it") from None
    elif isinstance(value, float) and math.isnan(value):
        return None
    value = float(value)
    low, high = TEMPO_RANGE_BPM
    if not (math.isfinite(value) and low <= value <= high):
        raise InputError(f"tempo {value:g} BPM is not a tempo in {low:g}..{high:g} BPM: give beats per "
                         "minute, e.g. 120, or leave it empty to estimate it")
    return value


#: MIDI note numbers a manifest may give as ``pitch`` (the MIDI range; 60 = C4, 69 = A4 = 440 Hz).
PITCH_RANGE = (0, 127)

_NOTE_RE = re.compile(r"^\s*([A-Ga-g])\s*([#b\u266f\u266d]?)\s*(-?\d+)\s*$")


def parse_pitch(value) -> int | None:
    """Parse a ``pitch`` cell: a MIDI note number or a note name with octave.

    Note names use scientific pitch notation (``C4`` = 60, ``A4`` = 69 = 440 Hz;
    ``#``/``b`` or ``\u266f``/``\u266d`` accidentals; ``Cb4`` = 59, ``B#3`` = 60).
    An empty cell (or a float NaN) is ``None``: the note has no pitch label and
    takes no part in a pitch neighbourhood.

    Raises
    ------
    InputError
        A value that is neither, a fractional number, or a note outside MIDI 0..127.

    Examples
    --------
    >>> parse_pitch("60"), parse_pitch("C#4"), parse_pitch("Bb3"), parse_pitch(69), parse_pitch("")
    (60, 61, 58, 69, None)
    >>> pitch_name(61)
    'C#4'
    """
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    low, high = PITCH_RANGE
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        m = _NOTE_RE.match(text)
        if m:
            letter, accidental, octave = m.groups()
            accidental = {"\u266f": "#", "\u266d": "b"}.get(accidental, accidental)
            pc = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}[letter.upper()]
            pc += {"#": 1, "b": -1}.get(accidental, 0)
            midi = pc + 12 * (int(octave) + 1)
            if not low <= midi <= high:
                raise InputError(f"pitch {text!r} is MIDI {midi}, outside {low}..{high}")
            return midi
        try:
            value = float(text)
        except ValueError:
            raise InputError(f"cannot read pitch {text!r}: give a MIDI note number (60) or a note "
                             "name with octave (C4, F#3, Bb5), or leave it empty") from None
    number = float(value)
    if not (math.isfinite(number) and number == int(number)):
        raise InputError(f"pitch {value!r} is not a whole MIDI note number (60 = C4)")
    if not low <= int(number) <= high:
        raise InputError(f"pitch {int(number)} is outside the MIDI range {low}..{high}")
    return int(number)


def pitch_name(midi: int | None) -> str | None:
    """Scientific pitch name of a MIDI note number (``61 -> "C#4"``), sharps for accidentals."""
    if midi is None or midi < 0:
        return None
    names = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
    return f"{names[int(midi) % 12]}{int(midi) // 12 - 1}"


# --------------------------------------------------------------------------------------
# Similarity rules (NumPy; the keras.ops versions in mdsim.metric are tested against these)


def tempo_similar(t1: float, t2: float, *, tolerance_bpm: float = TEMPO_TOLERANCE_BPM,
                  max_octave: int = MAX_TEMPO_OCTAVE) -> bool:
    """True when ``|a - b * 2**k| <= tolerance_bpm`` for an integer ``|k| <= max_octave``,
    with ``(a, b)`` either ``(t1, t2)`` or ``(t2, t1)``.

    Read one way only the rule is not symmetric (300 vs 147 BPM: 6 BPM off
    one way, 3 BPM the other); a similarity must be, so either way counts.

    >>> tempo_similar(120, 124)        # within 5 BPM
    True
    >>> tempo_similar(120, 61)         # 61 * 2 = 122: a tempo octave away
    True
    >>> tempo_similar(120, 480)        # k = -2 is the widest octave counted
    True
    >>> tempo_similar(120, 130)
    False
    """
    return any(abs(a - b * 2.0 ** k) <= tolerance_bpm
               for a, b in ((t1, t2), (t2, t1)) for k in range(-max_octave, max_octave + 1))


def key_similar(k1: int, k2: int) -> bool:
    """True for the same key or its parallel key (same tonic, other mode).

    >>> key_similar(parse_key("C major"), parse_key("C minor"))      # parallel keys
    True
    >>> key_similar(parse_key("C major"), parse_key("A minor"))      # relative keys are not
    False
    """
    return k1 % 12 == k2 % 12


def camelot(key: int) -> str:
    """The key's position on the Camelot wheel: ``"8B"`` (C major), ``"8A"`` (A minor).

    Numbers go round the circle of fifths (one step clockwise is a fifth up), ``B`` is
    major, ``A`` minor; a minor key shares its number with its relative major.

    >>> camelot(parse_key("C major")), camelot(parse_key("A minor")), camelot(parse_key("G major"))
    ('8B', '8A', '9B')
    """
    pitch, minor = key % 12, key // 12
    major = (pitch + 3) % 12 if minor else pitch  # a minor key's relative major
    return f"{(7 * major + 7) % 12 + 1}{'A' if minor else 'B'}"


def key_harmonic(k1: int, k2: int) -> bool:
    """True when two keys mix by the Camelot wheel: the same key, its relative
    major/minor (same number, other letter), or one fifth up or down (number ± 1,
    same letter, 12 next to 1).

    >>> key_harmonic(parse_key("C major"), parse_key("A minor"))     # relative keys
    True
    >>> key_harmonic(parse_key("C major"), parse_key("F major"))     # a fifth down: 7B
    True
    >>> key_harmonic(parse_key("C major"), parse_key("C minor"))     # parallel keys are not
    False
    """
    a, b = camelot(k1), camelot(k2)
    n1, n2 = int(a[:-1]), int(b[:-1])
    if a[-1] != b[-1]:
        return n1 == n2
    return (n1 - n2) % 12 in (0, 1, 11)


def is_labelled(dimension: str, value) -> bool:
    """Whether a track takes part in ``dimension`` (has a label there)."""
    if dimension in TAG_DIMENSIONS:
        return bool(value)
    return value is not None


def similar(dimension: str, a, b, *, tolerance_bpm: float = TEMPO_TOLERANCE_BPM) -> bool:
    """The similarity rule of ``dimension`` for two labelled values."""
    if dimension in TAG_DIMENSIONS:
        return bool(set(a) & set(b))
    if dimension == "tempo":
        return tempo_similar(a, b, tolerance_bpm=tolerance_bpm)
    if dimension == "key":
        return key_similar(a, b)
    if dimension == SOUND:
        return a == b
    raise InputError(f"unknown dimension {dimension!r} (valid: {', '.join(ALL_DIMENSIONS)})")


def similarity_matrix(dimension: str, values, *, tolerance_bpm: float = TEMPO_TOLERANCE_BPM):
    """Pairwise similarity of a list of label values in one dimension.

    Returns
    -------
    similar : np.ndarray [shape=(n, n), dtype=bool]
        ``similar[i, j]`` when both are labelled and the rule holds (the
        diagonal is True for labelled items).
    labelled : np.ndarray [shape=(n,), dtype=bool]

    Examples
    --------
    An unlabelled track (``None``, or no tag) is similar to nothing, itself included:

    >>> sim, labelled = similarity_matrix("tempo", [120.0, 62.0, 90.0, None])
    >>> sim.astype(int)
    array([[1, 1, 0, 0],
           [1, 1, 0, 0],
           [0, 0, 1, 0],
           [0, 0, 0, 0]])
    >>> labelled
    array([ True,  True,  True, False])
    >>> similarity_matrix("mood", [["sad"], ["sad", "chill"], ["happy"], []])[0].astype(int)
    array([[1, 1, 0, 0],
           [1, 1, 0, 0],
           [0, 0, 1, 0],
           [0, 0, 0, 0]])
    """
    n = len(values)
    labelled = np.array([is_labelled(dimension, v) for v in values], dtype=bool)
    sim = np.zeros((n, n), dtype=bool)
    if dimension in TAG_DIMENSIONS:
        values = [v or [] for v in values]
        vocab = sorted({t for v in values for t in v})
        index = {t: i for i, t in enumerate(vocab)}
        hot = np.zeros((n, len(vocab)), dtype=np.float32)
        for i, v in enumerate(values):
            for t in v:
                hot[i, index[t]] = 1.0
        sim = (hot @ hot.T) > 0
    elif dimension == "tempo":
        t = np.array([v if v is not None else np.nan for v in values], dtype=np.float64)
        sim = np.zeros((n, n), dtype=bool)
        for k in range(-MAX_TEMPO_OCTAVE, MAX_TEMPO_OCTAVE + 1):
            one_way = np.abs(t[:, None] - t[None, :] * 2.0 ** k) <= tolerance_bpm
            sim |= one_way | one_way.T
    elif dimension == "key":
        k = np.array([v if v is not None else -1 for v in values])
        sim = (k[:, None] % 12) == (k[None, :] % 12)
    elif dimension == SOUND:
        k = np.array([v if v is not None else -1 for v in values])
        sim = k[:, None] == k[None, :]
    else:
        raise InputError(f"unknown dimension {dimension!r} (valid: {', '.join(ALL_DIMENSIONS)})")
    sim &= labelled[:, None] & labelled[None, :]
    return sim, labelled


# --------------------------------------------------------------------------------------
# Packing labels for training


@dataclass(frozen=True)
class LabelLayout:
    """How the labels of a set of dimensions are packed into one float32 row.

    Tag dimensions take one multi-hot block over their vocabulary; ``tempo``
    one column of BPM (0 = missing); ``key`` one column of key index
    (-1 = missing). The layout is saved with a training run so that the loss
    can unpack ``y_true``.

    >>> tracks = [{"mood": ["sad"], "tempo": 120.0, "key": 0},
    ...           {"mood": ["happy", "sad"], "tempo": None, "key": None}]
    >>> layout = LabelLayout.from_records(["mood", "tempo", "key"], tracks)
    >>> layout.vocabularies, layout.offsets
    ({'mood': ('happy', 'sad')}, {'mood': (0, 2), 'tempo': (2, 3), 'key': (3, 4)})
    >>> layout.encode(tracks)
    array([[  0.,   1., 120.,   0.],
           [  1.,   1.,   0.,  -1.]], dtype=float32)
    """

    dimensions: tuple[str, ...]
    vocabularies: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "dimensions", check_dimensions(self.dimensions))
        vocab = {d: tuple(self.vocabularies.get(d, ())) for d in self.dimensions if d in TAG_DIMENSIONS}
        object.__setattr__(self, "vocabularies", vocab)

    @classmethod
    def from_records(cls, dimensions, records) -> "LabelLayout":
        """Build the vocabularies from the labels of a collection of tracks."""
        dimensions = check_dimensions(dimensions)
        vocab = {d: tuple(sorted({t for r in records for t in r.get(d) or []}))
                 for d in dimensions if d in TAG_DIMENSIONS}
        return cls(dimensions, vocab)

    def width(self, dimension: str) -> int:
        return len(self.vocabularies[dimension]) if dimension in TAG_DIMENSIONS else 1

    @property
    def offsets(self) -> dict:
        """``{dimension: (start, stop)}`` columns of each dimension in a packed row."""
        out, pos = {}, 0
        for d in self.dimensions:
            out[d] = (pos, pos + self.width(d))
            pos += self.width(d)
        return out

    @property
    def total_width(self) -> int:
        return sum(self.width(d) for d in self.dimensions)

    def encode(self, records) -> np.ndarray:
        """Pack a list of label dicts into ``float32 [shape=(n, total_width)]``."""
        out = np.zeros((len(records), self.total_width), dtype=np.float32)
        offsets = self.offsets
        for d in self.dimensions:
            start, stop = offsets[d]
            if d in TAG_DIMENSIONS:
                index = {t: i for i, t in enumerate(self.vocabularies[d])}
                for i, r in enumerate(records):
                    for t in r.get(d) or []:
                        if t in index:
                            out[i, start + index[t]] = 1.0
            elif d == "tempo":
                out[:, start] = [r.get("tempo") or 0.0 for r in records]
            else:  # key, sound: an index, -1 missing
                out[:, start] = [-1 if r.get(d) is None else r[d] for r in records]
        return out

    def to_dict(self) -> dict:
        return {"dimensions": list(self.dimensions),
                "vocabularies": {d: list(v) for d, v in self.vocabularies.items()}}

    @classmethod
    def from_dict(cls, data: dict) -> "LabelLayout":
        return cls(tuple(data["dimensions"]), {d: tuple(v) for d, v in data.get("vocabularies", {}).items()})
