"""A generated sample library: isolated notes of distinct synthetic instruments.

Each note is one WAV file (16 kHz mono, 16-bit) labelled with its
``instrument``, ``pitch`` (MIDI number) and ``dynamic``; ``manifest.csv`` lists
them in the columns ``mdsim prep`` reads (``instrument`` is a tag dimension,
``pitch`` a note label, ``dynamic`` kept as metadata). It stands in for the
paper's collection of solo instrument samples, which we do not have.

Instruments, by how they are excited (the first four are the lead voices of
:mod:`mdsim.synth.voices`; their attack and decay shapes differ):

=========  =======  ============================================================
plucked    plucked  Karplus-Strong string: instant attack, free decay
bowed      bowed    sawtooth, slow (180 ms) attack, delayed vibrato, bow noise
flute      blown    near-sine, breath noise at the attack, gentle vibrato
brass      blown    sawtooth opening in 60 ms, pitch scoop
piano      struck   stretched partials, upper ones dying first, hammer thump
mallet     struck   marimba-like partials 1 : 3.93 : 9.2, fast exponential decay
=========  =======  ============================================================

Dynamics ``pp``, ``mf``, ``ff`` set level and brightness together (a louder
note is a brighter one). Every note gets its own random detuning (up to
±15 cents), brightness jitter and excitation noise, so two notes with the same
labels are never the same sound.

    python -m mdsim.recipes.sound_library --out library/ --low 48 --high 72
    mdsim prep library/manifest.csv --out library.h5 --features cqt --annotate none
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from mdsim.errors import InputError
from mdsim.labels import pitch_name
from mdsim.recipes import write_manifest_or_fail
from mdsim.synth.voices import LEADS, _length, envelope, midi_to_hz

#: The paper's analysis rate; the notes are written at it so prep does not resample.
SAMPLE_RATE = 16000
#: Level (peak, linear) and brightness (0..1) of each dynamic.
DYNAMICS = {"pp": (0.15, 0.2), "mf": (0.4, 0.55), "ff": (0.85, 0.9)}
#: Held time of a note in seconds (the release follows).
GATE_SECONDS = 0.8
MANIFEST_COLUMNS = ("track_id", "path", "instrument", "pitch", "dynamic", "family")


def mallet(f0, gate, *, sr, brightness, rng):
    """Struck bar: three inharmonic partials (marimba tuning), each decaying exponentially."""
    release = 0.05
    n = _length(gate, release, sr)
    ratios = np.array([1.0, 3.93, 9.2])
    amps = np.array([1.0, 0.5 * brightness, 0.25 * brightness ** 2])
    tau = np.array([0.5, 0.12, 0.04]) * (262.0 / f0) ** 0.3
    keep = ratios * f0 < 0.45 * sr
    t = np.arange(n, dtype=np.float32) / sr
    tone = np.zeros(n, dtype=np.float32)
    for r, a, d in zip(ratios[keep], amps[keep], tau[keep]):
        phase = rng.uniform(0, 2 * np.pi)
        tone += (a * np.sin(2 * np.pi * r * f0 * t + phase) * np.exp(-t / d)).astype(np.float32)
    return tone * envelope(n, sr, attack=0.001, gate=gate, release=release)


#: Instrument -> (family, voice).
INSTRUMENTS = {
    "plucked": ("plucked", LEADS["plucked"]),
    "bowed": ("bowed", LEADS["bowed"]),
    "flute": ("blown", LEADS["flute"]),
    "brass": ("blown", LEADS["brass"]),
    "piano": ("struck", LEADS["piano"]),
    "mallet": ("struck", mallet),
}


def render_note(instrument: str, pitch: int, dynamic: str, *, rng, gate: float = GATE_SECONDS,
                sr: int = SAMPLE_RATE) -> np.ndarray:
    """One note, ``float32 [shape=(n,)]`` at ``sr``, peak-normalised to its dynamic's level."""
    if instrument not in INSTRUMENTS:
        raise InputError(f"unknown instrument {instrument!r} (valid: {', '.join(INSTRUMENTS)})")
    if dynamic not in DYNAMICS:
        raise InputError(f"unknown dynamic {dynamic!r} (valid: {', '.join(DYNAMICS)})")
    level, brightness = DYNAMICS[dynamic]
    brightness = float(np.clip(brightness + rng.uniform(-0.08, 0.08), 0.0, 1.0))
    f0 = float(midi_to_hz(pitch)) * 2.0 ** (rng.uniform(-15, 15) / 1200)
    y = INSTRUMENTS[instrument][1](f0, gate, sr=sr, brightness=brightness, rng=rng)
    peak = float(np.max(np.abs(y))) or 1.0
    return (y * (level * rng.uniform(0.9, 1.0) / peak)).astype(np.float32)


def library_rows(*, instruments=tuple(INSTRUMENTS), low: int = 48, high: int = 72,
                 dynamics=tuple(DYNAMICS)) -> list[dict]:
    """Every (instrument, pitch, dynamic) of the library, in a fixed order."""
    if not 0 <= low <= high <= 127:
        raise InputError(f"pitch range {low}..{high} is not within MIDI 0..127 (low <= high)")
    rows = []
    for inst in instruments:
        if inst not in INSTRUMENTS:
            raise InputError(f"unknown instrument {inst!r} (valid: {', '.join(INSTRUMENTS)})")
        for pitch in range(low, high + 1):
            for dyn in dynamics:
                rows.append({"track_id": f"{inst}_{pitch_name(pitch).replace('#', 's')}_{dyn}",
                             "instrument": inst, "pitch": pitch, "dynamic": dyn,
                             "family": INSTRUMENTS[inst][0]})
    return rows


def generate_library(out_dir, *, seed: int = 0, instruments=tuple(INSTRUMENTS), low: int = 48,
                     high: int = 72, dynamics=tuple(DYNAMICS), gate: float = GATE_SECONDS,
                     sr: int = SAMPLE_RATE) -> Path:
    """Write the notes to ``out_dir/audio/`` and ``out_dir/manifest.csv``; returns the manifest.

    Each note's randomness comes from ``(seed, row number)``, so a note does
    not change when others are added or left out.
    """
    import soundfile as sf

    out_dir = Path(out_dir)
    rows = library_rows(instruments=instruments, low=low, high=high, dynamics=dynamics)
    (out_dir / "audio").mkdir(parents=True, exist_ok=True)
    for i, row in enumerate(rows):
        rng = np.random.default_rng([seed, i])
        y = render_note(row["instrument"], row["pitch"], row["dynamic"], rng=rng, gate=gate, sr=sr)
        row["path"] = f"audio/{row['track_id']}.wav"
        sf.write(out_dir / row["path"], y, sr, subtype="PCM_16")
    manifest = out_dir / "manifest.csv"
    with open(manifest, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=MANIFEST_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return manifest


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m mdsim.recipes.sound_library",
                                description="Generate a labelled library of isolated synthetic notes.")
    p.add_argument("--out", required=True, help="output folder (manifest.csv and audio/)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--low", type=int, default=48, help="lowest MIDI pitch (default 48 = C3)")
    p.add_argument("--high", type=int, default=72, help="highest MIDI pitch (default 72 = C5)")
    p.add_argument("--instruments", default=",".join(INSTRUMENTS),
                   help=f"comma-separated instruments (default all: {','.join(INSTRUMENTS)})")
    p.add_argument("--dynamics", default=",".join(DYNAMICS), help="comma-separated dynamics (default pp,mf,ff)")
    p.add_argument("--gate", type=float, default=GATE_SECONDS, help="held seconds per note (default 0.8)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    return write_manifest_or_fail(lambda: generate_library(
        args.out, seed=args.seed, low=args.low, high=args.high, gate=args.gate,
        instruments=tuple(args.instruments.split(",")), dynamics=tuple(args.dynamics.split(","))))


if __name__ == "__main__":
    raise SystemExit(main())
