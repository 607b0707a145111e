"""Decode, resample, mix to mono, segment; decode ahead of the network (:func:`prefetch`).

Every decoded signal is ``float32`` mono at :data:`SAMPLE_RATE` (22 050 Hz).
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import numpy as np

from mdsim.errors import AudioError

#: Sample rate of every signal mdsim analyses, in Hz.
SAMPLE_RATE = 22050
#: Tracks decoded ahead of the network while it runs (bounds memory to that many tracks).
LOOKAHEAD_TRACKS = 8
#: Segment length in seconds (one embedding per segment).
SEGMENT_SECONDS = 3.0
#: File extensions ``mdsim prep`` picks up when given a folder.
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif")
#: Peak amplitude under which a signal counts as digital silence.
SILENCE_PEAK = 1e-4


def find_audio(folder) -> list[Path]:
    """All audio files below ``folder`` (recursively), sorted by path."""
    folder = Path(folder)
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def file_hash(path, *, algorithm: str = "sha1", chunk_size: int = 1 << 20) -> str:
    """Hash of a file's bytes, as hex (SHA-1 by default: identifies the content a track was
    computed from; ``algorithm`` is any name :func:`hashlib.new` takes)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            h.update(block)
    return h.hexdigest()


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """Decode to ``float32 [shape=(channels, n)]`` at the file's own rate."""
    import soundfile as sf

    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        return data.T, int(sr)
    except Exception as sf_error:  # noqa: BLE001 - fall back to audioread for other formats
        first = sf_error
    try:
        import audioread  # librosa's decoder for formats libsndfile lacks

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with audioread.audio_open(str(path)) as f:
                sr, channels = int(f.samplerate), int(f.channels)
                raw = b"".join(f)
        data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
        return data.reshape(-1, max(channels, 1)).T, sr
    except Exception:  # noqa: BLE001
        raise AudioError(f"{path}: cannot decode audio ({first}); "
                         "convert it to WAV or FLAC, or remove it from the input") from None


def audio_duration(path) -> float:
    """Duration of an audio file in seconds, from its header where libsndfile reads it
    (else by decoding it whole).

    Raises
    ------
    AudioError
        Missing or undecodable file.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        info = sf.info(str(path))
        return info.frames / info.samplerate
    except Exception:  # noqa: BLE001 - a format libsndfile lacks: decode it
        data, sr = _decode(path)
        return data.shape[1] / sr


def load_audio(path, *, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Decode an audio file to mono ``float32`` at ``sr``.

    Parameters
    ----------
    path : str or Path
        Any format libsndfile reads (wav, flac, ogg, mp3, aiff, ...).
    sr : int
        Target sample rate in Hz.

    Returns
    -------
    y : np.ndarray [shape=(n,), dtype=float32]

    Raises
    ------
    AudioError
        Missing, empty, undecodable, non-finite or digitally silent audio.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if os.path.getsize(path) == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    data, native_sr = _decode(path)
    return prepare_signal(data, native_sr, sr=sr, name=str(path))


def prepare_signal(y, orig_sr: int, *, sr: int = SAMPLE_RATE, name: str = "signal") -> np.ndarray:
    """Check, mix to mono and resample an in-memory signal.

    Parameters
    ----------
    y : np.ndarray [shape=(n,) or (channels, n)]
    orig_sr : int
        Sample rate of ``y`` in Hz.
    sr : int
        Target sample rate in Hz.
    name : str
        How to name the signal in error messages (usually its path).

    Returns
    -------
    np.ndarray [shape=(n',), dtype=float32]
    """
    y = np.asarray(y, dtype=np.float32)
    if y.ndim == 2:
        y = y.mean(axis=0)
    elif y.ndim != 1:
        raise AudioError(f"{name}: expected a 1-D or (channels, samples) array, got shape {y.shape}")
    if y.size == 0:
        raise AudioError(f"{name}: no audio samples")
    if not np.all(np.isfinite(y)):
        raise AudioError(f"{name}: audio holds NaN or infinite samples; fix or re-export the file")
    if orig_sr <= 0:
        raise AudioError(f"{name}: invalid sample rate {orig_sr}")
    if orig_sr != sr:
        import soxr

        y = soxr.resample(y, orig_sr, sr, quality="HQ").astype(np.float32, copy=False)
    if float(np.max(np.abs(y))) < SILENCE_PEAK:
        raise AudioError(f"{name}: digital silence (peak below {SILENCE_PEAK:g}); nothing to analyse")
    return y


def segment_starts(n_frames: int, segment_frames: int) -> np.ndarray:
    """Start frames of the non-overlapping segments covering a track.

    A track shorter than one segment yields one segment at 0 (to be padded).
    The last partial segment is dropped unless it is the only one.
    """
    n = max(1, n_frames // segment_frames)
    return np.arange(n) * segment_frames


def prefetch(items, load, *, lookahead: int = LOOKAHEAD_TRACKS):
    """Yield ``(load(item), is_last)`` in order, loading up to ``lookahead`` items ahead
    in a background thread (decoding and features overlap the network, which releases
    the GIL). Exceptions of ``load`` surface when their item is reached."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    queue = iter(items)
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = deque(pool.submit(load, item) for _, item in zip(range(lookahead), queue))
        while ahead:
            result = ahead.popleft().result()
            item = next(queue, _END)
            if item is not _END:
                ahead.append(pool.submit(load, item))
            yield result, not ahead


_END = object()
