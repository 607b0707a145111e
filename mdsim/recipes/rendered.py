"""A rendered corpus with exact key and tempo: generated scores played through FluidSynth.

Each score is a loop of diatonic chords in a known key with a melody, a bass line and, for
some ensembles, drums, at a known tempo; it is written as a Standard MIDI File and rendered
to WAV by FluidSynth with a General MIDI soundfont (Debian: ``apt install fluidsynth
fluid-soundfont-gm``; FluidR3_GM is under the MIT licence, the scores are generated here).
Every score is played in several keys (transpositions keep the mode; ``--keys 24`` plays
each base score in all twelve tonics, and half of the base scores are minor), so each track
of one score shares its ``group``: ``mdsim train`` and ``mdsim triplets`` then keep every
transposition of a score on one side of a split.

What varies, all drawn from ``(seed, score number)``:

- **ensemble** (the ``genre`` and ``instrument`` tags): which General MIDI programs play the
  melody, the chords and the bass, whether drums play, and how the chords are played
  (held, or struck on the beats);
- **tempo**: uniform on a log scale between ``--min-bpm`` and ``--max-bpm``; a fifth of the
  scores (``--tempo-changes``) change tempo halfway by up to 4 % (the label is then the
  duration-weighted tempo, within ``mdsim``'s 5 BPM tolerance of both parts at these tempi);
- **key**: the tonic and the mode (major, natural minor with a raised leading tone in the
  dominant chord); the label is exact, as written in the score;
- **mixing levels**: each part's MIDI volume from 70 to 120; the ``mood`` tag is the mode
  (``bright`` for major, ``dark`` for minor).

    python -m mdsim.recipes.rendered --out rendered/ --scores 40 --keys 6 --seconds 30
    mdsim prep rendered/manifest.csv --out rendered.h5 --annotate none --chroma-n-fft 4096

``--palette gm`` (the default model's corpus, ``experiments/default_model.py``) draws the parts
from the General MIDI programmes instead of the eight ensembles: a lead instrument from one of
ten programme families (:data:`GM_LEADS`; the ``instrument`` tag is that family, and no genre
or mood tag is written: the corpus has no honest one), an accompaniment, a bass, drums in half
the scores and a way of playing the chords; each score is rendered with one soundfont drawn from
``--soundfont`` (repeatable) and its own reverb, chorus and output level, so timbre is not one
bank's. ``--jobs N`` runs N FluidSynth processes at once.

    python -m mdsim.recipes.rendered --out gm/ --palette gm --soundfont /usr/share/sounds/sf2/FluidR3_GM.sf2 \
        --soundfont /usr/share/sounds/sf3/MuseScore_General_Lite.sf3 --scores 200 --keys 4 --seconds 20 --jobs 2

``--mastering`` puts each score through a mastering chain of its own after FluidSynth
(:func:`mastering`: band-limiting as a lossy encoder does, a high-pass, a compressor, stereo
width, a noise floor and a peak level; the ``mastering`` column of the manifest says which), so
production is not FluidSynth's alone. The labels do not move.

``--annotate none`` keeps the exact labels; ``mdsim prep`` without it estimates them with
madmom instead (the madmom-labelled variant of the corpus).
"""

from __future__ import annotations

import argparse
import csv
import shutil
import subprocess
from pathlib import Path

import numpy as np

from mdsim.errors import InputError
from mdsim.labels import key_name
from mdsim.recipes import write_manifest_or_fail

#: The rate the corpus is rendered at (mdsim's analysis rate: prep does not resample).
SAMPLE_RATE = 22050
TICKS_PER_BEAT = 480
#: Where Debian's fluid-soundfont-gm puts its General MIDI soundfont.
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
MANIFEST_COLUMNS = ("track_id", "path", "genre", "mood", "instrument", "tempo", "key", "group", "ensemble",
                    "tempo_change", "soundfont", "mastering")

#: name -> (genre tag, instrument tags, melody program, chord program, bass program, drums, chord style)
ENSEMBLES = {
    "piano_trio": ("jazz", "piano,bass,drums", 0, 0, 32, True, "comp"),
    "rock_band": ("rock", "guitar,bass,drums", 30, 29, 33, True, "strum"),
    "strings": ("classical", "violin,strings,cello", 40, 48, 42, False, "hold"),
    "synth_pop": ("pop", "synth,bass,drums", 80, 89, 38, True, "strum"),
    "folk": ("folk", "flute,guitar,bass", 73, 25, 32, False, "strum"),
    "organ_choir": ("gospel", "organ,voice,bass", 19, 52, 32, False, "hold"),
    "brass_band": ("brass", "trumpet,brass,tuba", 56, 61, 58, True, "comp"),
    "mallets": ("ambient", "vibraphone,pad,bass", 11, 88, 35, False, "hold"),
}
#: ``--palette gm``: the lead's General MIDI programme family (the ``instrument`` tag) -> its programmes.
GM_LEADS = {
    "piano": (0, 1, 2, 4, 5),
    "chromatic_percussion": (8, 9, 11, 12, 13),
    "organ": (16, 17, 19, 21),
    "guitar": (24, 25, 26, 27, 29, 30),
    "strings": (40, 41, 42, 110),
    "ensemble": (48, 49, 52, 53),
    "brass": (56, 57, 60, 61),
    "reed": (64, 65, 66, 68, 71),
    "pipe": (72, 73, 74, 75, 79),
    "synth_lead": (80, 81, 82, 84),
}
#: ``--palette gm``: programmes that play the chords, and the bass.
GM_ACCOMPANIMENT = (0, 4, 24, 25, 27, 48, 16, 89, 46)
GM_BASSES = (32, 33, 34, 35, 38, 43)
CHORD_STYLES = ("hold", "comp", "strum")
PALETTES = ("ensembles", "gm")
MAJOR = (0, 2, 4, 5, 7, 9, 11)
MINOR = (0, 2, 3, 5, 7, 8, 10)
#: Chord loops as scale degrees (0 = the tonic chord), the common ones of each mode.
PROGRESSIONS = {
    "major": ((0, 4, 5, 3), (0, 3, 4, 0), (0, 5, 3, 4), (0, 3, 0, 4), (1, 4, 0, 0), (0, 5, 1, 4)),
    "minor": ((0, 5, 2, 6), (0, 3, 4, 0), (0, 6, 5, 4), (0, 3, 6, 2), (0, 5, 3, 4), (0, 2, 3, 4)),
}


def _vlq(n: int) -> bytes:
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    return bytes(reversed(out))


def write_midi(path, events, *, ticks_per_beat: int = TICKS_PER_BEAT) -> None:
    """A format-0 Standard MIDI File of ``events``: ``(tick, bytes)`` pairs, sorted here."""
    body = bytearray()
    last = 0
    for tick, data in sorted(events, key=lambda e: (e[0], e[1][0] & 0xF0 != 0x80)):  # note-offs first
        body += _vlq(tick - last) + data
        last = tick
    body += b"\x00\xff\x2f\x00"
    header = b"MThd" + (6).to_bytes(4, "big") + (0).to_bytes(2, "big") + (1).to_bytes(2, "big") + \
        ticks_per_beat.to_bytes(2, "big")
    Path(path).write_bytes(header + b"MTrk" + len(body).to_bytes(4, "big") + bytes(body))


def _tempo_event(tick: int, bpm: float):
    return tick, b"\xff\x51\x03" + int(round(60e6 / bpm)).to_bytes(3, "big")


def _note(events, channel: int, tick: int, length: int, pitch: int, velocity: int) -> None:
    pitch = int(np.clip(pitch, 0, 127))
    events.append((tick, bytes([0x90 | channel, pitch, int(np.clip(velocity, 1, 127))])))
    events.append((tick + max(1, length), bytes([0x80 | channel, pitch, 0])))


def make_score(rng, *, tonic: int, mode: str, bpm: float, seconds: float, ensemble: str,
               tempo_change: float = 0.0, parts=None) -> tuple[list, float]:
    """MIDI events of one score in ``tonic`` (0 = C) ``mode`` at ``bpm``; returns ``(events,
    label tempo)``. ``tempo_change`` (a ratio, e.g. 1.03) applies from the middle bar on.
    ``parts`` (``(melody, chords, bass programme, drums, chord style)``) plays the score with
    those instead of ``ensemble``'s."""
    if parts is not None:
        melody_prog, chord_prog, bass_prog, drums, style = parts
    elif ensemble not in ENSEMBLES:
        raise InputError(f"unknown ensemble {ensemble!r} (valid: {', '.join(ENSEMBLES)})")
    else:
        _, _, melody_prog, chord_prog, bass_prog, drums, style = ENSEMBLES[ensemble]
    scale = MAJOR if mode == "major" else MINOR
    beats_per_bar = 4
    bars = max(2, int(round(seconds * bpm / 60 / beats_per_bar)))
    progression = PROGRESSIONS[mode][int(rng.integers(len(PROGRESSIONS[mode])))]
    q = TICKS_PER_BEAT
    events = [_tempo_event(0, bpm)]
    change_bar = bars // 2 if tempo_change else bars
    if tempo_change:
        events.append(_tempo_event(change_bar * beats_per_bar * q, bpm * tempo_change))
    for channel, program in ((0, melody_prog), (1, chord_prog), (2, bass_prog)):
        events.append((0, bytes([0xC0 | channel, program])))
        events.append((0, bytes([0xB0 | channel, 7, int(rng.integers(70, 121))])))  # the part's level
    if drums:
        events.append((0, bytes([0xB9, 7, int(rng.integers(70, 111))])))

    def degree_pitch(degree: int, octave: int) -> int:
        return 12 * octave + tonic + scale[degree % 7] + 12 * (degree // 7)

    melody_octave = 5
    for bar in range(bars):
        root = progression[bar % len(progression)]
        start = bar * beats_per_bar * q
        chord = [root, root + 2, root + 4]
        pitches = [degree_pitch(d, 4) for d in chord]
        if mode == "minor" and root == 4:  # the dominant chord's raised leading tone
            pitches[1] += 1
        # chords
        if style == "hold":
            for p in pitches:
                _note(events, 1, start, beats_per_bar * q - 10, p, 70)
        else:
            hits = range(beats_per_bar) if style == "comp" else [0, 1.5, 2, 3, 3.5]
            for beat in hits:
                for p in pitches:
                    _note(events, 1, start + int(beat * q), q // 2, p, 60 + int(rng.integers(0, 20)))
        # bass: the root on beats 1 and 3, the fifth on beat 3 now and then
        for beat in (0, 2):
            fifth = beat == 2 and rng.random() < 0.4
            _note(events, 2, start + beat * q, 2 * q - 20, degree_pitch(root + (4 if fifth else 0), 2), 90)
        # melody: chord tones on the beats, scale steps between, eighths and quarters
        t = 0.0
        degree = int(rng.choice(chord))
        while t < beats_per_bar:
            length = 0.5 if rng.random() < 0.5 else 1.0
            if t == int(t):
                degree = int(rng.choice(chord)) + (7 if rng.random() < 0.3 else 0)
            else:
                degree += int(rng.choice([-1, 1]))
            if rng.random() > 0.1:  # a rest now and then
                pitch = degree_pitch(degree, melody_octave)
                if mode == "minor" and root == 4 and degree % 7 == 6:
                    pitch += 1
                _note(events, 0, start + int(t * q), int(length * q) - 15, pitch, 80 + int(rng.integers(0, 30)))
            t += length
        if drums:
            for eighth in range(2 * beats_per_bar):
                tick = start + eighth * q // 2
                _note(events, 9, tick, q // 4, 42, 50 + int(rng.integers(0, 20)))  # closed hi-hat
                if eighth in (0, 4) or (eighth == 5 and rng.random() < 0.3):
                    _note(events, 9, tick, q // 4, 36, 100)  # kick
                if eighth in (2, 6):
                    _note(events, 9, tick, q // 4, 38, 95)  # snare
    first, second = change_bar, bars - change_bar
    seconds_first, seconds_second = first * 4 * 60 / bpm, second * 4 * 60 / (bpm * (tempo_change or 1.0))
    label = (bpm * seconds_first + bpm * (tempo_change or 1.0) * seconds_second) / (seconds_first + seconds_second)
    return events, float(label)


def transpose_events(events, semitones: int) -> list:
    """The events with every pitched note (not the drums' channel) moved by ``semitones``."""
    out = []
    for tick, data in events:
        kind, channel = data[0] & 0xF0, data[0] & 0x0F
        if kind in (0x80, 0x90) and channel != 9:
            data = bytes([data[0], int(np.clip(data[1] + semitones, 0, 127)), data[2]])
        out.append((tick, data))
    return out


def render(midi_path, wav_path, *, soundfont=DEFAULT_SOUNDFONT, sr: int = SAMPLE_RATE, gain: float = 0.6,
           settings=None) -> None:
    """Play a MIDI file through FluidSynth into a WAV file; ``settings`` are FluidSynth's
    (``{"synth.reverb.room-size": 0.7}``), e.g. the room and chorus of :func:`production`."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise InputError("fluidsynth is not installed (Debian: apt install fluidsynth fluid-soundfont-gm)")
    if not Path(soundfont).is_file():
        raise InputError(f"{soundfont}: no soundfont there (Debian: apt install fluid-soundfont-gm), "
                         "or give --soundfont")
    options = [a for k, v in (settings or {}).items() for a in ("-o", f"{k}={v}")]
    run = subprocess.run([exe, "-ni", "-q", "-g", str(gain), "-r", str(sr), *options, "-F", str(wav_path),
                          "-T", "wav", str(soundfont), str(midi_path)], capture_output=True, text=True)
    if run.returncode or not Path(wav_path).is_file():
        raise InputError(f"fluidsynth failed on {midi_path}: {(run.stderr or run.stdout).strip()[-300:]}")


def production(rng) -> tuple[float, dict]:
    """One score's output gain and FluidSynth room: reverb size, level, damping and width, and
    chorus on or off (``--palette gm``)."""
    gain = float(rng.uniform(0.35, 0.8))
    return gain, {"synth.reverb.active": 1, "synth.reverb.room-size": round(float(rng.uniform(0.05, 0.95)), 3),
                  "synth.reverb.level": round(float(rng.uniform(0.1, 0.9)), 3),
                  "synth.reverb.damp": round(float(rng.uniform(0.0, 0.8)), 3),
                  "synth.reverb.width": round(float(rng.uniform(0.5, 10.0)), 3),
                  "synth.chorus.active": int(rng.random() < 0.5)}


def mastering(rng) -> dict:
    """One score's mastering chain (``--mastering``), drawn once, so every transposition of the
    score shares it: what a release does to a mix after the room (:func:`apply_mastering`).

    - ``highpass_hz``: a small speaker's or a cleaned-up low end, 40 to 150 Hz, half the scores;
    - ``lowpass_hz``: band-limiting as a lossy encoder at a low bit rate does, 4 to 10 kHz, half
      the scores;
    - ``threshold_db`` (below the mix's loudest RMS) and ``ratio``: a compressor on the mix, 3
      to 18 dB at 1.5:1 to 8:1, seven scores in ten (ratio 1 otherwise);
    - ``width``: the side signal's gain (0: mono, 1: as rendered, 1.5: widened);
    - ``noise_db``: a noise floor, 70 to 40 dB under the peak;
    - ``peak_db``: the master's peak level, -12 to -0.5 dBFS.
    """
    def maybe(probability, low, high, off):
        value = float(rng.uniform(low, high))  # drawn either way: each field's draw does not move the others
        return round(value, 2) if rng.random() < probability else off

    return {"highpass_hz": maybe(0.5, 40.0, 150.0, 0.0), "lowpass_hz": maybe(0.5, 4000.0, 10000.0, 0.0),
            "threshold_db": maybe(0.7, 3.0, 18.0, 0.0), "ratio": maybe(0.7, 1.5, 8.0, 1.0),
            "width": round(float(rng.uniform(0.0, 1.5)), 2), "noise_db": round(float(rng.uniform(-70.0, -40.0)), 1),
            "peak_db": round(float(rng.uniform(-12.0, -0.5)), 1)}


def mastering_text(chain: dict) -> str:
    """The chain in a manifest cell, e.g. ``lowpass 6200 Hz; compressor -9 dB 4.0:1; width 0.70;
    noise -55 dB; peak -3.0 dB``."""
    parts = []
    if chain["highpass_hz"]:
        parts.append(f"highpass {chain['highpass_hz']:.0f} Hz")
    if chain["lowpass_hz"]:
        parts.append(f"lowpass {chain['lowpass_hz']:.0f} Hz")
    if chain["ratio"] > 1:
        parts.append(f"compressor -{chain['threshold_db']:.0f} dB {chain['ratio']:.1f}:1")
    parts += [f"width {chain['width']:.2f}", f"noise {chain['noise_db']:.0f} dB", f"peak {chain['peak_db']:.1f} dB"]
    return "; ".join(parts)


def apply_mastering(y: np.ndarray, sr: int, chain: dict, *, seed: int = 0) -> np.ndarray:
    """``y`` (samples x channels, float) through the chain of :func:`mastering`: filters, a
    feed-forward RMS compressor (50 ms detector, the gain of both channels from their mean),
    stereo width, a white noise floor (drawn from ``seed``) and the peak level."""
    from scipy.signal import butter, lfilter, sosfilt

    y = np.asarray(y, dtype=np.float64)
    if y.ndim == 1:  # a mono signal: one channel
        y = y[:, None]
    nyquist = sr / 2
    if chain["highpass_hz"]:
        y = sosfilt(butter(2, chain["highpass_hz"] / nyquist, "highpass", output="sos"), y, axis=0)
    if chain["lowpass_hz"] and chain["lowpass_hz"] < 0.95 * nyquist:
        y = sosfilt(butter(8, chain["lowpass_hz"] / nyquist, "lowpass", output="sos"), y, axis=0)
    if chain["ratio"] > 1:
        a = np.exp(-1.0 / (0.05 * sr))
        power = lfilter([1 - a], [1, -a], (y ** 2).mean(axis=1))
        level = 10 * np.log10(np.maximum(power, 1e-12))
        threshold = level.max() - chain["threshold_db"]
        over = np.maximum(level - threshold, 0.0)
        y = y * (10 ** (-over * (1 - 1 / chain["ratio"]) / 20))[:, None]
    if y.shape[1] == 2:
        mid, side = (y[:, 0] + y[:, 1]) / 2, (y[:, 0] - y[:, 1]) / 2 * chain["width"]
        y = np.stack([mid + side, mid - side], axis=1)
    peak = np.abs(y).max()
    if peak > 0:
        y = y / peak
        y = y + np.random.default_rng(seed).standard_normal(y.shape) * 10 ** (chain["noise_db"] / 20)
        y = y / np.abs(y).max() * 10 ** (chain["peak_db"] / 20)
    return y.astype(np.float32)


def gm_parts(rng) -> tuple[str, tuple]:
    """A ``--palette gm`` score's lead family and its parts ``(melody, chords, bass, drums, style)``."""
    family = list(GM_LEADS)[int(rng.integers(len(GM_LEADS)))]
    lead = int(rng.choice(GM_LEADS[family]))
    return family, (lead, int(rng.choice(GM_ACCOMPANIMENT)), int(rng.choice(GM_BASSES)), bool(rng.random() < 0.5),
                    CHORD_STYLES[int(rng.integers(len(CHORD_STYLES)))])


def trim_tail(path, *, threshold_db: float = -60.0, keep_seconds: float = 0.25) -> None:
    """Cut the near-silence FluidSynth renders after the last note's release (several seconds
    after a slow score): from ``keep_seconds`` after the last sample within ``threshold_db`` of
    the peak on. Training draws windows anywhere in a track, and a silent window labelled with
    a key and a tempo teaches nothing true."""
    import soundfile as sf

    y, sr = sf.read(path, dtype="float32", always_2d=True)
    level = np.abs(y).max(axis=1)
    loud = np.flatnonzero(level > level.max() * 10 ** (threshold_db / 20)) if level.max() > 0 else []
    end = min(len(y), (int(loud[-1]) if len(loud) else 0) + int(keep_seconds * sr))
    sf.write(path, y[:end], sr, subtype="PCM_16")


def corpus_rows(*, scores: int, keys: int, seed: int = 0, seconds: float = 30.0, min_bpm: float = 60.0,
                max_bpm: float = 180.0, tempo_changes: float = 0.2, ensembles=tuple(ENSEMBLES),
                palette: str = "ensembles", soundfonts=(DEFAULT_SOUNDFONT,), with_mastering: bool = False
                ) -> list[dict]:
    """The tracks of the corpus (labels and score parameters), without rendering anything.

    With ``palette="gm"`` each score's parts, soundfont (one of ``soundfonts``) and production
    are drawn from ``(seed, score, 2)``; the draws of ``"ensembles"`` are unchanged by it.
    ``with_mastering``: each score's :func:`mastering` chain, drawn from ``(seed, score, 3)``
    (no other draw moves)."""
    if palette not in PALETTES:
        raise InputError(f"unknown palette {palette!r} (valid: {', '.join(PALETTES)})")
    soundfonts = [Path(f) for f in soundfonts]
    if not soundfonts:
        raise InputError("no soundfont given")
    if not 1 <= keys <= 12:
        raise InputError(f"--keys {keys}: a score is played in 1 to 12 tonics")
    if not 0 < min_bpm < max_bpm:
        raise InputError(f"tempo range {min_bpm}..{max_bpm} BPM is empty")
    for e in ensembles:
        if e not in ENSEMBLES:
            raise InputError(f"unknown ensemble {e!r} (valid: {', '.join(ENSEMBLES)})")
    rows = []
    for s in range(scores):
        rng = np.random.default_rng([seed, s])
        mode = "major" if s % 2 == 0 else "minor"
        ensemble = ensembles[int(rng.integers(len(ensembles)))]
        bpm = float(np.exp(rng.uniform(np.log(min_bpm), np.log(max_bpm))))
        change = float(rng.choice([0.96, 0.97, 1.03, 1.04])) if rng.random() < tempo_changes else 0.0
        genre, instruments = ENSEMBLES[ensemble][:2]
        mood, parts, gain, settings = ("bright" if mode == "major" else "dark"), None, 0.6, {}
        soundfont = soundfonts[0]
        if palette == "gm":
            extra = np.random.default_rng([seed, s, 2])
            instruments, parts = gm_parts(extra)
            soundfont = soundfonts[int(extra.integers(len(soundfonts)))]
            gain, settings = production(extra)
            genre, mood, ensemble = "", "", "gm:{}/{}/{}/{}/{}".format(*[int(p) if not isinstance(p, str) else p
                                                                          for p in parts])
        chain = mastering(np.random.default_rng([seed, s, 3])) if with_mastering else None
        for tonic in sorted(int(t) for t in rng.choice(12, size=keys, replace=False)):
            key = key_name(tonic + (12 if mode == "minor" else 0))
            rows.append({"track_id": f"s{s:04d}_{key.replace(' ', '_').replace('#', 's')}",
                         "genre": genre, "mood": mood, "instrument": instruments,
                         "key": key, "group": f"s{s:04d}", "ensemble": ensemble, "tempo_change": change,
                         "soundfont": soundfont.stem, "_soundfont": soundfont, "_parts": parts, "_gain": gain,
                         "_settings": settings, "_mastering": chain,
                         "mastering": mastering_text(chain) if chain else "",
                         "_score": s, "_tonic": tonic, "_mode": mode, "_bpm": bpm, "_seconds": seconds})
    return rows


def generate_corpus(out_dir, *, scores: int = 40, keys: int = 6, seed: int = 0, seconds: float = 30.0,
                    min_bpm: float = 60.0, max_bpm: float = 180.0, tempo_changes: float = 0.2,
                    ensembles=tuple(ENSEMBLES), soundfont=DEFAULT_SOUNDFONT, palette: str = "ensembles",
                    soundfonts=None, jobs: int = 1, progress=None, with_mastering: bool = False) -> Path:
    """Write ``out_dir/midi/``, ``out_dir/audio/`` and ``out_dir/manifest.csv``; returns the manifest.

    A track already rendered (its WAV present) is not rendered again, so an interrupted run
    resumes; each score depends on ``(seed, score number)`` alone. ``soundfonts`` (default:
    ``soundfont`` alone) are drawn from per score with ``palette="gm"``; ``jobs`` FluidSynth
    processes run at once. ``with_mastering``: every track goes through its score's
    :func:`mastering` chain after FluidSynth (the ``mastering`` column says which).
    """
    from concurrent.futures import ThreadPoolExecutor

    out_dir = Path(out_dir)
    soundfonts = tuple(soundfonts or (soundfont,))
    for f in soundfonts:
        if not Path(f).is_file():
            raise InputError(f"{f}: no soundfont there (Debian: apt install fluid-soundfont-gm), or give --soundfont")
    rows = corpus_rows(scores=scores, keys=keys, seed=seed, seconds=seconds, min_bpm=min_bpm, max_bpm=max_bpm,
                       tempo_changes=tempo_changes, ensembles=ensembles, palette=palette, soundfonts=soundfonts,
                       with_mastering=with_mastering)
    _check_same_corpus(out_dir, {"seed": seed, "seconds": seconds, "min_bpm": min_bpm, "max_bpm": max_bpm,
                                 "tempo_changes": tempo_changes, "palette": palette,
                                 # --palette gm draws no ensemble: the list changes nothing there
                                 "ensembles": list(ensembles) if palette == "ensembles" else None,
                                 "soundfonts": [Path(f).name for f in soundfonts], "mastering": with_mastering})
    for sub in ("midi", "audio"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    scores_cache: dict = {}

    def play(midi, wav, row):
        tmp = wav.with_suffix(".tmp.wav")
        render(midi, tmp, soundfont=row["_soundfont"], gain=row["_gain"], settings=row["_settings"])
        trim_tail(tmp)
        if row["_mastering"]:
            import soundfile as sf

            y, sr = sf.read(tmp, dtype="float32", always_2d=True)
            noise_seed = 12 * row["_score"] + row["_tonic"]
            sf.write(tmp, apply_mastering(y, sr, row["_mastering"], seed=noise_seed), sr, subtype="PCM_16")
        tmp.replace(wav)

    with ThreadPoolExecutor(max(1, jobs)) as pool:
        pending = []
        for row in (progress(rows) if progress else rows):
            s = row["_score"]
            if s not in scores_cache:  # the score in its own base key, drawn once
                rng = np.random.default_rng([seed, s, 1])
                scores_cache = {s: make_score(rng, tonic=0, mode=row["_mode"], bpm=row["_bpm"],
                                              seconds=row["_seconds"], ensemble=row["ensemble"],
                                              tempo_change=row["tempo_change"], parts=row["_parts"])}
            events, label = scores_cache[s]
            row["tempo"] = round(label, 2)
            row["path"] = f"audio/{row['track_id']}.wav"
            wav = out_dir / row["path"]
            if not wav.is_file():
                midi = out_dir / "midi" / f"{row['track_id']}.mid"
                # written in C, moved to the tonic by at most a tritone either way (the parts keep their range)
                tonic = row["_tonic"]
                write_midi(midi, transpose_events(events, tonic if tonic <= 6 else tonic - 12))
                pending.append(pool.submit(play, midi, wav, row))
                if len(pending) >= 4 * max(1, jobs):  # a bounded queue: the progress bar tells the truth
                    pending.pop(0).result()
        for job in pending:
            job.result()
    manifest = out_dir / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def _check_same_corpus(out_dir: Path, settings: dict) -> None:
    """Refuse to resume into ``out_dir`` with settings that change what a track already there
    sounds like (its WAV would be kept, and the manifest would describe other audio); record
    them (``corpus.json``) on the first call. ``scores`` and ``keys`` may change: they only add
    or leave out tracks, each of which depends on its own score and key alone."""
    import json

    record = out_dir / "corpus.json"
    if record.is_file():
        before = json.loads(record.read_text())
        changed = [f"{k} {before.get(k)!r} -> {v!r}" for k, v in settings.items() if before.get(k, v) != v]
        if changed:
            raise InputError(f"{out_dir} holds a corpus rendered with other settings ({'; '.join(changed)}); "
                             "render into another --out, or delete the folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(settings, indent=1))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mdsim.recipes.rendered",
                                description="Render a corpus of generated scores with exact key and tempo "
                                            "through FluidSynth.")
    p.add_argument("--out", required=True, help="output folder (manifest.csv, audio/, midi/)")
    p.add_argument("--scores", type=int, default=40, help="base scores (default 40; half major, half minor)")
    p.add_argument("--keys", type=int, default=6, help="tonics each score is played in (1-12, default 6)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of a track (default 30)")
    p.add_argument("--min-bpm", type=float, default=60.0, help="slowest tempo (default 60)")
    p.add_argument("--max-bpm", type=float, default=180.0, help="fastest tempo (default 180)")
    p.add_argument("--tempo-changes", type=float, default=0.2,
                   help="fraction of scores that change tempo halfway by 3-4%% (default 0.2)")
    p.add_argument("--ensembles", default=",".join(ENSEMBLES),
                   help=f"comma-separated ensembles (default all: {','.join(ENSEMBLES)})")
    p.add_argument("--soundfont", type=Path, action="append",
                   help=f"General MIDI soundfont (default {DEFAULT_SOUNDFONT}); repeatable: with --palette gm "
                        "each score draws one")
    p.add_argument("--palette", choices=PALETTES, default="ensembles",
                   help="ensembles: the eight fixed ensembles (default); gm: General MIDI programmes drawn per "
                        "score, the lead's family as the instrument tag, a production per score")
    p.add_argument("--mastering", action="store_true",
                   help="each score through a mastering chain of its own after FluidSynth: high- and low-pass "
                        "(band-limiting), a compressor, stereo width, a noise floor, a peak level (the manifest's "
                        "mastering column)")
    p.add_argument("--jobs", type=int, default=1, help="FluidSynth processes at once (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    progress = None
    if not args.quiet:
        from tqdm import tqdm

        def progress(rows):
            return tqdm(rows, desc="render", unit="track")
    return write_manifest_or_fail(lambda: generate_corpus(
        args.out, scores=args.scores, keys=args.keys, seed=args.seed, seconds=args.seconds, min_bpm=args.min_bpm,
        max_bpm=args.max_bpm, tempo_changes=args.tempo_changes, ensembles=tuple(args.ensembles.split(",")),
        soundfonts=args.soundfont or (DEFAULT_SOUNDFONT,), palette=args.palette, jobs=args.jobs,
        progress=progress, with_mastering=args.mastering))


if __name__ == "__main__":
    raise SystemExit(main())
