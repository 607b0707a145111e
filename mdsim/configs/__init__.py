"""Named training settings that ship with mdsim: ``mdsim train --config NAME``.

Each ``NAME.toml`` beside this module holds a ``[model]`` and a ``[training]`` table
(read by :func:`mdsim.training.read_run_config`): the models of the paper's Table 1
(docs/training.md) and the key-head runs of docs/key_tempo.md. They travel in the wheel,
so a name works from any folder.

>>> from mdsim.configs import config_names, find_config
>>> "multi_input_6dim_384" in config_names()
True
>>> find_config("multi_input_6dim_384").name
'multi_input_6dim_384.toml'
"""

from __future__ import annotations

from pathlib import Path

from mdsim.errors import InputError

#: Folder of the named configs (``*.toml``).
CONFIG_DIR = Path(__file__).resolve().parent


def config_names() -> tuple:
    """The names of the shipped configs, sorted (file names without ``.toml``)."""
    return tuple(sorted(p.stem for p in CONFIG_DIR.glob("*.toml")))


def find_config(name_or_path) -> Path:
    """The TOML file of ``name_or_path``: a file that exists, or else a shipped config's name
    (with or without ``.toml``).

    Raises
    ------
    mdsim.errors.InputError
        Neither a file nor a name of :func:`config_names`.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    stem = path.name[:-len(".toml")] if path.name.endswith(".toml") else path.name
    if str(path) in (stem, stem + ".toml") and stem in config_names():
        return CONFIG_DIR / f"{stem}.toml"
    raise InputError(f"--config {name_or_path}: no such file, nor a named config "
                     f"(names: {', '.join(config_names())})")
