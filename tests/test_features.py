"""The fused extractor against librosa's straightforward calls (the oracle)."""

import warnings

import librosa
import numpy as np
import pytest

from mdsim.audio import load_audio
from mdsim.config import FeatureConfig
from mdsim.errors import InputError
from mdsim.features import spectral
from mdsim.features.spectral import (cens, extract_features, extract_features_reference, fold_octaves,
                                    power_stft)

from conftest import SR, chirp, clicks, sine

ATOL_F32 = 1e-5   # float32 rounding on values of order 1
RTOL_POWER = 1e-5  # relative, for power spectra spanning many decades
#: Tempogram against librosa: our autocorrelation is one FFT in float32, librosa's in float64.
ATOL_TEMPOGRAM = 1e-4
#: Cosine between our STFT-chroma CENS and librosa's constant-Q chroma_cens on a sustained
#: chord: 43 Hz bins smear each tone into its neighbouring pitch classes (measured 0.93 on
#: C major, 0.95 on F# minor), where the constant-Q chroma keeps it in one.
COS_CENS_VS_CQT = 0.9

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


def test_the_same_audio_gives_the_same_bytes_whatever_the_blas_threads(music):
    """Prep in this process (all BLAS threads), in worker processes or on a Dask worker (one
    thread each) must store the same features: two BLAS threads round the mel product differently
    (1 ulp, seen on a two-core machine), so the extractor runs with one. (Where the machine has
    one core the two calls are the same and this cannot fail.)"""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=2, user_api="blas"):
        a = extract_features(music)
    with threadpool_limits(limits=1, user_api="blas"):
        b = extract_features(music)
    for name in a:
        assert a[name].tobytes() == b[name].tobytes(), name


def test_frame_t_is_centred_on_sample_t_times_hop():
    """A click at sample 100 * hop is loudest in frame 100 (a non-centred STFT puts it in 99)."""
    y = np.zeros(3 * SR, dtype=np.float32)
    y[100 * CFG.hop_length] = 1.0
    mel = extract_features(y)["mel"]
    assert np.argmax(mel.sum(axis=0)) == 100


def test_fused_mel_equals_the_reference_extractor(music):
    np.testing.assert_allclose(extract_features(music)["mel"], extract_features_reference(music)["mel"],
                               atol=ATOL_F32)


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
    np.testing.assert_allclose(extract_features(y)["tempogram"], ref, atol=ATOL_TEMPOGRAM)


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


@pytest.mark.parametrize("lag", [30, 43, 60])
def test_tempogram_peaks_at_the_beat_period(lag):
    """Clicks every ``lag`` hops (172, 120 and 86 BPM): the mean tempogram peaks at that lag exactly."""
    bpm = 60.0 * SR / (CFG.hop_length * lag)
    F = extract_features(clicks(bpm=bpm, seconds=10.0))
    profile = F["tempogram"][:, 200:-200].mean(axis=1)
    # Lags below 10 are the click's own width, not a tempo; the multiples 2 * lag are lower
    # because the Hann window overlaps less of the signal there.
    assert np.argmax(profile[10:]) + 10 == lag


CHORDS = {  # notes above 700 Hz, where one 43 Hz STFT bin is less than a semitone
    "C major": ((1046.50, 1318.51, 1567.98), {0, 4, 7}),     # C6 E6 G6
    "F# minor": ((1479.98, 1760.00, 2217.46), {6, 9, 1}),    # F#6 A6 C#7
}


@pytest.mark.parametrize("name", list(CHORDS))
def test_cens_of_a_chord_holds_its_pitch_classes(name):
    freqs, classes = CHORDS[name]
    y = sum(sine(f, 3.0, amp=0.2) for f in freqs)
    profile = extract_features(y)["cens"][:, 50:-50].mean(axis=1)
    others = [k for k in range(12) if k not in classes]
    assert set(np.argsort(profile)[-3:]) == classes
    assert profile[list(classes)].min() > 2 * profile[others].max()
    # The oracle: librosa's constant-Q chroma_cens of the same chord.
    ref = librosa.feature.chroma_cens(y=y, sr=SR, hop_length=CFG.hop_length)[:, 50:-50].mean(axis=1)
    assert set(np.argsort(ref)[-3:]) == classes
    assert profile @ ref / (np.linalg.norm(profile) * np.linalg.norm(ref)) >= COS_CENS_VS_CQT


def _fold_by_search(T):
    """The cyclic tempogram by another route: reduce each lag into [1, 2) by halving, find
    its row among the ``n`` geometric boundaries ``2 ** (r / n)``, add, max-normalise."""
    n = T.shape[0]
    edges = 2.0 ** (np.arange(n + 1) / n)
    out = np.zeros_like(T, dtype=np.float64)
    for k in range(1, n):
        reduced = float(k)
        while reduced >= 2.0:
            reduced /= 2.0
        out[np.searchsorted(edges, reduced, side="right") - 1] += T[k]
    return out / out.max(axis=0, keepdims=True)


def test_cyclic_tempogram_merges_octaves_and_changes_the_peak():
    """Lag 30 is the strongest single lag, but lags 20 and 40 (one tempo and its octave)
    together outweigh it once folded: the folded peak is their octave class."""
    T = np.zeros((384, 1), dtype=np.float32)
    T[[20, 30, 40], 0] = [0.7, 1.0, 0.7]
    assert np.argmax(T[:, 0]) == 30
    F = fold_octaves(T)
    expected = _fold_by_search(T)
    row_20 = np.flatnonzero(expected[:, 0] == expected[:, 0].max())
    assert row_20.size == 1 and np.argmax(F[:, 0]) == row_20[0]
    np.testing.assert_allclose(F, expected, atol=ATOL_F32)
    assert F[row_20[0], 0] == 1.0 and abs(F[:, 0].sum() - (1.0 + 1.0 / 1.4)) < ATOL_F32


def test_fold_octaves_matches_the_search_on_every_lag(rng):
    T = rng.random((384, 5)).astype(np.float32)
    np.testing.assert_allclose(fold_octaves(T), _fold_by_search(T), atol=ATOL_F32)


def test_a_longer_chroma_window_resolves_a_low_chord():
    """A minor triad in the bass register (A2, C3, E3): the 512-sample STFT's 43 Hz bins
    cannot tell its pitch classes apart; a 4096-sample window on the same frames can."""
    from mdsim.config import FeatureConfig
    from mdsim.features.spectral import extract_features

    sr, t = 22050, np.arange(int(22050 * 4.0)) / 22050
    y = sum(np.sin(2 * np.pi * f * t) for f in (110.0, 130.81, 164.81)).astype(np.float32) / 3
    short = extract_features(y)["cens"].mean(axis=1)
    long = extract_features(y, config=FeatureConfig(chroma_n_fft=4096))
    assert long["cens"].shape == short[:, None].shape[:1] + (long["mel"].shape[1],)
    top = set(np.argsort(long["cens"].mean(axis=1))[-3:])
    assert top == {9, 0, 4}                                   # A, C, E
    assert set(np.argsort(short)[-3:]) != {9, 0, 4}
    with pytest.raises(InputError, match="chroma_n_fft"):
        FeatureConfig(chroma_n_fft=100)


def test_a_process_compiles_librosa_kernels_under_the_machine_lock(tmp_path, monkeypatch):
    """A process's first extraction waits for the machine-wide compile lock (numba's on-disk
    cache is not safe for two processes compiling at once, numba issue 10128); later ones do
    not take it. Without the lock the first call would finish while another holder keeps it."""
    import fcntl
    import threading

    from mdsim.features import compile_lock

    monkeypatch.setattr(compile_lock, "_compiled", False)
    monkeypatch.setattr(compile_lock, "lock_path", lambda: tmp_path / "compile.lock")
    y = sine(440.0, seconds=1.0)

    def extract_in_thread():
        t = threading.Thread(target=extract_features, args=(y,), daemon=True)
        t.start()
        return t

    with open(tmp_path / "compile.lock", "a") as held:  # another process compiling
        fcntl.flock(held, fcntl.LOCK_EX)
        first = extract_in_thread()
        first.join(2.0)
        assert first.is_alive(), "the first extraction did not wait for the compile lock"
    first.join(60.0)
    assert not first.is_alive() and compile_lock._compiled
    with open(tmp_path / "compile.lock", "a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        later = extract_in_thread()
        later.join(60.0)
        assert not later.is_alive(), "a later extraction waited for the lock"


def test_a_failed_first_track_leaves_the_next_one_under_the_lock(tmp_path, monkeypatch):
    from mdsim.features import compile_lock
    from mdsim.features.pipeline import process_track
    from mdsim.manifest import TrackEntry

    monkeypatch.setattr(compile_lock, "_compiled", False)
    monkeypatch.setattr(compile_lock, "lock_path", lambda: tmp_path / "compile.lock")
    import soundfile as sf

    sf.write(tmp_path / "a.wav", sine(440.0, seconds=4.0), SR)
    (tmp_path / "bad.wav").write_bytes(b"not audio")
    config = FeatureConfig()
    bad = process_track(TrackEntry(track_id="bad", path=tmp_path / "bad.wav", labels={}), config, annotate="none")
    assert not bad["ok"] and not compile_lock._compiled
    good = process_track(TrackEntry(track_id="a", path=tmp_path / "a.wav", labels={}), config, annotate="none")
    assert good["ok"] and compile_lock._compiled


def test_a_stuck_holder_of_the_compile_lock_stalls_no_one_for_ever(tmp_path, monkeypatch):
    import fcntl
    import threading

    from mdsim.features import compile_lock

    monkeypatch.setattr(compile_lock, "_compiled", False)
    monkeypatch.setattr(compile_lock, "lock_path", lambda: tmp_path / "compile.lock")
    monkeypatch.setattr(compile_lock, "WAIT_SECONDS", 0.5)
    done = []
    with open(tmp_path / "compile.lock", "a") as held:  # a process stuck on its first file
        fcntl.flock(held, fcntl.LOCK_EX)
        t = threading.Thread(target=lambda: done.append(extract_features(sine(440.0, seconds=1.0))), daemon=True)
        t.start()
        t.join(60.0)
        assert not t.is_alive(), "the extraction waited for a stuck holder past WAIT_SECONDS"
    assert set(done[0]) >= {"mel", "cens", "tempogram"} and compile_lock._compiled
