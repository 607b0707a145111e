"""Feature-domain augmentation against the same transform on the audio, and its labels.

The oracles: a speed change by resampling (soxr, through librosa) is exactly a
time-stretch by ``k`` and a pitch-shift by ``12 log2 k`` semitones at once, with no
phase-vocoder artefacts; librosa's phase-vocoder stretch and pitch shifter test
each transform alone; ``scipy.signal.sosfilt`` the equaliser. Each error is held
against the error of leaving the features untransformed, so a transform in the
wrong direction, or none, fails.
"""

import math

import numpy as np
import pytest

from mdsim.features import augment as A
from mdsim.features.spectral import extract_features

SR = 22050
SEG = 259
NAMES = ("mel", "cens", "tempogram")


def _err(a, b):
    return float(np.mean(np.abs(a - b)))


def _peak_lag(T):
    """The dominant beat lag of a tempogram window (lags below 20 frames, > 500 BPM, skipped)."""
    return 20 + int(np.argmax(T[20:].mean(axis=1)))


@pytest.fixture(scope="module")
def track():
    from mdsim import synth

    y = synth.generate_track(3, tempo=100.0, key="D major", genre="backbeat", mood="happy",
                             instrument="piano", era="digital", duration=14)
    return y, extract_features(y)


def _same_beat(a, b):
    """Two beat lags equal within a lag, up to a tempo octave (the peak may pick either)."""
    return min(abs(a * k - b) for k in (0.5, 1.0, 2.0)) <= 1.5


def _reader(F):
    return lambda names, a, b: {n: F[n][:, a:b] for n in names}


def _window(F, plan, start=100, n=SEG):
    return A.read_window(_reader(F), start, n, plan, NAMES, track_frames=F["mel"].shape[1])


@pytest.mark.parametrize("semitones", [-5, 3, 6])
def test_a_speed_change_is_a_stretch_and_a_pitch_shift(track, semitones):
    import librosa

    y, F = track
    k = 2.0 ** (semitones / 12)
    Fs = extract_features(librosa.resample(y, orig_sr=SR, target_sr=SR / k, res_type="soxr_hq"))
    start = 100
    s2 = int(round(start / k))
    out = _window(F, A.Plan(rate=k, semitones=semitones), start)
    for name, ratio in (("mel", 0.55), ("cens", 0.3)):
        ref, plain = Fs[name][:, s2:s2 + SEG], F[name][:, start:start + SEG]
        assert _err(out[name], ref) < ratio * _err(plain, ref), name
    ref_t = Fs["tempogram"][:, s2:s2 + SEG]
    assert _err(out["tempogram"], ref_t) < 0.03
    assert _same_beat(_peak_lag(out["tempogram"]), _peak_lag(ref_t))


@pytest.mark.parametrize("rate", [0.8, 1.25])
def test_time_stretch_moves_the_beat_as_the_phase_vocoder_does(track, rate):
    import librosa

    y, F = track
    Fs = extract_features(librosa.effects.time_stretch(y, rate=rate))
    start = 200
    s2 = int(round(start / rate))
    out = _window(F, A.Plan(rate=rate), start)
    plain = {n: F[n][:, start:start + SEG] for n in NAMES}
    ref = {n: Fs[n][:, s2:s2 + SEG] for n in NAMES}
    for name in NAMES:
        assert _err(out[name], ref[name]) < 0.85 * _err(plain[name], ref[name]), name
    lag = _peak_lag(out["tempogram"])
    assert _same_beat(lag, _peak_lag(ref["tempogram"]))
    assert not _same_beat(lag, _peak_lag(plain["tempogram"]))      # it did move


@pytest.mark.parametrize("semitones", [-5, -2])
def test_pitch_shift_down_matches_librosa_and_leaves_the_tempogram(track, semitones):
    # librosa's upward shift loses level in its phase vocoder (the mel is then checked by
    # the speed-change oracle above); downward it is clean.
    import librosa

    y, F = track
    Fs = extract_features(librosa.effects.pitch_shift(y, sr=SR, n_steps=semitones))
    out = _window(F, A.Plan(semitones=semitones), 100)
    ref = {n: Fs[n][:, 100:100 + SEG] for n in NAMES}
    plain = {n: F[n][:, 100:100 + SEG] for n in NAMES}
    assert _err(out["mel"], ref["mel"]) < 0.6 * _err(plain["mel"], ref["mel"])
    assert _err(out["cens"], ref["cens"]) < 0.4 * _err(plain["cens"], ref["cens"])
    np.testing.assert_array_equal(out["tempogram"], plain["tempogram"])


def test_pitch_shift_rotates_the_key_profile(track):
    _, F = track
    profile = F["cens"].mean(axis=1)
    for s in range(-5, 7):
        shifted = A.pitch_shift_chroma(F["cens"], s).mean(axis=1)
        assert int(np.argmax(shifted)) == (int(np.argmax(profile)) + s) % 12


def test_equalisation_matches_filtering_the_audio(track):
    y, F = track
    rng = np.random.default_rng(0)
    for _ in range(3):
        eq = A.random_eq(rng, max_gain_db=9.0)
        Fs = extract_features(A.eq_audio(y, eq))
        out = _window(F, A.Plan(eq=eq), 100)
        ref = {n: Fs[n][:, 100:100 + SEG] for n in NAMES}
        plain = {n: F[n][:, 100:100 + SEG] for n in NAMES}
        assert _err(out["mel"], ref["mel"]) < 0.35 * _err(plain["mel"], ref["mel"])
        # what the transform leaves alone is (nearly) unchanged by the filters themselves
        assert _err(plain["cens"], ref["cens"]) < 0.05
        assert _err(plain["tempogram"], ref["tempogram"]) < 0.005


def test_every_identity_transform_is_the_identity(track):
    _, F = track
    x = F["mel"][:, :SEG]
    np.testing.assert_allclose(A.stretch_frames(x, 1.0), x, atol=0)
    np.testing.assert_array_equal(A._mel_shift_matrix(0, SR, 128) @ x, x)
    np.testing.assert_array_equal(A.pitch_shift_mel(x, 0), x)
    np.testing.assert_allclose(A.pitch_shift_mel(x, 3), A._mel_shift_matrix(3, SR, 128) @ x, atol=1e-5)
    np.testing.assert_array_equal(A.pitch_shift_chroma(F["cens"], 12), F["cens"])
    np.testing.assert_allclose(A.eq_mel(x, (("peaking", 1000.0, 0.0, 1.0), ("lowshelf", 100.0, 0.0, 0.707))), x,
                               atol=1e-5)
    # the stretch path at a rate of exactly 1 (not the short cut read_window takes)
    n = F["mel"].shape[1]
    T = A._stretched_tempogram(_reader(F), 300, SEG, 1.0, n, A.FeatureConfig())
    np.testing.assert_allclose(T, F["tempogram"][:, 300:300 + SEG], atol=1e-5)
    out = _window(F, A.IDENTITY, 300)
    for name in NAMES:
        np.testing.assert_array_equal(out[name], F[name][:, 300:300 + SEG])


def test_a_stretched_window_near_the_end_moves_back_and_a_short_track_is_padded(track):
    _, F = track
    n = F["mel"].shape[1]
    out = _window(F, A.Plan(rate=1.25), start=n - SEG)
    assert all(v.shape[1] == SEG for v in out.values())
    assert np.abs(out["mel"][:, -5:]).sum() > 0          # moved back, not padded
    short = {k: v[:, :150] for k, v in F.items()}
    out = A.read_window(_reader(short), 0, SEG, A.Plan(rate=0.8), NAMES, track_frames=150)
    assert out["mel"].shape == (128, SEG) and np.all(out["mel"][:, 190:] == 0)


def test_draws_are_seeded_and_within_their_ranges():
    cfg = A.AugmentConfig(mode="label", stretch_range=(0.8, 1.25), pitch_range=(-5, 6))
    a = [cfg.draw(np.random.default_rng([7, i])) for i in range(200)]
    b = [cfg.draw(np.random.default_rng([7, i])) for i in range(200)]
    assert a == b
    rates = np.array([p.rate for p in a])
    assert np.all((rates >= 0.8) & (rates <= 1.25)) and 0.3 < np.mean(rates != 1.0) < 0.7
    shifts = {p.semitones for p in a}
    assert shifts <= set(range(-5, 7)) and len(shifts) == 12
    assert all(abs(g) <= 6.0 for p in a for (_, _, g, _) in p.eq)


def test_labels_follow_the_mode():
    labels = {"genre": ["swing"], "tempo": 100.0, "key": 21}
    plan = A.Plan(rate=1.2, semitones=5)
    assert A.AugmentConfig(mode="label").relabel(labels, plan) == {"genre": ["swing"], "tempo": 120.0, "key": 14}
    assert A.AugmentConfig(mode="invariance").relabel(labels, plan) == {"genre": ["swing"], "tempo": None,
                                                                        "key": None}
    assert A.AugmentConfig(mode="invariance").relabel(labels, A.Plan(eq=(("peaking", 1e3, 3.0, 1.0),))) == labels
    assert A.shift_key(11, 1) == 0 and A.shift_key(23, 1) == 12 and A.shift_key(0, -1) == 11


@pytest.mark.parametrize("bad", [dict(mode="both"), dict(stretch_range=(1.5, 1.2)), dict(pitch_range=(-1.5, 2)),
                                 dict(eq_probability=2.0)])
def test_bad_settings_are_refused_with_the_value(bad):
    from mdsim.errors import InputError

    with pytest.raises(InputError, match=str(list(bad.values())[0]).strip("()").split(",")[0]):
        A.AugmentConfig(**bad)
