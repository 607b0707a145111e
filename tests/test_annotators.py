"""``annotate_track`` and ``mdsim prep --annotate {madmom,fast,none}``."""

import math

import numpy as np
import pytest

import mdsim.features.annotate as annotate_module
from mdsim.cli import main, parse_args
from mdsim.config import FeatureConfig
from mdsim.errors import InputError
from mdsim.features.annotators import ANNOTATE_METHODS, annotate_track
from mdsim.features.pipeline import process_track
from mdsim.features.spectral import extract_features
from mdsim.features.store import FeatureStore
from mdsim.manifest import TrackEntry

from conftest import SR, clicks, sine, write_wav

UNKNOWN = {"tempo_strength", "key_probability"}
KEYS = {"tempo", "tempo_source", "tempo_strength", "key", "key_index", "key_source", "key_probability"}


class Spy:
    """Stands in for madmom's annotator: records what it was handed."""

    def __init__(self):
        self.calls = []

    def __call__(self, y, sr, *, tempo=True, key=True):
        self.calls.append((np.asarray(y), sr, tempo, key))
        out = {}
        if tempo:
            out |= {"tempo": 100.0, "tempo_strength": 0.5}
        if key:
            out |= {"key": 3, "key_probability": 0.9}
        return out


@pytest.fixture
def spy(monkeypatch):
    s = Spy()
    monkeypatch.setattr(annotate_module, "get_annotator", lambda tempo_mode="full": s)
    return s


@pytest.fixture
def no_madmom(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("madmom was asked")

    monkeypatch.setattr(annotate_module, "get_annotator", refuse)


def test_unknown_method_or_tempo_mode_lists_the_valid_names():
    y = clicks(120, seconds=3.0)
    with pytest.raises(InputError, match=r"unknown annotator 'librosa' \(valid: madmom, fast, none\)"):
        annotate_track({}, y=y, sr=SR, features={}, path=None, method="librosa")
    with pytest.raises(InputError, match=r"unknown tempo mode 'quick' \(valid: full, fast\)"):
        annotate_track({}, y=y, sr=SR, features={}, path=None, method="madmom", tempo_mode="quick")


def test_none_leaves_tempo_and_key_unknown(no_madmom):
    y = clicks(120, seconds=3.0)
    a = annotate_track({"tempo": None, "key": None}, y=y, sr=SR, features=extract_features(y), path=None,
                       method="none")
    assert set(a) == KEYS
    assert math.isnan(a["tempo"]) and a["tempo_source"] == "none"
    assert (a["key"], a["key_index"], a["key_source"]) == ("", -1, "none")
    assert all(math.isnan(a[k]) for k in UNKNOWN)


@pytest.mark.parametrize("method", ANNOTATE_METHODS)
def test_manifest_values_win_over_every_method(no_madmom, method):
    y = clicks(120, seconds=3.0)
    a = annotate_track({"tempo": 97.0, "key": 18}, y=y, sr=SR, features={}, path=None, method=method)
    assert a == a | {"tempo": 97.0, "tempo_source": "manifest", "key": "F# minor", "key_index": 18,
                     "key_source": "manifest"}
    assert all(math.isnan(a[k]) for k in UNKNOWN)


def test_fast_reads_the_onset_envelope_of_features_when_given(no_madmom):
    from test_estimate import onset

    y = clicks(100, seconds=8.0)
    given = {"onset": onset(clicks(150, seconds=8.0))}
    a = annotate_track({"key": 0}, y=y, sr=SR, features=given, path=None, method="fast")
    assert abs(a["tempo"] / 150 - 1) < 0.005 and a["tempo_source"] == "fast"
    b = annotate_track({"key": 0}, y=y, sr=SR, features={}, path=None, method="fast")  # computed from y
    assert abs(b["tempo"] / 100 - 1) < 0.005 and 0 < b["tempo_strength"] <= 1


def test_madmom_gets_the_source_decoded_at_44100_hz(spy, tmp_path):
    """Before issue 13 madmom got the 22 050 Hz signal upsampled: an empty top octave."""
    sr = 44100
    t = np.arange(3 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.3 * np.sin(2 * np.pi * 15000 * t)).astype(np.float32)
    path = write_wav(tmp_path / "bright.wav", y, sr=sr)
    entry = TrackEntry("bright", path, labels={"tempo": None, "key": None})
    result = process_track(entry, FeatureConfig())
    assert result["ok"], result
    ((got, got_sr, _, _),) = spy.calls
    assert got_sr == 44100 and len(got) == len(y)
    spectrum = np.abs(np.fft.rfft(got)) ** 2
    top = spectrum[np.fft.rfftfreq(len(got), 1 / sr) > 12000].sum() / spectrum.sum()
    assert top > 0.3  # the 15 kHz tone is half the energy; upsampled from 22 050 Hz it is gone
    assert result["attrs"]["tempo_source"] == "madmom-full" and result["attrs"]["key"] == "Eb major"


def test_madmom_gives_no_key_for_a_half_second_clip():
    """A 0.5 s clip got key "A major" from all-NaN key probabilities."""
    annotator = annotate_module.get_annotator("fast")
    found = annotator(clicks(120, seconds=0.5) + sine(440, seconds=0.5), SR)
    assert found["key"] is None and math.isnan(found["key_probability"])
    assert math.isnan(found["tempo"]) and math.isnan(found["tempo_strength"])


def test_madmom_gives_no_key_when_its_probabilities_are_not_finite(monkeypatch):
    annotator = annotate_module.get_annotator("fast")
    monkeypatch.setattr(annotator, "_key", lambda signal: np.full((1, 24), np.nan))
    key, probability = annotator.key(sine(440, seconds=3.0), SR)
    assert key is None and math.isnan(probability)


def test_cli_prep_annotate_fast_and_none(no_madmom, tmp_path):
    """End to end: the option reaches the store; neither choice asks madmom."""
    folder = tmp_path / "music"
    write_wav(folder / "beat.wav", clicks(120, seconds=6.0) + 0.2 * sine(261.63, seconds=6.0))
    assert parse_args(["prep", str(folder), "--out", "x.h5"]).annotate == "madmom"
    for method in ("fast", "none"):
        out = tmp_path / f"{method}.h5"
        assert main(["prep", str(folder), "--out", str(out), "--annotate", method, "--workers", "1",
                     "--quiet"]) == 0
        with FeatureStore(out) as store:
            a = store.attrs("beat")
        assert a["tempo_source"] == method and a["key_source"] == method
        if method == "fast":
            assert abs(a["tempo"] / 120 - 1) < 0.005 and a["key"] != ""
        else:
            assert math.isnan(a["tempo"]) and (a["key"], a["key_index"]) == ("", -1)


def test_cli_annotate_choices_match_the_library(capsys):
    for method in ANNOTATE_METHODS:
        assert parse_args(["prep", "x", "--out", "y.h5", "--annotate", method]).annotate == method
    with pytest.raises(SystemExit):
        parse_args(["prep", "x", "--out", "y.h5", "--annotate", "librosa"])
    assert "invalid choice: 'librosa' (choose from 'madmom', 'fast', 'none')" in capsys.readouterr().err
