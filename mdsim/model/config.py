"""The model's settings as a plain dataclass (no Keras import).

:class:`ModelConfig` says everything :func:`mdsim.model.build_model` needs:
which backbone, the dimensions and their subspace sizes, the filter counts
(:class:`BlockFilters`, one per Inception block) and the input shapes. It
round-trips through plain JSON types (:meth:`ModelConfig.to_dict`,
:meth:`ModelConfig.from_dict`) and is stored inside every saved model, so the
CLI can read a model's settings without loading TensorFlow
(:func:`mdsim.model.saving.read_model_config`).

The default filter counts and the reasoning behind them are in
``docs/model.md``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, fields

from mdsim.errors import InputError
from mdsim.labels import ALL_DIMENSIONS, DIMENSIONS

#: Version of the saved-model layout, written by the subspace head (:mod:`mdsim.model.head`)
#: and checked by :mod:`mdsim.model.saving`; bump it when an old mdsim could not read a new file.
#: 2: the head also holds the training store's feature settings (``feature_config``).
FORMAT_VERSION = 2
#: Size of one dimension's subspace when the embedding size is not given: the default
#: embedding of the six dimensions is 6 x 64 = 384 (``mdsim train --dims`` of five gives 320).
SUBSPACE_SIZE = 64
#: The Inception networks: ``baseline`` (the mel branch), ``multi_input`` (mel, CENS and
#: tempogram branches), and one branch alone for the key and tempo ablations
#: (docs/key_tempo.md): ``chroma`` (CENS) and ``rhythm`` (tempogram).
BACKBONES = ("baseline", "multi_input", "chroma", "rhythm")
#: Heads on the backbone: ``"csn"``, the conditional similarity network's subspaces of
#: the label dimensions; ``"loev"`` and ``"loev++"``, the self-supervised subspaces of
#: ``mdsim pretrain`` (:mod:`mdsim.training.pretrain`, docs/loev.md).
HEADS = ("csn", "loev", "loev++")
#: Subspaces a self-supervised head may have: ``invariant`` (first, always), and one
#: variant subspace per augmentation it keeps: ``pitch`` (pitch-shift), ``tempo``
#: (time-stretch), ``eq`` (equalisation).
SSL_SUBSPACES = ("invariant", "pitch", "tempo", "eq")
DATA_FORMATS = ("channels_last", "channels_first")
#: Inputs each backbone reads, in the order their branches are concatenated.
BACKBONE_INPUTS = {"baseline": ("mel",), "multi_input": ("mel", "cens", "tempogram"), "chroma": ("cens",),
                   "rhythm": ("tempogram",)}
#: Width of the dense layer of each input summary (``ModelConfig.summaries``).
SUMMARY_UNITS = 64
#: How the key subspace is made (``ModelConfig.key_head``): ``"dense"``, a slice of the
#: shared dense layer; ``"tonic"``, a transposition-equivariant tonic posterior.
KEY_HEADS = ("dense", "tonic")
#: Hidden units of the tonic key head's network, shared by the 12 tonics.
TONIC_UNITS = 16
#: How the tempo subspace is made (``ModelConfig.tempo_head``): ``"dense"``, a slice of the
#: shared dense layer; ``"tempogram"``, from the window's mean tempogram alone.
TEMPO_HEADS = ("dense", "tempogram")
#: Hidden units of the tempogram tempo head.
TEMPO_UNITS = 64
#: The log tempo axis (``ModelConfig.tempo_axis = "log"``): this many bins, log-spaced
#: between these lags (4 octaves; 430 to 27 BPM at 22 050 Hz, hop 256).
LOG_TEMPO_BINS = 128
LOG_TEMPO_LAGS = (12.0, 192.0)
#: Every branch ends as a BRANCH_MAP x BRANCH_MAP feature map (Ribecky et al.: 16 x 16).
BRANCH_MAP = 16
#: Time pooling after the first and after the second Inception block of a branch.
BLOCK_TIME_POOL = 2


@dataclass(frozen=True)
class BlockFilters:
    """Filter counts of one Inception block: a naive module, then a dimension-reduction module.

    Naive module (Szegedy et al. 2015, fig. 2a): parallel 1x1, 3x3 and 5x5
    convolutions and a 3x3 max-pooling of the input, concatenated; it outputs
    ``naive_1x1 + naive_3x3 + naive_5x5 + input channels``.

    Dimension-reduction module (fig. 2b): a 1x1 convolution; a 1x1 bottleneck
    then a 3x3; a 1x1 bottleneck then a 5x5; a 3x3 max-pooling then a 1x1
    projection; concatenated. It outputs :attr:`out_channels`.
    """

    naive_1x1: int
    naive_3x3: int
    naive_5x5: int
    reduce_1x1: int
    reduce_3x3_bottleneck: int
    reduce_3x3: int
    reduce_5x5_bottleneck: int
    reduce_5x5: int
    reduce_pool_proj: int

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(f"filter count {f.name}={value!r} must be a positive integer")

    @property
    def out_channels(self) -> int:
        """Channels of the block's output (the reduction module's concatenation)."""
        return self.reduce_1x1 + self.reduce_3x3 + self.reduce_5x5 + self.reduce_pool_proj

    def scaled(self, width: float) -> BlockFilters:
        """Every count times ``width``, rounded, at least 1."""
        return BlockFilters(**{k: scale_filters(v, width) for k, v in asdict(self).items()})


def scale_filters(n: int, width: float) -> int:
    """``n * width`` rounded to an integer, at least 1."""
    return max(1, int(round(n * width)))


# Reasoning and the resulting shapes, parameters and FLOPs: docs/model.md.
# Field order: naive 1x1, 3x3, 5x5; reduce 1x1, 3x3 bottleneck, 3x3, 5x5 bottleneck, 5x5, pool proj.
DEFAULT_STEM_FILTERS = 16
DEFAULT_BRANCH_FILTERS = (
    BlockFilters(8, 16, 8, 16, 16, 24, 8, 8, 16),     # mel map 64 x 64 -> 64 channels
    BlockFilters(16, 32, 8, 24, 24, 40, 8, 16, 16),   # 32 x 32 -> 96
)
DEFAULT_TRUNK_FILTERS = (
    BlockFilters(32, 48, 16, 48, 48, 96, 16, 32, 32),  # 16 x 16 -> 208
    BlockFilters(32, 48, 16, 48, 48, 96, 16, 32, 32),  # 16 x 16 -> 208
    BlockFilters(32, 64, 16, 48, 64, 96, 16, 24, 24),  # 8 x 8 -> 192
    BlockFilters(32, 64, 16, 48, 64, 96, 16, 24, 24),  # 8 x 8 -> 192
)


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines an mdsim network.

    Attributes
    ----------
    backbone : {"multi_input", "baseline"}
        ``"baseline"`` (Lee et al.) reads the mel spectrogram only;
        ``"multi_input"`` (Ribecky et al.) has a branch each for mel, CENS
        and tempogram.
    dimensions : tuple of str
        Subspace names, in embedding order (a subset of
        :data:`mdsim.labels.ALL_DIMENSIONS`: the six labelled ones and ``sound``).
    embedding_size : int
        Size D of the embedding, the sum of the subspace sizes.
    subspace_sizes : tuple of int or None
        One size per dimension; ``None`` splits ``embedding_size`` equally
        (it must then divide evenly).
    width : float
        Multiplier applied to every filter count at build time.
    stem_filters : int
        Filters of each branch's first 3x3 convolution.
    branch_filters : tuple of 2 BlockFilters
        The two Inception blocks of each branch (all branches alike).
    trunk_filters : tuple of 4 BlockFilters
        The four Inception blocks after the branches are concatenated.
    batch_norm : bool
        Batch normalisation between every convolution and its ReLU.
    data_format : {"channels_last", "channels_first"}
        Memory layout of the feature maps. The weights and outputs are the
        same either way; ``"channels_first"`` is a little faster on the
        PyTorch backend, ``"channels_last"`` on TensorFlow (docs/model.md,
        "Speed").
    mel_bins, cens_bins, tempogram_bins : int
        Frequency bins (or lags) of each input; inputs whose bin count is
        not a multiple of 16 (CENS: 12) are zero-padded up to the next one.
    n_frames : int
        Frames per segment (3 s = 259 at 22 050 Hz, hop 256).
    tempo_axis : {"lag", "log"}
        ``"lag"``: the tempogram branch reads the lags as they are (the paper).
        ``"log"``: the standardised tempogram is first resampled onto
        :data:`LOG_TEMPO_BINS` log-spaced lags (:data:`LOG_TEMPO_LAGS`, 32 per
        octave), so that a tempo change is a shift along the axis and the
        musical range is not pooled into two or three cells (docs/augmentation.md).
    chroma_padding : {"zero", "circular"}
        How CENS is padded from 12 to 16 bins: zeros (the paper), or the chroma
        circle continued (B, A# before C; C, C# after B), so that every pitch
        class has the same neighbours and a transposition is a shift.
    summaries : tuple of str
        Inputs whose whole-window statistics also reach the representation
        directly: the standardised input averaged over time (``cens``: 12
        numbers, ``tempogram``: 384), through a dense layer of
        :data:`SUMMARY_UNITS` with ReLU, concatenated with the trunk's pooled
        map before ``head_dense``. Empty (the paper's network) by default. The
        trunk pools the CENS axis 2:1, which merges neighbouring pitch classes,
        and a key is told from its neighbours by one semitone; the summary of
        ``cens`` keeps them apart (docs/key_tempo.md).
    key_profiles : int
        With ``cens`` in ``summaries``: the number K of learned pitch-class
        profiles (12 weights each) correlated with the window's mean chroma at
        each of the 12 rotations (K x 12 numbers, a learned generalisation of
        the Krumhansl-Kessler key profiles), read by the CENS summary's dense
        layer beside the mean z-scores. One profile serves every key, so it is
        learned from the tracks of all keys at once. 0 (default): none.
    key_head : {"dense", "tonic"}
        How the ``key`` subspace is made. ``"dense"`` (default, the paper): a
        slice of ``head_dense``, like every dimension. ``"tonic"`` (needs
        ``key_profiles`` and the CSN head): from the window's mean chroma alone,
        transposition-equivariant: its own K learned key profiles give, for each
        of the 12 tonics, K correlations; one small network shared by the 12
        tonics (dense :data:`TONIC_UNITS`, ReLU, dense 1) scores each tonic, a
        softmax over the 12 makes a tonic posterior, and a linear map without
        bias and a layer normalisation make the subspace. Every training window
        teaches every tonic; transposing the input rolls the posterior
        (docs/key_tempo.md).
    tempo_head : {"dense", "tempogram"}
        How the ``tempo`` subspace is made. ``"dense"`` (default, the paper): a
        slice of ``head_dense``. ``"tempogram"`` (the CSN head, an input
        ``tempogram``): from the window's mean tempogram (the autocorrelation of
        its onset envelope at every lag) alone, through dense :data:`TEMPO_UNITS`
        with ReLU, dense to the subspace and a layer normalisation. Nothing of the
        mel spectrogram or the chroma reaches it, so a timbre or a production the
        training corpus lacked cannot move it (docs/default_model.md).
    head : {"csn", "loev", "loev++"}
        ``"csn"``: dense to D, layer normalisation, the label dimensions' slices.
        ``"loev"``: the same dense and normalisation make the superspace V (D wide),
        and each subspace is a small projection of V (dense D, ReLU, dense to the
        subspace's size). ``"loev++"``: the last trunk block, the dense and the
        normalisation are built once per subspace (its own latent branch), each
        followed by its projection. The self-supervised heads' ``dimensions`` are
        names of :data:`SSL_SUBSPACES`, ``invariant`` first (docs/loev.md).
    """

    backbone: str = "multi_input"
    dimensions: tuple = DIMENSIONS
    embedding_size: int = SUBSPACE_SIZE * len(DIMENSIONS)
    subspace_sizes: tuple | None = None
    width: float = 1.0
    stem_filters: int = DEFAULT_STEM_FILTERS
    branch_filters: tuple = DEFAULT_BRANCH_FILTERS
    trunk_filters: tuple = DEFAULT_TRUNK_FILTERS
    batch_norm: bool = True
    data_format: str = "channels_last"
    mel_bins: int = 128
    cens_bins: int = 12
    tempogram_bins: int = 384
    n_frames: int = 259
    tempo_axis: str = "lag"
    chroma_padding: str = "zero"
    summaries: tuple = ()
    key_profiles: int = 0
    key_head: str = "dense"
    tempo_head: str = "dense"
    head: str = "csn"

    def __post_init__(self):
        # Accept lists (from JSON / TOML) and store tuples so the config stays hashable.
        object.__setattr__(self, "dimensions", tuple(self.dimensions))
        object.__setattr__(self, "summaries", tuple(self.summaries))
        if self.subspace_sizes is not None:
            object.__setattr__(self, "subspace_sizes", tuple(self.subspace_sizes))
        object.__setattr__(self, "branch_filters", _as_blocks(self.branch_filters, "branch_filters"))
        object.__setattr__(self, "trunk_filters", _as_blocks(self.trunk_filters, "trunk_filters"))
        self._validate()

    def _validate(self):
        if self.backbone not in BACKBONES:
            raise InputError(f"unknown backbone {self.backbone!r} (valid: {', '.join(BACKBONES)})")
        if self.head not in HEADS:
            raise InputError(f"unknown head {self.head!r} (valid: {', '.join(HEADS)})")
        names = ALL_DIMENSIONS if self.head == "csn" else SSL_SUBSPACES
        if not self.dimensions:
            raise InputError(f"no dimension given (valid: {', '.join(names)})")
        for d in self.dimensions:
            if d not in names:
                what = "dimension" if self.head == "csn" else f"subspace of the {self.head} head"
                raise InputError(f"unknown {what} {d!r} (valid: {', '.join(names)})")
        if self.head != "csn" and self.dimensions[0] != SSL_SUBSPACES[0]:
            raise InputError(f"the {self.head} head's first subspace is {SSL_SUBSPACES[0]!r}, "
                             f"got {', '.join(self.dimensions)}")
        if len(set(self.dimensions)) != len(self.dimensions):
            raise InputError(f"dimension listed twice in {', '.join(self.dimensions)}")
        _check_positive_int("embedding_size", self.embedding_size)
        n_dims = len(self.dimensions)
        if self.subspace_sizes is None:
            if self.embedding_size % n_dims:
                raise InputError(
                    f"embedding_size {self.embedding_size} does not split evenly into "
                    f"{n_dims} dimensions; use a multiple of {n_dims} (e.g. "
                    f"{n_dims * (self.embedding_size // n_dims)}) or give subspace_sizes")
        else:
            if len(self.subspace_sizes) != n_dims:
                raise InputError(
                    f"subspace_sizes has {len(self.subspace_sizes)} entries for "
                    f"{n_dims} dimensions ({', '.join(self.dimensions)})")
            for size in self.subspace_sizes:
                _check_positive_int("subspace size", size)
            if sum(self.subspace_sizes) != self.embedding_size:
                raise InputError(
                    f"subspace_sizes {list(self.subspace_sizes)} sum to "
                    f"{sum(self.subspace_sizes)}, not embedding_size {self.embedding_size}")
        if isinstance(self.width, bool) or not isinstance(self.width, (int, float)) or not self.width > 0:
            raise InputError(f"width must be a positive number, got {self.width!r}")
        _check_positive_int("stem_filters", self.stem_filters)
        if len(self.branch_filters) != 2:
            raise InputError(f"branch_filters needs 2 blocks, got {len(self.branch_filters)}")
        if len(self.trunk_filters) != 4:
            raise InputError(f"trunk_filters needs 4 blocks, got {len(self.trunk_filters)}")
        if not isinstance(self.batch_norm, bool):
            raise InputError(f"batch_norm must be true or false, got {self.batch_norm!r}")
        if self.data_format not in DATA_FORMATS:
            raise InputError(f"unknown data_format {self.data_format!r} (valid: {', '.join(DATA_FORMATS)})")
        for name in ("mel_bins", "cens_bins", "tempogram_bins", "n_frames"):
            _check_positive_int(name, getattr(self, name))
        if self.tempo_axis not in ("lag", "log"):
            raise InputError(f"unknown tempo_axis {self.tempo_axis!r} (valid: lag, log)")
        if self.tempo_axis == "log" and self.tempogram_bins <= LOG_TEMPO_LAGS[1]:
            raise InputError(f"tempo_axis 'log' reads lags up to {LOG_TEMPO_LAGS[1]}; the tempogram has "
                             f"{self.tempogram_bins}")
        if self.chroma_padding not in ("zero", "circular"):
            raise InputError(f"unknown chroma_padding {self.chroma_padding!r} (valid: zero, circular)")
        for name in self.inputs:
            pool_plan(self.branch_bins(name), self.n_frames, input_name=name)
        for name in self.summaries:
            if name not in self.inputs:
                raise InputError(f"summary of {name!r}: the {self.backbone} backbone reads "
                                 f"{', '.join(self.inputs)}")
        if len(set(self.summaries)) != len(self.summaries):
            raise InputError(f"summaries {', '.join(self.summaries)} name an input twice")
        if isinstance(self.key_profiles, bool) or not isinstance(self.key_profiles, int) or self.key_profiles < 0:
            raise InputError(f"key_profiles must be a whole number >= 0, got {self.key_profiles!r}")
        if self.key_head not in KEY_HEADS:
            raise InputError(f"unknown key_head {self.key_head!r} (valid: {', '.join(KEY_HEADS)})")
        if self.key_profiles and "cens" not in self.summaries and self.key_head != "tonic":
            raise InputError(f"key_profiles {self.key_profiles} are read by the CENS summary or the tonic key "
                             f"head: add cens to summaries (--summaries cens) or use key_head 'tonic'")
        if self.key_head == "tonic":
            if self.head != "csn" or "key" not in self.dimensions:
                raise InputError("key_head 'tonic' makes the key subspace of the csn head: add key to the dimensions")
            if "cens" not in self.inputs:
                raise InputError(f"key_head 'tonic' reads the chroma; the {self.backbone} backbone reads "
                                 f"{', '.join(self.inputs)}")
            if not self.key_profiles:
                raise InputError("key_head 'tonic' needs key_profiles K >= 1 (--key-profiles 8)")
        if self.tempo_head not in TEMPO_HEADS:
            raise InputError(f"unknown tempo_head {self.tempo_head!r} (valid: {', '.join(TEMPO_HEADS)})")
        if self.tempo_head == "tempogram":
            if self.head != "csn" or "tempo" not in self.dimensions:
                raise InputError("tempo_head 'tempogram' makes the tempo subspace of the csn head: add tempo to the "
                                 "dimensions")
            if "tempogram" not in self.inputs:
                raise InputError(f"tempo_head 'tempogram' reads the tempogram; the {self.backbone} backbone reads "
                                 f"{', '.join(self.inputs)}")

    # ---- derived values -------------------------------------------------------

    @property
    def inputs(self) -> tuple[str, ...]:
        """Names of the model's inputs, in branch order."""
        return BACKBONE_INPUTS[self.backbone]

    def branch_bins(self, name: str) -> int:
        """Bins a branch works on: the input's, or :data:`LOG_TEMPO_BINS` for a log tempo axis."""
        if name == "tempogram" and self.tempo_axis == "log":
            return LOG_TEMPO_BINS
        return self.input_bins[name]

    @property
    def input_bins(self) -> dict[str, int]:
        """Bins of every feature this config knows, by input name."""
        return {"mel": self.mel_bins, "cens": self.cens_bins, "tempogram": self.tempogram_bins}

    @property
    def input_shapes(self) -> dict[str, tuple[int, int]]:
        """``{name: (n_bins, n_frames)}`` for the inputs the model reads (no batch axis)."""
        return {name: (self.input_bins[name], self.n_frames) for name in self.inputs}

    def model_inputs(self, features) -> dict:
        """Exactly the features the model reads, from a mapping that may hold more.

        Pass a model only its own keys: a Keras functional model given a dict
        with extra keys matches inputs by sorted position, not by name (a
        baseline fed ``{"cens", "mel"}`` would read CENS as mel).

        Raises
        ------
        InputError
            When a feature is missing or has the wrong ``(bins, frames)``.
        """
        out = {}
        for name, expected in self.input_shapes.items():
            if name not in features:
                raise InputError(f"the {self.backbone} model needs feature {name!r} "
                                 f"(given: {', '.join(features) or 'none'})")
            value = features[name]
            shape = tuple(getattr(value, "shape", ()))[-2:]
            if len(shape) == 2 and shape != expected:
                raise InputError(f"feature {name!r} has (bins, frames) {shape}, the model expects {expected}")
            out[name] = value
        return out

    @property
    def sizes(self) -> tuple[int, ...]:
        """Subspace size of each dimension, in embedding order."""
        if self.subspace_sizes is not None:
            return self.subspace_sizes
        return (self.embedding_size // len(self.dimensions),) * len(self.dimensions)

    # ---- plain-types round trip ---------------------------------------------

    def to_dict(self) -> dict:
        """The config as JSON-able types (lists, dicts, str, int, float, bool, None)."""
        out = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in ("branch_filters", "trunk_filters"):
                value = [asdict(b) for b in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        """Build a config from :meth:`to_dict` output; missing keys take defaults.

        Raises
        ------
        InputError
            On unknown keys or invalid values.
        """
        if not isinstance(data, dict):
            raise InputError(f"model config must be a mapping, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(
                f"unknown model config key(s) {', '.join(unknown)} (valid: {', '.join(sorted(known))})")
        return cls(**data)

    def replace(self, **changes) -> ModelConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)


def _as_blocks(blocks, what: str) -> tuple[BlockFilters, ...]:
    out = []
    for b in blocks:
        if isinstance(b, BlockFilters):
            out.append(b)
        elif isinstance(b, dict):
            try:
                out.append(BlockFilters(**b))
            except TypeError as exc:
                names = ", ".join(f.name for f in fields(BlockFilters))
                raise InputError(f"{what}: bad block {b!r} ({exc}; keys: {names})") from None
        else:
            raise InputError(f"{what}: a block must be a mapping of filter counts, got {b!r}")
    return tuple(out)


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}")


def channel_axis(data_format: str) -> int:
    """Axis of the channels in a ``(batch, ...)`` feature map."""
    return -1 if data_format == "channels_last" else 1


def padded_bins(n_bins: int) -> int:
    """Bins after zero-padding up to a multiple of :data:`BRANCH_MAP` (CENS: 12 -> 16)."""
    return -(-n_bins // BRANCH_MAP) * BRANCH_MAP


def pool_plan(n_bins: int, n_frames: int, *, input_name: str = "input") -> tuple[tuple[int, int], ...]:
    """Max-pooling sizes ``(freq, time)`` that take one branch to a 16 x 16 map.

    A branch pools three times: after its stem convolution, after its first
    and after its second Inception block. The later two halve what they can
    (time always, frequency while the remaining factor is even); the stem
    takes the rest, so the large inputs shrink before the costly blocks.
    With floor pooling, 259 frames -> 64 -> 32 -> 16.

    Returns
    -------
    tuple of three (int, int)
        Pool sizes for the stem, block 1 and block 2.

    Raises
    ------
    InputError
        When the shape cannot be pooled to exactly 16 x 16.

    Examples
    --------
    >>> pool_plan(128, 259)       # mel: 128 -> 64 -> 32 -> 16 bins, 259 -> 64 -> 32 -> 16 frames
    ((2, 4), (2, 2), (2, 2))
    >>> pool_plan(384, 259)       # tempogram: 384 -> 64 -> 32 -> 16 lags
    ((6, 4), (2, 2), (2, 2))
    >>> padded_bins(12), pool_plan(12, 259)   # CENS: padded to 16 bins, pooled in time only
    (16, ((1, 4), (1, 2), (1, 2)))
    """
    freq = padded_bins(n_bins) // BRANCH_MAP
    freq_pools = []
    for _ in range(2):
        f = 2 if freq % 2 == 0 else 1
        freq_pools.append(f)
        freq //= f
    stem_time = n_frames // (BRANCH_MAP * BLOCK_TIME_POOL * BLOCK_TIME_POOL)
    if stem_time < 1 or n_frames // stem_time // BLOCK_TIME_POOL // BLOCK_TIME_POOL != BRANCH_MAP:
        raise InputError(
            f"{input_name}: {n_frames} frames cannot be max-pooled to {BRANCH_MAP} frames "
            f"(pools k, 2, 2 with floor); use e.g. 256-271 frames (3 s = 259)")
    return ((freq, stem_time), (freq_pools[1], BLOCK_TIME_POOL), (freq_pools[0], BLOCK_TIME_POOL))


def default_feature_config(config: ModelConfig):
    """The feature settings of a model that carries none (saved before format version 2):
    :class:`mdsim.config.FeatureConfig` defaults at the model's input sizes."""
    from mdsim.config import FeatureConfig

    return FeatureConfig(n_mels=config.mel_bins, n_chroma=config.cens_bins,
                         tempogram_win_length=config.tempogram_bins, segment_frames=config.n_frames)


def check_feature_config(config: ModelConfig, feature_config, *, source: str = "the features") -> None:
    """Raise :class:`InputError` when ``feature_config``'s bins or segment length do not
    fit the inputs ``config`` reads (e.g. a store of 96 mel bands for a 128-band model)."""
    bins = feature_config.n_bins
    absent = [name for name in config.inputs if name not in bins]
    if absent:
        raise InputError(f"{source} hold {', '.join(bins)}, not the {', '.join(absent)} this model reads; "
                         "prep a store of mel, CENS and tempogram (the default features)")
    wrong = [f"{name}: {bins[name]} bins in {source}, the model reads {config.input_bins[name]}"
             for name in config.inputs if bins[name] != config.input_bins[name]]
    if feature_config.segment_frames != config.n_frames:
        wrong.append(f"segment: {feature_config.segment_frames} frames in {source}, "
                     f"the model reads {config.n_frames}")
    if wrong:
        raise InputError(f"{source} do not fit this model ({'; '.join(wrong)}); prep a store with matching "
                         "settings or set the model's input sizes to match")
