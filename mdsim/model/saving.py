"""Saving and loading mdsim models as ``.keras`` files.

A ``.keras`` file is a zip archive whose ``config.json`` describes every
layer. The :class:`~mdsim.model.head.SubspaceHead` layer's entry holds the
:class:`~mdsim.model.config.ModelConfig` and :data:`FORMAT_VERSION`, so
:func:`read_model_config` can check a file and read its settings with the
standard library alone (no Keras, no TensorFlow); :func:`load_model_file`
checks the same way before it asks Keras to rebuild the model, with
``safe_mode=True``.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from mdsim.errors import InputError, ModelError
from mdsim.model.config import ModelConfig

#: Version of the saved-model layout; bump it when an old mdsim could not read a new file.
#: 2: the head also holds the training store's feature settings (``feature_config``).
FORMAT_VERSION = 2
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
