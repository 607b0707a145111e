"""Training: the batch sampler over a features store, the fit loop, run folders.

``mdsim.training.train`` (and ``mdsim train``) imports Keras; the config
dataclass does not.
"""

from mdsim.training.config import TrainConfig, read_run_config, write_run_config

__all__ = ["TrainConfig", "read_run_config", "write_run_config", "train"]


def __getattr__(name):
    if name == "train":
        from mdsim.training.fit import train

        return train
    raise AttributeError(f"module 'mdsim.training' has no attribute {name!r}")
