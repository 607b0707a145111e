"""Input z-scoring inside the model, and fitting its statistics on training data.

Each input passes a :class:`Standardize` layer first: per bin (mel band,
chroma bin, tempogram lag) ``(x - mean) / std``. The statistics are model
weights, so a saved ``.keras`` file carries them and inference needs no side
file. They start as the identity (mean 0, std 1) until
:func:`fit_normalization` sets them from training batches.
"""

from __future__ import annotations

from collections.abc import Mapping

import keras
import numpy as np
from keras import ops

from mdsim.errors import InputError

#: Smallest standard deviation used for a bin: a constant bin (tempogram lag 0
#: is always 1) is centred instead of blown up.
MIN_STD = 1e-3


@keras.saving.register_keras_serializable(package="mdsim")
class Standardize(keras.layers.Layer):
    """Per-bin z-score of a ``(batch, n_bins, n_frames)`` input.

    Weights (non-trainable): ``mean`` and ``std`` of shape ``(n_bins,)``, and
    ``count``, the number of frames they were fitted on (0: not fitted).
    """

    def __init__(self, n_bins: int, **kwargs):
        super().__init__(**kwargs)
        self.n_bins = int(n_bins)
        self.mean = self.add_weight(shape=(self.n_bins,), initializer="zeros",
                                    trainable=False, name="mean")
        self.std = self.add_weight(shape=(self.n_bins,), initializer="ones",
                                   trainable=False, name="std")
        self.count = self.add_weight(shape=(), initializer="zeros",
                                     trainable=False, name="count")

    def call(self, x):
        mean = ops.cast(ops.expand_dims(self.mean, -1), x.dtype)
        std = ops.cast(ops.expand_dims(self.std, -1), x.dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "n_bins": self.n_bins}


class _RunningMoments:
    """Per-bin count, mean and sum of squared deviations in float64 (Chan et al. merge)."""

    def __init__(self, n_bins: int):
        self.count = 0
        self.mean = np.zeros(n_bins)
        self.m2 = np.zeros(n_bins)

    def update(self, batch: np.ndarray) -> None:
        # (B, n_bins, T) -> (n_bins, B * T)
        values = np.moveaxis(np.asarray(batch, dtype=np.float64), 1, 0).reshape(batch.shape[1], -1)
        n = values.shape[1]
        if n == 0:
            return
        mean = values.mean(axis=1)
        m2 = ((values - mean[:, None]) ** 2).sum(axis=1)
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta**2 * (self.count * n / total)
        self.count = total

    @property
    def std(self) -> np.ndarray:
        return np.maximum(np.sqrt(self.m2 / max(self.count, 1)), MIN_STD)


def standardize_layers(model: keras.Model) -> dict[str, Standardize]:
    """``{input name: its Standardize layer}`` of an mdsim model."""
    out = {}
    for layer in model.layers:
        if isinstance(layer, Standardize):
            out[layer.name.removesuffix("_standardize")] = layer
    return out


def fit_normalization(model: keras.Model, batches) -> dict[str, dict[str, np.ndarray]]:
    """Fit the per-bin mean and std of the model's inputs and store them in the model.

    Parameters
    ----------
    model : keras.Model
        Built by :func:`mdsim.model.build_model`.
    batches : ndarray, dict of ndarrays, or an iterable of either
        Features shaped ``(B, n_bins, n_frames)`` (float32, no channel axis).
        A bare array is the mel input. In a dict, every key the model reads
        is fitted and other keys are ignored (a baseline model ignores
        ``"cens"`` and ``"tempogram"``). Statistics pool all frames of all
        batches; an iterator is read once.

    Returns
    -------
    dict
        ``{input: {"mean": (n_bins,), "std": (n_bins,), "count": frames}}``
        for every input fitted; ``{}`` for a model that standardises no input (the
        tonic key head alone, ``key_head="tonic"`` with key the only dimension, reads
        the raw chroma).

    Raises
    ------
    InputError
        When no batch holds an input of the model, or a batch has the wrong
        number of bins.
    """
    layers = standardize_layers(model)
    if not layers:
        return {}
    moments: dict[str, _RunningMoments] = {}
    if isinstance(batches, (np.ndarray, Mapping)):
        batches = [batches]
    for batch in batches:
        if not isinstance(batch, Mapping):
            batch = {"mel": batch}
        for name, values in batch.items():
            if name not in layers:
                continue
            values = np.asarray(values)
            layer = layers[name]
            if values.ndim != 3 or values.shape[1] != layer.n_bins:
                raise InputError(
                    f"{name} batch has shape {values.shape}; the model expects "
                    f"(batch, {layer.n_bins}, frames)")
            moments.setdefault(name, _RunningMoments(layer.n_bins)).update(values)
    fitted = {name: m for name, m in moments.items() if m.count > 0}
    if not fitted:
        raise InputError(
            f"no frames to fit normalisation on; batches must hold "
            f"{' or '.join(repr(n) for n in layers)} features shaped (batch, bins, frames)")
    out = {}
    for name, m in fitted.items():
        layer = layers[name]
        layer.mean.assign(m.mean.astype(np.float32))
        layer.std.assign(m.std.astype(np.float32))
        layer.count.assign(np.float32(m.count))
        out[name] = {"mean": m.mean.astype(np.float32), "std": m.std.astype(np.float32),
                     "count": m.count}
    return out
