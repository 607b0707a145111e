"""Saving and loading mdsim models as ``.keras`` files.

A ``.keras`` file is a zip archive whose ``config.json`` describes every
layer. The :class:`~mdsim.model.head.SubspaceHead` layer's entry holds the
:class:`~mdsim.model.config.ModelConfig` and :data:`~mdsim.model.config.FORMAT_VERSION`, so
:func:`read_model_config` can check a file and read its settings with the
standard library alone (no Keras, no TensorFlow); :func:`load_model_file`
checks the same way before it asks Keras to rebuild the model, with
``safe_mode=True``.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from mdsim.errors import InputError, ModelError
from mdsim.model.config import FORMAT_VERSION, ModelConfig

_HEAD_REGISTERED_NAME = "mdsim>SubspaceHead"


def read_model_config(path: str | os.PathLike) -> ModelConfig:
    """The :class:`ModelConfig` stored in a saved model, without importing Keras.

    Raises
    ------
    ModelError
        When the file is missing, not a ``.keras`` archive, not an mdsim
        model, from a newer format version, or holds an invalid config.
    """
    return _read_head(path)[0]


def read_feature_config(path: str | os.PathLike):
    """The :class:`mdsim.config.FeatureConfig` a saved model embeds audio with, without Keras.

    Models of format version 2 carry their training store's settings; older ones
    carry none and get :func:`mdsim.model.config.default_feature_config`.
    """
    config, head = _read_head(path)
    return feature_config_of(config, head.get("feature_config"), source=str(path))


def feature_config_of(config: ModelConfig, stored: dict | None, *, source: str = "the model"):
    """A model's FeatureConfig from what its head stores (``None``: the defaults)."""
    from mdsim.config import FeatureConfig
    from mdsim.model.config import default_feature_config

    if stored is None:
        return default_feature_config(config)
    try:
        return FeatureConfig.from_dict(stored)
    except (InputError, TypeError) as exc:
        raise ModelError(f"{source} holds invalid feature settings: {exc}") from None


def _read_head(path: str | os.PathLike) -> tuple[ModelConfig, dict]:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"model file {path} does not exist")
    try:
        with zipfile.ZipFile(path) as archive:
            text = archive.read("config.json")
    except zipfile.BadZipFile:
        raise ModelError(f"{path} is not a .keras model file (not a zip archive)") from None
    except KeyError:
        raise ModelError(f"{path} is not a .keras model file (no config.json inside)") from None
    try:
        keras_config = json.loads(text)
    except ValueError as exc:
        raise ModelError(f"{path} is not a .keras model file (config.json: {exc})") from None
    head = _find_head_entry(keras_config)
    if head is None:
        raise ModelError(
            f"{path} is a Keras model but not an mdsim model (it has no "
            f"'{_HEAD_REGISTERED_NAME}' layer); build models with mdsim.model.build_model")
    version = head.get("format_version")
    if not isinstance(version, int):
        raise ModelError(f"{path}: the mdsim head has no valid format_version ({version!r})")
    if version > FORMAT_VERSION:
        raise ModelError(
            f"{path} has mdsim model format version {version}, newer than this mdsim "
            f"reads ({FORMAT_VERSION}); upgrade mdsim to load it")
    try:
        return ModelConfig.from_dict(head.get("model_config")), head
    except InputError as exc:
        raise ModelError(f"{path} holds an invalid mdsim model config: {exc}") from None


def _find_head_entry(node) -> dict | None:
    """The config dict of the SubspaceHead layer, searched anywhere in the Keras config."""
    if isinstance(node, dict):
        if node.get("registered_name") == _HEAD_REGISTERED_NAME and isinstance(node.get("config"), dict):
            return node["config"]
        children = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find_head_entry(child)
        if found is not None:
            return found
    return None


def save_model(model, path: str | os.PathLike) -> Path:
    """Save an mdsim model (weights, normalisation and config) to a ``.keras`` file.

    Creates missing parent folders and returns the path written.

    Raises
    ------
    InputError
        When the path does not end in ``.keras``.
    ModelError
        When the model was not built by mdsim (it has no subspace head).
    """
    from mdsim.model.head import find_head

    path = Path(path)
    if path.suffix != ".keras":
        raise InputError(f"model path {path} must end in .keras (e.g. {path.with_suffix('.keras')})")
    if find_head(model) is None:
        raise ModelError(f"model {model.name!r} is not an mdsim model (no subspace head); "
                         "build it with mdsim.model.build_model")
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    return path


def load_model_file(path: str | os.PathLike, *, compile: bool = False):
    """Load a model saved by :func:`save_model`.

    Parameters
    ----------
    path : path of a ``.keras`` file
    compile : bool
        Restore the training configuration too (Keras' ``compile`` flag).

    Returns
    -------
    (keras.Model, ModelConfig)

    Raises
    ------
    ModelError
        As :func:`read_model_config`, or when Keras cannot rebuild the model.
    """
    config = read_model_config(path)
    import keras

    # Registers the custom layers with Keras before deserialisation.
    from mdsim.model import backbones, head, normalization  # noqa: F401

    try:
        model = keras.saving.load_model(path, compile=compile, safe_mode=True)
    except Exception as exc:  # Keras raises many types for a damaged file
        raise ModelError(f"{path}: Keras could not load the model ({type(exc).__name__}: {exc})") from exc
    return model, config


@dataclass
class Transfer:
    """What :func:`initialize_from` copied: layer names, and those it left as built."""

    copied: list
    kept: list
    normalization: bool

    def describe(self) -> str:
        return (f"{len(self.copied)} layers copied ({', '.join(_groups(self.copied))}), "
                f"{len(self.kept)} kept as built ({', '.join(_groups(self.kept)) or 'none'}); input statistics "
                + ("copied" if self.normalization else "not copied"))


def _groups(names) -> list:
    """Layer names shortened to their stage (``mel_block1_...`` -> ``mel_block1``), in order."""
    out = []
    for n in names:
        parts = n.split("_")
        g = "_".join(parts[:2]) if len(parts) > 1 else n
        if g not in out:
            out.append(g)
    return out


def initialize_from(model, path: str | os.PathLike) -> Transfer:
    """Copy into ``model`` the weights of every layer of the saved model at ``path`` that has
    the same name and the same weight shapes (the branches, the trunk, ``head_dense`` and
    ``head_norm`` of a pretrained backbone: ``mdsim train --init-from``).

    The input statistics (the ``*_standardize`` layers) are copied too, so the network sees
    its inputs scaled as in pretraining; :attr:`Transfer.normalization` says whether every
    input of ``model`` got fitted statistics that way.

    Raises
    ------
    ModelError
        When nothing matches (not an mdsim backbone of the same family), or as
        :func:`load_model_file`.
    InputError
        When the two models read features of different settings.
    """
    source, source_config = load_model_file(path)
    from mdsim.model.head import find_head
    from mdsim.model.normalization import Standardize

    target_head = find_head(model)
    if target_head is not None and target_head.feature_config is not None:
        mine = feature_config_of(target_head.model_config, target_head.feature_config, source="the store")
        theirs = feature_config_of(source_config, find_head(source).feature_config, source=str(path))
        diff = theirs.differences(mine, names=(str(path), "the store"))
        if diff:
            raise InputError(f"{path} was trained on other features than this store's ({'; '.join(diff)}); "
                             "pretrain on a store made with the same settings")
    theirs = {layer.name: layer for layer in source.layers}
    copied, kept, fitted = [], [], []
    for layer in model.layers:
        weights = layer.get_weights()
        if not weights:
            continue
        other = theirs.get(layer.name)
        if other is None or [w.shape for w in other.get_weights()] != [w.shape for w in weights]:
            kept.append(layer.name)
            continue
        layer.set_weights(other.get_weights())
        copied.append(layer.name)
        if isinstance(layer, Standardize):
            import keras

            fitted.append(float(keras.ops.convert_to_numpy(other.count)) > 0)
    if not copied:
        raise ModelError(f"{path}: no layer matches this model's by name and shape; --init-from takes a model "
                         "of the same backbone (e.g. a `mdsim pretrain` run's best.keras)")
    n_inputs = sum(isinstance(layer, Standardize) for layer in model.layers)
    return Transfer(copied, kept, normalization=len(fitted) == n_inputs and all(fitted))
