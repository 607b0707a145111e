"""The two backbones, assembled from the same branch, trunk and head helpers.

::

    baseline (Lee et al.)              multi_input (Ribecky et al.)
    mel                                mel        cens (pad 16)   tempogram
     branch: stem, block1, block2       branch     branch          branch
     16 x 16                            16 x 16    16 x 16         16 x 16
                                        └─────── concat on channels ──┘
     trunk: block3, block4, pool, block5, block6
     head: mean over time, flatten, dense D, layer norm, subspaces

So both paths run six Inception blocks; the baseline is exactly the
multi-input model's mel path. Shapes per stage: ``docs/model.md``.
:func:`body` is everything above the head; the deep manifold puts its 3-D
head on it (:mod:`mdsim.model.manifold`).
"""

from __future__ import annotations

import keras
from keras import layers

from mdsim.model import blocks
from mdsim.model.config import (LOG_TEMPO_BINS, LOG_TEMPO_LAGS, SUMMARY_UNITS, TEMPO_UNITS, TONIC_UNITS,
                                ModelConfig, channel_axis, check_feature_config, padded_bins, pool_plan,
                                scale_filters)
from mdsim.model.head import SubspaceHead
from mdsim.model.normalization import Standardize
from mdsim.model.subspaces import subspace_slices


def prepare_input(inputs, name: str, *, n_bins: int, n_frames: int, data_format: str, config=None,
                  standardized: dict | None = None):
    """``(B, n_bins, n_frames)`` -> z-scored ``(B, bins, n_frames, 1)`` (channels last) or
    ``(B, 1, bins, n_frames)``, padded to a multiple of 16 bins (CENS: 12 -> 16, two bins
    each side: zeros, or the chroma circle with ``chroma_padding = "circular"``); a
    tempogram with ``tempo_axis = "log"`` is resampled onto the log tempo axis first."""
    x = Standardize(n_bins, name=f"{name}_standardize")(inputs)
    if standardized is not None:  # the (B, n_bins, n_frames) z-scores, for a summary
        standardized[name] = x
    if config is not None and name == "tempogram" and config.tempo_axis == "log":
        x = LogLagAxis(n_bins, name="tempogram_log_axis")(x)
        n_bins = config.branch_bins(name)
    pad = padded_bins(n_bins) - n_bins
    circular = config is not None and name == "cens" and config.chroma_padding == "circular"
    if pad and circular:
        x = CircularPad(pad // 2, pad - pad // 2, name=f"{name}_circular_pad")(x)
        n_bins, pad = n_bins + pad, 0
    shape = (n_bins, n_frames, 1) if data_format == "channels_last" else (1, n_bins, n_frames)
    x = layers.Reshape(shape, name=f"{name}_channels")(x)
    if pad:
        x = layers.ZeroPadding2D(((pad // 2, pad - pad // 2), (0, 0)), data_format=data_format,
                                 name=f"{name}_pad")(x)
    return x


@keras.saving.register_keras_serializable(package="mdsim")
class LogLagAxis(layers.Layer):
    """Resample ``(B, lags, T)`` onto :data:`LOG_TEMPO_BINS` log-spaced lags (linear
    interpolation between neighbouring lags): a fixed matrix, no weights."""

    def __init__(self, n_lags: int, **kwargs):
        super().__init__(**kwargs)
        self.n_lags = int(n_lags)
        self._matrix = keras.ops.convert_to_tensor(log_lag_matrix(self.n_lags))

    def call(self, x):
        return keras.ops.einsum("jk,bkt->bjt", keras.ops.cast(self._matrix, x.dtype), x)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], LOG_TEMPO_BINS, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "n_lags": self.n_lags}


def log_lag_matrix(n_lags: int):
    """``(LOG_TEMPO_BINS, n_lags)`` float32 interpolation matrix of :class:`LogLagAxis`."""
    import numpy as np

    lo, hi = LOG_TEMPO_LAGS
    lags = lo * (hi / lo) ** (np.arange(LOG_TEMPO_BINS) / (LOG_TEMPO_BINS - 1))
    k0 = np.floor(lags).astype(int)
    w = lags - k0
    M = np.zeros((LOG_TEMPO_BINS, n_lags), dtype=np.float32)
    M[np.arange(LOG_TEMPO_BINS), k0] = 1.0 - w
    M[np.arange(LOG_TEMPO_BINS), np.minimum(k0 + 1, n_lags - 1)] += w
    return M


@keras.saving.register_keras_serializable(package="mdsim")
class CircularPad(layers.Layer):
    """Pad ``(B, bins, T)`` along the bins with the other end's bins (a circle)."""

    def __init__(self, before: int, after: int, **kwargs):
        super().__init__(**kwargs)
        self.before, self.after = int(before), int(after)

    def call(self, x):
        parts = ([x[:, -self.before:, :]] if self.before else []) + [x] + \
            ([x[:, :self.after, :]] if self.after else [])
        return keras.ops.concatenate(parts, axis=1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1] + self.before + self.after, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "before": self.before, "after": self.after}


@keras.saving.register_keras_serializable(package="mdsim")
class KeyProfiles(layers.Layer):
    """``(B, 12)`` mean chroma -> ``(B, K * 12)``: its correlation with each of K learned
    pitch-class profiles at each of the 12 rotations (``[k, r]``: profile k with its first
    weight on pitch class r). Chroma and profiles are centred and scaled to unit norm, so each
    number is a Pearson correlation, as in the Krumhansl-Kessler key finder; transposing the
    input by s semitones rolls every profile's 12 numbers by s."""

    def __init__(self, n_profiles: int, **kwargs):
        super().__init__(**kwargs)
        self.n_profiles = int(n_profiles)
        # rotation r, position j -> pitch class (j + r) mod 12
        self._index = [[(j + r) % 12 for j in range(12)] for r in range(12)]

    def build(self, input_shape):
        self.profiles = self.add_weight(shape=(self.n_profiles, 12), initializer="glorot_uniform",
                                        name="profiles")

    def call(self, chroma):
        def unit(v):
            v = v - keras.ops.mean(v, axis=-1, keepdims=True)
            return v / (keras.ops.sqrt(keras.ops.sum(v * v, axis=-1, keepdims=True)) + 1e-6)

        rotated = keras.ops.take(unit(chroma), keras.ops.convert_to_tensor(self._index, dtype="int32"), axis=1)
        z = keras.ops.einsum("brj,kj->bkr", rotated, keras.ops.cast(unit(self.profiles), chroma.dtype))
        return keras.ops.reshape(z, (-1, self.n_profiles * 12))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n_profiles * 12)

    def get_config(self):
        return {**super().get_config(), "n_profiles": self.n_profiles}


@keras.saving.register_keras_serializable(package="mdsim")
class Splice(layers.Layer):
    """``(x, y)`` -> ``x`` with ``y``'s columns inserted before column ``position``: a
    subspace made apart (the tonic key head) put in its place in the embedding."""

    def __init__(self, position: int, **kwargs):
        super().__init__(**kwargs)
        self.position = int(position)

    def call(self, inputs):
        x, y = inputs
        return keras.ops.concatenate([x[:, :self.position], y, x[:, self.position:]], axis=-1)

    def compute_output_shape(self, input_shapes):
        (b, n), (_, m) = input_shapes
        return (b, None if n is None or m is None else n + m)

    def get_config(self):
        return {**super().get_config(), "position": self.position}


def tempogram_subspace(tempogram, size: int):
    """The ``tempo_head = "tempogram"`` subspace ``(B, size)`` from the raw tempogram input
    ``(B, n_lags, T)``: its mean over time, dense :data:`~mdsim.model.config.TEMPO_UNITS` with
    ReLU, dense ``size``, layer normalisation (layers ``tempo_*``)."""
    mean = layers.GlobalAveragePooling1D(data_format="channels_first", name="tempo_mean")(tempogram)
    h = layers.Dense(TEMPO_UNITS, activation="relu", name="tempo_hidden")(mean)
    x = layers.Dense(size, name="tempo_embedding")(h)
    return layers.LayerNormalization(epsilon=1e-5, name="tempo_norm")(x)


def chroma_key_profiles(cens, n_profiles: int, prefix: str):
    """:class:`KeyProfiles` correlations ``(B, 12 n_profiles)`` of the raw CENS input ``(B, 12, T)``
    averaged over time (layers ``{prefix}_chroma_mean`` and ``{prefix}_key_profiles``): read by
    the CENS summary (``prefix="cens"``) and by the tonic key head (``"tonic"``), each with its own
    profiles."""
    chroma = layers.GlobalAveragePooling1D(data_format="channels_first", name=f"{prefix}_chroma_mean")(cens)
    return KeyProfiles(n_profiles, name=f"{prefix}_key_profiles")(chroma)


def tonic_subspace(cens, config: ModelConfig, size: int):
    """The ``key_head = "tonic"`` subspace ``(B, size)`` from the raw CENS input ``(B, 12, T)``.

    The window's mean chroma meets K learned key profiles at the 12 rotations
    (:class:`KeyProfiles`, ``(B, 12 tonics, K)``); a network shared by the tonics (dense
    :data:`~mdsim.model.config.TONIC_UNITS` with ReLU, dense 1) scores each tonic, a softmax
    makes the tonic posterior, and a linear map (no bias) and a layer normalisation the
    subspace. Transposing the input rolls the posterior, so one set of weights serves every key.
    """
    k = config.key_profiles
    z = chroma_key_profiles(cens, k, "tonic")
    z = layers.Permute((2, 1), name="tonic_by_rotation")(layers.Reshape((k, 12), name="tonic_profiles_grid")(z))
    h = layers.Dense(TONIC_UNITS, activation="relu", name="tonic_hidden")(z)
    logits = layers.Reshape((12,), name="tonic_logits")(layers.Dense(1, name="tonic_score")(h))
    posterior = layers.Softmax(name="tonic_posterior")(logits)
    x = layers.Dense(size, use_bias=False, name="tonic_embedding")(posterior)
    return layers.LayerNormalization(epsilon=1e-5, name="tonic_norm")(x)


def branch(x, config: ModelConfig, name: str, *, n_bins: int):
    """Stem convolution and two Inception blocks, each followed by max-pooling
    (:func:`~mdsim.model.config.pool_plan`), ending as a 16 x 16 map."""
    stem_pool, pool1, pool2 = pool_plan(n_bins, config.n_frames, input_name=name)
    block1, block2 = (b.scaled(config.width) for b in config.branch_filters)
    # Pooling inside the stem unit normalises and rectifies a map 8x (mel) to
    # 24x (tempogram) smaller: docs/model.md, "Speed".
    x = blocks.conv_unit(x, scale_filters(config.stem_filters, config.width), 3,
                         batch_norm=config.batch_norm, data_format=config.data_format,
                         name=f"{name}_stem", pool=stem_pool)
    x = blocks.inception_block(x, block1, batch_norm=config.batch_norm,
                               data_format=config.data_format, name=f"{name}_block1")
    x = layers.MaxPooling2D(pool1, data_format=config.data_format, name=f"{name}_pool1")(x)
    x = blocks.inception_block(x, block2, batch_norm=config.batch_norm,
                               data_format=config.data_format, name=f"{name}_block2")
    return layers.MaxPooling2D(pool2, data_format=config.data_format, name=f"{name}_pool2")(x)


def trunk(x, config: ModelConfig, *, last_block: bool = True):
    """Inception blocks 3 and 4 on the 16 x 16 map, 2 x 2 max-pooling, blocks 5 and 6 on 8 x 8
    (without block 6 when ``last_block`` is false: the ``loev++`` head builds it per subspace)."""
    for i, filters in enumerate(config.trunk_filters, start=3):
        if i == 5:
            x = layers.MaxPooling2D(2, data_format=config.data_format, name="trunk_pool")(x)
        if i == 6 and not last_block:
            break
        x = _trunk_block(x, config, 6 if i == 6 else i)
    return x


def _trunk_block(x, config: ModelConfig, i: int, prefix: str = ""):
    return blocks.inception_block(x, config.trunk_filters[i - 3].scaled(config.width), batch_norm=config.batch_norm,
                                  data_format=config.data_format, name=f"{prefix}trunk_block{i}")


def pool_time(x, config: ModelConfig, prefix: str = ""):
    """Mean over time, then flatten (frequency x channels): the trunk's map as one vector.

    Only time is averaged: the frequency axis keeps where in the spectrum a
    feature sits, which pitch (key) and register (instrument) depend on.
    ``prefix`` names a ``loev++`` subspace's own copy of these layers. With
    ``config.summaries``, ``x`` is ``(trunk map, summary vector)`` (:func:`body`),
    and the summary is appended to the flattened map.
    """
    x, summary = x if isinstance(x, tuple) else (x, None)
    frames = x.shape[2] if config.data_format == "channels_last" else x.shape[3]
    x = layers.AveragePooling2D((1, frames), data_format=config.data_format, name=f"{prefix}head_timepool")(x)
    # Flatten in channels-last order whatever the layout, so the dense weights
    # mean the same in both.
    x = layers.Flatten(data_format=config.data_format, name=f"{prefix}head_flatten")(x)
    if summary is not None:
        x = layers.Concatenate(name=f"{prefix}head_summaries")([x, summary])
    return x


def summaries(standardized: dict, config: ModelConfig, inputs: dict | None = None):
    """The ``config.summaries`` inputs' z-scores averaged over time, each through a dense layer
    of :data:`~mdsim.model.config.SUMMARY_UNITS` with ReLU, concatenated: ``(B, 64 k)``. With
    ``config.key_profiles``, the CENS summary's dense layer also reads the :class:`KeyProfiles`
    correlations of the raw mean chroma (``inputs["cens"]``, before standardisation, which
    would weigh the pitch classes unequally and break the rotation)."""
    parts = []
    for name in config.summaries:
        mean = layers.GlobalAveragePooling1D(data_format="channels_first", name=f"{name}_summary_mean")(
            standardized[name])
        if name == "cens" and config.key_profiles:
            profiles = chroma_key_profiles(inputs["cens"], config.key_profiles, "cens")
            mean = layers.Concatenate(name="cens_summary_concat")([mean, profiles])
        parts.append(layers.Dense(SUMMARY_UNITS, activation="relu", name=f"{name}_summary_dense")(mean))
    return parts[0] if len(parts) == 1 else layers.Concatenate(name="summary_concat")(parts)


def representation(x, config: ModelConfig, prefix: str = "", units: int | None = None):
    """:func:`pool_time`, dense to D (or ``units``), layer normalisation (``prefix``: a ``loev++``
    subspace's copy)."""
    units = config.embedding_size if units is None else units
    x = layers.Dense(units, name=f"{prefix}head_dense")(pool_time(x, config, prefix))
    # Keras' default epsilon (1e-3) is large next to the variance of an untrained
    # dense output and would shrink it; 1e-5 is PyTorch's and Ba et al.'s scale.
    return layers.LayerNormalization(epsilon=1e-5, name=f"{prefix}head_norm")(x)


def head(x, config: ModelConfig, *, feature_config: dict | None = None, inputs: dict | None = None):
    """The embedding from the trunk's map: :func:`representation`, then the subspace head.

    ``"csn"``: the representation is the embedding, cut into the dimensions' slices; with
    ``config.key_head == "tonic"`` the key slice is :func:`tonic_subspace` of
    ``inputs["cens"]`` instead, and the representation holds the other dimensions.
    ``"loev"``: the representation is the superspace V, and each subspace a
    projection of it. ``"loev++"``: the trunk's last block and the representation
    are built per subspace (the invariant one keeps the plain layer names, so a
    CSN initialised from it finds its weights), each followed by its projection.
    """
    apart = {}  # subspaces made apart from the shared representation, by where they start
    if config.head == "csn" and config.key_head == "tonic":
        key = subspace_slices(config)["key"]
        apart[key.start] = ("tonic", tonic_subspace(inputs["cens"], config, key.stop - key.start))
    if config.head == "csn" and config.tempo_head == "tempogram":
        tempo = subspace_slices(config)["tempo"]
        apart[tempo.start] = ("tempo", tempogram_subspace(inputs["tempogram"], tempo.stop - tempo.start))
    if apart:
        rest = config.embedding_size - sum(int(v.shape[-1]) for _, v in apart.values())
        x = representation(x, config, units=rest) if rest else None
        # in order of position, so that every column before the next one's start is in place
        for start, (name, sub) in sorted(apart.items()):
            x = sub if x is None else Splice(start, name=f"{name}_splice")([x, sub])
    elif config.head == "csn":
        x = representation(x, config)
    else:
        superspace = representation(x, config) if config.head == "loev" else None
        parts = []
        for name, size in zip(config.dimensions, config.sizes):
            if superspace is not None:
                shared = superspace
            else:
                prefix = "" if name == "invariant" else f"{name}_"
                trunk_map, summary = x if isinstance(x, tuple) else (x, None)
                block = _trunk_block(trunk_map, config, 6, prefix)
                shared = representation(block if summary is None else (block, summary), config, prefix)
            h = layers.Dense(config.embedding_size, activation="relu", name=f"{name}_projection_hidden")(shared)
            parts.append(layers.Dense(size, name=f"{name}_projection")(h))
        x = parts[0] if len(parts) == 1 else layers.Concatenate(name="subspace_concat")(parts)
    return SubspaceHead(config.to_dict(), feature_config=feature_config)(x)


def build_model(config: ModelConfig | None = None, *, feature_config=None) -> keras.Model:
    """Build the backbone ``config`` describes (default: 6-dimension, 384-d multi-input).

    The model takes a dict of float32 features without a channel axis,
    ``{"mel": (B, 128, 259), "cens": (B, 12, 259), "tempogram": (B, 384, 259)}``
    (the baseline reads ``"mel"`` only; pass exactly the keys in
    ``config.inputs``, e.g. via :meth:`ModelConfig.model_inputs`), and returns
    the layer-normalised embedding ``(B, embedding_size)``.

    ``feature_config`` (a :class:`mdsim.config.FeatureConfig`, e.g. the training
    store's) is saved with the model, so that :func:`mdsim.load_model` embeds new
    audio with exactly those features; it must agree with ``config``'s input shapes.
    """
    config = config if config is not None else ModelConfig()
    if feature_config is not None:
        check_feature_config(config, feature_config)
        feature_config = feature_config.to_dict()
    inputs, x = body(config)
    return keras.Model(inputs, head(x, config, feature_config=feature_config, inputs=inputs),
                       name=f"mdsim_{config.backbone}")


def body(config: ModelConfig) -> tuple[dict, object]:
    """Everything before the head: ``(inputs, trunk output)``.

    ``inputs`` are the Keras inputs ``{name: (B, n_bins, n_frames)}`` of
    ``config.inputs``; each passes :func:`prepare_input` and its
    :func:`branch`, the branches are concatenated on channels (multi-input)
    and run through the :func:`trunk`, ending as an 8 x 8 map. The subspace
    head (:func:`head`) and the manifold's 3-D head
    (:func:`mdsim.model.manifold.build_manifold_network`) both start here.
    """
    inputs, maps, standardized = {}, [], {}
    for name, (n_bins, n_frames) in config.input_shapes.items():
        inputs[name] = keras.Input((n_bins, n_frames), name=name)
        x = prepare_input(inputs[name], name, n_bins=n_bins, n_frames=n_frames,
                          data_format=config.data_format, config=config, standardized=standardized)
        maps.append(branch(x, config, name, n_bins=config.branch_bins(name)))
    if len(maps) == 1:
        x = maps[0]
    else:
        x = layers.Concatenate(axis=channel_axis(config.data_format), name="trunk_concat")(maps)
    # the loev++ head builds the last trunk block once per subspace
    x = trunk(x, config, last_block=config.head != "loev++")
    return inputs, ((x, summaries(standardized, config, inputs)) if config.summaries else x)
