"""``mdsim manifold train``: the ternary objective on a features store of notes.

The ``manifold`` backbone reads a constant-Q store (``mdsim prep --features
cqt``), the Inception backbones (``baseline``, ``multi_input``) an STFT store
(mel, CENS, tempogram; the default features) of the same notes. Each step draws
``batch_size`` (anchor, positive, negative) note triples under the chosen
neighbourhood (:mod:`mdsim.training.neighbourhoods`; the paper's batches are 32
triples), a random window of ``n_frames`` frames from each note (a note shorter
than a window is one window, followed by zeros), and takes one Adam step on the
ternary loss (:func:`mdsim.metric.ternary.ternary_loss`). The paper uses plain SGD for
50k iterations; Adam reaches a usable map within a CPU budget of a few
thousand steps, which is what this recipe is for.

A run folder holds::

    RUN_DIR/manifold.json   settings: network, neighbourhood, margins, steps, seed, feature settings
    RUN_DIR/split.json      training and held-out note ids (the held-out notes are never seen)
    RUN_DIR/model.keras     the network (a window -> 3-D point)
    RUN_DIR/log.csv         step, mean loss over the last ``log_every`` steps, seconds
"""

from __future__ import annotations

import csv
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdsim.audio import segment_starts
from mdsim.config import CQT_FEATURES
from mdsim.errors import InputError
from mdsim.model.manifold import MANIFOLD_BACKBONES, MANIFOLD_INPUTS
from mdsim.training.neighbourhoods import get_neighbourhood, sample_triples

#: Fraction of the notes held out for evaluation.
HELD_OUT = 0.25


@dataclass
class Notes:
    """The notes of a features store, in track-id order.

    ``frames[i]`` is a dict ``{feature: float32 (n_bins, T_i)}`` of the features
    the network reads, in its input order (``{"cqt": ...}``; ``{"mel": ...,
    "cens": ..., "tempogram": ...}``), with ``T_i >= n_frames``: a shorter note
    is followed by zeros, as the training loader and ``mdsim embed`` pad a track
    shorter than a segment (in a constant-Q store zero is silence after
    ``log(50 |X| + 1)``); ``instrument[i]`` the first instrument tag (``""``:
    none); ``pitch[i]`` the MIDI number (-1: none); ``metadata[i]`` the
    manifest's other columns.
    """

    track_ids: list
    frames: list
    instrument: list
    pitch: np.ndarray
    metadata: list

    def __len__(self) -> int:
        return len(self.track_ids)

    def subset(self, index) -> "Notes":
        index = list(index)
        return Notes([self.track_ids[i] for i in index], [self.frames[i] for i in index],
                     [self.instrument[i] for i in index], self.pitch[index], [self.metadata[i] for i in index])

    def mean_inputs(self) -> np.ndarray:
        """Mean frame of every note, ``float64 (N, total bins)``: the input-space vectors of the
        ``knn`` neighbourhood and of the PCA and t-SNE baselines.

        The per-bin means over the note's frames (as held: padded to one window) of every
        feature in :attr:`frames`, concatenated in input order: the constant-Q frame (192
        values), or mel, CENS and tempogram (128 + 12 + 384 values, as stored: no weighting,
        so the tempogram's lags are most of the vector).
        """
        means = [np.concatenate([x.mean(axis=1) for x in f.values()]) for f in self.frames]
        return np.stack(means).astype(np.float64)


def load_notes(store, *, n_frames: int, backbone: str = "manifold") -> Notes:
    """Every note of a features store, with the features ``backbone`` reads.

    ``manifold``: a constant-Q store (``mdsim prep --features cqt``); ``baseline``,
    ``multi_input``: an STFT store (``mdsim prep`` with the default features).
    ``store`` is a path or an open :class:`~mdsim.features.store.FeatureStore`.
    """
    from mdsim.features.store import FeatureStore

    if backbone not in MANIFOLD_INPUTS:
        raise InputError(f"unknown manifold backbone {backbone!r} (valid: {', '.join(MANIFOLD_BACKBONES)})")
    names = MANIFOLD_INPUTS[backbone]
    own = not hasattr(store, "track_ids")
    store = FeatureStore(store) if own else store
    try:
        held = store.feature_config.features
        if not set(names) <= set(held):
            if names == CQT_FEATURES:
                raise InputError(f"{store.path} holds {', '.join(held)}, not the constant-Q input of the "
                                 "manifold: prep it with `mdsim prep INPUT --out STORE --features cqt`")
            raise InputError(f"{store.path} holds {', '.join(held)}, not the {', '.join(names)} the {backbone} "
                             "backbone reads: prep it with `mdsim prep INPUT --out STORE --annotate none` "
                             "(the default features), or train --backbone manifold on this store")
        ids, frames, instrument, pitch, metadata = [], [], [], [], []
        for tid in store.track_ids():
            a = store.attrs(tid)
            features = store.features(tid, names=names)
            ids.append(tid)
            frames.append({name: pad_frames(features[name], n_frames) for name in names})
            tags = [t for t in str(a.get("instrument", "")).split(";") if t]
            instrument.append(tags[0] if tags else "")
            pitch.append(int(a.get("pitch", -1)))
            metadata.append(json.loads(a.get("metadata") or "{}"))
    finally:
        if own:
            store.close()
    if len(ids) < 4:
        raise InputError(f"{store.path}: {len(ids)} notes; the manifold needs at least 4")
    return Notes(ids, frames, instrument, np.array(pitch, dtype=np.int64), metadata)


def split_notes(track_ids, *, held_out: float = HELD_OUT, seed: int = 0) -> tuple[list, list]:
    """A seeded random split of note ids into ``(train, held_out)``, each sorted."""
    if not 0.0 < held_out < 1.0:
        raise InputError(f"held_out must be between 0 and 1, got {held_out}")
    ids = sorted(track_ids)
    order = np.random.default_rng(seed).permutation(len(ids))
    n_test = max(1, int(round(held_out * len(ids))))
    test = sorted(ids[i] for i in order[:n_test])
    return sorted(ids[i] for i in order[n_test:]), test


def pad_frames(x, n_frames: int) -> np.ndarray:
    """``(n_bins, T)`` followed by zeros up to ``n_frames`` frames when shorter."""
    return np.pad(x, ((0, 0), (0, n_frames - x.shape[1]))) if x.shape[1] < n_frames else x


def random_windows(frames: list, index, n_frames: int, rng) -> dict:
    """One random window of ``n_frames`` frames from each note in ``index`` (the same frames of
    every feature), ``{feature: float32 (len, n_bins, n_frames)}``."""
    out = {name: [] for name in frames[index[0]]}
    for i in index:
        first = next(iter(frames[i].values()))
        start = rng.integers(0, first.shape[1] - n_frames + 1)
        for name, x in frames[i].items():
            out[name].append(x[:, start:start + n_frames])
    return {name: np.stack(w).astype(np.float32) for name, w in out.items()}


def note_windows(features: dict, n_frames: int, *, every_start: bool) -> dict:
    """The windows of one note, ``{feature: float32 (W, n_bins, n_frames)}``.

    ``every_start``: a window at every frame (hop 1; the ``manifold`` backbone,
    ``W = T - n_frames + 1``); otherwise the non-overlapping segments ``mdsim
    embed`` cuts a track into (:func:`mdsim.audio.segment_starts`; the Inception
    backbones, one window for a note shorter than 3 s). A note shorter than a
    window is zero-padded to one.
    """
    features = {name: pad_frames(np.asarray(x, np.float32), n_frames) for name, x in features.items()}
    T = next(iter(features.values())).shape[1]
    starts = np.arange(T - n_frames + 1) if every_start else segment_starts(T, n_frames)
    frames = starts[:, None] + np.arange(n_frames)
    return {name: np.moveaxis(x[:, frames], 1, 0) for name, x in features.items()}


def note_masks(notes: Notes, neighbourhood: str):
    """The neighbourhood's ``(positive, negative)`` masks over ``notes``."""
    nb = get_neighbourhood(neighbourhood)
    pitch = [None if p < 0 else int(p) for p in notes.pitch]
    inputs = notes.mean_inputs() if nb.input_neighbours is not None else None
    return nb.masks(instrument=notes.instrument, pitch=pitch, inputs=inputs)


@dataclass
class ManifoldRun:
    run_dir: Path
    steps: int
    final_loss: float
    seconds: float


def train_manifold(store, run_dir, *, neighbourhood: str = "instrument", steps: int = 2000,
                   batch_size: int = 32, learning_rate: float = 1e-3, positive_margin: float = 0.0,
                   negative_margin: float = 1.0, held_out: float = HELD_OUT, seed: int = 0,
                   config=None, log_every: int = 100, shuffle_labels: bool = False, log=None) -> ManifoldRun:
    """Train a manifold network on the training notes of a features store.

    Parameters
    ----------
    store : path of a store of the notes: written by ``mdsim prep --features cqt`` for the
        ``manifold`` backbone, by ``mdsim prep`` (the default STFT features) for ``baseline``
        and ``multi_input``
    run_dir : a new folder for the run
    neighbourhood : str
        A name of :data:`mdsim.training.neighbourhoods.NEIGHBOURHOODS`.
    steps, batch_size : int
        Optimiser steps, and triples per step (the paper: 32).
    learning_rate : float
        Adam's step size.
    positive_margin, negative_margin : float
        ``m_p`` and ``m_n`` of the ternary loss (defaults: those of
        :mod:`mdsim.metric.ternary`, written out so this module loads without Keras).
    held_out, seed : float, int
        Fraction of notes kept out of training (:func:`split_notes`); seed of the
        split, the initial weights and the sampling.
    config : mdsim.model.manifold.ManifoldConfig, optional
        The network (default: the paper's five layers on 8-frame windows). An
        Inception backbone takes the store's bins, and its segment as the window
        unless ``n_frames`` is set; its input z-scoring
        (:class:`~mdsim.model.normalization.Standardize`) is fitted on the
        training notes' windows before the first step.
    shuffle_labels : bool
        Permute the training notes' labels first: a control whose map must
        score at chance (used by the tests; never by a real run).

    Returns
    -------
    ManifoldRun
    """
    import keras

    from mdsim.metric.ternary import TernaryLoss, check_margins
    from mdsim.model.manifold import ManifoldConfig, build_manifold_network, build_ternary_model, network_input

    log = log if log is not None else sys.stderr
    config = config if config is not None else ManifoldConfig()
    positive_margin, negative_margin = check_margins(positive_margin, negative_margin)
    get_neighbourhood(neighbourhood)
    if steps < 1 or batch_size < 1:
        raise InputError(f"steps and batch_size must be positive (got {steps}, {batch_size})")
    run_dir = Path(run_dir)
    if (run_dir / "model.keras").exists():
        raise InputError(f"{run_dir} already holds a manifold run; choose another --out")
    run_dir.mkdir(parents=True, exist_ok=True)

    from mdsim.features.store import FeatureStore

    with FeatureStore(store) as st:
        feature_config = st.feature_config
        config = config.for_store(feature_config)
        notes = load_notes(st, n_frames=config.n_frames, backbone=config.backbone)
    if not config.inception and notes.frames[0]["cqt"].shape[0] != config.n_bins:
        raise InputError(f"{store} has {notes.frames[0]['cqt'].shape[0]} constant-Q bins; "
                         f"the network reads {config.n_bins}")
    train_ids, test_ids = split_notes(notes.track_ids, held_out=held_out, seed=seed)
    pos = {t: i for i, t in enumerate(notes.track_ids)}
    train = notes.subset(pos[t] for t in train_ids)
    rng = np.random.default_rng(seed)
    if shuffle_labels:
        perm = rng.permutation(len(train))
        train = Notes(train.track_ids, train.frames, [train.instrument[i] for i in perm], train.pitch[perm],
                      train.metadata)
    positive, negative = note_masks(train, neighbourhood)

    keras.utils.set_random_seed(seed)
    network = build_manifold_network(config, feature_config=feature_config)
    if config.inception:
        from mdsim.model.normalization import fit_normalization

        fit_normalization(network, (note_windows(f, config.n_frames, every_start=False) for f in train.frames))
    model = build_ternary_model(network)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate),
                  loss=TernaryLoss(positive_margin=positive_margin, negative_margin=negative_margin))
    dummy = np.zeros((batch_size, 1), np.float32)
    settings = {"network": config.to_dict(), "neighbourhood": neighbourhood, "steps": steps,
                "batch_size": batch_size, "learning_rate": learning_rate, "optimizer": "adam",
                "positive_margin": positive_margin, "negative_margin": negative_margin, "held_out": held_out,
                "seed": seed, "shuffle_labels": shuffle_labels, "feature_config": feature_config.to_dict(),
                "store": str(Path(store).resolve())}
    (run_dir / "manifold.json").write_text(json.dumps(settings, indent=1, sort_keys=True))
    (run_dir / "split.json").write_text(json.dumps({"train": train_ids, "held_out": test_ids}, indent=1))
    t0 = time.perf_counter()
    losses, loss = [], float("nan")
    with open(run_dir / "log.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "loss", "seconds"])
        for step in range(1, steps + 1):
            triples = sample_triples(positive, negative, batch_size, rng)
            x = {role: network_input(network, random_windows(train.frames, triples[:, k], config.n_frames, rng))
                 for k, role in enumerate(("anchor", "positive", "negative"))}
            losses.append(float(model.train_on_batch(x, dummy)))
            if step % log_every == 0 or step == steps:
                loss = float(np.mean(losses))
                writer.writerow([step, f"{loss:.5f}", f"{time.perf_counter() - t0:.1f}"])
                f.flush()
                print(f"manifold train: step {step}/{steps}, loss {loss:.4f}", file=log)
                losses = []
    network.save(run_dir / "model.keras")
    return ManifoldRun(run_dir, steps, loss, time.perf_counter() - t0)
