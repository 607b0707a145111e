"""Models that ship inside the package: the default model (``docs/default_model.md``).

``default.keras`` is what ``experiments/default_model.py --ship`` produced: a multi-input
network with the subspaces ``instrument`` (the lead instrument's General MIDI family),
``tempo`` and ``key``, trained on rendered General MIDI scores whose labels are exact. Every
command that embeds audio and :func:`mdsim.load_model` use it when no model is named, or
when the model is named ``default``; nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from mdsim.errors import ModelError

#: The default model's file.
DEFAULT_MODEL = Path(__file__).resolve().parent / "default.keras"
#: What names the default model where a model path is asked for.
DEFAULT_NAME = "default"


def is_default(spec) -> bool:
    """Whether ``spec`` (a path, a name or ``None``) asks for the default model."""
    return spec is None or (isinstance(spec, str) and spec.strip() == DEFAULT_NAME)


def model_path(spec=None) -> Path:
    """The model file ``spec`` names: the default model for ``None`` or ``"default"``.

    Raises
    ------
    ModelError
        The default model is asked for and this installation lacks it (a source checkout
        whose ``mdsim/models/default.keras`` was removed: ``python experiments/default_model.py
        --ship`` rebuilds it).
    """
    if not is_default(spec):
        return Path(os.fspath(spec))
    if not DEFAULT_MODEL.is_file():
        raise ModelError(f"this installation has no default model ({DEFAULT_MODEL} is missing): give a model "
                         "(--model), or rebuild it with `python experiments/default_model.py --out runs/default "
                         "--ship` (docs/default_model.md)")
    return DEFAULT_MODEL


def describe(model) -> str:
    """One line naming a loaded :class:`mdsim.Model`: the default model or its file, and its subspaces."""
    dims = ", ".join(model.dimensions)
    if model.path is not None and Path(model.path).resolve() == DEFAULT_MODEL:
        return f"the default model ({dims}; docs/default_model.md)"
    return f"{model.path} ({dims})"
