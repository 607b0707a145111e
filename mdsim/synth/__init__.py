"""Synthetic labelled music: genre, mood, instrument, era, tempo and key all known and audible.

Each track is 10 to 30 s of arranged music (drums, bass, chords, a lead line)
whose six factors are drawn independently:

* **tempo** -- continuous, 60 to 180 BPM (the quarter note; half-time and
  swing keep it);
* **key** -- one of 24, heard in the chords, the bass and the melody
  (:mod:`mdsim.synth.score`);
* **genre** -- rhythm and arrangement, :data:`GENRES`;
* **mood** -- energy and colour: melody density, articulation, register,
  dynamics, brightness, drum level, loudness (:data:`MOOD_STYLES`); the mode
  of the key is drawn independently of the mood;
* **instrument** -- the timbre of the lead, :data:`INSTRUMENTS`
  (:mod:`mdsim.synth.voices`);
* **era** -- production and carrier, :data:`ERAS`
  (:mod:`mdsim.synth.production`).

Command line::

    python -m mdsim.synth --n 300 --out DIR --seed 0 [--duration-range 10 30]

writes ``DIR/audio/synthNNNNN.wav`` (22 050 Hz mono, 16-bit) and
``DIR/manifest.csv`` in the ``mdsim prep`` format. See ``docs/synthetic.md``.
"""

from __future__ import annotations

import argparse
import csv
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdsim.synth.production import ERA_STYLES, produce
from mdsim.synth.score import GENRE_STYLES, beats_to_seconds, compose
from mdsim.synth.voices import LEADS, bass_tone, drum_kit, keys_tone, midi_to_hz
from mdsim.errors import InputError, MdsimError
from mdsim.labels import KEY_NAMES, parse_key

SAMPLE_RATE = 22050
TEMPO_RANGE = (60.0, 180.0)
DURATION_RANGE = (10.0, 30.0)
#: Tracks per synthetic "artist" (the manifest's ``group``).
GROUP_SIZE = 5
MANIFEST_COLUMNS = ("track_id", "path", "genre", "mood", "instrument", "era", "tempo", "key", "group")


@dataclass(frozen=True)
class MoodStyle:
    """How a mood colours a track (all in 0..1 unless stated)."""

    density: float  # probability of a melody note on each eighth
    legato: float  # sounding fraction of the gap to the next note
    center: int  # register of the melody (MIDI note)
    brightness: float  # spectral tilt of the lead
    energy: float  # level of the soft drum hits
    dynamics: float  # accent contrast of the melody
    drum_db: float  # drum bus level relative to the lead (dB)
    lead_drive: float  # saturation of the lead (0 = clean)
    level: float  # final loudness, times the era's peak


#: Arousal x valence: calm (low, bright), sad (low, dark), happy (high, bright), aggressive (high, harsh).
MOOD_STYLES = {
    "calm": MoodStyle(density=0.3, legato=1.0, center=74, brightness=0.55, energy=0.1,
                      dynamics=0.1, drum_db=-6.0, lead_drive=0.0, level=0.6),
    "sad": MoodStyle(density=0.25, legato=0.95, center=60, brightness=0.1, energy=0.05,
                     dynamics=0.15, drum_db=-7.0, lead_drive=0.0, level=0.55),
    "happy": MoodStyle(density=0.65, legato=0.45, center=78, brightness=0.9, energy=0.7,
                       dynamics=0.3, drum_db=-2.0, lead_drive=0.0, level=0.85),
    "aggressive": MoodStyle(density=0.75, legato=0.7, center=64, brightness=0.6, energy=1.0,
                            dynamics=0.5, drum_db=0.0, lead_drive=4.0, level=1.0),
}

GENRES = tuple(GENRE_STYLES)
MOODS = tuple(MOOD_STYLES)
INSTRUMENTS = tuple(LEADS)
ERAS = tuple(ERA_STYLES)

# Bus levels (dB RMS) relative to the lead; the drums add the mood's drum_db.
_BUS_DB = {"lead": 0.0, "chords": -6.0, "bass": -3.0, "drums": 1.0}
_FADE_OUT_SECONDS = 0.25
_HUMANISE_SECONDS = 0.003


def _check(name: str, value: str, allowed: tuple) -> None:
    if value not in allowed:
        raise InputError(f"unknown {name} {value!r} (valid: {', '.join(allowed)})")


def _add(buf: np.ndarray, start: int, sig: np.ndarray) -> None:
    """Mix ``sig`` into ``buf`` from sample ``start``, clipped to the buffer."""
    if start >= len(buf):
        return
    stop = min(len(buf), start + len(sig))
    buf[start:stop] += sig[: stop - start]


def _render_notes(n, notes, voice, *, tempo, swing, sr, rng, dynamics=0.0, repeatable=False) -> np.ndarray:
    """Render pitched notes with ``voice(f0, gate) -> samples`` into a new buffer of ``n`` samples.

    With ``repeatable`` (a voice without randomness, such as the chords), each
    (pitch, gate) is synthesised once and reused: accompaniments repeat.
    """
    buf = np.zeros(n, dtype=np.float32)
    if not notes:
        return buf
    starts = beats_to_seconds([x.start for x in notes], tempo=tempo, swing=swing)
    ends = beats_to_seconds([x.start + x.length for x in notes], tempo=tempo, swing=swing)
    gates = np.maximum(np.round(ends - starts, 3), 0.05)
    starts = np.maximum(0, starts + rng.normal(0, _HUMANISE_SECONDS, len(notes)))
    gains = np.array([x.velocity for x in notes]) ** (4 * dynamics) * rng.uniform(0.92, 1.0, len(notes))
    cache = {}
    for note, t0, gate, gain in zip(notes, starts, gates, gains):
        sig = cache.get((note.pitch, gate)) if repeatable else None
        if sig is None:
            sig = voice(float(midi_to_hz(note.pitch)), float(gate))
            if repeatable:
                cache[note.pitch, gate] = sig
        _add(buf, int(t0 * sr), sig * np.float32(gain))
    return buf


def _render_drums(n, hits, kit, *, tempo, swing, sr) -> np.ndarray:
    buf = np.zeros(n, dtype=np.float32)
    starts = beats_to_seconds([h.start for h in hits], tempo=tempo, swing=swing)
    for hit, t0 in zip(hits, starts):
        _add(buf, int(round(t0 * sr)), kit[hit.drum] * hit.velocity)
    return buf


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) + 1e-12


def generate_track(rng_or_seed, *, tempo: float, key, genre: str, mood: str, instrument: str,
                   era: str, duration: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Synthesise one track with the given factors.

    Parameters
    ----------
    rng_or_seed : int, sequence of int or np.random.Generator
        Source of every random choice (progression, melody, kit, noise).
        The same seed and factors give the same samples.
    tempo : float
        Quarter notes per minute, 60 to 180 (others work but are not tested).
    key : int or str
        Key index ``pitch_class + 12 * mode`` or a name such as ``"F# minor"``.
    genre, mood, instrument, era : str
        One tag each, from :data:`GENRES`, :data:`MOODS`, :data:`INSTRUMENTS`, :data:`ERAS`.
    duration : float
        Length in seconds (at least 1).
    sr : int
        Sample rate in Hz.

    Returns
    -------
    np.ndarray [shape=(round(duration * sr),), dtype=float32]
        Mono audio, peak below 1.
    """
    rng = np.random.default_rng(rng_or_seed)
    key_index = parse_key(key)
    if key_index is None:
        raise InputError("key is empty: give a key name such as 'F# minor' or an index 0..23")
    _check("genre", genre, GENRES)
    _check("mood", mood, MOODS)
    _check("instrument", instrument, INSTRUMENTS)
    _check("era", era, ERAS)
    if not (np.isfinite(tempo) and tempo > 0):
        raise InputError(f"tempo {tempo!r} is not a positive number of BPM")
    if not (np.isfinite(duration) and duration >= 1.0):
        raise InputError(f"duration {duration!r} is too short: give at least 1 second")
    if sr < 16000:
        raise InputError(f"sample rate {sr} Hz is too low for the drums and cymbals: give 16000 or more")

    style = GENRE_STYLES[genre]
    feel = MOOD_STYLES[mood]
    bar_seconds = style.beats_per_bar * 60.0 / tempo
    n_bars = max(1, int(np.ceil(duration / bar_seconds)))
    score = compose(rng, key_index=key_index, genre=genre, n_bars=n_bars, density=feel.density,
                    legato=feel.legato, center=feel.center, energy=feel.energy)

    # Every stage is causal (up to the 10 ms windows of the dynamics), so
    # notes and reverb running past the end need not be rendered.
    n = int(round(duration * sr))
    timing = {"tempo": tempo, "swing": style.swing, "sr": sr}
    lead_voice = LEADS[instrument]

    def lead(f0, gate):
        return lead_voice(f0, gate, sr=sr, brightness=feel.brightness, rng=rng)

    def chord(f0, gate):
        return keys_tone(f0, gate, sr=sr, attack=style.chord_attack)

    def bass(f0, gate):
        return bass_tone(f0, gate, sr=sr, kind=style.bass_tone)

    buses = {
        "lead": _render_notes(n, score.lead, lead, rng=rng, dynamics=feel.dynamics, **timing),
        "chords": _render_notes(n, score.chords, chord, rng=rng, repeatable=True, **timing),
        "bass": _render_notes(n, score.bass, bass, rng=rng, repeatable=True, **timing),
        "drums": _render_drums(n, score.drums, drum_kit(rng, sr), **timing),
    }
    if feel.lead_drive:
        lead_bus = buses["lead"] / (np.max(np.abs(buses["lead"])) + 1e-12)
        buses["lead"] = np.tanh(feel.lead_drive * lead_bus)
    mix = np.zeros(n, dtype=np.float32)
    for name, bus in buses.items():
        db = _BUS_DB[name] + (feel.drum_db if name == "drums" else 0.0)
        if np.any(bus):
            mix += bus * np.float32(10 ** (db / 20) / _rms(bus))
    y = produce(mix, sr, rng, era=era, level=feel.level)
    fade = min(n, int(_FADE_OUT_SECONDS * sr))
    y[n - fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    return y


# --------------------------------------------------------------------------------------
# Corpus


def _balanced(rng: np.random.Generator, classes, n: int) -> list:
    """``n`` draws in which every class appears ``n // K`` or ``n // K + 1`` times, in random order."""
    extra = rng.permutation(len(classes))[: n % len(classes)]
    pool = list(classes) * (n // len(classes)) + [classes[i] for i in sorted(extra)]
    return [pool[i] for i in rng.permutation(n)]


def draw_labels(n: int, seed: int, *, duration_range=DURATION_RANGE) -> list[dict]:
    """The factors of a corpus of ``n`` tracks, deterministic for ``seed``.

    Every factor is drawn independently of the others. The tag factors and
    the key are balanced (each class ``n // K`` or ``n // K + 1`` times);
    tempo is stratified over 60-180 BPM (one draw in each of ``n`` equal
    bins, shuffled) and rounded to 0.01 BPM, so the manifest holds the true
    value; duration is uniform in ``duration_range`` (rounded to 0.01 s).

    Returns
    -------
    list of dict
        Keys ``track_id, genre, mood, instrument, era, tempo, key, group,
        duration, seed`` (``key`` as a name, ``seed`` the track's own seed
        ``[seed, i]``).
    """
    low, high = (float(v) for v in duration_range)
    if not (1.0 <= low <= high):
        raise InputError(f"duration range {low:g}..{high:g} s is invalid: give 1 <= MIN <= MAX")
    if n < 1:
        raise InputError(f"cannot generate {n} tracks: give --n 1 or more")
    rng = np.random.default_rng(seed)
    columns = {
        "genre": _balanced(rng, GENRES, n),
        "mood": _balanced(rng, MOODS, n),
        "instrument": _balanced(rng, INSTRUMENTS, n),
        "era": _balanced(rng, ERAS, n),
        "key": _balanced(rng, KEY_NAMES, n),  # KEY_NAMES[i] == key_name(i)
    }
    t_low, t_high = TEMPO_RANGE
    tempo = t_low + (t_high - t_low) * (rng.permutation(n) + rng.random(n)) / n
    duration = rng.uniform(low, high, n)
    return [
        {
            "track_id": f"synth{i:05d}",
            **{name: values[i] for name, values in columns.items()},
            "tempo": round(float(tempo[i]), 2),
            "group": f"artist{i // GROUP_SIZE:04d}",
            "duration": round(float(duration[i]), 2),
            "seed": [int(seed), i],
        }
        for i in range(n)
    ]


def generate_corpus(out_dir, n: int, seed: int, *, duration_range=DURATION_RANGE,
                    sr: int = SAMPLE_RATE, audio_format: str = "wav", progress: bool = False) -> Path:
    """Write ``n`` tracks to ``out_dir/audio/`` and their labels to ``out_dir/manifest.csv``.

    Audio is mono 16-bit PCM (``audio_format`` ``"wav"`` or ``"flac"``).
    Paths in the manifest are relative to its folder. Returns the manifest's path.
    """
    import soundfile as sf
    from tqdm import tqdm

    if audio_format not in ("wav", "flac"):
        raise InputError(f"unknown audio format {audio_format!r} (valid: wav, flac)")
    out_dir = Path(out_dir)
    rows = draw_labels(n, seed, duration_range=duration_range)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    for row in tqdm(rows, desc="synth", unit="track", disable=not progress, file=sys.stderr):
        y = generate_track(row["seed"], tempo=row["tempo"], key=row["key"], genre=row["genre"],
                           mood=row["mood"], instrument=row["instrument"], era=row["era"],
                           duration=row["duration"], sr=sr)
        row["path"] = f"audio/{row['track_id']}.{audio_format}"
        sf.write(out_dir / row["path"], y, sr, subtype="PCM_16", format=audio_format.upper())
    manifest = out_dir / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "tempo": f"{row['tempo']:.2f}"})
    return manifest


# --------------------------------------------------------------------------------------
# Command line


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m mdsim.synth",
        description="Generate synthetic music with known genre, mood, instrument, era, tempo and key.")
    parser.add_argument("--n", type=int, default=300, help="number of tracks (default 300)")
    parser.add_argument("--out", required=True, help="output folder (manifest.csv and audio/)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--duration-range", type=float, nargs=2, default=DURATION_RANGE,
                        metavar=("MIN", "MAX"), help="track length in seconds (default 10 30)")
    parser.add_argument("--sr", type=int, default=SAMPLE_RATE, help="sample rate (default 22050)")
    parser.add_argument("--format", choices=("wav", "flac"), default="wav", help="audio format")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        manifest = generate_corpus(args.out, args.n, args.seed, duration_range=args.duration_range,
                                   sr=args.sr, audio_format=args.format, progress=True)
    except MdsimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(manifest)
    return 0

