"""Inception modules and blocks, as functions on Keras tensors.

Every backbone builds its network from these helpers; none copies them.
Layer names follow the call's ``name``, so a block is found by prefix:
``mel_block1_naive_3x3_conv`` is the 3x3 convolution of the naive module of
the mel branch's first Inception block. Tensors are
``(batch, freq, time, channels)`` with ``data_format="channels_last"``, or
``(batch, channels, freq, time)`` with ``"channels_first"``.
"""

from __future__ import annotations

from keras import layers

from mdsim.model.config import BlockFilters, channel_axis

#: Momentum of the batch normalisation's moving statistics. Keras' default
#: (0.99) averages over the last ~100 steps: in short runs at a high learning
#: rate the averages trail the weights so far that inference-mode embeddings
#: barely correlate with training-mode ones (measured: r = 0.45 after 160
#: steps at 1e-3; docs/training.md). 0.9, PyTorch's default, follows the last
#: ~10 steps.
BATCH_NORM_MOMENTUM = 0.9


def conv_unit(x, filters: int, kernel: int, *, batch_norm: bool, data_format: str, name: str,
              pool=None):
    """Convolution (``same`` padding), then batch normalisation if asked, then ReLU.

    Layers: ``{name}_conv``, ``{name}_bn``, ``{name}_relu`` (without batch
    normalisation and pooling, the ReLU is the convolution's own activation).

    ``pool``, a ``(freq, time)`` size, max-pools right after the convolution
    (``{name}_pool``). Normalising and rectifying the pooled map is cheaper
    and, since both are monotonic, gives what pooling after the ReLU would at
    inference.
    """
    if not batch_norm and pool is None:
        return layers.Conv2D(filters, kernel, padding="same", activation="relu",
                             data_format=data_format, name=f"{name}_conv")(x)
    # The batch norm's shift makes the convolution's bias redundant, and a scale
    # before a ReLU is absorbed by the next convolution (as in Keras' InceptionV3).
    # Fewer variables also shorten TensorFlow's first-step graph build.
    x = layers.Conv2D(filters, kernel, padding="same", use_bias=not batch_norm,
                      data_format=data_format, name=f"{name}_conv")(x)
    if pool is not None:
        x = layers.MaxPooling2D(pool, data_format=data_format, name=f"{name}_pool")(x)
    if batch_norm:
        x = layers.BatchNormalization(axis=channel_axis(data_format), momentum=BATCH_NORM_MOMENTUM,
                                      scale=False, name=f"{name}_bn")(x)
    return layers.Activation("relu", name=f"{name}_relu")(x)


def naive_module(x, filters: BlockFilters, *, batch_norm: bool, data_format: str, name: str):
    """Naive Inception module: 1x1, 3x3, 5x5 convolutions and a 3x3 max-pool, concatenated.

    Output channels: ``naive_1x1 + naive_3x3 + naive_5x5 + input channels``.
    """
    branches = [
        conv_unit(x, filters.naive_1x1, 1, batch_norm=batch_norm, data_format=data_format,
                  name=f"{name}_1x1"),
        conv_unit(x, filters.naive_3x3, 3, batch_norm=batch_norm, data_format=data_format,
                  name=f"{name}_3x3"),
        conv_unit(x, filters.naive_5x5, 5, batch_norm=batch_norm, data_format=data_format,
                  name=f"{name}_5x5"),
        layers.MaxPooling2D(3, strides=1, padding="same", data_format=data_format, name=f"{name}_pool")(x),
    ]
    return layers.Concatenate(axis=channel_axis(data_format), name=f"{name}_concat")(branches)


def reduction_module(x, filters: BlockFilters, *, batch_norm: bool, data_format: str, name: str):
    """Inception module with dimension reduction: 1x1 bottlenecks before 3x3 and 5x5,
    a 1x1 projection after the 3x3 max-pool.

    Output channels: ``filters.out_channels``.
    """
    b3 = conv_unit(x, filters.reduce_3x3_bottleneck, 1, batch_norm=batch_norm, data_format=data_format,
                   name=f"{name}_3x3_in")
    b5 = conv_unit(x, filters.reduce_5x5_bottleneck, 1, batch_norm=batch_norm, data_format=data_format,
                   name=f"{name}_5x5_in")
    pool = layers.MaxPooling2D(3, strides=1, padding="same", data_format=data_format, name=f"{name}_pool")(x)
    branches = [
        conv_unit(x, filters.reduce_1x1, 1, batch_norm=batch_norm, data_format=data_format,
                  name=f"{name}_1x1"),
        conv_unit(b3, filters.reduce_3x3, 3, batch_norm=batch_norm, data_format=data_format,
                  name=f"{name}_3x3"),
        conv_unit(b5, filters.reduce_5x5, 5, batch_norm=batch_norm, data_format=data_format,
                  name=f"{name}_5x5"),
        conv_unit(pool, filters.reduce_pool_proj, 1, batch_norm=batch_norm, data_format=data_format,
                  name=f"{name}_pool_proj"),
    ]
    return layers.Concatenate(axis=channel_axis(data_format), name=f"{name}_concat")(branches)


def inception_block(x, filters: BlockFilters, *, batch_norm: bool, data_format: str, name: str):
    """One Inception block: a naive module (``{name}_naive_*``), then a
    dimension-reduction module (``{name}_reduce_*``). Keeps the map size."""
    x = naive_module(x, filters, batch_norm=batch_norm, data_format=data_format, name=f"{name}_naive")
    return reduction_module(x, filters, batch_norm=batch_norm, data_format=data_format,
                            name=f"{name}_reduce")
