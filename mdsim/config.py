"""Settings as dataclasses, with TOML in and plain dicts out.

:class:`FeatureConfig` fixes the analysis grid shared by every feature; it is
written once at the root of a features store and checked when a store is
reopened or read for training. Model settings live in
:mod:`mdsim.model.config`, training settings in :mod:`mdsim.training.config`.
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from mdsim.errors import InputError


#: The features of one STFT (the default store).
STFT_FEATURES = ("mel", "cens", "tempogram")
#: The constant-Q input of the deep manifold (a store of its own grid).
CQT_FEATURES = ("cqt",)


@dataclass(frozen=True)
class FeatureConfig:
    """The analysis grid: one STFT from which mel, CENS and tempogram derive.

    Attributes
    ----------
    sample_rate : int
        Hz; every signal is resampled to it.
    n_fft : int
        STFT window in samples (512 = 23 ms at 22 050 Hz), Hann, centred.
    hop_length : int
        STFT hop in samples (256 = 11.6 ms, 50 % overlap).
    n_mels : int
        Mel bands of the log-mel spectrogram, ``log10(1 + 10 * S)``.
    n_chroma : int
        Chroma bins of the CENS chromagram.
    tuning : float
        Tuning deviation in fractions of a chroma bin, or ``None`` to estimate it
        per track (costs about as much as the rest of the extractor together).
    cens_window : int
        Length in frames of the Hann window that smooths CENS along time.
    tempogram_win_length : int
        Autocorrelation lags of the tempogram (384 frames = 4.5 s).
    cyclic_tempogram : bool
        Fold the tempogram into tempo octaves (documented option, off by default).
    segment_frames : int
        Frames per 3 s segment (259 at the default grid).
    dtype : str
        ``"float16"`` (default) or ``"float32"``: how matrices are stored.
    chroma_n_fft : int or None
        Window of a second STFT (same hop, same frames) from which the chroma, hence
        CENS, is computed; ``None`` (default, the stores of earlier versions): the
        one ``n_fft`` STFT. At 512 samples (43 Hz bins) pitch classes below about
        1 kHz, where harmony lives, are not resolved: a key profile of the mean CENS
        finds the key of 23 % of held-out synthetic tracks, against 68 % with 4096
        (docs/augmentation.md, "Key and tempo in the network").
    features : tuple of str
        Which features the store holds: :data:`STFT_FEATURES` (mel, CENS and
        tempogram from one STFT; the default) or :data:`CQT_FEATURES` (the
        deep-manifold input; see :meth:`constant_q`).
    cqt_fmin, cqt_bins_per_octave, cqt_n_bins : float, int, int
        Constant-Q grid: lowest bin centre in Hz, bins per octave, bins
        (27.5 Hz, 24, 192: eight octaves at quarter tones).
    cqt_log_scale : float
        ``C`` of the compression ``log(C * |X| + 1)`` (natural log; 50).
        The CQT's frame grid is ``sample_rate`` and ``hop_length`` above.
    """

    sample_rate: int = 22050
    n_fft: int = 512
    hop_length: int = 256
    n_mels: int = 128
    n_chroma: int = 12
    tuning: float | None = 0.0
    cens_window: int = 41
    tempogram_win_length: int = 384
    cyclic_tempogram: bool = False
    segment_frames: int = 259
    dtype: str = "float16"
    chroma_n_fft: int | None = None
    features: tuple = ("mel", "cens", "tempogram")
    cqt_fmin: float = 27.5
    cqt_bins_per_octave: int = 24
    cqt_n_bins: int = 192
    cqt_log_scale: float = 50.0

    def __post_init__(self):
        if self.dtype not in ("float16", "float32"):
            raise InputError(f"feature dtype {self.dtype!r} is not supported (use float16 or float32)")
        features = (self.features,) if isinstance(self.features, str) else tuple(self.features)
        object.__setattr__(self, "features", features)  # a JSON list reads back as the same tuple
        if features not in (STFT_FEATURES, CQT_FEATURES):
            raise InputError(f"feature set {', '.join(features) or 'none'} is not one mdsim computes "
                             f"(valid: {', '.join(STFT_FEATURES)}; or {', '.join(CQT_FEATURES)})")
        for name in ("cqt_fmin", "cqt_bins_per_octave", "cqt_n_bins", "cqt_log_scale"):
            if not getattr(self, name) > 0:
                raise InputError(f"feature setting {name} must be positive, got {getattr(self, name)}")
        for name in ("sample_rate", "n_fft", "hop_length", "n_mels", "n_chroma",
                     "tempogram_win_length", "segment_frames"):
            if getattr(self, name) <= 0:
                raise InputError(f"feature setting {name} must be positive, got {getattr(self, name)}")
        if self.chroma_n_fft is not None and (self.chroma_n_fft < self.n_fft or self.chroma_n_fft % 2):
            raise InputError(f"chroma_n_fft {self.chroma_n_fft} must be an even number of samples >= n_fft "
                             f"({self.n_fft}), or unset")

    @classmethod
    def constant_q(cls, **settings) -> "FeatureConfig":
        """The deep-manifold input (Humphrey): a log constant-Q transform at 16 kHz,
        20 frames a second (hop 800), 24 bins per octave over 8 octaves from 27.5 Hz.

        >>> c = FeatureConfig.constant_q()
        >>> c.features, c.sample_rate, c.sample_rate / c.hop_length, c.n_bins
        (('cqt',), 16000, 20.0, {'cqt': 192})
        """
        # segment_frames: the manifold network's input window (0.4 s; docs/manifold.md)
        return cls(**{"features": CQT_FEATURES, "sample_rate": 16000, "hop_length": 800, "segment_frames": 8,
                      **settings})

    @property
    def n_bins(self) -> dict:
        """Bins per feature the store holds: ``{"mel": 128, "cens": 12, "tempogram": 384}``
        (or ``{"cqt": 192}``)."""
        if self.features == CQT_FEATURES:
            return {"cqt": self.cqt_n_bins}
        return {"mel": self.n_mels, "cens": self.n_chroma, "tempogram": self.tempogram_win_length}

    def analysis_dict(self) -> dict:
        """The settings that change feature values (``dtype`` excluded)."""
        d = dataclasses.asdict(self)
        d.pop("dtype")
        return d

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "features": list(self.features)}

    @classmethod
    def from_dict(cls, data: dict) -> "FeatureConfig":
        return cls(**_known_fields(cls, data, "feature settings"))

    def differences(self, other: "FeatureConfig", *, names=("this", "other"),
                    ignore=("dtype",)) -> list[str]:
        """The settings that differ, one ``"name: A (this) vs B (other)"`` string each.

        ``dtype`` (storage precision) is ignored by default: it does not change
        what a model is fed beyond float16 rounding.

        >>> FeatureConfig().differences(FeatureConfig(tuning=None, cyclic_tempogram=True),
        ...                             names=("model", "store"))
        ['tuning: 0.0 (model) vs None (store)', 'cyclic_tempogram: False (model) vs True (store)']
        """
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a[k]!r} ({names[0]}) vs {b[k]!r} ({names[1]})" for k in a
                if k not in ignore and a[k] != b[k]]


def _known_fields(cls, data: dict, what: str) -> dict:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise InputError(f"unknown {what}: {', '.join(unknown)} (known: {', '.join(sorted(names))})")
    return dict(data)


def to_json(obj) -> str:
    """Serialise a config dataclass (anything with ``to_dict``) as JSON."""
    return json.dumps(obj.to_dict(), sort_keys=True)


def read_toml(path) -> dict:
    """Read a TOML file, with an error that names the file and the problem."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise InputError(f"{path}: no such config file") from None
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"{path}: not valid TOML ({e})") from None


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):  # inline table, e.g. one Inception block's filter counts
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def write_toml(path, sections: dict) -> None:
    """Write ``{section: {key: value}}`` as TOML (``None`` values are left out).

    Values may be booleans, numbers, strings, lists of those (dicts inside a
    list become inline tables), or nested dicts (written as sub-tables
    ``[section.key]``).

    A config dataclass round-trips through TOML with ``to_dict`` and ``from_dict``:

    >>> import pathlib, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(folder.name) / "features.toml"
    >>> write_toml(path, {"features": FeatureConfig(n_mels=96).to_dict()})
    >>> print(path.read_text())                       # doctest: +ELLIPSIS
    [features]
    sample_rate = 22050
    n_fft = 512
    hop_length = 256
    n_mels = 96
    ...
    >>> FeatureConfig.from_dict(read_toml(path)["features"]) == FeatureConfig(n_mels=96)
    True
    >>> folder.cleanup()
    """
    lines: list[str] = []

    def emit(name: str, table: dict) -> None:
        lines.append(f"[{name}]")
        nested = {}
        for key, value in table.items():
            if value is None:
                continue
            if isinstance(value, dict):
                nested[key] = value
            else:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
        for key, value in nested.items():
            emit(f"{name}.{key}", value)

    for name, table in sections.items():
        emit(name, table)
    Path(path).write_text("\n".join(lines))
