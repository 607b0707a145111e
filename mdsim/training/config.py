"""Training settings, and the TOML file that holds them with the model's.

A run's config file has two tables::

    [model]                      # mdsim.model.ModelConfig
    backbone = "multi_input"
    dimensions = ["genre", "mood", "instrument", "era", "tempo", "key"]
    embedding_size = 384

    [training]                   # TrainConfig below
    batch_size = 64
    learning_rate = 1e-05

Any key left out takes its default. ``mdsim train`` writes the effective
config (every key) to ``RUN_DIR/config.toml``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from mdsim.config import _known_fields, read_toml, write_toml
from mdsim.errors import InputError
from mdsim.features.augment import AugmentConfig

_AUGMENT = AugmentConfig()


#: Values of ``TrainConfig.mixed_precision``.
MIXED_PRECISION = ("off", "auto", "mixed_float16", "mixed_bfloat16")


def check_pair_shares(shares: dict) -> dict:
    """``shares`` if every value is a whole number of at least 1, else :class:`InputError`."""
    for name, n in shares.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InputError(f"pair share of {name!r} must be a whole number of at least 1, got {n!r}")
    return shares


@dataclass(frozen=True)
class TrainConfig:
    """How to train (the paper's settings are the defaults where it gives them).

    Attributes
    ----------
    batch_size : int
        Windows per batch; every dimension gets anchor-positive pairs in it.
    epochs : int
        Epochs to train in total (a resumed run continues to this number).
    steps_per_epoch : int or None
        Batches per epoch; ``None``: enough for every training track to
        appear about once.
    validation_steps : int or None
        Validation batches per epoch (fixed windows, same every epoch);
        ``None``: enough for every validation track to appear about once.
    learning_rate : float
        Adam's initial learning rate (1e-5).
    lr_factor, lr_patience, min_lr : float, int, float
        Reduce the learning rate by ``lr_factor`` (1/5) when the validation
        loss has not improved for ``lr_patience`` (10) epochs, down to
        ``min_lr`` (1e-10).
    triplet_margin, mining_margin : float
        Hinge margin of the loss (0.1); width of the semi-hard window (0.1).
    fallback : str
        What to do for a pair with no semi-hard negative (see
        ``mdsim.metric.FALLBACKS``).
    validation_fraction : float
        Share of tracks (or of groups, when the store has a ``group``
        column) held out for validation.
    normalization_windows : int
        Random training windows used to fit the input z-score statistics.
    pad_short : bool
        Train on tracks shorter than one 3 s window too, zero-padded at the
        end exactly as embedding pads them (default). ``False`` leaves them
        out, as runs before this option did.
    min_key_probability : float
        An estimated key (``key_source`` madmom or fast) whose ``key_probability``
        is below this is not trained on: the track keeps its other labels and
        sits out the key pairs. madmom's probability is the key network's
        (0..1), fast's the key-profile correlation. Keys from the manifest are
        always kept. 0 (default): every key is kept (docs/key_tempo.md).
    pair_shares : dict
        ``{dimension: n}``: the sampler puts the dimension ``n`` times in its
        cycle, so its anchor-positive pairs take ``n`` turns where the others
        take one (the key head learns from key pairs alone; ``{"key": 3}``
        gives it about 7 pairs of a batch of 32 in a five-dimension network
        instead of 3). Every dimension left out has 1; ``{}`` (default): the
        dimensions in turn, as the paper. The loss is still the mean over
        dimensions of each one's mean over its triplets (docs/key_tempo.md).
    seed : int
        Seeds the split, the sampler and the weights.
    workers : int
        Loader worker processes (0: load in the training process).
    eager : bool
        Run each step op by op instead of compiling it first (Keras'
        ``run_eagerly``). Several times slower per step, but starts in
        seconds where TensorFlow spends a minute or more building the graph
        on a small CPU: the better choice for runs of a few dozen steps at
        most (smoke tests, debugging). docs/training.md has the figures.
    mixed_precision : str
        ``"off"`` (float32 throughout), ``"mixed_float16"``, ``"mixed_bfloat16"``
        (Keras dtype policies: layers compute in 16 bits, weights stay float32;
        the loss is computed in float32), or ``"auto"``: ``mixed_float16`` on a
        GPU, ``mixed_bfloat16`` elsewhere.
    devices : int
        Data-parallel devices (Keras' ``DataParallel`` on JAX, TensorFlow's
        ``MirroredStrategy``); ``batch_size`` is the global batch, split evenly.
    init_from : str or None
        A saved model (e.g. ``mdsim pretrain``'s ``RUN/best.keras``) whose layers of
        the same name and shape start the network, input statistics included
        (:func:`mdsim.model.saving.initialize_from`); ``None``: random weights.
    """

    batch_size: int = 64
    epochs: int = 100
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    learning_rate: float = 1e-5
    lr_factor: float = 0.2
    lr_patience: int = 10
    min_lr: float = 1e-10
    triplet_margin: float = 0.1
    mining_margin: float = 0.1
    fallback: str = "nearest-farthest"
    validation_fraction: float = 0.1
    normalization_windows: int = 512
    pad_short: bool = True
    min_key_probability: float = 0.0
    pair_shares: dict = field(default_factory=dict)
    seed: int = 0
    workers: int = 0
    eager: bool = False
    mixed_precision: str = "off"
    devices: int = 1
    init_from: str | None = None
    # the augmentation's defaults are AugmentConfig's own
    augment: str = _AUGMENT.mode
    stretch_probability: float = _AUGMENT.stretch_probability
    stretch_range: tuple = _AUGMENT.stretch_range
    pitch_probability: float = _AUGMENT.pitch_probability
    pitch_range: tuple = _AUGMENT.pitch_range
    eq_probability: float = _AUGMENT.eq_probability
    eq_gain_db: float = _AUGMENT.eq_gain_db

    def __post_init__(self):
        if self.batch_size < 4:
            raise InputError(f"batch_size {self.batch_size} is too small: triplets need at least 4")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise InputError(f"validation_fraction {self.validation_fraction} must be in [0, 1)")
        if self.epochs < 1:
            raise InputError(f"epochs {self.epochs} must be at least 1")
        if self.mixed_precision not in MIXED_PRECISION:
            raise InputError(f"mixed_precision {self.mixed_precision!r} is not one of {', '.join(MIXED_PRECISION)}")
        if isinstance(self.devices, bool) or not isinstance(self.devices, int) or self.devices < 1:
            raise InputError(f"devices must be a positive integer, got {self.devices!r}")
        if self.batch_size % self.devices:
            raise InputError(f"batch_size {self.batch_size} does not split evenly over {self.devices} devices")
        if isinstance(self.min_key_probability, bool) or not isinstance(self.min_key_probability, (int, float)) \
                or not -1.0 <= self.min_key_probability <= 1.0:
            raise InputError(f"min_key_probability must be a number in [-1, 1], got {self.min_key_probability!r}")
        if not isinstance(self.pair_shares, dict):
            raise InputError(f"pair_shares must be a table of dimension = whole number, got {self.pair_shares!r}")
        object.__setattr__(self, "pair_shares", dict(sorted(check_pair_shares(dict(self.pair_shares)).items())))
        for name in ("eager", "pad_short"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"{name} must be true or false, got {getattr(self, name)!r}")
        aug = self.augmentation  # validates the augmentation settings
        object.__setattr__(self, "stretch_range", aug.stretch_range)
        object.__setattr__(self, "pitch_range", aug.pitch_range)

    @property
    def augmentation(self):
        """The :class:`mdsim.features.augment.AugmentConfig` of these settings."""
        return AugmentConfig(mode=self.augment, stretch_probability=self.stretch_probability,
                             stretch_range=tuple(self.stretch_range), pitch_probability=self.pitch_probability,
                             pitch_range=tuple(self.pitch_range), eq_probability=self.eq_probability,
                             eq_gain_db=self.eq_gain_db)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.update(stretch_range=list(self.stretch_range), pitch_range=list(self.pitch_range))
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "TrainConfig":
        return cls(**_known_fields(cls, data, "training settings"))

    def replace(self, **changes) -> "TrainConfig":
        return dataclasses.replace(self, **changes)


def read_run_config(path):
    """``(ModelConfig, TrainConfig)`` from a TOML file with ``[model]`` and ``[training]``.

    Keys left out take their defaults; :func:`write_run_config` writes every key.

    >>> import pathlib, tempfile
    >>> folder = tempfile.TemporaryDirectory()
    >>> path = pathlib.Path(folder.name) / "run.toml"
    >>> _ = path.write_text('[model]\\ndimensions = ["mood", "tempo"]\\nembedding_size = 128\\n'
    ...                     '[training]\\nbatch_size = 32\\n')
    >>> model, training = read_run_config(path)
    >>> model.backbone, model.sizes, training.batch_size, training.learning_rate
    ('multi_input', (64, 64), 32, 1e-05)
    >>> write_run_config(path, model, training)       # every key, then read back
    >>> read_run_config(path) == (model, training)
    True
    >>> folder.cleanup()
    """
    from mdsim.model.config import ModelConfig

    data = read_toml(path)
    unknown = sorted(set(data) - {"model", "training"})
    if unknown:
        raise InputError(f"{path}: unknown table(s) {', '.join(unknown)} (known: model, training)")
    try:
        model = ModelConfig.from_dict(data.get("model", {}))
        training = TrainConfig.from_dict(data.get("training", {}))
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: {e}") from None
    return model, training


def write_run_config(path, model_config, train_config) -> None:
    """Write both configs, every key, as TOML."""
    write_toml(path, {"model": model_config.to_dict(), "training": train_config.to_dict()})
