"""The network: Inception blocks, branches, backbones, the subspace head, model config.

Importing this package does not import Keras: the config, subspace and
file-reading helpers are plain Python/NumPy, and the names that need Keras
(:func:`build_model`, :func:`fit_normalization`, ...) load it on first use.
"""

from mdsim.model.config import (FORMAT_VERSION, BlockFilters, ModelConfig, check_feature_config,
                                default_feature_config)
from mdsim.model.manifold import MANIFOLD_BACKBONES, ManifoldConfig
from mdsim.model.saving import (Transfer, feature_config_of, initialize_from, load_model_file,
                                read_feature_config, read_model_config, save_model)
from mdsim.model.subspaces import check_dims, mask, select, subspace_mask, subspace_slices

# name -> module, imported on first access (these import Keras)
_LAZY = {
    "build_model": "mdsim.model.backbones",
    "build_manifold_network": "mdsim.model.manifold",
    "build_ternary_model": "mdsim.model.manifold",
    "inception_block": "mdsim.model.blocks",
    "fit_normalization": "mdsim.model.normalization",
    "Standardize": "mdsim.model.normalization",
    "SubspaceHead": "mdsim.model.head",
    "find_head": "mdsim.model.head",
    "model_flops": "mdsim.model.summary",
    "summarize": "mdsim.model.summary",
}

__all__ = [
    "BlockFilters", "ModelConfig", "MANIFOLD_BACKBONES", "ManifoldConfig", "check_feature_config", "default_feature_config", "FORMAT_VERSION",
    "feature_config_of", "initialize_from", "Transfer", "load_model_file", "read_feature_config", "read_model_config", "save_model", "check_dims", "mask", "select", "subspace_mask", "subspace_slices", *_LAZY,
]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mdsim.model' has no attribute {name!r}")
