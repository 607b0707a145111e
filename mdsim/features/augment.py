"""Time-stretch, pitch-shift and equalisation, applied to the features of a window.

Training reads features, not audio, so the transforms work where that is cheap and
faithful (as McCallum et al. stretch by resampling the mel spectrogram):

- **time-stretch** by ``rate`` (> 1: faster; the tempo becomes ``tempo * rate``):
  mel and CENS are resampled along time (output frame ``t`` is input time
  ``t * rate``, linear interpolation); the tempogram is computed again, with the
  project's own :func:`~mdsim.features.spectral.tempogram_frames`, from the onset
  envelope resampled the same way, so its lag axis moves with the beat exactly as
  it would for stretched audio.
- **pitch-shift** by ``semitones`` (integers; the key's pitch class moves by the
  same amount): CENS is rotated by that many chroma bins; the log-mel spectrogram
  is resampled along frequency (output band ``m`` reads frequency
  ``f_m * 2 ** (-semitones / 12)``, linear in the mel scale); bands whose source
  lies outside the spectrum are silence (0, the log-mel of zero power). The onset
  envelope, hence the tempogram, is left as it is.
- **equalisation**: a few peaking and shelving filters (RBJ biquads) with bounded
  gains; their power response, averaged over each mel band's filter, scales the
  mel power. CENS (normalised per frame) and the onset envelope (differences of
  log power along time, in which a static gain per band cancels) are left as
  they are.

``tests/test_augment.py`` checks each transform against the same transform applied
to the audio (librosa's phase vocoder, its pitch shifter, ``scipy.signal.sosfilt``)
followed by ``prep``'s features, and that every identity transform is the identity.

All functions take and return ``float32`` ``(n_bins, n_frames)`` arrays on the
grid of :class:`mdsim.config.FeatureConfig`; random draws take a
``numpy.random.Generator``, so a seeded generator gives the same augmentation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mdsim.config import FeatureConfig
from mdsim.errors import InputError
from mdsim.features.spectral import tempogram_frames

#: Modes of :class:`AugmentConfig`: what an augmented window's labels become.
MODES = ("none", "invariance", "label")


@dataclass(frozen=True)
class Plan:
    """One item's transform: ``rate`` (time-stretch), ``semitones`` (pitch-shift),
    ``eq`` (``[(kind, freq_hz, gain_db, q)]`` filters, applied in order)."""

    rate: float = 1.0
    semitones: int = 0
    eq: tuple = ()

    @property
    def is_identity(self) -> bool:
        return self.rate == 1.0 and self.semitones == 0 and not self.eq


IDENTITY = Plan()


@dataclass(frozen=True)
class AugmentConfig:
    """Which transforms to draw, how likely and how strong, and what they do to labels.

    Attributes
    ----------
    mode : {"none", "invariance", "label"}
        ``"invariance"``: a window keeps the labels of the dimensions its transform
        does not touch and loses (is left out of) those it does: a stretched window
        loses its tempo, a pitch-shifted one its key. ``"label"``: the transform
        moves the label: stretching by ``r`` multiplies the tempo by ``r``, shifting
        by ``s`` semitones moves the key by ``s`` (mode kept), so the window is a new
        tempo or key example; the two windows of a pair drawn for ``tempo`` or
        ``key`` share one transform, so they stay a positive pair in the new tempo or
        key. Equalisation touches no label in either mode.
    stretch_probability, stretch_range : float, (float, float)
        Chance of a time-stretch, and its rate range (drawn log-uniformly).
    pitch_probability, pitch_range : float, (int, int)
        Chance of a pitch-shift, and its semitone range (integers, uniform, 0 excluded).
    eq_probability, eq_gain_db, eq_filters : float, float, int
        Chance of an equalisation, the largest gain of a filter in dB (gains uniform
        in ``[-eq_gain_db, eq_gain_db]``), and the number of filters (a low shelf,
        peaking filters, a high shelf).
    """

    mode: str = "none"
    stretch_probability: float = 0.5
    stretch_range: tuple = (0.8, 1.25)
    pitch_probability: float = 0.5
    pitch_range: tuple = (-5, 6)
    eq_probability: float = 0.5
    eq_gain_db: float = 6.0
    eq_filters: int = 3

    def __post_init__(self):
        if self.mode not in MODES:
            raise InputError(f"augmentation mode {self.mode!r} is not known (valid: {', '.join(MODES)})")
        for name in ("stretch_probability", "pitch_probability", "eq_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise InputError(f"{name} {getattr(self, name)} must be in [0, 1]")
        lo, hi = (float(v) for v in self.stretch_range)
        if not 0.25 <= lo <= hi <= 4.0:
            raise InputError(f"stretch_range {self.stretch_range} must satisfy 0.25 <= low <= high <= 4")
        plo, phi = self.pitch_range
        if int(plo) != plo or int(phi) != phi or not -12 <= plo <= phi <= 12:
            raise InputError(f"pitch_range {self.pitch_range} must be whole semitones, -12 <= low <= high <= 12")
        if not 0.0 <= self.eq_gain_db <= 24.0:
            raise InputError(f"eq_gain_db {self.eq_gain_db} must be in [0, 24]")
        if not 1 <= self.eq_filters <= 8:
            raise InputError(f"eq_filters {self.eq_filters} must be in 1..8")
        object.__setattr__(self, "stretch_range", (lo, hi))
        object.__setattr__(self, "pitch_range", (int(plo), int(phi)))

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def draw(self, rng) -> Plan:
        """One random :class:`Plan` (each transform independently, with its probability)."""
        rate, semitones, eq = 1.0, 0, ()
        if rng.random() < self.stretch_probability:
            lo, hi = self.stretch_range
            rate = float(math.exp(rng.uniform(math.log(lo), math.log(hi))))
        if rng.random() < self.pitch_probability:
            choices = [s for s in range(self.pitch_range[0], self.pitch_range[1] + 1) if s != 0]
            semitones = int(choices[rng.integers(len(choices))]) if choices else 0
        if rng.random() < self.eq_probability:
            eq = random_eq(rng, n_filters=self.eq_filters, max_gain_db=self.eq_gain_db)
        return Plan(rate, semitones, eq)

    def relabel(self, labels: dict, plan: Plan) -> dict:
        """The labels of a window transformed by ``plan`` (the :mod:`mdsim.labels` contract)."""
        if self.mode == "none" or plan.is_identity:
            return labels
        out = dict(labels)
        if plan.rate != 1.0 and out.get("tempo") is not None:
            out["tempo"] = None if self.mode == "invariance" else float(out["tempo"]) * plan.rate
        if plan.semitones and out.get("key") is not None:
            out["key"] = None if self.mode == "invariance" else shift_key(int(out["key"]), plan.semitones)
        return out


def shift_key(key: int, semitones: int) -> int:
    """The key index ``pitch_class + 12 * mode`` transposed by ``semitones`` (mode kept).

    >>> shift_key(0, 2), shift_key(21, 5)          # C major + 2 = D major; A minor + 5 = D minor
    (2, 14)
    """
    return (key % 12 + semitones) % 12 + 12 * (key // 12)


# --------------------------------------------------------------------------------------
# The transforms


def _resample_time(x: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``x[:, positions]`` with linear interpolation (positions in ``[0, T - 1]``)."""
    i0 = np.clip(np.floor(positions).astype(np.int64), 0, x.shape[1] - 1)
    i1 = np.minimum(i0 + 1, x.shape[1] - 1)
    w = (positions - i0).astype(np.float32)
    return (x[:, i0] * (1.0 - w) + x[:, i1] * w).astype(np.float32, copy=False)


def stretch_frames(x, rate: float, n_out: int | None = None) -> np.ndarray:
    """Resample a feature matrix along time: output frame ``t`` is input time ``t * rate``.

    Frames past the input's end are zeros. ``n_out`` defaults to
    ``floor((T - 1) / rate) + 1``, the frames the input covers.

    >>> x = np.arange(6, dtype=np.float32)[None, :]
    >>> stretch_frames(x, 2.0).tolist(), stretch_frames(x, 0.5, 4).tolist()
    ([[0.0, 2.0, 4.0]], [[0.0, 0.5, 1.0, 1.5]])
    """
    x = np.asarray(x, dtype=np.float32)
    T = x.shape[1]
    if n_out is None:
        n_out = int(math.floor((T - 1) / rate + 1e-9)) + 1 if T else 0
    pos = np.arange(n_out, dtype=np.float64) * rate
    out = np.zeros((x.shape[0], n_out), dtype=np.float32)
    inside = pos <= T - 1 + 1e-9
    if T and inside.any():
        out[:, inside] = _resample_time(x, np.minimum(pos[inside], T - 1))
    return out


@lru_cache(maxsize=64)
def _mel_shift(semitones: int, sr: int, n_mels: int) -> tuple:
    """``(lower, weight, inside)`` of a pitch-shift of log-mel bands: output band ``m``
    is ``(1 - weight[m]) x[lower[m]] + weight[m] x[lower[m] + 1]``, or silence where
    ``inside[m]`` is false (the source lies outside the spectrum)."""
    import librosa

    centres = librosa.mel_frequencies(n_mels + 2, fmin=0.0, fmax=sr / 2.0)[1:-1]
    mel_c = librosa.hz_to_mel(centres)
    source = librosa.hz_to_mel(centres * 2.0 ** (-semitones / 12.0))
    idx = np.interp(source, mel_c, np.arange(n_mels), left=-1.0, right=np.inf)
    inside = (idx >= 0) & np.isfinite(idx)
    j = np.where(inside, idx, 0.0)
    lower = np.minimum(np.floor(j).astype(np.int64), n_mels - 2)
    weight = (j - lower).astype(np.float32)
    return lower, weight[:, None], inside


def _mel_shift_matrix(semitones: int, sr: int, n_mels: int) -> np.ndarray:
    """The same interpolation as a dense ``(n_mels, n_mels)`` matrix (for tests)."""
    lower, weight, inside = _mel_shift(semitones, sr, n_mels)
    P = np.zeros((n_mels, n_mels), dtype=np.float32)
    rows = np.flatnonzero(inside)
    P[rows, lower[rows]] += 1.0 - weight[rows, 0]
    P[rows, lower[rows] + 1] += weight[rows, 0]
    return P


def pitch_shift_mel(mel, semitones: int, *, sr: int = 22050) -> np.ndarray:
    """Log-mel spectrogram of the sound shifted by ``semitones`` (see the module text).

    Two rows gathered per band (no matrix product: BLAS threads cost more than the work
    on a busy machine)."""
    mel = np.asarray(mel, dtype=np.float32)
    if semitones == 0:
        return mel
    lower, weight, inside = _mel_shift(int(semitones), int(sr), mel.shape[0])
    out = mel[lower] * (1.0 - weight) + mel[lower + 1] * weight
    out[~inside] = 0.0
    return out


def pitch_shift_chroma(cens, semitones: int) -> np.ndarray:
    """CENS (or any chroma) shifted by ``semitones``: a rotation of the pitch classes."""
    return np.roll(np.asarray(cens, dtype=np.float32), int(semitones), axis=0)


def random_eq(rng, *, n_filters: int = 3, max_gain_db: float = 6.0, sr: int = 22050) -> tuple:
    """Random filters ``[(kind, freq_hz, gain_db, q)]``: a low shelf (60-400 Hz), peaking
    filters (200 Hz-6 kHz, Q 0.5-2), a high shelf (2-8 kHz), gains uniform in ±``max_gain_db``."""
    kinds = ["lowshelf"] + ["peaking"] * max(0, n_filters - 2) + ["highshelf"]
    kinds = kinds[:n_filters] if n_filters >= 2 else ["peaking"]
    out = []
    for kind in kinds:
        lo, hi = {"lowshelf": (60.0, 400.0), "peaking": (200.0, 6000.0), "highshelf": (2000.0, 8000.0)}[kind]
        f = float(math.exp(rng.uniform(math.log(lo), math.log(min(hi, 0.45 * sr)))))
        q = float(rng.uniform(0.5, 2.0)) if kind == "peaking" else 0.707
        out.append((kind, round(f, 3), round(float(rng.uniform(-max_gain_db, max_gain_db)), 3), round(q, 3)))
    return tuple(out)


def eq_sos(filters, *, sr: int = 22050) -> np.ndarray:
    """Second-order sections of the filters (RBJ audio-EQ cookbook biquads)."""
    rows = []
    for kind, f0, gain_db, q in filters:
        A = 10.0 ** (gain_db / 40.0)
        w0 = 2.0 * math.pi * f0 / sr
        cw, sw = math.cos(w0), math.sin(w0)
        alpha = sw / (2.0 * q)
        if kind == "peaking":
            b = [1 + alpha * A, -2 * cw, 1 - alpha * A]
            a = [1 + alpha / A, -2 * cw, 1 - alpha / A]
        elif kind in ("lowshelf", "highshelf"):
            s = 1.0 if kind == "lowshelf" else -1.0
            r = 2.0 * math.sqrt(A) * alpha
            b = [A * ((A + 1) - s * (A - 1) * cw + r), s * 2 * A * ((A - 1) - s * (A + 1) * cw),
                 A * ((A + 1) - s * (A - 1) * cw - r)]
            a = [(A + 1) + s * (A - 1) * cw + r, -s * 2 * ((A - 1) + s * (A + 1) * cw),
                 (A + 1) + s * (A - 1) * cw - r]
        else:
            raise InputError(f"unknown filter kind {kind!r} (valid: lowshelf, peaking, highshelf)")
        rows.append([b[0] / a[0], b[1] / a[0], b[2] / a[0], 1.0, a[1] / a[0], a[2] / a[0]])
    return np.array(rows, dtype=np.float64)


def eq_audio(y, filters, *, sr: int = 22050) -> np.ndarray:
    """The filters applied to a signal (the audio-domain reference of :func:`eq_mel`)."""
    import scipy.signal

    if not filters:
        return np.asarray(y, dtype=np.float32)
    return scipy.signal.sosfilt(eq_sos(filters, sr=sr), y).astype(np.float32)


@lru_cache(maxsize=1024)
def _mel_gain(filters: tuple, sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    import scipy.signal

    from mdsim.features.spectral import _mel_basis

    freqs = np.fft.rfftfreq(n_fft, 1.0 / sr)
    _, h = scipy.signal.sosfreqz(eq_sos(filters, sr=sr), worN=freqs, fs=sr)
    power = np.abs(h) ** 2
    W = _mel_basis(sr, n_fft, n_mels).astype(np.float64)
    norm = W.sum(axis=1)
    gain = np.divide(W @ power, norm, out=np.ones(n_mels), where=norm > 0)
    return gain.astype(np.float32)[:, None]


def eq_mel(mel, filters, *, sr: int = 22050, n_fft: int = 512) -> np.ndarray:
    """Log-mel spectrogram ``log10(1 + 10 M)`` of the equalised sound: ``M`` times the
    filters' power response averaged over each band's filter."""
    mel = np.asarray(mel, dtype=np.float32)
    if not filters:
        return mel
    gain = _mel_gain(tuple(filters), int(sr), int(n_fft), mel.shape[0])
    power = np.maximum(np.power(np.float32(10.0), mel) - 1.0, 0.0) * gain
    return np.log10(1.0 + power).astype(np.float32)


def apply(features: dict, plan: Plan, *, config: FeatureConfig = FeatureConfig()) -> dict:
    """Pitch-shift and equalise a window's features (time-stretch needs the wider read
    of :func:`read_window`). Features the transform leaves alone are returned as given."""
    out = dict(features)
    if plan.semitones:
        if "mel" in out:
            out["mel"] = pitch_shift_mel(out["mel"], plan.semitones, sr=config.sample_rate)
        if "cens" in out:
            out["cens"] = pitch_shift_chroma(out["cens"], plan.semitones)
    if plan.eq and "mel" in out:
        out["mel"] = eq_mel(out["mel"], plan.eq, sr=config.sample_rate, n_fft=config.n_fft)
    return out


def span(n_frames: int, rate: float) -> int:
    """Input frames a window of ``n_frames`` output frames stretched by ``rate`` reads."""
    return int(math.ceil((n_frames - 1) * rate)) + 1


def read_window(read, start: int, n_frames: int, plan: Plan, names, *, track_frames: int,
                config: FeatureConfig = FeatureConfig()) -> dict:
    """The features of one transformed window.

    The tempogram is computed here, on the CPU, even from a compact store whose plain
    windows get theirs in the training step (:class:`mdsim.model.tempogram.EnvelopeTrainer`):
    a stretched window's tempogram is that of the envelope resampled along time, which
    the step's padded slice of the stored envelope does not hold, so an augmenting run
    reads every window this way.

    Parameters
    ----------
    read : callable
        ``read(names, start, stop) -> {name: (n_bins, stop - start)}``: the features
        of the track (e.g. ``FeatureStore.features`` of one track); ``"onset"`` is
        asked for when the plan stretches a tempogram.
    start : int
        First input frame of the window (moved back when the stretched window would
        run past the track's end).
    n_frames : int
        Output frames (the model's window, 259).
    plan : Plan
    names : sequence of str
        Features to return (``mel``, ``cens``, ``tempogram``).
    track_frames : int
        Frames of the whole track.

    Returns
    -------
    dict
        ``{name: float32 (n_bins, n_frames)}``; a window longer than what the track
        holds is zero-padded at the end, as embedding pads.
    """
    names = tuple(names)
    if plan.rate == 1.0:
        feats = read(names, start, start + n_frames)
    else:
        need = span(n_frames, plan.rate)
        start = max(0, min(int(start), track_frames - need))
        plain = [n for n in names if n != "tempogram"]
        feats = {}
        if plain:
            raw = read(tuple(plain), start, start + need)
            feats = {n: stretch_frames(raw[n], plan.rate, n_frames) for n in plain}
        if "tempogram" in names:
            feats["tempogram"] = _stretched_tempogram(read, start, n_frames, plan.rate, track_frames, config)
    feats = {n: _pad(feats[n], n_frames) for n in names}
    return apply(feats, plan, config=config)


def _stretched_tempogram(read, start, n_frames, rate, track_frames, config) -> np.ndarray:
    """Tempogram frames of the onset envelope resampled by ``rate``, with the context
    each frame's autocorrelation window needs (the track's own ends padded as usual)."""
    half = config.tempogram_win_length // 2
    lo = max(0, int(math.floor(start - (half + 1) * rate)))
    hi = min(track_frames, int(math.ceil(start + (n_frames + half + 1) * rate)) + 1)
    onset = read(("onset",), lo, hi)["onset"][0]
    # envelope sample u of the stretched track lies at input time start + u * rate
    before = int(math.floor((start - lo) / rate + 1e-9))
    after = int(math.floor((hi - 1 - start) / rate + 1e-9))
    pos = start + np.arange(-before, after + 1, dtype=np.float64) * rate - lo
    env = _resample_time(onset[None, :], np.clip(pos, 0, hi - lo - 1))[0]
    return tempogram_frames(env, before, before + n_frames, win_length=config.tempogram_win_length,
                            cyclic=config.cyclic_tempogram)


def _pad(x: np.ndarray, n: int) -> np.ndarray:
    if x.shape[1] >= n:
        return x[:, :n]
    return np.pad(x, ((0, 0), (0, n - x.shape[1])))
