"""The constant-Q feature: parity with librosa's cqt, its grid, and a constant-Q store."""

from __future__ import annotations

import json

import librosa
import numpy as np
import pytest

from mdsim.config import FeatureConfig
from mdsim.features.cqt import cqt_frequencies, log_cqt
from mdsim.features.spectral import extract_features

#: float32 log-magnitudes against the same librosa call (only the cast differs).
ATOL = 1e-5
SR = 16000


def _sine(freq, seconds=1.5, amp=0.5):
    t = np.arange(int(seconds * SR)) / SR
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def test_parity_with_librosa_cqt(rng):
    y = (0.3 * rng.normal(size=int(1.3 * SR)) + _sine(330.0, 1.3)).astype(np.float32)
    c = FeatureConfig.constant_q()
    ours = extract_features(y, config=c)["cqt"]
    reference = np.log(50.0 * np.abs(librosa.cqt(y, sr=16000, hop_length=800, fmin=27.5, n_bins=192,
                                                   bins_per_octave=24)) + 1.0)
    assert ours.shape == reference.shape == (192, 1 + len(y) // 800) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, atol=ATOL)


def test_grid_is_the_papers():
    c = FeatureConfig.constant_q()
    f = cqt_frequencies(fmin=c.cqt_fmin, n_bins=c.cqt_n_bins, bins_per_octave=c.cqt_bins_per_octave)
    assert c.sample_rate == 16000 and c.sample_rate / c.hop_length == 20.0
    assert f[0] == 27.5 and f[24] == pytest.approx(55.0) and f[-1] == pytest.approx(7040 / 2 ** (1 / 24))
    assert f[-1] < c.sample_rate / 2


@pytest.mark.parametrize("midi", [45, 60, 69, 84])
def test_a_sine_peaks_in_its_bin(midi):
    freq = 440.0 * 2 ** ((midi - 69) / 12)
    C = log_cqt(_sine(freq), sr=SR, hop_length=800)
    expected = int(round(24 * np.log2(freq / 27.5)))  # quarter-tone bins from A0
    assert np.argmax(C[:, 10]) == expected
    # the compression: 0 for silence, log(50 |X| + 1) grows like a log
    assert log_cqt(np.zeros(SR, np.float32), sr=SR, hop_length=800).max() == 0.0


def test_prep_writes_a_constant_q_store_that_records_its_settings(tmp_path):
    from mdsim.features.pipeline import prep
    from mdsim.features.store import FeatureStore
    from tests.conftest import write_manifest, write_wav

    for name, freq in (("a", 220.0), ("b", 440.0)):
        write_wav(tmp_path / f"{name}.wav", _sine(freq, 1.0), sr=SR)
    write_manifest(tmp_path / "m.csv", [{"track_id": "a", "path": "a.wav", "instrument": "sine", "pitch": "A3"},
                                        {"track_id": "b", "path": "b.wav", "instrument": "sine", "pitch": "69"}])
    prep(tmp_path / "m.csv", tmp_path / "s.h5", workers=1, annotate="none", config=FeatureConfig.constant_q(),
         progress=False)
    with FeatureStore(tmp_path / "s.h5") as store:
        assert store.feature_config == FeatureConfig.constant_q()
        assert store.attrs("a")["pitch"] == 57 and store.attrs("b")["pitch"] == 69
        C = store.features("b", names=("cqt",))["cqt"]
        assert C.shape == (192, 21)
        np.testing.assert_allclose(C, log_cqt(_sine(440.0, 1.0), sr=SR, hop_length=800), atol=0.02)  # float16
        assert store.verify() == []
    import h5py

    with h5py.File(tmp_path / "s.h5") as f:
        recorded = json.loads(f.attrs["feature_config"])
    assert recorded["features"] == ["cqt"] and recorded["cqt_bins_per_octave"] == 24 \
        and recorded["cqt_log_scale"] == 50.0 and recorded["hop_length"] == 800

    # a pitch edited or removed in the manifest reaches the store on resume, without recomputing
    write_manifest(tmp_path / "m.csv", [{"track_id": "a", "path": "a.wav", "instrument": "sine", "pitch": "A2"},
                                        {"track_id": "b", "path": "b.wav", "instrument": "sine", "pitch": ""}])
    summary = prep(tmp_path / "m.csv", tmp_path / "s.h5", workers=1, annotate="none",
                   config=FeatureConfig.constant_q(), progress=False)
    assert (summary.done, summary.relabelled) == (0, 2)
    with FeatureStore(tmp_path / "s.h5") as store:
        assert store.attrs("a")["pitch"] == 45 and "pitch" not in store.attrs("b")


def test_a_store_of_one_feature_set_refuses_the_other(tmp_path):
    from mdsim.errors import StoreError
    from mdsim.features.store import StoreWriter

    with StoreWriter(tmp_path / "s.h5", FeatureConfig.constant_q()):
        pass
    with pytest.raises(StoreError, match=r"other feature settings .*features: \['cqt'\] \(store\) vs "
                                         r"\['mel', 'cens', 'tempogram'\] \(this run\)"):
        with StoreWriter(tmp_path / "s.h5", FeatureConfig()):
            pass


def test_unknown_feature_set_is_refused():
    from mdsim.errors import InputError

    with pytest.raises(InputError, match="feature set mel, cqt is not one mdsim computes"):
        FeatureConfig(features=("mel", "cqt"))
