"""The constant-Q input of the deep manifold (Humphrey): ``log(C * |CQT| + 1)``.

One call of librosa's ``cqt`` (recursive downsampling, one filter bank per
octave): at 16 kHz, 24 bins per octave over 8 octaves from 27.5 Hz (top
bin 6 840 Hz, below Nyquist), hop 800 samples = 20 frames a second, centred
frames like the STFT grid (``1 + n // hop_length`` frames).
"""

from __future__ import annotations

import warnings

import numpy as np


def log_cqt(y, *, sr: int, hop_length: int, fmin: float = 27.5, n_bins: int = 192,
            bins_per_octave: int = 24, log_scale: float = 50.0) -> np.ndarray:
    """Log-compressed constant-Q magnitude of a mono signal.

    Parameters
    ----------
    y : np.ndarray [shape=(n,), dtype=float32]
        Mono signal at ``sr`` Hz.
    sr, hop_length : int
        Sample rate and hop in samples (16 000 and 800: 20 frames a second).
    fmin : float
        Centre of the lowest bin, Hz.
    n_bins, bins_per_octave : int
    log_scale : float
        ``C`` in ``log(C * |X| + 1)`` (natural logarithm).

    Returns
    -------
    np.ndarray [shape=(n_bins, 1 + n // hop_length), dtype=float32]
        Bin ``k`` is centred on ``fmin * 2 ** (k / bins_per_octave)`` Hz.
    """
    import librosa

    y = np.asarray(y, dtype=np.float32)
    with warnings.catch_warnings():
        # A note shorter than the lowest octave's filter (about 0.6 s at 27.5 Hz) is
        # zero-padded by librosa, which says so once per octave: expected here.
        warnings.filterwarnings("ignore", message="n_fft=.* is too large for input signal")
        C = np.abs(librosa.cqt(y, sr=sr, hop_length=hop_length, fmin=fmin, n_bins=n_bins,
                               bins_per_octave=bins_per_octave))
    return np.log1p(log_scale * C).astype(np.float32, copy=False)


def cqt_frequencies(*, fmin: float = 27.5, n_bins: int = 192, bins_per_octave: int = 24) -> np.ndarray:
    """Centre frequency of every bin in Hz, ``float64 [shape=(n_bins,)]``."""
    return fmin * 2.0 ** (np.arange(n_bins) / bins_per_octave)
