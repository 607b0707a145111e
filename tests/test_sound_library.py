"""The generated sample library: labels, files, determinism, and that its labels are audible."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from data_prep.sound_library import INSTRUMENTS, SAMPLE_RATE, generate_library, library_rows, render_note
from mdsim.errors import InputError
from mdsim.manifest import read_manifest


def test_library_writes_notes_the_manifest_reader_accepts(tmp_path):
    manifest = generate_library(tmp_path, low=57, high=58, dynamics=("pp", "ff"))
    entries = read_manifest(manifest)
    assert len(entries) == len(INSTRUMENTS) * 2 * 2
    e = next(e for e in entries if e.track_id == "mallet_A3_ff")
    assert e.labels["instrument"] == ["mallet"] and e.labels["pitch"] == 57
    assert e.metadata == {"dynamic": "ff", "family": "struck"}
    y, sr = sf.read(e.path)
    assert sr == SAMPLE_RATE and y.ndim == 1 and 0.5 < np.abs(y).max() <= 1.0


@pytest.mark.parametrize("instrument", sorted(INSTRUMENTS))
def test_each_note_sounds_at_its_pitch(instrument):
    """The strongest low partial is the fundamental (within a semitone), for every voice."""
    for pitch in (48, 60, 72):
        y = render_note(instrument, pitch, "mf", rng=np.random.default_rng(pitch))
        spectrum = np.abs(np.fft.rfft(y[:8192] * np.hanning(8192)))
        freqs = np.fft.rfftfreq(8192, 1 / SAMPLE_RATE)
        f0 = 440.0 * 2 ** ((pitch - 69) / 12)
        band = (freqs > f0 * 0.8) & (freqs < f0 * 1.25)
        found = freqs[band][np.argmax(spectrum[band])]
        assert abs(12 * np.log2(found / f0)) < 1.0, (instrument, pitch, found)
        assert spectrum[band].max() > 0.1 * spectrum.max()


def test_notes_are_deterministic_and_dynamics_differ():
    a = render_note("bowed", 60, "pp", rng=np.random.default_rng(1))
    b = render_note("bowed", 60, "pp", rng=np.random.default_rng(1))
    c = render_note("bowed", 60, "ff", rng=np.random.default_rng(1))
    assert np.array_equal(a, b) and np.abs(c).max() > 3 * np.abs(a).max()


def test_bad_settings_are_refused():
    with pytest.raises(InputError, match="unknown instrument 'kazoo'"):
        library_rows(instruments=("kazoo",))
    with pytest.raises(InputError, match="pitch range 70..60"):
        library_rows(low=70, high=60)
