"""``mdsim pretrain``: self-supervised subspaces (LOEV, LOEV++, SimCLR) on unlabelled audio.

Each step takes ``batch_size`` tracks of the store and, for each, the views of
:mod:`mdsim.metric.contrastive`: ``a`` and ``b`` (two random 3 s windows of the
track, each time-stretched, pitch-shifted and equalised on its features by
:mod:`mdsim.features.augment`), and for every variant augmentation ``k`` a view
``b_k``: ``b``'s window and transforms with ``T_k``'s value taken from ``a``.
A variant augmentation is always drawn twice with two distinct values (a
pitch shift of two different semitone counts, from ``pitch_range``; two
stretch rates at least ``min_stretch_ratio`` apart; two different EQs), so
``a`` and ``b`` differ in it; the other augmentations are drawn per view with
their probabilities. The model (a ``loev`` or ``loev++`` head on the
multi-input backbone, :class:`mdsim.model.ModelConfig`) embeds all
``(2 + K) * batch_size`` windows at once and :class:`~mdsim.metric.contrastive.LOEVLoss`
scores them. ``simclr`` is LOEV with no variant subspace.

A run folder holds what a ``mdsim train`` run folder holds, with
``pretrain.toml`` (tables ``[model]``, ``[pretrain]``) for ``config.toml``::

    RUN_DIR/pretrain.toml   the effective settings, every key
    RUN_DIR/split.json      training / validation track ids
    RUN_DIR/last.keras      model + optimizer after the last finished epoch
    RUN_DIR/best.keras      the model with the lowest validation loss: mdsim.load_model
                            embeds with it (subspaces invariant, pitch, tempo, ...), and
                            ``mdsim train --init-from`` starts a CSN from its backbone
    RUN_DIR/state.json      epochs done, best validation loss, plateau counter
    RUN_DIR/log.csv         the loss and each subspace's NT-Xent per epoch
    RUN_DIR/features.h5     the store, when a folder or manifest was given (prepped first)
"""

from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdsim.config import _known_fields, read_toml, write_toml
from mdsim.errors import InputError, StoreError
from mdsim.features.augment import AugmentConfig, Plan, random_eq, read_window
from mdsim.features.store import FeatureStore
from mdsim.training.data import StoreBatches

#: ``--objective`` values and the model head each trains.
OBJECTIVES = {"loev": "loev", "loev++": "loev++", "simclr": "loev"}
#: Augmentations a subspace can be variant in (names of mdsim.model.config.SSL_SUBSPACES).
VARIANTS = ("pitch", "tempo", "eq")
_AUG = AugmentConfig()


@dataclass(frozen=True)
class PretrainConfig:
    """How to pretrain.

    Attributes
    ----------
    objective : {"loev", "loev++", "simclr"}
        ``loev``: variant subspaces as projections of one superspace; ``loev++``:
        each with its own latent branch; ``simclr``: the invariant subspace alone.
    variants : tuple of str
        The augmentations that get a variant subspace (``pitch``, ``tempo``, ``eq``);
        ignored by ``simclr``.
    temperature : float
        NT-Xent temperature (0.1).
    invariant_weight, variant_weight : float
        Weights of the invariant subspace's loss and of each variant one's.
    variant_negatives : {"all", "track"}
        What a variant subspace's views are contrasted with: every view of the batch
        and the track's own views that differ in its augmentation (``"all"``), or the
        latter alone (``"track"``) (:func:`mdsim.metric.contrastive.loev_loss`).
    batch_size : int
        Tracks per step; the model sees ``(2 + K)`` views of each.
    epochs, steps_per_epoch, validation_steps : int, int or None, int or None
        As for ``mdsim train``; ``None`` steps: every track about once an epoch.
    validation_fraction : float
        Share of the tracks held out for the validation loss (``best.keras``).
    learning_rate, lr_factor, lr_patience, min_lr : float, float, int, float
        Adam's step size and the plateau schedule of ``mdsim train``.
    normalization_windows : int
        Plain training windows the input statistics are fitted on.
    stretch_probability, stretch_range, pitch_probability, pitch_range, eq_probability, eq_gain_db
        The augmentations (defaults: ``mdsim train --augment``'s); a variant
        augmentation is applied to every view, the others with their probability.
    min_stretch_ratio : float
        Two stretch rates of a variant ``tempo`` pair differ by at least this
        factor (1.08: twice the 4 % that :mod:`mdsim.labels` counts as the same tempo).
    pitch_octaves : bool
        Each view of a ``pitch`` variant also moves by a random whole octave (within
        -12..12 semitones in all), drawn per view, ``b_pitch`` included: the pitch
        subspace is asked to see the pitch class (the key), not the register.
    seed, workers, eager : int, int, bool
        As for ``mdsim train``.
    """

    objective: str = "loev++"
    variants: tuple = ("pitch", "tempo")
    temperature: float = 0.1
    invariant_weight: float = 1.0
    variant_weight: float = 1.0
    variant_negatives: str = "all"
    batch_size: int = 32
    epochs: int = 50
    steps_per_epoch: int | None = None
    validation_steps: int | None = None
    validation_fraction: float = 0.1
    learning_rate: float = 1e-4
    lr_factor: float = 0.2
    lr_patience: int = 10
    min_lr: float = 1e-10
    normalization_windows: int = 512
    stretch_probability: float = _AUG.stretch_probability
    stretch_range: tuple = _AUG.stretch_range
    pitch_probability: float = _AUG.pitch_probability
    pitch_range: tuple = _AUG.pitch_range
    eq_probability: float = _AUG.eq_probability
    eq_gain_db: float = _AUG.eq_gain_db
    min_stretch_ratio: float = 1.08
    pitch_octaves: bool = True
    seed: int = 0
    workers: int = 0
    eager: bool = False

    def __post_init__(self):
        from mdsim.metric.contrastive import check_temperature

        if self.objective not in OBJECTIVES:
            raise InputError(f"unknown objective {self.objective!r} (valid: {', '.join(OBJECTIVES)})")
        variants = tuple(self.variants) if self.objective != "simclr" else ()
        for v in variants:
            if v not in VARIANTS:
                raise InputError(f"unknown variant {v!r} (valid: {', '.join(VARIANTS)})")
        if len(set(variants)) != len(variants):
            raise InputError(f"variant listed twice in {', '.join(variants)}")
        if self.objective != "simclr" and not variants:
            raise InputError(f"the {self.objective} objective needs at least one variant "
                             f"({', '.join(VARIANTS)}); without one it is simclr")
        object.__setattr__(self, "variants", variants)
        check_temperature(self.temperature)
        from mdsim.metric.contrastive import VARIANT_NEGATIVES

        if self.variant_negatives not in VARIANT_NEGATIVES:
            raise InputError(f"variant_negatives {self.variant_negatives!r} is not one of "
                             f"{', '.join(VARIANT_NEGATIVES)}")
        if self.batch_size < 2:
            raise InputError(f"batch_size {self.batch_size} is too small: NT-Xent needs 2 tracks or more")
        if self.epochs < 1:
            raise InputError(f"epochs {self.epochs} must be at least 1")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise InputError(f"validation_fraction {self.validation_fraction} must be in [0, 1)")
        if not self.min_stretch_ratio >= 1.0:
            raise InputError(f"min_stretch_ratio {self.min_stretch_ratio} must be >= 1")
        aug = self.augmentation
        object.__setattr__(self, "stretch_range", aug.stretch_range)
        object.__setattr__(self, "pitch_range", aug.pitch_range)
        lo, hi = aug.stretch_range
        if "tempo" in variants and hi / lo < self.min_stretch_ratio:
            raise InputError(f"stretch_range {lo:g}-{hi:g} holds no two rates {self.min_stretch_ratio:g} apart; "
                             "widen it or lower min_stretch_ratio")
        if "pitch" in variants and aug.pitch_range[0] == aug.pitch_range[1]:
            raise InputError(f"pitch_range {aug.pitch_range} holds one shift; a pitch variant needs two")

    @property
    def augmentation(self) -> AugmentConfig:
        """The per-view draws (``mode="invariance"``: labels play no part here)."""
        return AugmentConfig(mode="invariance", stretch_probability=self.stretch_probability,
                             stretch_range=tuple(self.stretch_range), pitch_probability=self.pitch_probability,
                             pitch_range=tuple(self.pitch_range), eq_probability=self.eq_probability,
                             eq_gain_db=self.eq_gain_db)

    @property
    def subspaces(self) -> tuple:
        """The model's subspace names: ``invariant``, then the variants."""
        return ("invariant",) + tuple(self.variants)

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out.update(variants=list(self.variants), stretch_range=list(self.stretch_range),
                   pitch_range=list(self.pitch_range))
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "PretrainConfig":
        return cls(**_known_fields(cls, data, "pretrain settings"))

    def replace(self, **changes) -> "PretrainConfig":
        return dataclasses.replace(self, **changes)


def pretrain_model_config(config: PretrainConfig, **model_settings):
    """The :class:`mdsim.model.ModelConfig` a pretraining trains: the objective's head, its
    subspaces, and ``model_settings`` (``width``, ``embedding_size``, ...)."""
    from mdsim.model import ModelConfig

    return ModelConfig(head=OBJECTIVES[config.objective], dimensions=config.subspaces, **model_settings)


def read_pretrain_config(path):
    """``(ModelConfig, PretrainConfig)`` from a run's ``pretrain.toml``."""
    from mdsim.model import ModelConfig

    data = read_toml(path)
    unknown = sorted(set(data) - {"model", "pretrain"})
    if unknown:
        raise InputError(f"{path}: unknown table(s) {', '.join(unknown)} (known: model, pretrain)")
    try:
        return ModelConfig.from_dict(data.get("model", {})), PretrainConfig.from_dict(data.get("pretrain", {}))
    except (TypeError, ValueError) as e:
        raise InputError(f"{path}: {e}") from None


# -- views ---------------------------------------------------------------------------------------
def draw_views(config: PretrainConfig, rng) -> list:
    """The plans of one track's views ``[a, b, b_1 .. b_K]`` (module docstring)."""
    aug = config.augmentation
    a, b = aug.draw(rng), aug.draw(rng)
    for v in config.variants:
        va, vb = _distinct(v, config, rng)
        a, b = _with(a, v, va), _with(b, v, vb)
    views = [a, b] + [_with(b, v, _value(a, v)) for v in config.variants]
    if "pitch" in config.variants and config.pitch_octaves:
        views = [dataclasses.replace(p, semitones=_octave(p.semitones, rng)) for p in views]
    return views


def _octave(semitones: int, rng) -> int:
    """``semitones`` moved by a random whole number of octaves (0 among them), within -12..12."""
    choices = [semitones + 12 * o for o in (-1, 0, 1) if -12 <= semitones + 12 * o <= 12]
    return int(choices[rng.integers(len(choices))])


_FIELD = {"pitch": "semitones", "tempo": "rate", "eq": "eq"}


def _value(plan: Plan, variant: str):
    return getattr(plan, _FIELD[variant])


def _with(plan: Plan, variant: str, value) -> Plan:
    return dataclasses.replace(plan, **{_FIELD[variant]: value})


def _distinct(variant: str, config: PretrainConfig, rng) -> tuple:
    """Two different values of one augmentation."""
    if variant == "pitch":
        lo, hi = config.pitch_range
        first, second = rng.choice(np.arange(lo, hi + 1), size=2, replace=False)
        return int(first), int(second)
    if variant == "tempo":
        lo, hi = (math.log(r) for r in config.stretch_range)
        gap = math.log(config.min_stretch_ratio)
        while True:
            first, second = rng.uniform(lo, hi, size=2)
            if abs(first - second) >= gap:
                return float(math.exp(first)), float(math.exp(second))
    return (random_eq(rng, max_gain_db=config.eq_gain_db), random_eq(rng, max_gain_db=config.eq_gain_db))


class ViewBatches(StoreBatches):
    """A ``keras.utils.PyDataset`` of LOEV batches: ``(inputs, zeros)``.

    ``inputs`` is ``{"mel": ((2 + K) * N, 128, 259), ...}``, view-major (the ``a`` views
    of the ``N`` tracks, then ``b``, then each ``b_k``). Batch ``i`` of epoch ``e`` is a
    pure function of ``(seed, e, i)`` (``fixed=True``: of ``(seed, i)``), as in ``mdsim train``.
    """

    def __init__(self, store_path, track_ids, n_frames, config: PretrainConfig, *, inputs, segment_frames: int,
                 steps: int, seed: int, fixed: bool = False, workers: int = 0):
        super().__init__(store_path, steps=steps, seed=seed, fixed=fixed, workers=workers)
        self.config = config
        self.track_ids, self.n_frames = list(track_ids), np.asarray(n_frames, dtype=np.int64)
        self.inputs, self.segment_frames = tuple(inputs), int(segment_frames)
        self.n_views = 2 + len(config.variants)

    def _tracks(self, rng) -> np.ndarray:
        n, b = len(self.track_ids), self.config.batch_size
        return rng.choice(n, size=b, replace=n < b)

    def __getitem__(self, index: int):
        store = self._open()
        rng = self._rng(index)
        rows = self._tracks(rng)
        n, seg = len(rows), self.segment_frames
        x = {name: np.zeros((self.n_views * n, self._bins[name], seg), np.float32) for name in self.inputs}
        for i, r in enumerate(rows):
            tid, frames = self.track_ids[r], int(self.n_frames[r])
            starts = rng.integers(0, max(frames - seg, 0) + 1, size=2)
            plans = draw_views(self.config, rng)
            try:
                for v, plan in enumerate(plans):
                    feats = read_window(lambda names, a, b: store.features(tid, names=names, start=a, stop=b),
                                        int(starts[0 if v == 0 else 1]), seg, plan, self.inputs,
                                        track_frames=frames, config=self._feature_config)
                    for name in self.inputs:
                        x[name][v * n + i] = feats[name]
            except StoreError as e:
                # zeros for every view of a damaged track: a constant view pair the loss cannot separate
                self._report_damaged(tid, e)
        return x, np.zeros((self.n_views * n, 1), np.float32)

    def plain_batches(self, n_windows: int):
        """Random plain windows (no augmentation) of the tracks, for the input statistics."""
        store = self._open()
        rng = np.random.default_rng([self.seed, 2])
        seg = self.segment_frames
        for _ in range(max(1, -(-n_windows // self.config.batch_size))):
            x = {name: [] for name in self.inputs}
            for r in self._tracks(rng):
                s = int(rng.integers(0, max(int(self.n_frames[r]) - seg, 0) + 1))
                try:
                    feats = store.features(self.track_ids[r], names=self.inputs, start=s, stop=s + seg)
                except StoreError:
                    continue
                for name in self.inputs:
                    v = np.zeros((self._bins[name], seg), np.float32)
                    v[:, :feats[name].shape[1]] = feats[name]
                    x[name].append(v)
            if x[self.inputs[0]]:
                yield {name: np.stack(v) for name, v in x.items()}


# -- the run -------------------------------------------------------------------------------------
@dataclass
class PretrainResult:
    run_dir: Path
    epochs_done: int
    best_val_loss: float
    history: dict
    subspaces: tuple
    store: Path


def resolve_store(source, run_dir: Path, *, workers: int | None = None, log=None, progress: bool = True) -> Path:
    """A features store to pretrain on: ``source`` itself when it is a store, else (a folder
    of audio or a manifest CSV) ``RUN_DIR/features.h5``, prepped first without annotation
    (resumable: a second call adds only what is missing)."""
    source = Path(source)
    if source.is_file() and source.suffix.lower() in (".h5", ".hdf5"):
        return source
    if not source.exists():
        raise InputError(f"{source}: no such store, folder or manifest")
    from mdsim.features.pipeline import prep

    out = Path(run_dir) / "features.h5"
    print(f"pretrain: preparing the features of {source} in {out}", file=log or sys.stderr)
    prep(source, out, workers=workers, annotate="none", progress=progress, log=log)
    return out


def pretrain(source, run_dir, *, model_config=None, config: PretrainConfig | None = None, resume: bool = False,
             prep_workers: int | None = None, verbose: int = 1, log=None) -> PretrainResult:
    """Pretrain (or resume) self-supervised subspaces on a store, folder or manifest.

    Parameters
    ----------
    source : a features store, a folder of audio or a manifest CSV (labels are not read)
    run_dir : the run folder
    model_config : mdsim.model.ModelConfig, optional
        Its head and dimensions must be those of ``config`` (:func:`pretrain_model_config`
        makes one; default: the multi-input backbone at full width). Ignored on resume.
    config : PretrainConfig, optional
        On resume only ``epochs``, ``eager`` and ``workers`` may differ from the run's.
    resume : bool
        Continue ``run_dir`` after its last finished epoch, with the optimizer state.

    Returns
    -------
    PretrainResult
    """
    import keras

    from mdsim.metric.contrastive import LOEVLoss
    from mdsim.model import build_model, check_feature_config, fit_normalization, load_model_file, summarize
    from mdsim.model.subspaces import subspace_slices
    from mdsim.training.callbacks import PlateauSchedule, RunCheckpoint, StopWhenTerminated, read_state, recover_last
    from mdsim.training.data import TrackTable, default_steps, run_split
    from mdsim.training.fit import compile_options, use_compile_cache

    log = log if log is not None else sys.stderr
    run_dir = Path(run_dir)
    settings = run_dir / "pretrain.toml"
    if resume:
        if not settings.exists():
            raise InputError(f"{run_dir}: nothing to resume (no pretrain.toml); start a run with --out")
        model_config, saved = read_pretrain_config(settings)
        given = config if config is not None else saved
        config = saved.replace(epochs=given.epochs, eager=given.eager, workers=given.workers)
    else:
        if (run_dir / "state.json").exists():
            raise InputError(f"{run_dir} already holds a run; continue it with --resume {run_dir}, "
                             "or choose another --out")
        config = config or PretrainConfig()
        model_config = model_config or pretrain_model_config(config)
        if model_config.head != OBJECTIVES[config.objective] or tuple(model_config.dimensions) != config.subspaces:
            raise InputError(f"the model's head {model_config.head!r} and subspaces {list(model_config.dimensions)} "
                             f"are not those of the {config.objective} objective "
                             f"({OBJECTIVES[config.objective]!r}, {list(config.subspaces)})")
    run_dir.mkdir(parents=True, exist_ok=True)
    store_path = resolve_store(source, run_dir, workers=prep_workers, log=log, progress=bool(verbose))
    write_toml(settings, {"model": model_config.to_dict(), "pretrain": config.to_dict()})

    store = FeatureStore(store_path)
    check_feature_config(model_config, store.feature_config, source=f"features store {store_path}")
    table, _ = TrackTable.from_store(store, min_frames=model_config.n_frames, pad_short=True)
    if len(table) < 2:
        raise InputError(f"{store_path}: {len(table)} tracks; contrastive pretraining needs at least 2")
    train_ids, val_ids = run_split(table, run_dir / "split.json", resume=resume, seed=config.seed,
                                   validation_fraction=config.validation_fraction, command="pretrain")
    pos = {t: i for i, t in enumerate(table.track_ids)}
    frames = table.n_frames
    steps = config.steps_per_epoch or default_steps(len(train_ids), config.batch_size)
    common = dict(inputs=model_config.inputs, segment_frames=model_config.n_frames, workers=config.workers)
    train_data = ViewBatches(store_path, train_ids, frames[[pos[t] for t in train_ids]], config, steps=steps,
                             seed=config.seed, **common)
    val_data = None
    if len(val_ids) >= 2:
        vsteps = config.validation_steps or default_steps(len(val_ids), config.batch_size)
        val_data = ViewBatches(store_path, val_ids, frames[[pos[t] for t in val_ids]], config, steps=vsteps,
                               seed=config.seed + 1, fixed=True, **common)
    state = read_state(run_dir) if resume else {"epochs_done": 0, "best_val_loss": None, "plateau_wait": 0}
    if resume:
        recover_last(run_dir, state)
    train_data.epoch = state["epochs_done"]

    keras.utils.set_random_seed(config.seed)
    slices = subspace_slices(model_config)
    loss = LOEVLoss(subspaces=[(d, slices[d].start, slices[d].stop) for d in model_config.dimensions],
                    temperature=config.temperature, invariant_weight=config.invariant_weight,
                    variant_weight=config.variant_weight, variant_negatives=config.variant_negatives)
    metrics = loss.statistics()
    if resume and (run_dir / "last.keras").exists():
        model, _ = load_model_file(run_dir / "last.keras", compile=True)
        optimizer = model.optimizer
        print(f"pretrain: resuming {run_dir} after epoch {state['epochs_done']}", file=log)
    else:
        model = build_model(model_config, feature_config=store.feature_config)
        fit_normalization(model, train_data.plain_batches(config.normalization_windows))
        optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate)
    if not config.eager:
        use_compile_cache(log, command="pretrain")
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics, **compile_options(eager=config.eager))
    print(summarize(model), file=log)
    print(f"pretrain: {config.objective}, subspaces {', '.join(config.subspaces)}; {len(train_ids)} training and "
          f"{len(val_ids)} validation tracks; {config.batch_size} tracks x {train_data.n_views} views a step",
          file=log)
    monitor = "val_loss" if val_data is not None else "loss"
    plateau = PlateauSchedule(monitor=monitor, factor=config.lr_factor, patience=config.lr_patience,
                              min_lr=config.min_lr, best=state.get("plateau_best"),
                              wait=state.get("plateau_wait", 0), verbose=verbose)
    callbacks = [plateau, RunCheckpoint(run_dir, plateau, state, monitor=monitor),
                 keras.callbacks.CSVLogger(str(run_dir / "log.csv"), append=resume), StopWhenTerminated()]
    history: dict = {}
    try:
        if state["epochs_done"] >= config.epochs:
            print(f"pretrain: {run_dir} already finished {state['epochs_done']} epochs; "
                  "raise --epochs to train more", file=log)
        else:
            try:
                h = model.fit(train_data, validation_data=val_data, epochs=config.epochs,
                              initial_epoch=state["epochs_done"], callbacks=callbacks, verbose=verbose, shuffle=False)
                history = h.history
            except KeyboardInterrupt:
                print(f"\npretrain: interrupted; epochs finished so far are saved in {run_dir}. "
                      f"Continue with: mdsim pretrain {source} --resume {run_dir}", file=log)
                raise
    finally:
        store.close()
    final = read_state(run_dir)
    best = final.get("best_val_loss")
    return PretrainResult(run_dir, final["epochs_done"], float("nan") if best is None else best, history,
                          tuple(model_config.dimensions), Path(store_path))
