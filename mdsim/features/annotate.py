"""Global tempo and key with madmom: the only module that imports madmom.

madmom 0.16.1 predates Python 3.10 and NumPy 2; :func:`_install_shims` puts
back the few names it still reaches for (``collections.MutableSequence``,
``np.float`` and friends, ``pkg_resources``) before the first import.

The processors load their networks in the constructor, so an
:class:`Annotator` is built once per worker process and reused for every
track (:func:`get_annotator` caches one per setting).
"""

from __future__ import annotations

import collections
import collections.abc
import importlib.metadata
import sys
import types
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mdsim.features.estimate import MIN_ESTIMATE_SECONDS
from mdsim.labels import parse_key

#: madmom's networks were trained on 44.1 kHz input.
MADMOM_SAMPLE_RATE = 44100
#: Frames per second of madmom's beat activations.
BEAT_FPS = 100
#: Networks in madmom's offline beat ensemble (the full tempo mode).
FULL_ENSEMBLE = 8
#: Networks used by the fast tempo mode.
FAST_ENSEMBLE = 2
TEMPO_MODES = {"full": FULL_ENSEMBLE, "fast": FAST_ENSEMBLE}


def _install_shims() -> None:
    """Make madmom 0.16.1 importable on Python >= 3.10 and NumPy >= 1.24."""
    for name in ("MutableSequence", "Sequence", "Mapping", "MutableMapping", "Iterable", "Callable"):
        if not hasattr(collections, name):
            setattr(collections, name, getattr(collections.abc, name))
    for name, alias in (("float", float), ("int", int), ("bool", bool), ("complex", complex)):
        if name not in np.__dict__:
            setattr(np, name, alias)
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:  # setuptools >= 81 dropped it; madmom only asks for its version
            shim = types.ModuleType("pkg_resources")
            shim.get_distribution = lambda name: types.SimpleNamespace(
                version=importlib.metadata.version(name))
            sys.modules["pkg_resources"] = shim


@dataclass(frozen=True)
class Annotation:
    """Global tempo and key of one track, with the detector's confidence.

    Attributes
    ----------
    tempo : float
        Most salient tempo in BPM.
    tempo_strength : float
        Relative strength (0..1) of that tempo among madmom's candidates.
    key : int or None
        Key index ``pitch_class + 12 * mode`` (see :func:`mdsim.labels.parse_key`),
        ``None`` without a usable estimate.
    key_probability : float
        Probability madmom's key network gives that key.
    """

    tempo: float
    tempo_strength: float
    key: int | None
    key_probability: float


class Annotator:
    """madmom's beat-RNN tempo and CNN key recognition, built once.

    Parameters
    ----------
    tempo_mode : {"full", "fast"}
        ``"full"`` averages madmom's 8 beat networks; ``"fast"`` the first 2.
    """

    def __init__(self, *, tempo_mode: str = "full"):
        if tempo_mode not in TEMPO_MODES:
            from mdsim.errors import InputError

            raise InputError(f"unknown tempo mode {tempo_mode!r} (valid: {', '.join(TEMPO_MODES)})")
        _install_shims()
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from madmom.features.beats import RNNBeatProcessor
            from madmom.features.key import CNNKeyRecognitionProcessor
            from madmom.features.tempo import TempoEstimationProcessor
            from madmom.models import BEATS_BLSTM

        self.tempo_mode = tempo_mode
        self._beats = RNNBeatProcessor(nn_files=BEATS_BLSTM[: TEMPO_MODES[tempo_mode]])
        self._tempo = TempoEstimationProcessor(fps=BEAT_FPS)
        self._key = CNNKeyRecognitionProcessor()
        from madmom.features.key import KEY_LABELS

        self._key_index = np.array([parse_key(label) for label in KEY_LABELS])

    @staticmethod
    def _signal(y, sr: int):
        from madmom.audio.signal import Signal

        y = np.asarray(y, dtype=np.float32)
        if sr != MADMOM_SAMPLE_RATE:
            import soxr

            y = soxr.resample(y, sr, MADMOM_SAMPLE_RATE, quality="HQ").astype(np.float32)
        return Signal(y, sample_rate=MADMOM_SAMPLE_RATE, num_channels=1)

    def tempo(self, y, sr: int, *, signal=None) -> tuple[float, float]:
        """Most salient tempo (BPM) and its relative strength; ``(nan, nan)`` when
        the audio is shorter than ``MIN_ESTIMATE_SECONDS`` or madmom finds no tempo."""
        if len(y) / sr < MIN_ESTIMATE_SECONDS:
            return float("nan"), float("nan")
        signal = self._signal(y, sr) if signal is None else signal
        candidates = self._tempo(self._beats(signal))
        if len(candidates) == 0 or not np.isfinite(candidates[0, 0]):
            return float("nan"), float("nan")
        return float(candidates[0, 0]), float(candidates[0, 1])

    def key(self, y, sr: int, *, signal=None) -> tuple[int | None, float]:
        """Key index and its probability; ``(None, nan)`` when the audio is shorter
        than ``MIN_ESTIMATE_SECONDS`` or the network's probabilities are not finite
        (below about 1.5 s they are all NaN, whose ``argmax`` once named "A major")."""
        if len(y) / sr < MIN_ESTIMATE_SECONDS:
            return None, float("nan")
        signal = self._signal(y, sr) if signal is None else signal
        probs = np.asarray(self._key(signal), dtype=np.float64).reshape(-1)
        if probs.size != len(self._key_index) or not np.isfinite(probs).all():
            return None, float("nan")
        best = int(np.argmax(probs))
        return int(self._key_index[best]), float(probs[best])

    def __call__(self, y, sr: int, *, tempo: bool = True, key: bool = True) -> dict:
        """Annotate a signal; returns only what was asked for.

        ``sr`` should be 44 100 Hz (the networks' rate) from a full-band
        decode of the source; another rate is resampled, and a 22 050 Hz
        signal upsampled this way has an empty top octave.

        Returns
        -------
        dict
            Any of ``tempo``, ``tempo_strength`` (when ``tempo``; NaN: no
            estimate), ``key`` (key index or ``None``: no estimate),
            ``key_probability`` (when ``key``).
        """
        out: dict = {}
        if not (tempo or key):
            return out
        signal = self._signal(y, sr) if len(y) / sr >= MIN_ESTIMATE_SECONDS else None
        if tempo:
            out["tempo"], out["tempo_strength"] = self.tempo(y, sr, signal=signal)
        if key:
            out["key"], out["key_probability"] = self.key(y, sr, signal=signal)
        return out


@lru_cache(maxsize=2)
def get_annotator(tempo_mode: str = "full") -> Annotator:
    """The process-wide :class:`Annotator` for a tempo mode (built on first use)."""
    return Annotator(tempo_mode=tempo_mode)
