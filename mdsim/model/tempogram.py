"""The tempogram computed in the model's step, from the onset envelope a compact store keeps.

:func:`onset_tempogram` (the layer :class:`OnsetTempogram`) is
:func:`mdsim.features.spectral.tempogram_frames` in ``keras.ops`` (TensorFlow, JAX and
PyTorch): the same Hann window, lag axis, max-normalisation and
octave folding, on the padded envelope slice the loader reads
(:meth:`mdsim.features.store.FeatureStore.read_envelope`, whose ramps at the track's
edges are :func:`mdsim.features.spectral.padded_envelope`'s). :class:`EnvelopeTrainer`
puts it in front of a built model for training: its ``"onset"`` input becomes the
model's ``"tempogram"`` input inside the compiled step, so the loader copies 4 bytes a
frame of envelope instead of computing 384 lags on the CPU, while the model that is
saved and embedded keeps its ``"tempogram"`` input.
"""

from __future__ import annotations

import keras
import numpy as np


def onset_tempogram(envelope, frames=None, *, win_length: int = 384, cyclic: bool = False):
    """Autocorrelation tempogram frames of padded onset-envelope slices, in ``keras.ops``.

    Parameters
    ----------
    envelope : tensor [shape=(B, 1, L) or (B, L)]
        Padded envelope samples of ``L - win_length + 1`` frames: frame ``t`` reads samples
        ``t:t + win_length`` (:func:`mdsim.features.spectral.padded_envelope`).
    frames : tensor [shape=(B,), int], optional
        How many of those frames lie inside the track; later frames are zeros, as the
        loader pads a track shorter than a window. ``None``: all of them.
    win_length, cyclic
        As :func:`mdsim.features.spectral.tempogram_frames`.

    Returns
    -------
    tensor [shape=(B, win_length, L - win_length + 1), dtype=float32]
        Each frame's Hann-windowed autocorrelation (one real FFT of ``2 * win_length``
        points each way, so no lag wraps around) divided by its lag 0; with ``cyclic``,
        folded into tempo octaves and normalised again
        (:func:`mdsim.features.spectral.fold_octaves`).
    """
    ops = keras.ops
    x = ops.cast(envelope, "float32")
    x = ops.reshape(x, (-1, x.shape[-1]))
    n_frames = x.shape[-1] - win_length + 1
    # (B, n_frames, win_length): frame t's samples, gathered by a constant index
    index = (np.arange(n_frames)[:, None] + np.arange(win_length)[None, :]).astype("int32")
    windowed = ops.take(x, ops.convert_to_tensor(index), axis=1) * ops.convert_to_tensor(hann(win_length))
    real, imag = ops.rfft(windowed, fft_length=2 * win_length)
    power = real * real + imag * imag
    ac = ops.irfft((power, ops.zeros_like(power)), fft_length=2 * win_length)[..., :win_length]
    # lag 0 is each frame's energy and bounds every other lag (Cauchy-Schwarz)
    out = _normalized(ac, ac[..., :1])
    if cyclic:
        folded = ops.einsum("btk,kr->btr", out, ops.convert_to_tensor(fold_matrix(win_length)))
        out = _normalized(folded, ops.max(folded, axis=-1, keepdims=True))
    if frames is not None:
        inside = ops.arange(n_frames)[None, :] < ops.cast(ops.reshape(frames, (-1, 1)), "int32")
        out = ops.where(inside[..., None], out, 0.0)
    return ops.transpose(out, (0, 2, 1))


@keras.saving.register_keras_serializable(package="mdsim")
class OnsetTempogram(keras.layers.Layer):
    """:func:`onset_tempogram` as a layer without weights, called on ``(envelope, frames)``
    (or on ``envelope`` alone). Computed in float32 whatever the dtype policy: a
    ``bfloat16`` autocorrelation would lose the differences between lags."""

    def __init__(self, win_length: int = 384, cyclic: bool = False, **kwargs):
        kwargs["dtype"] = "float32"
        super().__init__(**kwargs)
        self.win_length, self.cyclic = int(win_length), bool(cyclic)

    def call(self, inputs):
        envelope, frames = inputs if isinstance(inputs, (tuple, list)) else (inputs, None)
        return onset_tempogram(envelope, frames, win_length=self.win_length, cyclic=self.cyclic)

    def compute_output_shape(self, input_shape):
        nested = isinstance(input_shape, (tuple, list)) and isinstance(input_shape[0], (tuple, list))
        shape = input_shape[0] if nested else input_shape
        length = shape[-1]
        return (shape[0], self.win_length, None if length is None else length - self.win_length + 1)

    def get_config(self):
        config = super().get_config()
        config.pop("dtype", None)
        return {**config, "win_length": self.win_length, "cyclic": self.cyclic}


def _normalized(x, peak):
    """``x / peak`` where ``peak > 0``, else 0 (a silent frame)."""
    ops = keras.ops
    positive = peak > 0
    return ops.where(positive, x / ops.where(positive, peak, 1.0), 0.0)


def hann(n: int) -> np.ndarray:
    """``(n,)`` float32 periodic Hann window, ``scipy.signal.get_window("hann", n)``'s values."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)).astype(np.float32)


def fold_matrix(n: int) -> np.ndarray:
    """``(n, n)`` float32: row ``k`` is one-hot at the octave class of lag ``k``
    (:func:`mdsim.features.spectral.fold_octaves`; lag 0 is left out)."""
    lags = np.arange(1, n)
    rows = np.floor((np.log2(lags) % 1.0) * n).astype(int)
    matrix = np.zeros((n, n), np.float32)
    matrix[lags, rows] = 1.0
    return matrix


class EnvelopeTrainer(keras.Model):
    """A built model with its ``"tempogram"`` input computed from an ``"onset"`` input, for training.

    Takes the model's inputs with ``"tempogram"`` replaced by ``"onset"`` (``(B, 1,
    W + win_length - 1)``, padded envelope slices) and ``"onset_frames"`` (``(B,)``, the
    frames inside the track), as :class:`mdsim.training.data.WindowBatches` delivers them
    with ``envelope=True``, and returns the model's embedding. It has no weights of its
    own: its variables are the model's, in the same order, so an optimizer built on one
    serves the other, and the model (not this wrapper) is what a run saves.
    """

    def __init__(self, model: keras.Model, *, win_length: int, cyclic: bool, name: str = "envelope_trainer"):
        super().__init__(name=name)
        self.embedder = model
        self.tempogram = OnsetTempogram(win_length, cyclic, name="onset_tempogram")

    def call(self, inputs, training=False):
        # tensors throughout: run eagerly, the loader's arrays would meet the layer's tensor
        inputs = {name: keras.ops.convert_to_tensor(x) for name, x in inputs.items()}
        inputs["tempogram"] = self.tempogram((inputs.pop("onset"), inputs.pop("onset_frames")))
        return self.embedder(inputs, training=training)
