"""The score of a synthetic track: harmony of the key, patterns of the genre, a melody.

Everything here is symbolic: times are in **beats** from the start of the
track (beat 0 is a downbeat), pitches are MIDI note numbers, velocities are
in 0..1. :mod:`mdsim.synth` turns the score into sound.

* **Key** -- a diatonic progression, one chord per bar, looped; every loop
  starts on the tonic and the track closes with a V-I cadence. Minor keys
  take the natural minor scale, except that the dominant chord (V) raises
  the 7th (harmonic minor), which is what makes a minor tonic unambiguous.
* **Genre** -- a :class:`GenreStyle`: metre, swing, drum pattern, bass
  rhythm, chord rhythm and voicing.
* **Mood** -- the melody's density, articulation, register and dynamics
  (passed in as plain numbers; :mod:`mdsim.synth` owns the mood table).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)

#: Four-bar progressions as scale degrees (0 = I/i). Every loop starts on the tonic
#: and turns around through the dominant (V-I across the loop, or inside it), the
#: dominant being a seventh chord with the leading tone. Loops without a dominant
#: (i-VI-III-VII, I-V-vi-IV) were tried and dropped: madmom's key network read many
#: of them in the relative key (measurements in docs/synthetic.md).
PROGRESSIONS = {
    "major": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4), (0, 1, 4, 0), (0, 5, 1, 4)),
    "minor": ((0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4), (0, 1, 4, 0), (0, 5, 4, 0)),
}

# Registers (MIDI): bass roots in [BASS_LOW, BASS_LOW + 12), chords above CHORD_LOW.
BASS_LOW = 36
CHORD_LOW = 55


@dataclass(frozen=True)
class Note:
    """One pitched note of the score (times in beats)."""

    start: float
    length: float
    pitch: int
    velocity: float


@dataclass(frozen=True)
class Hit:
    """One drum hit of the score (time in beats)."""

    start: float
    drum: str
    velocity: float


@dataclass(frozen=True)
class GenreStyle:
    """Rhythm and arrangement of one genre.

    ``drums`` lists ``(drum, positions, velocity)`` over ``drum_bars`` bars;
    ``bass`` lists ``(position, tone, length)`` in one bar, tone being
    ``"root"``, ``"fifth"``, ``"octave"`` or ``"walk"``; ``chords`` lists
    ``(position, length)`` in one bar. Positions and lengths are in beats.
    """

    beats_per_bar: int
    drums: tuple
    bass: tuple
    chords: tuple
    voicing: str  # "close", "octave", "spread" or "seventh"
    swing: bool = False
    drum_bars: int = 1
    chord_attack: float = 0.005  # seconds
    strum: float = 0.0  # beats between successive chord notes, low to high
    bass_tone: str = "round"  # "round" or "sub"


EIGHTHS = (0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5)
SIXTEENTHS = tuple(i / 4 for i in range(16))

GENRE_STYLES = {
    # House/disco: kick on every beat, clap on 2 and 4, open hat on the off-beat,
    # off-beat octave bass, off-beat chord stabs.
    "fourfloor": GenreStyle(
        beats_per_bar=4,
        drums=(("kick", (0, 1, 2, 3), 1.0), ("clap", (1, 3), 0.75),
               ("hat_open", (0.5, 1.5, 2.5, 3.5), 0.6), ("hat", SIXTEENTHS, 0.22)),
        bass=((0.5, "root", 0.4), (1.5, "octave", 0.4), (2.5, "root", 0.4), (3.5, "octave", 0.4)),
        chords=((0.5, 0.3), (1.5, 0.3), (2.5, 0.3), (3.5, 0.3)),
        voicing="close",
    ),
    # Rock: kick 1 and 3 (and the and of 3), snare 2 and 4, straight eighth
    # hats, eighth-note root bass, strummed quarter-note chords with the octave.
    "backbeat": GenreStyle(
        beats_per_bar=4,
        drums=(("kick", (0, 2, 2.5), 1.0), ("snare", (1, 3), 1.0), ("hat", EIGHTHS, 0.5)),
        bass=tuple((p, "root", 0.45) for p in EIGHTHS),
        chords=((0, 0.9), (1, 0.9), (2, 0.9), (3, 0.9)),
        voicing="octave",
        strum=0.025,
    ),
    # Jazz: swung ride, hi-hat pedal on 2 and 4, feathered kick, walking bass,
    # shell-voiced (root, 3rd, 7th) seventh chords comped on the and of 2 and on 4.
    "swing": GenreStyle(
        beats_per_bar=4,
        drums=(("ride", (0, 1, 1.5, 2, 3, 3.5), 0.7), ("hat_pedal", (1, 3), 0.7),
               ("kick", (0, 1, 2, 3), 0.6), ("snare", (3.5,), 0.25)),
        bass=((0, "root", 0.9), (1, "walk", 0.9), (2, "fifth", 0.9), (3, "walk", 0.9)),
        chords=((1.5, 0.4), (3, 0.6)),
        voicing="seventh",
        swing=True,
    ),
    # Waltz in 3/4: oom-pah-pah, kick on 1, light snare on 2 and 3, root then
    # fifth in the bass, close chords on 2 and 3.
    "waltz": GenreStyle(
        beats_per_bar=3,
        drums=(("kick", (0,), 1.0), ("snare", (1, 2), 0.55), ("hat", (0, 1, 2), 0.45),
               ("hat", (0.5, 1.5, 2.5), 0.2)),
        bass=((0, "root", 0.9), (2, "fifth", 0.8)),
        chords=((1, 0.7), (2, 0.7)),
        voicing="close",
        chord_attack=0.01,
    ),
    # Son: 3-2 clave over a steady shaker, kick on 1 and 3, conga tumbao,
    # anticipated tumbao bass, syncopated piano-montuno chords.
    "clave": GenreStyle(
        beats_per_bar=4,
        drum_bars=2,
        drums=(("clave", (0, 1.5, 3, 5, 6), 0.8), ("shaker", tuple(i / 2 for i in range(16)), 0.45),
               ("kick", (0, 2, 4, 6), 0.9), ("conga", (1, 3, 3.5, 5, 7, 7.5), 0.6)),
        bass=((0, "root", 0.5), (1.5, "fifth", 1.4), (3, "root", 0.9)),
        chords=((0, 0.3), (1, 0.3), (1.5, 0.3), (2.5, 0.3), (3, 0.3), (3.5, 0.3)),
        voicing="close",
    ),
    # Half-time: snare on 3 only, kick on 1 and the and of 2, busy hats,
    # long sub-bass notes, sustained spread pads.
    "halftime": GenreStyle(
        beats_per_bar=4,
        drums=(("kick", (0, 1.5), 1.0), ("snare", (2,), 1.0), ("hat", EIGHTHS, 0.55),
               ("hat", tuple(p + 0.25 for p in EIGHTHS), 0.2)),
        bass=((0, "root", 1.4), (1.5, "root", 2.4)),
        chords=((0, 4.0),),
        voicing="spread",
        chord_attack=0.15,
        bass_tone="sub",
    ),
}


def scale_of(key_index: int) -> tuple[int, tuple[int, ...]]:
    """Tonic pitch class and scale (semitones above the tonic) of a key index."""
    tonic, minor = key_index % 12, key_index >= 12
    return tonic, MINOR_SCALE if minor else MAJOR_SCALE


def chord_tones(key_index: int, degree: int, *, seventh: bool = False) -> list[int]:
    """Pitch classes of the diatonic chord on ``degree``: root, third, fifth (, seventh).

    In minor, the dominant (degree 4) takes the raised 7th as its third.
    """
    tonic, scale = scale_of(key_index)
    steps = (0, 2, 4, 6) if seventh else (0, 2, 4)
    tones = [scale[(degree + s) % 7] for s in steps]
    if key_index >= 12 and degree == 4:
        tones = [11 if t == 10 else t for t in tones]
    return [(tonic + t) % 12 for t in tones]


def bar_chords(rng: np.random.Generator, key_index: int, n_bars: int) -> list[int]:
    """Scale degree of the chord of every bar: a looped progression, ending V-I."""
    options = PROGRESSIONS["minor" if key_index >= 12 else "major"]
    progression = options[rng.integers(len(options))]
    degrees = [progression[b % 4] for b in range(n_bars)]
    if n_bars >= 2:
        degrees[-2:] = [4, 0]
    elif n_bars == 1:
        degrees[0] = 0
    return degrees


def _place(pc: int, low: int) -> int:
    """The MIDI note of pitch class ``pc`` in ``[low, low + 12)``."""
    return low + (pc - low) % 12


def voice_chord(tones: list[int], voicing: str) -> list[int]:
    """MIDI notes of a chord given its pitch classes (root, third, fifth[, seventh])."""
    root = tones[0]
    if voicing == "spread":  # root, fifth, (seventh,) tenth
        r = _place(root, CHORD_LOW - 7)
        return sorted([r, r + 12 + (tones[1] - root) % 12] + [r + (t - root) % 12 for t in tones[2:]])
    if voicing == "seventh":  # shell voicing: root, third and seventh (rootless ones blur the key)
        r = _place(root, CHORD_LOW - 7)
        return [r, r + 12 + (tones[1] - root) % 12, r + (tones[3] - root) % 12]
    notes = sorted(_place(t, CHORD_LOW) for t in tones)
    if voicing == "octave":
        notes.append(_place(root, CHORD_LOW) + 12)
    return notes


def _bass_line(rng, key_index, degrees, style) -> list[Note]:
    bpb = style.beats_per_bar
    notes = []
    for bar, degree in enumerate(degrees):
        tones = chord_tones(key_index, degree)
        root = _place(tones[0], BASS_LOW)
        next_root = _place(chord_tones(key_index, degrees[min(bar + 1, len(degrees) - 1)])[0], BASS_LOW)
        for pos, tone, length in style.bass:
            if tone == "root":
                pitch = root
            elif tone == "fifth":
                pitch = root + (tones[2] - tones[0]) % 12
            elif tone == "octave":
                pitch = root + 12
            else:  # walk: a chord tone on beat 2, a chromatic approach to the next root on beat 4
                if pos >= bpb - 1:
                    pitch = next_root + (1 if rng.random() < 0.5 else -1)
                else:
                    pitch = root + (tones[1] - tones[0]) % 12
            velocity = 0.9 if pos == 0 else 0.75
            notes.append(Note(bar * bpb + pos, length, int(pitch), velocity))
    return notes


def _chord_part(key_index, degrees, style) -> list[Note]:
    bpb = style.beats_per_bar
    notes = []
    for bar, degree in enumerate(degrees):
        # the dominant is always a seventh chord: its tritone points at the tonic
        tones = chord_tones(key_index, degree, seventh=style.voicing == "seventh" or degree == 4)
        for pos, length in style.chords:
            for i, pitch in enumerate(voice_chord(tones, style.voicing)):
                notes.append(Note(bar * bpb + pos + i * style.strum, min(length, bpb - pos), pitch, 0.7))
    return notes


def _drum_part(style, n_bars: int, *, energy: float) -> list[Hit]:
    """The genre's drum pattern over the track; ``energy`` (0..1) scales soft hits.

    Strong hits (velocity >= 0.6) keep their level whatever the mood, so the
    beat grid stays clear; softer hits (ghosts, busy hats) follow the energy.
    """
    cycle = style.drum_bars * style.beats_per_bar
    n_cycles = -(-n_bars // style.drum_bars)
    hits = []
    for c in range(n_cycles):
        for drum, positions, velocity in style.drums:
            v = velocity if velocity >= 0.6 else velocity * (0.5 + energy)
            for pos in positions:
                start = c * cycle + pos
                if start < n_bars * style.beats_per_bar:
                    hits.append(Hit(start, drum, min(1.0, v)))
    hits.append(Hit(0.0, "crash", 0.7))
    return hits


def _melody(rng, key_index, degrees, style, *, density, legato, center) -> list[Note]:
    """A lead line from the scale: chord tones on strong beats, phrases ending on a root.

    ``density`` is the probability of a note on each eighth, ``legato`` the
    fraction of the gap to the next note that sounds, ``center`` the MIDI note
    around which the line moves (about an octave either side).
    """
    tonic, scale = scale_of(key_index)
    minor = key_index >= 12
    bpb = style.beats_per_bar
    pcs_all = np.arange(center - 14, center + 15)
    onsets, pitches = [], []
    current = None
    for bar, degree in enumerate(degrees):
        steps = list(scale)
        if minor and degree == 4:
            steps = [11 if s == 10 else s for s in steps]  # leading tone over the dominant
        allowed = pcs_all[np.isin((pcs_all - tonic) % 12, steps)]
        chord = set(chord_tones(key_index, degree))
        strong = allowed[np.isin(allowed % 12, list(chord))]
        phrase_end = bar % 2 == 1 or bar == len(degrees) - 1
        slots = np.arange(0, 1 if phrase_end else bpb, 0.5)
        for pos in slots:
            p = min(1.0, density + (0.35 if pos == 0 else 0.0))
            if rng.random() >= p:
                continue
            if current is None:
                current = int(strong[np.argmin(np.abs(strong - center))])
            target = strong if pos == int(pos) else allowed
            step = int(rng.choice((-2, -1, -1, 0, 1, 1, 2)))
            pull = np.sign(center - current) if abs(center - current) > 7 else 0
            wanted = current + 2 * (step + pull)
            current = int(target[np.argmin(np.abs(target - wanted))])
            onsets.append(bar * bpb + pos)
            pitches.append(current)
        if phrase_end:
            # the phrase comes to rest on the chord's root (the tonic at the very end)
            root = tonic if bar == len(degrees) - 1 else chord_tones(key_index, degree)[0]
            cands = allowed[allowed % 12 == root]
            current = int(cands[np.argmin(np.abs(cands - (center if current is None else current)))])
            onsets.append(bar * bpb + 1)
            pitches.append(current)
    total = len(degrees) * bpb
    notes = []
    for i, (start, pitch) in enumerate(zip(onsets, pitches)):
        gap = (onsets[i + 1] if i + 1 < len(onsets) else total) - start
        length = max(0.2, min(gap, 2.0) * legato)
        velocity = 0.85 if start == int(start) else 0.7
        notes.append(Note(float(start), float(length), int(pitch), velocity))
    return notes


@dataclass(frozen=True)
class Score:
    """All parts of one track; times in beats."""

    style: GenreStyle
    n_bars: int
    degrees: tuple
    drums: tuple
    bass: tuple
    chords: tuple
    lead: tuple


def compose(rng: np.random.Generator, *, key_index: int, genre: str, n_bars: int,
            density: float, legato: float, center: int, energy: float) -> Score:
    """Write the score of a track of ``n_bars`` bars."""
    style = GENRE_STYLES[genre]
    degrees = bar_chords(rng, key_index, n_bars)
    return Score(
        style=style,
        n_bars=n_bars,
        degrees=tuple(degrees),
        drums=tuple(_drum_part(style, n_bars, energy=energy)),
        bass=tuple(_bass_line(rng, key_index, degrees, style)),
        chords=tuple(_chord_part(key_index, degrees, style)),
        lead=tuple(_melody(rng, key_index, degrees, style, density=density, legato=legato, center=center)),
    )


def beats_to_seconds(beats, *, tempo: float, swing: bool) -> np.ndarray:
    """Seconds of beat positions; with swing, off-beat eighths land on the third triplet."""
    beats = np.asarray(beats, dtype=np.float64)
    if swing:
        whole = np.floor(beats)
        frac = beats - whole
        # piecewise-linear map of the beat: 0 -> 0, 1/2 -> 2/3, 1 -> 1
        frac = np.where(frac < 0.5, frac * 4 / 3, 2 / 3 + (frac - 0.5) * 2 / 3)
        beats = whole + frac
    return beats * 60.0 / tempo
