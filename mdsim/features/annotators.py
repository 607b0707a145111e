"""Tempo and key of one track by a named annotator: ``mdsim prep --annotate``.

==========  ==============================================================
``madmom``  madmom's beat-RNN tempo and CNN key (:mod:`mdsim.features.annotate`)
            on the source decoded at 44 100 Hz; slow (about 2x real time on
            one core), the default where accuracy matters
``fast``    tempo from the onset envelope's tempogram, key from a chromagram
            of long frames and key profiles (:mod:`mdsim.features.estimate`);
            no madmom, a small fraction of the feature cost
``none``    no estimation: tempo and key are unknown unless the manifest
            gives them
==========  ==============================================================

A value given in the manifest always wins and is never estimated. madmom is
imported only when the ``madmom`` annotator runs.
"""

from __future__ import annotations

import math

import numpy as np

from mdsim.config import FeatureConfig
from mdsim.errors import InputError
from mdsim.labels import key_name

#: Annotator names, the default first.
ANNOTATE_METHODS = ("madmom", "fast", "none")


def check_method(method: str) -> str:
    """``method`` if it names an annotator, else an :class:`InputError` listing them."""
    if method not in ANNOTATE_METHODS:
        raise InputError(f"unknown annotator {method!r} (valid: {', '.join(ANNOTATE_METHODS)})")
    return method


def onset_of(features: dict, y, *, sr: int, config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """The onset envelope ``float32 (n_frames,)``: ``features["onset"]`` when present,
    else computed from ``y`` on ``config``'s frame grid (one more STFT)."""
    if features.get("onset") is not None:  # (n_frames,) or extract_features' (1, n_frames)
        return np.asarray(features["onset"], dtype=np.float32).reshape(-1)
    from mdsim.features.spectral import mel_power, onset_envelope, power_stft

    S = power_stft(y, n_fft=config.n_fft, hop_length=config.hop_length)
    M = mel_power(S, sr=sr, n_fft=config.n_fft, n_mels=config.n_mels)
    return onset_envelope(M, sr=sr, n_fft=config.n_fft, hop_length=config.hop_length)


def _fast(y, sr: int, features: dict, *, tempo: bool, key: bool) -> dict:
    from mdsim.features.estimate import key_from_signal, tempo_from_onset

    hop = FeatureConfig().hop_length
    out: dict = {}
    if tempo:
        out["tempo"], out["tempo_strength"] = tempo_from_onset(onset_of(features, y, sr=sr), sr=sr,
                                                               hop_length=hop)
    if key:
        out["key"], out["key_probability"] = key_from_signal(y, sr=sr)
    return out


def _madmom(y, sr: int, path, *, tempo_mode: str, tempo: bool, key: bool) -> dict:
    from mdsim.audio import load_audio
    from mdsim.features.annotate import MADMOM_SAMPLE_RATE, get_annotator  # madmom itself loads in there

    annotator = get_annotator(tempo_mode)
    if path is not None:  # the source's full band, not our 22 050 Hz signal upsampled
        y, sr = load_audio(path, sr=MADMOM_SAMPLE_RATE), MADMOM_SAMPLE_RATE
    return annotator(y, sr, tempo=tempo, key=key)


def annotate_track(labels: dict, *, y, sr: int, features: dict, path, method: str = "madmom",
                   tempo_mode: str = "full") -> dict:
    """Tempo and key of one track, as the store's attributes.

    Parameters
    ----------
    labels : dict
        The manifest's labels of the track; ``labels["tempo"]`` (BPM) or
        ``labels["key"]`` (key index) ``None`` (or absent) means estimate it.
    y : np.ndarray [shape=(n,), dtype=float32]
        The mono signal ``prep`` decoded, at ``sr``.
    sr : int
        Its sample rate (22 050 Hz).
    features : dict
        What :func:`mdsim.features.spectral.extract_features` returned: the
        ``fast`` annotator reads ``"onset"`` (``float32 (n_frames,)``, the onset
        envelope; computed from ``y`` when absent). Its key comes from ``y``.
    path : str or Path or None
        The source file: ``madmom`` decodes it at 44 100 Hz; ``None`` hands
        madmom ``y`` resampled to 44 100 Hz instead (an empty top octave when
        ``sr`` is 22 050 Hz).
    method : {"madmom", "fast", "none"}
    tempo_mode : {"full", "fast"}
        madmom's beat ensemble (8 or 2 networks); ignored by other methods.

    Returns
    -------
    dict
        Exactly ``tempo`` (BPM, NaN: unknown), ``tempo_source`` (``"manifest"``,
        ``"madmom-full"``, ``"madmom-fast"``, ``"fast"`` or ``"none"``),
        ``tempo_strength`` (madmom: the tempo's relative strength among its
        candidates; fast: the time-averaged normalised autocorrelation at the
        tempo's lag; NaN otherwise), ``key`` (name, ``""``: unknown),
        ``key_index`` (``-1``: unknown), ``key_source`` (``"manifest"``,
        ``"madmom"``, ``"fast"`` or ``"none"``) and ``key_probability``
        (madmom: the network's probability; fast: the Pearson correlation
        with the key profile, -1..1; NaN otherwise). A source other than
        ``"manifest"`` or ``"none"`` with a NaN tempo or key ``""`` means
        the estimator ran and found nothing usable (e.g. audio under 2 s).

    Raises
    ------
    InputError
        For an unknown ``method`` (or, with ``madmom``, ``tempo_mode``).
    """
    check_method(method)
    if method == "madmom":
        from mdsim.features.annotate import TEMPO_MODES  # the module, not madmom

        if tempo_mode not in TEMPO_MODES:
            raise InputError(f"unknown tempo mode {tempo_mode!r} (valid: {', '.join(TEMPO_MODES)})")
    tempo, key = labels.get("tempo"), labels.get("key")
    need_tempo, need_key = tempo is None, key is None
    found: dict = {}
    if method != "none" and (need_tempo or need_key):
        if method == "fast":
            found = _fast(y, sr, features, tempo=need_tempo, key=need_key)
        else:
            found = _madmom(y, sr, path, tempo_mode=tempo_mode, tempo=need_tempo, key=need_key)
    estimator = {"madmom": f"madmom-{tempo_mode}", "fast": "fast", "none": "none"}[method]
    if need_tempo:
        tempo = found.get("tempo")
    if need_key:
        key = found.get("key")
    tempo = float(tempo) if tempo is not None and math.isfinite(tempo) else float("nan")
    return {
        "tempo": tempo,
        "tempo_source": "manifest" if not need_tempo else estimator,
        "tempo_strength": float(found.get("tempo_strength", np.nan)),
        "key": key_name(key) or "",
        "key_index": -1 if key is None else int(key),
        "key_source": "manifest" if not need_key else estimator.split("-")[0],
        "key_probability": float(found.get("key_probability", np.nan)),
    }
