"""The small manifold backbone (Humphrey): constant-Q window -> a point in 3-D.

::

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

:func:`build_manifold_network` is the registry's ``"manifold"`` backbone
(:data:`MANIFOLD_BACKBONES`); :func:`build_ternary_model` wraps it for training
on (anchor, positive, negative) windows.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mdsim.errors import InputError

#: The named backbones of the manifold recipe (the Inception ones are in mdsim.model.config.BACKBONES).
MANIFOLD_BACKBONES = ("manifold",)


@dataclass(frozen=True)
class ManifoldConfig:
    """Settings of the manifold network.

    Attributes
    ----------
    backbone : str
        ``"manifold"`` (the only one, Humphrey's five layers).
    n_bins : int
        Constant-Q bins of the input (192).
    n_frames : int
        Frames per input window (8 = 0.4 s at 20 frames a second); the store's
        ``segment_frames``.
    conv_filters : tuple of 3 int
        Filters of the three convolutions.
    kernel : tuple of 2 int
        Kernel size (bins, frames) of every convolution.
    dense_units : int
        Units of the hidden fully connected layer.
    output_dim : int
        Size of the embedding (3: a map to look at).
    """

    backbone: str = "manifold"
    n_bins: int = 192
    n_frames: int = 8
    conv_filters: tuple = (16, 16, 16)
    kernel: tuple = (5, 3)
    dense_units: int = 64
    output_dim: int = 3

    def __post_init__(self):
        object.__setattr__(self, "conv_filters", tuple(int(f) for f in self.conv_filters))
        object.__setattr__(self, "kernel", tuple(int(k) for k in self.kernel))
        if self.backbone not in MANIFOLD_BACKBONES:
            raise InputError(f"unknown manifold backbone {self.backbone!r} (valid: {', '.join(MANIFOLD_BACKBONES)})")
        if len(self.conv_filters) != 3 or len(self.kernel) != 2:
            raise InputError("the manifold network has 3 convolutions (conv_filters: 3 numbers) and 2-D kernels")
        for name in ("n_bins", "n_frames", "dense_units", "output_dim"):
            if getattr(self, name) < 1:
                raise InputError(f"manifold setting {name} must be positive, got {getattr(self, name)}")
        if min(self.conv_filters + self.kernel) < 1:
            raise InputError(f"filters and kernel sizes must be positive: {self.conv_filters}, {self.kernel}")
        if self.n_frames < 4:
            raise InputError(f"a window of {self.n_frames} frames cannot be pooled twice by 2 in time; use 4 or more")

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


def build_manifold_network(config: ManifoldConfig = ManifoldConfig()):
    """The five-layer network: ``(B, n_bins, n_frames)`` float32 -> ``(B, output_dim)``.

    Layer names ``conv1..3``, ``pool1..2``, ``dense1``, ``embedding``.
    """
    import keras
    from keras import layers

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


def build_ternary_model(network):
    """``network`` applied to anchor, positive and negative windows with shared weights.

    Inputs ``{"anchor", "positive", "negative"}``, each ``(B, n_bins, n_frames)``;
    output ``(B, 3, D)`` stacked in that order (what :class:`mdsim.metric.ternary.TernaryLoss` reads).
    """
    import keras
    from keras import layers, ops

    shape = tuple(network.input_shape[1:])
    inputs = {role: keras.Input(shape, name=role) for role in ("anchor", "positive", "negative")}
    z = [network(inputs[role]) for role in ("anchor", "positive", "negative")]
    stacked = layers.Lambda(lambda t: ops.stack(t, axis=1), name="triples")(z)
    return keras.Model(inputs, stacked, name="ternary")
