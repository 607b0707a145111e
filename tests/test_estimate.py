"""The fast tempo and key estimators (``mdsim prep --annotate fast``): no madmom."""

import numpy as np
import pytest

from mdsim import synth
from mdsim.features.estimate import (MIN_ESTIMATE_SECONDS, key_from_chroma, key_from_signal,
                                     tempo_from_onset)
from mdsim.features.spectral import mel_power, onset_envelope, power_stft
from mdsim.labels import KEY_NAMES, parse_key

from conftest import SR, clicks

HOP = 256
#: Click tracks: measured error at most 0.1 % (60..200 BPM); one lag step is 1 to 2.5 % at
#: 133..200 BPM, so 0.5 % (5x the measurement) fails an estimate without the parabolic
#: refinement, or with the lag -> BPM conversion off by one frame.
CLICK_TOLERANCE = 0.005


def onset(y):
    M = mel_power(power_stft(y, n_fft=512, hop_length=HOP), sr=SR, n_fft=512, n_mels=128)
    return onset_envelope(M, sr=SR, n_fft=512, hop_length=HOP)


@pytest.mark.parametrize("bpm", [60, 75, 90, 100, 120, 133, 150, 174, 200])
def test_tempo_of_click_tracks(bpm):
    tempo, strength = tempo_from_onset(onset(clicks(bpm, seconds=8.0)), sr=SR, hop_length=HOP)
    assert abs(tempo / bpm - 1) <= CLICK_TOLERANCE, tempo
    assert 0 < strength <= 1


def tone(freqs, seconds, sr=SR):
    t = np.arange(int(seconds * sr)) / sr
    return sum(np.sin(2 * np.pi * f * t) * np.exp(-2 * (t % 0.5)) for f in freqs).astype(np.float32)


def cadence(key: int) -> np.ndarray:
    """I-IV-V-I triads (minor: i-iv-V-i) in ``key``, in the 200-800 Hz range."""
    tonic, minor = key % 12, key >= 12
    third = 3 if minor else 4
    chords = [(0, third, 7), (5, 5 + third, 12), (7, 11, 14), (0, third, 7)]
    midi0 = 60 + tonic
    hz = lambda m: 440.0 * 2 ** ((m - 69) / 12)  # noqa: E731
    return np.concatenate([tone([hz(midi0 + i) for i in chord], 1.0) for chord in chords])


@pytest.mark.parametrize("key", range(24))
def test_key_of_a_cadence_in_each_of_the_24_keys(key):
    """Catches a profile rotated the wrong way or major and minor swapped (key index order)."""
    found, score = key_from_signal(cadence(key), sr=SR)
    assert (found, KEY_NAMES[found]) == (key, KEY_NAMES[key])
    assert 0.5 < score <= 1


#: On these 12 synthetic tracks of 8 s (seed 11) the exact key was measured for 11; the
#: benchmark (docs/prep.md) found it for most of 40 others. 8 of 12 leaves a margin of three
#: tracks for changes to the generator; the mean CENS with the same profiles found 4 of 12,
#: and a profile rotated the wrong way 2 of 12, so the test tells them apart.
SYNTH_KEY_EXACT_MIN = 8 / 12


def test_key_of_synthetic_tracks():
    rows = synth.draw_labels(12, 11, duration_range=(8, 8))
    exact = 0
    for row in rows:
        y = synth.generate_track(row["seed"], tempo=row["tempo"], key=row["key"], genre=row["genre"],
                                 mood=row["mood"], instrument=row["instrument"], era=row["era"],
                                 duration=row["duration"])
        found, _ = key_from_signal(y, sr=SR)
        exact += found == parse_key(row["key"])
    assert exact >= SYNTH_KEY_EXACT_MIN * len(rows), exact


def test_too_short_silent_or_flat_gives_no_estimate():
    short = clicks(120, seconds=0.5)
    assert MIN_ESTIMATE_SECONDS > 0.5
    assert np.isnan(tempo_from_onset(onset(short), sr=SR, hop_length=HOP)).all()
    key, score = key_from_signal(short, sr=SR)
    assert key is None and np.isnan(score)
    silence = np.zeros(5 * SR, dtype=np.float32)
    key, score = key_from_signal(silence, sr=SR)
    assert key is None and np.isnan(score)
    assert np.isnan(tempo_from_onset(onset(silence), sr=SR, hop_length=HOP)).all()
    flat = np.ones((12, 100), dtype=np.float32)  # every pitch class alike: no key
    assert key_from_chroma(flat, sr=SR, hop_length=HOP)[0] is None
