"""``mdsim train``: wire the store, the model and the loss into a resumable Keras fit.

A run folder holds::

    RUN_DIR/config.toml     the effective config (model and training), every key
    RUN_DIR/split.json      train / validation track ids
    RUN_DIR/labels.json     the label layout (dimensions, tag vocabularies)
    RUN_DIR/last.keras      model + optimizer after the last finished epoch
    RUN_DIR/best.keras      the model with the lowest validation loss
    RUN_DIR/state.json      epochs done, best validation loss, plateau counter
    RUN_DIR/log.csv         one row of losses and metrics per epoch
    RUN_DIR/tensorboard/    TensorBoard logs (``tensorboard --logdir RUN_DIR``)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdsim.errors import InputError
from mdsim.features.store import FeatureStore
from mdsim.labels import LabelLayout
from mdsim.training.config import TrainConfig, read_run_config, write_run_config
from mdsim.training.data import (TrackTable, WindowBatches, can_form_triplets, default_steps, run_split,
                                 trainable_dimensions)


@dataclass
class TrainResult:
    run_dir: Path
    epochs_done: int
    best_val_loss: float
    history: dict
    dimensions: tuple
    skipped_dimensions: dict
    #: What ``best_val_loss`` is the best of: ``"val_loss"``, or ``"loss"`` (the training
    #: loss) when the validation tracks cannot form a triplet.
    monitor: str = "val_loss"


def _build_tables(store: FeatureStore, model_config, train_config: TrainConfig, run_dir: Path, resume: bool,
                  log, tracks=None, write: bool = True):
    table, n_short = TrackTable.from_store(store, min_frames=model_config.n_frames,
                                           pad_short=train_config.pad_short,
                                           min_key_probability=train_config.min_key_probability)
    if table.unsure_keys:
        print(f"train: {table.unsure_keys} estimated keys with a probability below "
              f"{train_config.min_key_probability} are not trained on (min_key_probability)", file=log)
    if tracks is not None and not resume:
        wanted = set(tracks)
        unknown = sorted(wanted - set(table.track_ids))
        if unknown:
            raise InputError(f"{len(unknown)} of the {len(wanted)} tracks to train on are not trainable tracks of "
                             f"{store.path} (e.g. {unknown[0]!r}); check the list against `mdsim inspect`")
        table = table.subset([i for i, t in enumerate(table.track_ids) if t in wanted])
    if n_short:
        print(f"train: {n_short} tracks shorter than one {model_config.n_frames}-frame window are "
              + ("zero-padded" if train_config.pad_short else "excluded (pad_short is off)"), file=log)
    if len(table) < 4:
        left_out = f" ({n_short} shorter than a window left out)" if n_short and not train_config.pad_short else ""
        raise InputError(f"{store.path}: {len(table)} tracks to train on{left_out}; "
                         "need at least 4 (anchor, positive, negatives)")
    train_ids, val_ids = run_split(table, run_dir / "split.json", resume=resume, seed=train_config.seed,
                                   validation_fraction=train_config.validation_fraction, write=write)
    pos = {t: i for i, t in enumerate(table.track_ids)}
    train = table.subset([pos[t] for t in train_ids])
    val = table.subset([pos[t] for t in val_ids])
    return train, val


def train(store_path, run_dir, *, model_config=None, train_config: TrainConfig | None = None,
          resume: bool = False, tracks=None, verbose: int = 1, log=None) -> TrainResult:
    """Train (or resume) a conditional similarity network on a features store.

    Parameters
    ----------
    store_path : path of a store written by ``mdsim prep``
    run_dir : folder for checkpoints, logs, config and split
    model_config : mdsim.model.ModelConfig, optional
        Ignored on resume (the run's own config is used).
    train_config : TrainConfig, optional
        On resume, only ``epochs``, ``eager`` and ``devices`` may differ from the run's config.
    resume : bool
        Continue ``run_dir`` from its last finished epoch, with the optimizer state.
    tracks : list of str, optional
        Train (and validate) on these tracks of the store only; a resumed run keeps
        the tracks of its ``split.json``.
    log : file, optional
        Where notes and the model summary go (default: ``sys.stderr`` at call time).

    Returns
    -------
    TrainResult
    """
    import keras

    from mdsim.metric import ConditionalTripletLoss
    from mdsim.model import ModelConfig, build_model, fit_normalization, load_model_file, summarize

    log = log if log is not None else sys.stderr
    run_dir = Path(run_dir)
    process, processes = start_processes()
    chief = process == 0  # the one process that writes the run folder
    if resume:
        if not (run_dir / "config.toml").exists():
            raise InputError(f"{run_dir}: nothing to resume (no config.toml); start a run with --out")
        saved_model_config, saved_train = read_run_config(run_dir / "config.toml")
        model_config = saved_model_config
        given = train_config if train_config is not None else saved_train
        train_config = saved_train.replace(epochs=given.epochs, eager=given.eager, devices=given.devices)
    else:
        if (run_dir / "state.json").exists():
            raise InputError(f"{run_dir} already holds a run; continue it with --resume {run_dir}, "
                             "or choose another --out")
        model_config = model_config or ModelConfig()
        train_config = train_config or TrainConfig()
    unknown = sorted(set(train_config.pair_shares) - set(model_config.dimensions))
    if unknown:
        raise InputError(f"pair_shares name {', '.join(map(repr, unknown))}, which the model does not have "
                         f"(dimensions: {', '.join(model_config.dimensions)}); drop it or add it to --dims")
    run_dir.mkdir(parents=True, exist_ok=True)

    from mdsim.model import check_feature_config
    from mdsim.training.callbacks import PlateauSchedule, RunCheckpoint, StopWhenTerminated, read_state, recover_last

    store = FeatureStore(store_path)
    check_feature_config(model_config, store.feature_config, source=f"features store {store_path}")
    if processes > 1:
        _check_processes(train_config, processes)
    train_t, val_t = _build_tables(store, model_config, train_config, run_dir, resume, log, tracks, write=chief)
    dims, why = trainable_dimensions(train_t, model_config.dimensions)
    for d, reason in why.items():
        print(f"train: dimension {d!r} is not trained ({reason}); its subspace stays untrained", file=log)
    if not dims:
        raise InputError(f"{store_path}: no trainable dimension among {', '.join(model_config.dimensions)} "
                         f"({'; '.join(f'{d}: {r}' for d, r in why.items())}); add labels to the manifest")
    if len(train_t) < train_config.batch_size // 2:
        print(f"train: note: {len(train_t)} training tracks for batches of {train_config.batch_size}; "
              "tracks repeat within a batch (as different windows)", file=log)

    layout_path = run_dir / "labels.json"
    if resume and layout_path.exists():
        layout = LabelLayout.from_dict(json.loads(layout_path.read_text()))
    else:
        layout = LabelLayout.from_records(dims, train_t.labels + val_t.labels)
        if chief:
            layout_path.write_text(json.dumps(layout.to_dict(), indent=1))
    if chief:
        write_run_config(run_dir / "config.toml", model_config, train_config)

    # a dimension left untrained (no pairs) takes no share
    shares = {d: n for d, n in train_config.pair_shares.items() if d in layout.dimensions}
    slices = dict(zip(model_config.dimensions, _slices(model_config)))
    subspaces = [slices[d] for d in layout.dimensions]
    seg = model_config.n_frames
    steps = train_config.steps_per_epoch or default_steps(len(train_t), train_config.batch_size)
    train_data = WindowBatches(store.path, train_t, layout, inputs=model_config.inputs,
                               batch_size=train_config.batch_size, steps=steps, segment_frames=seg,
                               seed=train_config.seed, workers=train_config.workers,
                               pair_shares=shares)
    if shares:
        per_batch = train_data.sampler.pairs_per_batch()
        print("train: pairs per batch (pair_shares " + ", ".join(f"{d}={n}" for d, n in shares.items())
              + "): " + ", ".join(f"{d} {n:.1f}" for d, n in per_batch.items()), file=log)
    val_data = None
    if len(val_t) >= 2 and not can_form_triplets(val_t, layout.dimensions):
        print(f"train: the {len(val_t)} validation tracks are similar in every trained dimension, so no "
              "validation triplet exists and its loss would be 0; monitoring the training loss", file=log)
    elif len(val_t) >= 2:
        try:
            vsteps = train_config.validation_steps or default_steps(len(val_t), train_config.batch_size)
            val_data = WindowBatches(store.path, val_t, layout, inputs=model_config.inputs,
                                     batch_size=train_config.batch_size, steps=vsteps, segment_frames=seg,
                                     seed=train_config.seed + 1, fixed=True, workers=train_config.workers,
                                     pair_shares=shares)
        except InputError:
            print("train: validation tracks have no similar pairs; monitoring the training loss", file=log)
    state = read_state(run_dir) if resume else {"epochs_done": 0, "best_val_loss": None, "plateau_wait": 0}
    if resume:
        recover_last(run_dir, state)
    train_data.epoch = state["epochs_done"]
    # float16 batches where the step casts them cheaply; TensorFlow's CPU kernels have no
    # float16 path (oneDNN says so, as an error line, at the first cast): float32 there
    stored_dtype = keras.backend.backend() != "tensorflow" or _has_gpu()
    for data in (train_data, val_data):
        if data is not None:
            data.process = (process, processes)
            data.stored_dtype = stored_dtype

    # the dtype policy and the distribution hold while the model is built, compiled and fitted
    with precision_policy(train_config.mixed_precision), distribution_scope(train_config.devices):
        keras.utils.set_random_seed(train_config.seed)
        loss = ConditionalTripletLoss(layout=layout, subspaces=subspaces,
                                      triplet_margin=train_config.triplet_margin,
                                      mining_margin=train_config.mining_margin, fallback=train_config.fallback)
        # <dim>_loss and <dim>_semihard, recorded by the loss as it computes them (one mining per step)
        metrics = loss.statistics()
        if resume and (run_dir / "last.keras").exists():
            # weights, normalisation, optimizer state and learning rate as saved
            model, _ = load_model_file(run_dir / "last.keras", compile=True)
            _check_resumed_features(model, model_config, store)
            print(f"train: resuming {run_dir} after epoch {state['epochs_done']}", file=log)
            optimizer = model.optimizer  # its state as saved; the loss and metrics are linked anew
        else:
            # The store's feature settings travel with the model (mdsim.load_model embeds with them).
            model = build_model(model_config, feature_config=store.feature_config)
            transfer = None
            if train_config.init_from:
                from mdsim.model.saving import initialize_from

                transfer = initialize_from(model, train_config.init_from)
                print(f"train: initialised from {train_config.init_from}: {transfer.describe()}", file=log)
            if transfer is None or not transfer.normalization:
                norm_batches = _normalization_batches(train_data, train_config.normalization_windows)
                fit_normalization(model, norm_batches)  # on plain windows: embedding sees unaugmented audio
            optimizer = keras.optimizers.Adam(learning_rate=train_config.learning_rate)
        if not train_config.eager:
            use_compile_cache(log, command="train")
        model.compile(optimizer=optimizer, loss=loss, metrics=metrics, **compile_options(eager=train_config.eager))

        if train_config.augment != "none":
            train_data.augment = train_config.augmentation
            print(f"train: augmenting training windows ({_describe_augmentation(train_config)})", file=log)
        print(summarize(model), file=log)
        # A compact store's tempogram is computed in the step from the envelope (the loader then
        # copies 4 bytes a frame); the model itself, which the checkpoints save, keeps its
        # "tempogram" input. An augmented run computes it on the CPU, from the stretched features.
        trainer = model
        if "tempogram" in model_config.inputs and all(d is None or d.can_deliver_envelope()
                                                      for d in (train_data, val_data)):
            from mdsim.model.tempogram import EnvelopeTrainer

            for data in (train_data, val_data):
                if data is not None:
                    data.envelope = True
            print("train: the tempogram is computed in the training step from the store's onset envelope",
                  file=log)
            trainer = EnvelopeTrainer(model, win_length=store.feature_config.tempogram_win_length,
                                      cyclic=store.feature_config.cyclic_tempogram)
            # the same optimizer object: its state is saved with the model and restored on resume
            trainer.compile(optimizer=model.optimizer, loss=loss, metrics=metrics,
                            **compile_options(eager=train_config.eager))
        monitor = "val_loss" if val_data is not None else "loss"
        plateau = PlateauSchedule(monitor=monitor, factor=train_config.lr_factor, patience=train_config.lr_patience,
                                  min_lr=train_config.min_lr, best=state.get("plateau_best"),
                                  wait=state.get("plateau_wait", 0), verbose=verbose)
        # Saving a model gathers its variables from every process, so every process saves at the
        # same points: the others into a folder of their own that is removed at the end.
        scratch = None if chief else Path(tempfile.mkdtemp(prefix=f"mdsim-process{process}-"))
        callbacks = [plateau, RunCheckpoint(run_dir if chief else scratch, plateau, state, monitor=monitor,
                                            model=model)]
        if chief:
            callbacks += [
                keras.callbacks.CSVLogger(str(run_dir / "log.csv"), append=resume),
                keras.callbacks.TensorBoard(log_dir=str(run_dir / "tensorboard"), write_graph=False),
            ]
        callbacks.append(StopWhenTerminated())
        history: dict = {}
        if state["epochs_done"] >= train_config.epochs:
            print(f"train: {run_dir} already finished {state['epochs_done']} epochs; "
                  "raise --epochs to train more", file=log)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
        else:
            try:
                # shuffle=False: batch i of epoch e is already a random draw of (seed, e, i); Keras'
                # own shuffling of the batch order would follow the process's global random state,
                # so a resumed run would see the same batches in another order.
                h = trainer.fit(train_data, validation_data=val_data, epochs=train_config.epochs,
                                initial_epoch=state["epochs_done"], callbacks=callbacks, verbose=verbose,
                                shuffle=False)
                history = h.history
            except KeyboardInterrupt:
                print(f"\ntrain: interrupted; epochs finished so far are saved in {run_dir}. "
                      f"Continue with: mdsim train {store_path} --resume {run_dir}", file=log)
                raise
            finally:
                store.close()
                if scratch is not None:
                    shutil.rmtree(scratch, ignore_errors=True)
    if not chief:  # the chief wrote the run folder; this process has the same history
        done = state["epochs_done"] + len(history.get("loss", []))
        losses = [v for v in history.get(monitor, []) if np.isfinite(v)]
        return TrainResult(run_dir, done, min(losses) if losses else float("nan"), history,
                           tuple(layout.dimensions), why, monitor=monitor)
    final = read_state(run_dir)
    best = final.get("best_val_loss")
    return TrainResult(run_dir, final["epochs_done"], float("nan") if best is None else best,
                       history, tuple(layout.dimensions), why, monitor=monitor)


#: The environment variables of Keras' multi-process launch (``keras.distribution.initialize``).
PROCESS_ENVIRONMENT = ("KERAS_DISTRIBUTION_JOB_ADDRESSES", "KERAS_DISTRIBUTION_NUM_PROCESSES",
                       "KERAS_DISTRIBUTION_PROCESS_ID")
_processes_started = None


def start_processes() -> tuple[int, int]:
    """``(this process's index, number of processes)`` of a multi-process JAX run, started once.

    A run over several processes (machines, or processes on one machine) is launched the
    way Keras launches one: every process runs the same ``mdsim train`` command with
    ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` (the coordinator's ``host:port`` first),
    ``KERAS_DISTRIBUTION_NUM_PROCESSES`` and its own ``KERAS_DISTRIBUTION_PROCESS_ID`` set;
    this calls ``keras.distribution.initialize()`` (``jax.distributed.initialize``) before
    anything runs on a device, with Gloo for the collectives of CPU devices. Without those
    variables: ``(0, 1)``, nothing started.
    """
    global _processes_started
    if _processes_started is not None:
        return _processes_started
    count = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "").strip()
    if not count:
        return 0, 1
    if not count.isdigit():
        raise InputError(f"KERAS_DISTRIBUTION_NUM_PROCESSES={count!r} is not a number of processes")
    if int(count) <= 1:
        return 0, 1
    import keras

    if keras.backend.backend() != "jax":
        raise InputError(f"KERAS_DISTRIBUTION_NUM_PROCESSES={count}: training over several processes needs the "
                         f"JAX backend (KERAS_BACKEND=jax), not {keras.backend.backend()}")
    missing = [v for v in PROCESS_ENVIRONMENT if not os.environ.get(v)]
    if missing:
        raise InputError(f"a multi-process run needs {', '.join(PROCESS_ENVIRONMENT)}; {', '.join(missing)} "
                         "not set")
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    keras.distribution.initialize()
    _processes_started = (jax.process_index(), jax.process_count())
    return _processes_started


def _check_processes(train_config: TrainConfig, processes: int) -> None:
    import keras

    available = len(keras.distribution.list_devices())
    if train_config.devices != available:
        raise InputError(f"--devices {train_config.devices}: a run over {processes} processes trains on every "
                         f"device of every process; give --devices {available}")
    if train_config.batch_size % processes:
        raise InputError(f"batch_size {train_config.batch_size} does not split evenly over {processes} processes")


#: Keras' ``jit_compile`` of the training step per backend (docs/training.md has the figures).
#: JAX: ``jax.jit`` of the whole step (without it JAX runs the step op by op). TensorFlow: a
#: ``tf.function`` graph without XLA, whose build is the shorter of the two on a CPU. PyTorch:
#: eager, as Keras' own ``"auto"`` chooses (``torch.compile`` is an option Keras marks experimental).
JIT_COMPILE = {"jax": True, "tensorflow": False, "torch": False}


def compile_options(*, eager: bool) -> dict:
    """``jit_compile`` and ``run_eagerly`` for ``model.compile`` on the current Keras backend."""
    import keras

    return {"jit_compile": False if eager else JIT_COMPILE.get(keras.backend.backend(), "auto"),
            "run_eagerly": eager}


#: Where JAX keeps compiled training steps between runs, unless ``MDSIM_COMPILE_CACHE`` says
#: otherwise (a folder, or ``off``); ``$XDG_CACHE_HOME`` moves the default.
COMPILE_CACHE_ENV = "MDSIM_COMPILE_CACHE"
#: The cache's size bound: JAX evicts the least recently used entries beyond it.
COMPILE_CACHE_BYTES = 2 * 1024 ** 3


def compile_cache_dir() -> Path | None:
    """The folder of JAX's persistent compilation cache that training uses, or None when off:
    ``$MDSIM_COMPILE_CACHE`` (``off``, ``0``, ``none`` or ``false`` turn it off), else
    ``$XDG_CACHE_HOME/mdsim/jax`` (``~/.cache/mdsim/jax``)."""
    setting = os.environ.get(COMPILE_CACHE_ENV, "").strip()
    if setting.lower() in ("off", "0", "none", "false"):
        return None
    if setting:
        return Path(setting).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "mdsim" / "jax"


def use_compile_cache(log=None, command: str | None = None) -> Path | None:
    """On JAX, keep compiled steps in :func:`compile_cache_dir`, so that a resumed or repeated
    run with the same model, batch and devices loads its step instead of compiling it again
    (experiments/bench_train.py ``--compile-cache`` measures the first step both ways). A cache
    folder the user gave JAX itself (``JAX_COMPILATION_CACHE_DIR``) is kept. Other backends:
    nothing (TensorFlow trains a graph without XLA, PyTorch eagerly). With ``command``, says on
    ``log`` where the cache is. Returns the folder used."""
    path = _set_compile_cache(log)
    if path is not None and command:
        print(f"{command}: compiled steps are kept in {path} ({COMPILE_CACHE_ENV}=off turns this off)",
              file=log or sys.stderr)
    return path


def _set_compile_cache(log) -> Path | None:
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    path = compile_cache_dir()
    if path is None:
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        print(f"warning: no compilation cache ({path}: {e.strerror}); set {COMPILE_CACHE_ENV} to a writable "
              f"folder, or to off", file=log or sys.stderr)
        return None
    if jax.config.jax_compilation_cache_max_size == -1:
        jax.config.update("jax_compilation_cache_max_size", COMPILE_CACHE_BYTES)
    jax.config.update("jax_compilation_cache_dir", str(path))
    return path


@contextlib.contextmanager
def precision_policy(mixed_precision: str):
    """Keras' global dtype policy for ``TrainConfig.mixed_precision`` while inside (restored after)."""
    import keras

    if mixed_precision == "off":
        yield
        return
    policy = mixed_precision
    if policy == "auto":
        policy = "mixed_float16" if _has_gpu() else "mixed_bfloat16"
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _has_gpu() -> bool:
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.devices()[0].platform == "gpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


@contextlib.contextmanager
def distribution_scope(devices: int):
    """Data parallelism over ``devices`` devices while inside (nothing for one).

    JAX: Keras' ``DataParallel`` over the first ``devices`` of ``keras.distribution.list_devices()``
    (each device gets ``batch_size / devices`` windows; the step, the loss and its mining see the
    whole batch, as on one device). TensorFlow: ``tf.distribute.MirroredStrategy`` over the first
    GPUs, or over logical CPUs where there is no GPU; each replica computes the loss, and mines,
    on its own share of the batch. PyTorch: Keras has no distribution for it.
    """
    import keras

    if devices == 1:
        yield
        return
    backend = keras.backend.backend()
    if backend == "jax":
        available = keras.distribution.list_devices()
        if len(available) < devices:
            raise InputError(f"--devices {devices}: JAX sees {len(available)} device(s) ({', '.join(available)}); "
                             "on a CPU, XLA_FLAGS=--xla_force_host_platform_device_count=N makes N")
        previous = keras.distribution.distribution()
        # auto_shard_dataset=False: over several processes each WindowBatches reads its own share
        # of every batch (WindowBatches.process); Keras' auto-sharding is for tf.data only
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=available[:devices],
                                                                            auto_shard_dataset=False))
        try:
            yield
        finally:
            keras.distribution.set_distribution(previous)
    elif backend == "tensorflow":
        import tensorflow as tf

        available = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        if len(available) < devices:
            raise InputError(f"--devices {devices}: TensorFlow sees {len(available)} device(s); on a CPU, "
                             "split it with tf.config.set_logical_device_configuration before training")
        with tf.distribute.MirroredStrategy([d.name for d in available[:devices]]).scope():
            yield
    else:
        raise InputError(f"--devices {devices} needs the JAX or TensorFlow backend (Keras distributes "
                         f"neither {backend} models nor their data)")


def _check_resumed_features(model, model_config, store) -> None:
    """The resumed model's feature settings (none before format version 2) against the store's."""
    from mdsim.model import feature_config_of
    from mdsim.model.head import find_head

    saved = feature_config_of(model_config, find_head(model).feature_config)
    diff = saved.differences(store.feature_config, names=("run", "store"))
    if diff:
        raise InputError(f"{store.path} was made with other feature settings than the run's model "
                         f"({'; '.join(diff)}); resume with the store the run was trained on")


def _describe_augmentation(c: TrainConfig) -> str:
    return (f"mode {c.augment}: stretch p={c.stretch_probability} x{c.stretch_range[0]:g}-{c.stretch_range[1]:g}, "
            f"pitch p={c.pitch_probability} {c.pitch_range[0]:+d}..{c.pitch_range[1]:+d} semitones, "
            f"EQ p={c.eq_probability} +-{c.eq_gain_db:g} dB")


def _slices(model_config) -> list:
    from mdsim.model import subspace_slices

    s = subspace_slices(model_config)
    return [(s[d].start, s[d].stop) for d in model_config.dimensions]


def _normalization_batches(data: WindowBatches, n_windows: int):
    """Random training windows for the input statistics (at least one batch; whole batches, so
    every process of a multi-process run fits the same statistics)."""
    n_batches = max(1, -(-n_windows // data.batch_size))
    for i in range(min(n_batches, len(data))):
        yield data.global_batch(i)[0]
