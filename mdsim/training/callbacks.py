"""Callbacks of a training run whose state is saved with the run, so a resume continues exactly.

- :class:`PlateauSchedule`: the learning rate times ``factor`` after ``patience``
  epochs without improvement (Keras' ``ReduceLROnPlateau`` rule, without cooldown),
  its counters readable and restorable through public attributes.
- :class:`StopWhenTerminated`: ends the fit at the next batch once a SIGTERM was received
  (:func:`mdsim.errors.stop_if_terminated`).
- :class:`RunCheckpoint`: after every epoch, ``last.keras`` (model and optimizer),
  ``best.keras`` when the monitored loss improved, and ``state.json``, written in
  an order that a kill at any moment cannot leave inconsistent (below).

The write order of an epoch's checkpoint: the model goes to ``last.tmp.keras``;
``best.keras`` is replaced if the epoch improved; ``state.json`` is replaced
(atomically) with the epoch count and the SHA-256 of ``last.tmp.keras``; only then
is ``last.tmp.keras`` renamed to ``last.keras``. :func:`recover_last` finishes or
discards a checkpoint a kill interrupted: ``state.json`` is the commit point.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np

from mdsim.audio import file_hash
from mdsim.errors import InputError, stop_if_terminated


def file_sha256(path) -> str:
    return file_hash(path, algorithm="sha256")


def read_state(run_dir: Path) -> dict:
    p = Path(run_dir) / "state.json"
    return json.loads(p.read_text()) if p.exists() else {"epochs_done": 0, "best_val_loss": None,
                                                          "plateau_wait": 0}


def write_state(run_dir: Path, state: dict) -> None:
    import os

    tmp = Path(run_dir) / "state.json.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(state, indent=1))
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(Path(run_dir) / "state.json")


def recover_last(run_dir: Path, state: dict) -> None:
    """Make ``last.keras`` the model ``state.json`` describes, after a kill mid-checkpoint.

    Raises
    ------
    InputError
        When ``last.keras`` is not the model of ``state.json`` (changed by hand).
    """
    run_dir = Path(run_dir)
    tmp, last = run_dir / "last.tmp.keras", run_dir / "last.keras"
    want = state.get("last_sha256")
    if tmp.exists():
        if want is not None and file_sha256(tmp) == want:
            tmp.replace(last)  # killed after state.json, before the rename
        else:
            tmp.unlink()  # killed before state.json: the epoch did not finish
    if want is not None and last.exists() and file_sha256(last) != want:
        raise InputError(f"{last} is not the model {run_dir / 'state.json'} describes (after epoch "
                         f"{state.get('epochs_done')}); restore it, or start a new run")


class PlateauSchedule(keras.callbacks.Callback):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs whose ``monitor``
    did not fall below ``best - min_delta``; never below ``min_lr``.

    ``best`` and ``wait`` are the counters a run saves and a resume passes back.
    Adds ``learning_rate`` to the epoch's logs.
    """

    def __init__(self, *, monitor: str, factor: float, patience: int, min_lr: float, min_delta: float = 1e-4,
                 best: float | None = None, wait: int = 0, verbose: int = 0):
        super().__init__()
        self.monitor, self.factor, self.patience = monitor, float(factor), int(patience)
        self.min_lr, self.min_delta, self.verbose = float(min_lr), float(min_delta), verbose
        self.best = float(best) if best is not None else float("inf")
        self.wait = int(wait)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        lr = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        current = logs.get(self.monitor)
        if current is not None and np.isfinite(current):
            if current < self.best - self.min_delta:
                self.best, self.wait = float(current), 0
            else:
                self.wait += 1
                if self.wait >= self.patience:
                    if lr > np.float32(self.min_lr):
                        lr = max(lr * self.factor, self.min_lr)
                        self.model.optimizer.learning_rate = lr
                        if self.verbose:
                            print(f"\nEpoch {epoch + 1}: learning rate reduced to {lr:.3g}")
                    self.wait = 0
        logs["learning_rate"] = lr


class StopWhenTerminated(keras.callbacks.Callback):
    """Raise :class:`mdsim.errors.Terminated` after a batch or an epoch once a stop was
    requested: the interrupt that SIGTERM raised can be lost in a finalizer, and a fit of many
    epochs would then run on. Placed after :class:`RunCheckpoint`, so a finished epoch is kept."""

    def on_train_batch_end(self, batch, logs=None):
        stop_if_terminated()

    def on_test_batch_end(self, batch, logs=None):
        stop_if_terminated()

    def on_epoch_end(self, epoch, logs=None):
        stop_if_terminated()


class RunCheckpoint(keras.callbacks.Callback):
    """Save ``last.keras``, ``best.keras`` and ``state.json`` after every epoch (module docstring).

    ``model``: the model to save, when the one being fitted wraps it (a compact store's
    :class:`mdsim.model.tempogram.EnvelopeTrainer`, which shares its variables and
    optimizer); ``None``: the fitted model itself.
    """

    def __init__(self, run_dir: Path, plateau: PlateauSchedule, initial: dict, *, monitor: str, model=None):
        super().__init__()
        self.run_dir, self.plateau, self.monitor = Path(run_dir), plateau, monitor
        self.state = dict(initial)
        self._saved = model

    def _model_to_save(self):
        return self.model if self._saved is None else self._saved

    def on_epoch_end(self, epoch, logs=None):
        from mdsim.model import save_model

        logs = logs or {}
        val = logs.get(self.monitor)
        tmp = self.run_dir / "last.tmp.keras"
        save_model(self._model_to_save(), tmp)
        best = self.state.get("best_val_loss")
        if val is not None and np.isfinite(val) and (best is None or val < best):
            self.state["best_val_loss"] = float(val)
            btmp = self.run_dir / "best.tmp.keras"
            shutil.copyfile(tmp, btmp)  # the same model: a copy, not a second serialisation
            btmp.replace(self.run_dir / "best.keras")
        self.state.update(epochs_done=epoch + 1, plateau_wait=self.plateau.wait,
                          plateau_best=self.plateau.best if np.isfinite(self.plateau.best) else None,
                          learning_rate=float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)),
                          last_sha256=file_sha256(tmp), monitor=self.monitor)
        write_state(self.run_dir, self.state)
        tmp.replace(self.run_dir / "last.keras")
