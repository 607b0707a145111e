"""The fused extractor against librosa's straightforward calls (the oracle)."""

import warnings

import librosa
import numpy as np
import pytest

from mdsim.audio import load_audio
from mdsim.config import FeatureConfig
from mdsim.features import spectral
from mdsim.features.spectral import cens, extract_features, fold_octaves, power_stft

from conftest import SR, chirp, clicks, sine

ATOL_F32 = 1e-5   # float32 rounding on values of order 1
RTOL_POWER = 1e-5  # relative, for power spectra spanning many decades

CFG = FeatureConfig()


@pytest.fixture(scope="module")
def music():
    from conftest import AUDIO_DIR

    return load_audio(AUDIO_DIR / "vibeace.ogg")[: 20 * SR]


def test_shapes_on_the_common_grid(music):
    F = extract_features(music)
    T = 1 + len(music) // CFG.hop_length
    assert F["mel"].shape == (128, T) and F["cens"].shape == (12, T) and F["tempogram"].shape == (384, T)
    assert all(v.dtype == np.float32 and np.all(np.isfinite(v)) for v in F.values())


def test_power_stft_matches_librosa(music):
    ref = np.abs(librosa.stft(music, n_fft=512, hop_length=256)) ** 2
    got = power_stft(music, n_fft=512, hop_length=256)
    np.testing.assert_allclose(got, ref, rtol=0, atol=RTOL_POWER * ref.max())


def test_mel_matches_librosa_melspectrogram(music):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = librosa.feature.melspectrogram(y=music, sr=SR, n_fft=512, hop_length=256, n_mels=128)
    np.testing.assert_allclose(extract_features(music)["mel"], np.log10(1 + 10 * ref), atol=ATOL_F32)


@pytest.mark.parametrize("signal", ["music", "clicks", "chirp"])
def test_tempogram_matches_librosa_tempogram(music, signal):
    y = {"music": music, "clicks": clicks(110, 8.0), "chirp": chirp(6.0)}[signal]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        oenv = librosa.onset.onset_strength(y=y, sr=SR, hop_length=256, n_fft=512)
    ref = librosa.feature.tempogram(onset_envelope=oenv, sr=SR, hop_length=256, win_length=384)
    np.testing.assert_allclose(extract_features(y)["tempogram"], ref, atol=1e-4)


def test_cens_steps_match_librosa_chroma_cens(music, monkeypatch):
    """Feed librosa's chroma_cens our STFT chroma instead of its CQT chroma."""
    S = power_stft(music, n_fft=512, hop_length=256)
    chroma = spectral.chroma(S, sr=SR, n_fft=512)
    monkeypatch.setattr(librosa.feature.spectral, "chroma_cqt", lambda **kw: chroma.copy())
    ref = librosa.feature.chroma_cens(y=music, sr=SR, hop_length=256)
    np.testing.assert_allclose(cens(chroma, window=41), ref, atol=ATOL_F32)
    np.testing.assert_allclose(extract_features(music)["cens"], ref, atol=ATOL_F32)


def test_chroma_finds_the_pitch_class():
    y = sine(440.0, 3.0) + sine(880.0, 3.0, amp=0.2)
    raw = spectral.chroma(power_stft(y, n_fft=512, hop_length=256), sr=SR, n_fft=512)
    assert np.argmax(raw[:, 20:-20].mean(axis=1)) == 9  # A
    profile = extract_features(y)["cens"][:, 100:-100].mean(axis=1)
    # 43 Hz bins smear a tone over its neighbours; CENS quantisation then ties them
    assert profile[9] == profile.max() and profile[:6].max() == 0


def test_cens_is_unit_norm_per_frame(music):
    C = extract_features(music)["cens"]
    norms = np.linalg.norm(C, axis=0)
    np.testing.assert_allclose(norms[norms > 0], 1.0, atol=1e-5)


def test_tempogram_peaks_at_the_beat_period():
    F = extract_features(clicks(bpm=120.0, seconds=10.0))
    lag = 60.0 * SR / (256 * 120.0)  # 43 frames
    profile = F["tempogram"][10:200, 200:-200].mean(axis=1)
    assert abs((np.argmax(profile) + 10) - lag) <= 1


def test_cyclic_tempogram_folds_octaves():
    T = np.zeros((384, 2), dtype=np.float32)
    T[20, 0] = 1.0
    T[40, 1] = 1.0
    F = fold_octaves(T)
    assert np.argmax(F[:, 0]) == np.argmax(F[:, 1])


