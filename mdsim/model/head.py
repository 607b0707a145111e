"""The subspace head: the model's last layer, which carries its configuration.

:class:`SubspaceHead` passes the layer-normalised embedding through
unchanged. Its job is to be found: it is named ``"subspaces"``, its Keras
config holds the whole :class:`~mdsim.model.config.ModelConfig` (dimension
order and slice sizes included) and the file format version, so a saved
``.keras`` file describes its own subspaces and needs nothing beside it.
"""

from __future__ import annotations

import keras

from mdsim.model.config import FORMAT_VERSION, ModelConfig
from mdsim.model.subspaces import subspace_slices

HEAD_NAME = "subspaces"


@keras.saving.register_keras_serializable(package="mdsim")
class SubspaceHead(keras.layers.Layer):
    """Identity on ``(batch, D)`` that records the subspace layout and the model config."""

    def __init__(self, model_config: dict, format_version: int = FORMAT_VERSION,
                 feature_config: dict | None = None, **kwargs):
        kwargs.setdefault("name", HEAD_NAME)
        super().__init__(**kwargs)
        self.model_config = ModelConfig.from_dict(model_config)
        self.format_version = int(format_version)
        # The features store's settings at training time (FeatureConfig.to_dict()), so
        # new audio is embedded with exactly the features the network learned from;
        # None in models saved before format version 2, or never trained on a store.
        self.feature_config = dict(feature_config) if feature_config is not None else None

    @property
    def slices(self) -> dict[str, slice]:
        """``{dimension: slice}`` of the embedding, in order."""
        return subspace_slices(self.model_config)

    def call(self, embedding):
        return embedding

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "model_config": self.model_config.to_dict(),
                "format_version": self.format_version, "feature_config": self.feature_config}


def find_head(model: keras.Model) -> SubspaceHead | None:
    """The model's :class:`SubspaceHead`, or ``None`` for a model mdsim did not build."""
    for layer in reversed(model.layers):
        if isinstance(layer, SubspaceHead):
            return layer
    return None
