"""One STFT per track, and every input feature derived from it.

All functions are plain, keyword-only and return ``float32`` arrays shaped
``(n_bins, n_frames)`` on the frame grid of :class:`mdsim.config.FeatureConfig`
(22 050 Hz, ``n_fft = 512``, ``hop_length = 256``, centred): frame ``t``
is centred on sample ``t * hop_length``, so a signal of ``n`` samples has
``1 + n // hop_length`` frames.

The straightforward path calls librosa three times (``melspectrogram``,
``chroma_cens``, ``tempogram``), computing two STFTs, a mel spectrogram
twice and a constant-Q transform. :func:`extract_features` computes one power
STFT and derives the rest from it; ``tests/test_features.py`` checks it
against those librosa calls.
"""

from __future__ import annotations

import warnings
from functools import lru_cache

import numpy as np

from mdsim.config import CQT_FEATURES, FeatureConfig

#: The network's input features, in the order ``prep`` computes them.
FEATURE_NAMES = ("mel", "cens", "tempogram")

#: CENS quantisation thresholds and the weight of each step (Mueller's CENS).
CENS_THRESHOLDS = (0.4, 0.2, 0.1, 0.05)
CENS_STEP = 0.25


def n_frames(n_samples: int, *, hop_length: int) -> int:
    """Frames of a centred STFT over ``n_samples``."""
    return 1 + n_samples // hop_length


def power_stft(y, *, n_fft: int, hop_length: int) -> np.ndarray:
    """Power spectrogram ``|STFT|**2`` (Hann, centred, zero-padded).

    Equal to ``abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length))**2``
    within float32 rounding; framing is a strided view, so the only copies are
    the windowed frames and the spectrum.

    Returns
    -------
    np.ndarray [shape=(1 + n_fft // 2, n_frames), dtype=float32]
        A transposed view of a C-ordered ``(n_frames, bins)`` array.
    """
    import scipy.fft
    import scipy.signal

    y = np.asarray(y, dtype=np.float32)
    padded = np.pad(y, (n_fft // 2, n_fft // 2))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop_length]
    frames = frames[: n_frames(len(y), hop_length=hop_length)]
    window = scipy.signal.get_window("hann", n_fft, fftbins=True).astype(np.float32)
    X = scipy.fft.rfft(frames * window, axis=-1)
    P = np.multiply(X.real, X.real)
    P += np.square(X.imag, out=X.imag)  # X is not needed after this: reuse its memory
    return P.T


@lru_cache(maxsize=8)
def _mel_basis(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa

    with warnings.catch_warnings():
        # 128 bands over 257 FFT bins: the lowest bands are one or two bins wide, and
        # librosa warns when a band falls between bins (the paper's grid keeps them).
        warnings.filterwarnings("ignore", message="Empty filters detected")
        return librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels).astype(np.float32)


@lru_cache(maxsize=8)
def _chroma_basis(sr: int, n_fft: int, n_chroma: int, tuning: float) -> np.ndarray:
    import librosa

    return librosa.filters.chroma(sr=sr, n_fft=n_fft, n_chroma=n_chroma, tuning=tuning).astype(np.float32)


def mel_power(S, *, sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Mel power spectrogram from a power STFT, ``float32 [shape=(n_mels, n_frames)]``."""
    return _mel_basis(sr, n_fft, n_mels) @ S


def log_mel(M) -> np.ndarray:
    """The paper's compression ``log10(1 + 10 * M)`` of a mel power spectrogram."""
    return np.log10(1.0 + 10.0 * M).astype(np.float32, copy=False)


def chroma(S, *, sr: int, n_fft: int, n_chroma: int = 12, tuning: float | None = 0.0) -> np.ndarray:
    """Unnormalised chroma of a power STFT, ``float32 [shape=(n_chroma, n_frames)]``.

    ``tuning=None`` estimates the tuning from ``S`` (librosa's default, slow).
    """
    if tuning is None:
        import librosa

        tuning = float(librosa.estimate_tuning(S=S, sr=sr, bins_per_octave=n_chroma))
    return _chroma_basis(sr, n_fft, n_chroma, float(tuning)) @ S


def cens(C, *, window: int = 41) -> np.ndarray:
    """Chroma energy normalised statistics from a chroma matrix.

    The CENS steps of librosa's ``chroma_cens``, applied to any chroma: L1
    normalisation per frame, quantisation (thresholds 0.4, 0.2, 0.1, 0.05,
    each adding 0.25), smoothing along time with a normalised Hann window of
    ``window`` frames, L2 normalisation per frame.

    Parameters
    ----------
    C : np.ndarray [shape=(n_chroma, n_frames)]
        Non-negative chroma, any scale.
    window : int
        Smoothing length in frames (0: no smoothing).

    Returns
    -------
    np.ndarray [shape=(n_chroma, n_frames), dtype=float32]
    """
    import librosa
    import scipy.ndimage

    C = librosa.util.normalize(np.asarray(C, dtype=np.float32), norm=1, axis=0)
    q = np.zeros_like(C)
    for threshold in CENS_THRESHOLDS:
        q += (C > threshold) * np.float32(CENS_STEP)
    if window > 0:
        win = librosa.filters.get_window("hann", window + 2, fftbins=False).astype(np.float32)
        win /= win.sum()
        # librosa's own smoothing: scipy.ndimage.convolve(mode="constant") along time
        q = scipy.ndimage.convolve1d(q, win, axis=1, mode="constant")
    return librosa.util.normalize(q, norm=2, axis=0).astype(np.float32, copy=False)


def onset_envelope(M, *, sr: int, n_fft: int, hop_length: int) -> np.ndarray:
    """Onset strength from a mel power spectrogram (librosa's ``onset_strength``).

    Returns
    -------
    np.ndarray [shape=(n_frames,), dtype=float32]
    """
    import librosa

    # n_fft sets the centring offset of the envelope: it must be the STFT's own.
    return librosa.onset.onset_strength(S=librosa.power_to_db(M), sr=sr, hop_length=hop_length,
                                        n_fft=n_fft).astype(np.float32, copy=False)


def tempogram(oenv, *, sr: int, hop_length: int, win_length: int = 384,
              cyclic: bool = False) -> np.ndarray:
    """Autocorrelation tempogram of an onset envelope.

    The same values as ``librosa.feature.tempogram(onset_envelope=oenv,
    win_length=win_length)`` (centred Hann windows, ``linear_ramp`` padding,
    max-normalised frames), about twice as fast: the windowed autocorrelation
    runs as one real FFT of the smallest alias-free size along contiguous rows.

    Returns
    -------
    np.ndarray [shape=(win_length, n_frames), dtype=float32]
        Lag ``k`` (rows) corresponds to ``60 * sr / (hop_length * k)`` BPM;
        each frame is normalised to a maximum of 1. With ``cyclic=True`` the
        lags are folded into tempo octaves (see :func:`fold_octaves`).
    """
    oenv = np.asarray(oenv, dtype=np.float32).reshape(-1)
    return tempogram_frames(oenv, 0, oenv.shape[-1], win_length=win_length, cyclic=cyclic)


def tempogram_frames(oenv, start: int, stop: int, *, win_length: int = 384, cyclic: bool = False,
                     envelope_span: tuple[int, int] | None = None) -> np.ndarray:
    """Frames ``start:stop`` of :func:`tempogram` of a whole track's onset envelope.

    Each frame depends only on the ``win_length`` envelope values around it (and,
    near the ends, on the padding), so a window of frames costs its own frames
    alone: the compact store keeps the envelope and builds the tempogram the
    network reads window by window, with the same values as the whole-track
    computation (``tests/test_store.py`` checks it).

    Parameters
    ----------
    oenv : np.ndarray [shape=(n,) or (1, n)]
        The onset envelope, whole, or the part of it given by ``envelope_span``.
    start, stop : int
        Frames of the whole track's tempogram.
    envelope_span : (int, int), optional
        ``(first, n_total)``: ``oenv`` holds samples ``first, first + 1, ...`` of an
        envelope of ``n_total`` samples; it must cover the samples the frames read
        (``start - win_length // 2`` to ``stop + win_length // 2``, clipped to the
        track), so a reader need not load the whole envelope.

    Returns
    -------
    np.ndarray [shape=(win_length, stop - start), dtype=float32]
    """
    import scipy.fft

    n = np.asarray(oenv).size if envelope_span is None else int(envelope_span[1])
    start, stop = max(0, int(start)), min(n, int(stop))
    padded = padded_envelope(oenv, start, stop, win_length=win_length, envelope_span=envelope_span)
    count = stop - start
    window = _hann(win_length)
    n_fft = 2 * win_length  # lags < win_length never wrap around
    frames = np.zeros((count, n_fft), dtype=np.float32)
    np.multiply(np.lib.stride_tricks.sliding_window_view(padded, win_length)[:count], window,
                out=frames[:, :win_length])
    X = scipy.fft.rfft(frames, axis=-1, overwrite_x=True)
    # |X|**2 in place (X stays complex with zero imaginary part, so irfft takes it as is)
    re, im = X.real, X.imag
    np.multiply(re, re, out=re)
    re += np.square(im, out=im)
    im[...] = 0.0
    ac = scipy.fft.irfft(X, n=n_fft, axis=-1, overwrite_x=True)[:, :win_length]
    # Lag 0 is each frame's energy and bounds every other lag (Cauchy-Schwarz):
    # it is the max-norm librosa divides by, found without a search.
    peak = ac[:, :1].copy()
    T = np.divide(ac, peak, out=np.zeros(ac.shape, dtype=np.float32), where=peak > 0).T
    return fold_octaves(T) if cyclic else T


def padded_envelope(oenv, start: int, stop: int, *, win_length: int = 384,
                    envelope_span: tuple[int, int] | None = None) -> np.ndarray:
    """The envelope samples tempogram frames ``start:stop`` read, padded as :func:`tempogram` pads.

    Sample ``i`` of the result is envelope sample ``start - win_length // 2 + i`` of the
    whole track padded with ``np.pad(..., mode="linear_ramp", end_values=0)`` on either
    side (the ramps depend on the track's first and last sample only); frame
    ``start + t`` is the Hann-windowed autocorrelation of samples ``t:t + win_length``.
    What the training loader hands to :class:`mdsim.model.tempogram.OnsetTempogram`.

    Parameters
    ----------
    oenv, start, stop, win_length, envelope_span
        As :func:`tempogram_frames`; ``start:stop`` is clipped to the track.

    Returns
    -------
    np.ndarray [shape=(stop - start + win_length - 1,), dtype=float32]
    """
    oenv = np.asarray(oenv, dtype=np.float32).reshape(-1)
    first, n = (0, oenv.shape[-1]) if envelope_span is None else (int(envelope_span[0]), int(envelope_span[1]))
    start, stop = max(0, int(start)), min(n, int(stop))
    half = win_length // 2
    lo, hi = start - half, stop - 1 + win_length - half  # envelope samples the frames read
    if first > max(lo, 0) or first + oenv.shape[-1] < min(hi, n):
        raise ValueError(f"envelope samples {first}..{first + oenv.shape[-1]} do not cover {max(lo, 0)}..{min(hi, n)}")
    if lo >= 0 and hi <= n:
        return oenv[lo - first:hi - first]
    padded = np.empty(hi - lo, dtype=np.float32)
    inside_lo, inside_hi = max(lo, 0), min(hi, n)
    padded[inside_lo - lo:inside_hi - lo] = oenv[inside_lo - first:inside_hi - first]
    if lo < 0:
        ramp = np.pad(oenv[:1], (half, 0), mode="linear_ramp", end_values=0)[:half]
        padded[:-lo] = ramp[half + lo:]
    if hi > n:
        last = oenv[n - 1 - first:n - first]
        ramp = np.pad(last, (0, half), mode="linear_ramp", end_values=0)[1:]
        padded[n - lo:] = ramp[:hi - n]
    return padded


@lru_cache(maxsize=8)
def _hann(win_length: int) -> np.ndarray:
    import scipy.signal

    window = scipy.signal.get_window("hann", win_length, fftbins=True).astype(np.float32)
    window.flags.writeable = False
    return window


def fold_octaves(T) -> np.ndarray:
    """Cyclic tempogram: add every lag ``k`` into the octave class of its tempo.

    Row ``r`` of the result gathers the lags whose ``log2`` lag has fractional
    part in ``[r / n, (r + 1) / n)`` with ``n = T.shape[0]``: tempo octaves
    (lags ``k`` and ``2k``) land on the same row. Each frame is normalised
    to a maximum of 1.
    """
    n = T.shape[0]
    lags = np.arange(1, n)
    rows = np.floor((np.log2(lags) % 1.0) * n).astype(int)
    out = np.zeros_like(T)
    np.add.at(out, rows, T[1:])
    peak = out.max(axis=0, keepdims=True)
    return np.divide(out, peak, out=np.zeros_like(out), where=peak > 0)


def extract_features(y, *, config: FeatureConfig = FeatureConfig()) -> dict:
    """All input features of a track from one power STFT (two with ``config.chroma_n_fft``:
    the chroma then comes from a longer window on the same frames).

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float32]
        Mono signal at ``config.sample_rate``.
    config : FeatureConfig

    Returns
    -------
    dict
        ``{"mel": (n_mels, T), "cens": (n_chroma, T), "tempogram": (win_length, T),
        "onset": (1, T)}``, ``float32``, ``T = 1 + n // hop_length``. ``onset`` is the
        onset envelope the tempogram is computed from (what a compact store keeps).
        A constant-Q config (:meth:`FeatureConfig.constant_q`) gives ``{"cqt": (n_bins, T)}``
        instead (:func:`mdsim.features.cqt.log_cqt`).

    Notes
    -----
    Computed with one BLAS thread: a multi-threaded matrix product rounds differently
    (seen: 1 ulp in the mel and onset values with two threads), so the same audio gives the
    same bytes whether it is prepped in this process, in worker processes or on a Dask worker,
    or embedded from audio. A process's first call holds a machine-wide lock while librosa's
    kernels compile (:mod:`mdsim.features.compile_lock`).
    """
    from threadpoolctl import threadpool_limits

    from mdsim.features.compile_lock import first_compile

    with first_compile(), threadpool_limits(limits=1, user_api="blas"):
        return _extract_features(y, config)


def _extract_features(y, config: FeatureConfig) -> dict:
    if config.features == CQT_FEATURES:  # the deep-manifold store: constant-Q only
        from mdsim.features.cqt import log_cqt

        return {"cqt": log_cqt(y, sr=config.sample_rate, hop_length=config.hop_length, fmin=config.cqt_fmin,
                               n_bins=config.cqt_n_bins, bins_per_octave=config.cqt_bins_per_octave,
                               log_scale=config.cqt_log_scale)}
    sr, n_fft, hop = config.sample_rate, config.n_fft, config.hop_length
    S = power_stft(y, n_fft=n_fft, hop_length=hop)
    M = mel_power(S, sr=sr, n_fft=n_fft, n_mels=config.n_mels)
    oenv = onset_envelope(M, sr=sr, n_fft=n_fft, hop_length=hop)
    chroma_fft = config.chroma_n_fft or n_fft
    S_chroma = S if chroma_fft == n_fft else power_stft(y, n_fft=chroma_fft, hop_length=hop)
    return {
        "mel": log_mel(M),
        "cens": cens(chroma(S_chroma, sr=sr, n_fft=chroma_fft, n_chroma=config.n_chroma, tuning=config.tuning),
                     window=config.cens_window),
        "tempogram": tempogram(oenv, sr=sr, hop_length=hop, win_length=config.tempogram_win_length,
                               cyclic=config.cyclic_tempogram),
        "onset": oenv[None, :],
    }


def extract_features_reference(y, *, config: FeatureConfig = FeatureConfig()) -> dict:
    """The straightforward path: three independent librosa calls.

    Kept as the benchmark baseline (``experiments/bench_prep.py``); its CENS is
    librosa's constant-Q ``chroma_cens``, so it differs from ours by design.
    """
    import librosa

    sr, n_fft, hop = config.sample_rate, config.n_fft, config.hop_length
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Empty filters detected")
        mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=config.n_mels)
    return {
        "mel": log_mel(mel),
        "cens": librosa.feature.chroma_cens(y=y, sr=sr, hop_length=hop, n_chroma=config.n_chroma,
                                            win_len_smooth=config.cens_window),
        "tempogram": librosa.feature.tempogram(y=y, sr=sr, hop_length=hop,
                                               win_length=config.tempogram_win_length),
    }
