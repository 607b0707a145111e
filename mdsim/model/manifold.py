"""The deep manifold's networks (Humphrey): a window of a note -> a point in 3-D.

The ``manifold`` backbone, the paper's five layers on a constant-Q window::

    cqt window (B, 192, 8)          log(50|CQT| + 1), 8 frames = 0.4 s at 20 frames/s
     conv1  16 x (5 bins x 3 frames), tanh, max-pool 2 in time    (192, 4, 16)
     conv2  16 x (5 x 3), tanh, max-pool 2 in time                 (192, 2, 16)
     conv3  16 x (5 x 3), tanh                                     (192, 2, 16)
     dense  64, tanh
     dense  3, linear (no saturation: the map may spread as far as the loss asks)

The paper gives the layer types, the pooling, the activations and the 3-D
output; the window length, kernel sizes and widths are ours (stated above and
in ``docs/manifold.md``): a 5-bin kernel spans a major second at quarter-tone
resolution, and 16 filters keep a training step small enough for a CPU.
Convolutions are "same"-padded, so the frequency axis keeps where a partial
sits (pitch) up to the dense layer.

The Inception backbones of :data:`mdsim.model.config.BACKBONES` (``baseline``:
mel; ``multi_input``: mel, CENS, tempogram) with a 3-D head in the paper's
style instead of the subspace head, on a 3 s window of an STFT store::

    {"mel": (B, 128, 259), ...}     Standardize, branches and trunk of mdsim.model.backbones.body
     mean over time, flatten
     dense  64, tanh
     dense  3, linear (no layer normalisation: build_manifold_network says why)

:func:`build_manifold_network` builds either; :func:`build_ternary_model`
wraps it for training on (anchor, positive, negative) windows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mdsim.config import CQT_FEATURES, STFT_FEATURES, FeatureConfig
from mdsim.errors import InputError
from mdsim.model.config import BACKBONE_INPUTS, BACKBONES, ModelConfig

#: The named backbones of the manifold recipe: its own five layers, and the Inception backbones.
MANIFOLD_BACKBONES = ("manifold", *BACKBONES)
#: Features each backbone reads, in the order of its inputs.
MANIFOLD_INPUTS = {"manifold": CQT_FEATURES, **BACKBONE_INPUTS}
#: Window of the ``manifold`` backbone: 8 frames = 0.4 s at 20 frames a second.
MANIFOLD_WINDOW = 8
#: Filter multiplier of the Inception backbones under the 3-D head: a quarter of the
#: subspace model's filters (about 120 000 weights for multi_input, a 3 s window per note).
DEFAULT_WIDTH = 0.25
#: Batch normalisation in the Inception backbones under the 3-D head (off: ManifoldConfig.model_config says why).
INCEPTION_BATCH_NORM = False


@dataclass(frozen=True)
class ManifoldConfig:
    """Settings of the manifold network.

    Attributes
    ----------
    backbone : str
        One of :data:`MANIFOLD_BACKBONES`: ``"manifold"`` (Humphrey's five
        layers on a constant-Q store), or ``"baseline"`` / ``"multi_input"``
        (the Inception backbones with a 3-D head, on an STFT store).
    n_bins : int
        Constant-Q bins of the input (192; ``manifold`` only: the Inception
        backbones take their bins from the store).
    n_frames : int or None
        Frames per input window. ``None``: the backbone's default, 8 (0.4 s)
        for ``manifold``; for the Inception backbones the store's segment
        (``segment_frames``: 259 = 3 s), filled in by :meth:`for_store`.
        Their pooling takes 256 to 271 frames.
    conv_filters : tuple of 3 int
        Filters of the three convolutions (``manifold`` only).
    kernel : tuple of 2 int
        Kernel size (bins, frames) of every convolution (``manifold`` only).
    dense_units : int
        Units of the hidden fully connected layer (every backbone).
    output_dim : int
        Size of the embedding (3: a map to look at).
    width : float or None
        Multiplier of every filter count of the Inception backbones
        (:attr:`mdsim.model.config.ModelConfig.width`); ``None``:
        :data:`DEFAULT_WIDTH` for them. The ``manifold`` backbone takes none.
    """

    backbone: str = "manifold"
    n_bins: int = 192
    n_frames: int | None = None
    conv_filters: tuple = (16, 16, 16)
    kernel: tuple = (5, 3)
    dense_units: int = 64
    output_dim: int = 3
    width: float | None = None

    def __post_init__(self):
        object.__setattr__(self, "conv_filters", tuple(int(f) for f in self.conv_filters))
        object.__setattr__(self, "kernel", tuple(int(k) for k in self.kernel))
        if self.backbone not in MANIFOLD_BACKBONES:
            raise InputError(f"unknown manifold backbone {self.backbone!r} (valid: {', '.join(MANIFOLD_BACKBONES)})")
        if len(self.conv_filters) != 3 or len(self.kernel) != 2:
            raise InputError("the manifold network has 3 convolutions (conv_filters: 3 numbers) and 2-D kernels")
        if self.inception:
            if self.width is None:
                object.__setattr__(self, "width", DEFAULT_WIDTH)
        else:
            if self.width is not None:
                raise InputError(f"width {self.width} scales the filters of the Inception backbones "
                                 f"({', '.join(BACKBONES)}); the manifold backbone takes none: leave it out")
            if self.n_frames is None:
                object.__setattr__(self, "n_frames", MANIFOLD_WINDOW)
        for name in ("n_bins", "dense_units", "output_dim") + (("n_frames",) if self.n_frames is not None else ()):
            if getattr(self, name) < 1:
                raise InputError(f"manifold setting {name} must be positive, got {getattr(self, name)}")
        if min(self.conv_filters + self.kernel) < 1:
            raise InputError(f"filters and kernel sizes must be positive: {self.conv_filters}, {self.kernel}")
        if self.inception:
            self.model_config()  # the width and the window, checked by ModelConfig (pooling: 256-271 frames)
        elif self.n_frames < 4:
            raise InputError(f"a window of {self.n_frames} frames cannot be pooled twice by 2 in time; use 4 or more")

    @property
    def inception(self) -> bool:
        """True for the Inception backbones (``baseline``, ``multi_input``)."""
        return self.backbone in BACKBONES

    @property
    def inputs(self) -> tuple:
        """Names of the features the network reads, in input order (``("cqt",)``, ``("mel", "cens", "tempogram")``)."""
        return MANIFOLD_INPUTS[self.backbone]

    def for_store(self, feature_config: FeatureConfig) -> "ManifoldConfig":
        """This config with the window set: the store's segment when unset (Inception backbones)."""
        if self.n_frames is not None:
            return self
        return dataclasses.replace(self, n_frames=feature_config.segment_frames)

    def model_config(self, feature_config: FeatureConfig | None = None) -> ModelConfig:
        """The :class:`~mdsim.model.config.ModelConfig` of an Inception backbone: this backbone and
        width, the store's bins and this window (unset: the store's segment).

        ``feature_config`` is the store's (default: :class:`mdsim.config.FeatureConfig`'s STFT
        defaults, 128 mel bands, 12 chroma, 384 lags, 259 frames). Batch normalisation is off
        (:data:`INCEPTION_BATCH_NORM`): measured on a 104-note library (``docs/manifold.md``),
        a step without it is 1.5 times faster on a CPU, graph building half as long, and the
        held-out map as good. The head settings of the result (``dimensions``,
        ``embedding_size``) are not used: the 3-D head replaces the subspace head.
        """
        if not self.inception:
            raise InputError(f"the {self.backbone} backbone is not an Inception backbone ({', '.join(BACKBONES)})")
        feature_config = feature_config if feature_config is not None else FeatureConfig()
        if feature_config.features != STFT_FEATURES:
            raise InputError(f"the {self.backbone} backbone reads {', '.join(self.inputs)}, not "
                             f"{', '.join(feature_config.features)}: prep an STFT store "
                             "(`mdsim prep INPUT --out STORE --annotate none`, the default features)")
        bins = feature_config.n_bins
        n_frames = self.n_frames if self.n_frames is not None else feature_config.segment_frames
        return ModelConfig(backbone=self.backbone, width=self.width, batch_norm=INCEPTION_BATCH_NORM,
                           n_frames=n_frames, mel_bins=bins["mel"], cens_bins=bins["cens"],
                           tempogram_bins=bins["tempogram"])

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        return {**d, "conv_filters": list(self.conv_filters), "kernel": list(self.kernel)}

    @classmethod
    def from_dict(cls, data: dict) -> "ManifoldConfig":
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(f"unknown manifold settings: {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        return cls(**data)


def build_manifold_network(config: ManifoldConfig = ManifoldConfig(), *, feature_config: FeatureConfig | None = None):
    """The network of ``config``: a window -> ``(B, output_dim)`` float32.

    ``manifold``: input ``(B, n_bins, n_frames)`` (the constant-Q window, named
    ``"cqt"``); layers ``conv1..3``, ``pool1..2``, ``dense1``, ``embedding``.

    ``baseline`` and ``multi_input``: a dict of ``(B, n_bins, n_frames)`` inputs
    keyed by feature (``mel``; ``mel``, ``cens``, ``tempogram``), shaped by
    ``feature_config`` (the store's; :meth:`ManifoldConfig.model_config`). The
    inputs pass the backbone's :class:`~mdsim.model.normalization.Standardize`
    layers (identity until :func:`~mdsim.model.normalization.fit_normalization`
    fits them), branches and trunk (:func:`mdsim.model.backbones.body`); then the
    paper's head: mean over time and flatten (``head_timepool``,
    ``head_flatten``), ``dense1`` (``dense_units``, tanh) and ``embedding``
    (``output_dim``, linear). There is no layer normalisation at the end, as the
    subspace head has: normalising 3 values to zero mean and unit variance puts
    every point on a circle (the intersection of a sphere and a plane).
    """
    import keras
    from keras import layers

    if config.inception:
        from mdsim.model.backbones import body, pool_time

        model_config = config.model_config(feature_config)
        inputs, x = body(model_config)
        x = pool_time(x, model_config)
        x = layers.Dense(config.dense_units, activation="tanh", name="dense1")(x)
        outputs = layers.Dense(config.output_dim, name="embedding")(x)
        return keras.Model(inputs, outputs, name=f"mdsim_manifold_{config.backbone}")

    inputs = keras.Input((config.n_bins, config.n_frames), name="cqt")
    x = layers.Reshape((config.n_bins, config.n_frames, 1), name="channels")(inputs)
    for i, filters in enumerate(config.conv_filters, start=1):
        x = layers.Conv2D(filters, config.kernel, padding="same", activation="tanh", name=f"conv{i}")(x)
        if i < 3:
            x = layers.MaxPooling2D((1, 2), name=f"pool{i}")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(config.dense_units, activation="tanh", name="dense1")(x)
    outputs = layers.Dense(config.output_dim, name="embedding")(x)
    return keras.Model(inputs, outputs, name=f"mdsim_{config.backbone}")


def network_input(network, windows: dict):
    """What ``network`` takes for ``{feature: (B, n_bins, n_frames)}`` windows: the dict for a
    network of named inputs (the Inception backbones), the one array for the ``manifold`` network."""
    if isinstance(network.input, dict):
        return {name: windows[name] for name in network.input}
    (only,) = windows.values()
    return only


def build_ternary_model(network):
    """``network`` applied to anchor, positive and negative windows with shared weights.

    Inputs ``{"anchor", "positive", "negative"}``, each what the network takes
    (:func:`network_input`): a ``(B, n_bins, n_frames)`` array, or a dict of them
    keyed by feature for a network of named inputs; output ``(B, 3, D)`` stacked
    in that order (what :class:`mdsim.metric.ternary.TernaryLoss` reads).
    """
    import keras
    from keras import layers, ops

    roles = ("anchor", "positive", "negative")
    if isinstance(network.input, dict):
        inputs = {role: {name: keras.Input(tuple(t.shape[1:]), name=f"{role}_{name}")
                         for name, t in network.input.items()} for role in roles}
    else:
        shape = tuple(network.input_shape[1:])
        inputs = {role: keras.Input(shape, name=role) for role in roles}
    z = [network(inputs[role]) for role in roles]
    stacked = layers.Lambda(lambda t: ops.stack(t, axis=1), name="triples")(z)
    return keras.Model(inputs, stacked, name="ternary")
