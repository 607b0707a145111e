"""Training data from a features store: split, conditional batch sampling, loading.

The store is read lazily, one 3 s window per item, never whole. A batch is
built so that every trained dimension has anchor-positive pairs: the
sampler walks the dimensions in turn and adds a pair similar in that
dimension, label first, then tracks: for a tag dimension a tag (uniformly
among those at least two tracks share), then two tracks holding it; for key
a tonic, then two tracks in it (a key or its parallel); tempo has no
classes, so an anchor track, then one within 5 BPM of it up to tempo
octaves; for sound (self-supervised) a track, twice. Then a random window
of each track (a track shorter than a window, kept with ``pad_short``, gives
its whole length followed by zeros, as embedding pads it). Negatives are
whatever else the batch holds (mined inside the loss). With augmentation on,
each window may be time-stretched, pitch-shifted and equalised on its
features (:mod:`mdsim.features.augment`) and its labels follow the
augmentation's mode.
"""

from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mdsim.errors import InputError, StoreError
from mdsim.features.store import FeatureStore, stored_names
from mdsim.labels import (MAX_TEMPO_OCTAVE, SOUND, TAG_DIMENSIONS, TEMPO_TOLERANCE_BPM, LabelLayout, is_labelled,
                          similarity_matrix)
from mdsim.training.config import check_pair_shares


@dataclass
class TrackTable:
    """The trainable tracks of a store: ids, frame counts, labels, groups."""

    track_ids: list
    n_frames: np.ndarray
    labels: list
    groups: list
    #: Estimated keys dropped by ``from_store``'s ``min_key_probability``.
    unsure_keys: int = 0

    @classmethod
    def from_store(cls, store: FeatureStore, *, min_frames: int, pad_short: bool = False,
                   min_key_probability: float = 0.0) -> tuple["TrackTable", int]:
        """The store's tracks and how many have fewer than ``min_frames`` frames.

        Those short tracks are left out, unless ``pad_short``: then they are kept,
        and :class:`WindowBatches` zero-pads their one window as embedding does.
        ``min_key_probability`` (0: off): an estimated key (not the manifest's) with a
        lower (or no) ``key_probability`` is dropped from the track's labels
        (:attr:`TrainConfig.min_key_probability`); how many is :attr:`unsure_keys`.
        Each track's ``sound`` label is its number in the store's order (the
        self-supervised dimension: a track is similar to itself only).
        """
        ids, frames, labels, groups, short, unsure = [], [], [], [], 0, 0
        for tid in store.track_ids():
            a = store.attrs(tid)
            if int(a["n_frames"]) < min_frames:
                short += 1
                if not pad_short:
                    continue
            ids.append(tid)
            frames.append(int(a["n_frames"]))
            labels.append({**store.labels(tid), SOUND: len(ids) - 1})
            if min_key_probability and labels[-1]["key"] is not None \
                    and a.get("key_source", "manifest") != "manifest" \
                    and not float(a.get("key_probability", np.nan)) >= min_key_probability:
                labels[-1]["key"] = None
                unsure += 1
            groups.append(a.get("group") or "")
        return cls(ids, np.array(frames, dtype=np.int64), labels, groups, unsure), short

    def subset(self, index) -> "TrackTable":
        return TrackTable([self.track_ids[i] for i in index], self.n_frames[index],
                          [self.labels[i] for i in index], [self.groups[i] for i in index])

    def __len__(self):
        return len(self.track_ids)


def splits_by_group(table: TrackTable) -> bool:
    """Whether :func:`split_tracks` splits ``table`` by group (every track has one, and there are two or more)."""
    return all(table.groups) and len(set(table.groups)) > 1


def split_tracks(table: TrackTable, *, validation_fraction: float, seed: int) -> tuple[list, list]:
    """Train/validation track ids; by ``group`` when every track has one, so
    one artist never sits on both sides, else by track."""
    rng = np.random.default_rng(seed)
    use_groups = splits_by_group(table)
    units = sorted(set(table.groups)) if use_groups else list(table.track_ids)
    order = rng.permutation(len(units))
    n_val = int(round(validation_fraction * len(units)))
    if validation_fraction > 0 and n_val == 0 and len(units) > 1:
        n_val = 1
    held = {units[i] for i in order[:n_val]}
    key = table.groups if use_groups else table.track_ids
    train = [t for t, k in zip(table.track_ids, key) if k not in held]
    val = [t for t, k in zip(table.track_ids, key) if k in held]
    return train, val


def trainable_dimensions(table: TrackTable, dimensions) -> tuple[list, dict]:
    """Dimensions with at least one similar pair of distinct tracks, and why others are not.

    Returns
    -------
    (list of str, dict)
        The trainable dimensions (order kept) and ``{dimension: reason}``.
    """
    ok, why = [], {}
    for d in dimensions:
        index = _PositiveIndex(d, table.labels)
        n_labelled = int(sum(is_labelled(d, lab[d]) for lab in table.labels))
        if n_labelled < 2:
            why[d] = f"{n_labelled} of {len(table)} tracks labelled"
        elif not index.anchors.size:
            why[d] = f"{n_labelled} labelled tracks but no two are similar"
        else:
            ok.append(d)
    return ok, why


def can_form_triplets(table: TrackTable, dimensions) -> bool:
    """Whether some dimension has two labelled tracks that are not similar, so that a
    batch of the table's windows holds a negative (a window of the same track is a
    positive). Without one every triplet loss is 0, whatever the model."""
    for d in dimensions:
        values = [lab.get(d) for lab in table.labels]
        sim, labelled = similarity_matrix(d, [v or [] for v in values] if d in TAG_DIMENSIONS else values)
        if (~sim[np.ix_(labelled, labelled)]).any():
            return True
    return False


class _PositiveIndex:
    """For one dimension: the tracks that have a positive (``anchors``), and a sampler of pairs."""

    def __init__(self, dimension: str, labels: list):
        self.dimension = dimension
        values = [lab[dimension] for lab in labels]
        if dimension in TAG_DIMENSIONS:
            by_tag: dict = {}
            for i, v in enumerate(values):
                for t in v or []:
                    by_tag.setdefault(t, []).append(i)
            self._groups = {t: np.array(ix) for t, ix in by_tag.items() if len(ix) > 1}
            member = {i for ix in self._groups.values() for i in ix}
            self.anchors = np.array(sorted(member), dtype=np.int64)
            self._labels = sorted(self._groups)
        elif dimension == "key":
            pc = np.array([-1 if v is None else v % 12 for v in values])
            self._groups = {c: np.flatnonzero(pc == c) for c in range(12)}
            self._groups = {c: ix for c, ix in self._groups.items() if len(ix) > 1}
            self.anchors = np.array(sorted(i for ix in self._groups.values() for i in ix), dtype=np.int64)
            self._labels = sorted(self._groups)
        elif dimension == SOUND:  # every track is its own positive: two windows of it
            self.anchors = np.array([i for i, v in enumerate(values) if v is not None], dtype=np.int64)
        else:  # tempo: sorted tempi and binary search around t * 2**k
            t = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            labelled = np.flatnonzero(np.isfinite(t))
            order = labelled[np.argsort(t[labelled])]
            self._sorted_idx, self._sorted_t, self._t = order, t[order], t
            anchors = [i for i in labelled if len(self._tempo_candidates(i)) > 0]
            self.anchors = np.array(anchors, dtype=np.int64)

    def _tempo_candidates(self, i: int) -> np.ndarray:
        """Tracks similar to ``i`` in tempo, found by binary search.

        ``|t_i - t_j 2**-k| <= tol`` is ``|t_j - t_i 2**k| <= tol 2**k``, so for
        each octave ``k`` the similar tempi form one window around ``t_i 2**k``
        of half-width ``tol * max(1, 2**k)`` (the wider of the rule's two readings).
        """
        out = []
        for k in range(-MAX_TEMPO_OCTAVE, MAX_TEMPO_OCTAVE + 1):
            target = self._t[i] * 2.0 ** k
            tol = TEMPO_TOLERANCE_BPM * max(1.0, 2.0 ** k) * (1 + 1e-12)
            lo, hi = int(np.searchsorted(self._sorted_t, target - tol, side="left")), \
                int(np.searchsorted(self._sorted_t, target + tol, side="right"))
            out.append(self._sorted_idx[lo:hi])
        c = np.unique(np.concatenate(out))
        return c[c != i]

    def pair(self, rng) -> tuple[int, int]:
        """An (anchor, positive) pair: label first for tags and key, anchor first for tempo,
        one track twice for sound.

        Drawing the label first gives a rare tag as many pairs as a common
        one; tempo is continuous, so its anchor is drawn among the tracks
        that have a positive.
        """
        if self.dimension in TAG_DIMENSIONS or self.dimension == "key":
            labels = self._labels
            members = self._groups[labels[rng.integers(len(labels))]]
            a, p = rng.choice(members, size=2, replace=False)
            return int(a), int(p)
        a = int(self.anchors[rng.integers(self.anchors.size)])
        if self.dimension == SOUND:
            return a, a
        pool = self._tempo_candidates(a)
        return a, int(pool[rng.integers(len(pool))])


class ConditionalSampler:
    """Seeded track indices for batches in which every dimension has positives.

    The pairs of a batch are drawn for the dimensions in turn, from a random
    place in the cycle. ``shares`` (``{dimension: n}``, default 1 each) puts a
    dimension ``n`` times in the cycle: with five dimensions and ``{"key": 3}``
    a batch of 32 holds about 7 key pairs instead of 3 (``TrainConfig.pair_shares``).
    Shares of 1 draw exactly what no shares draw.
    """

    def __init__(self, table: TrackTable, dimensions, *, batch_size: int, shares=None):
        self.table, self.dimensions, self.batch_size = table, list(dimensions), batch_size
        shares = dict(shares or {})
        unknown = sorted(set(shares) - set(self.dimensions))
        if unknown:
            raise InputError(f"pair shares name {', '.join(map(repr, unknown))}, not trained here "
                             f"(dimensions: {', '.join(self.dimensions)})")
        check_pair_shares(shares)
        self._index = {d: _PositiveIndex(d, table.labels) for d in self.dimensions}
        usable = [d for d in self.dimensions if self._index[d].anchors.size]
        if not usable:
            raise InputError("no dimension has two similar tracks to form a positive pair")
        self._usable = [d for d in usable for _ in range(shares.get(d, 1))]

    def pairs_per_batch(self) -> dict:
        """The mean number of anchor-positive pairs a batch holds for each dimension."""
        pairs = self.batch_size // 2  # :meth:`batch_pairs` draws B // 2 pairs (and one filler when B is odd)
        cycle = len(self._usable)
        return {d: sum(sum(self._usable[(s + k) % cycle] == d for k in range(pairs)) for s in range(cycle)) / cycle
                for d in dict.fromkeys(self._usable)}

    def batch(self, rng) -> np.ndarray:
        """``batch_size`` track indices (anchor-positive pairs, dimensions in turn)."""
        return self.batch_pairs(rng)[0]

    def batch_pairs(self, rng) -> tuple[np.ndarray, list]:
        """:meth:`batch`, and for each item the dimension its pair was drawn for
        (``None`` for the one filler of an odd batch); the same draws as :meth:`batch`."""
        out, dims = [], []
        start = int(rng.integers(len(self._usable)))
        k = 0
        while len(out) < self.batch_size - 1:
            d = self._usable[(start + k) % len(self._usable)]
            out += self._index[d].pair(rng)
            dims += [d, d]
            k += 1
        if len(out) < self.batch_size:
            out.append(int(rng.integers(len(self.table))))
            dims.append(None)
        return np.array(out[: self.batch_size], dtype=np.int64), dims[: self.batch_size]


def _keras_dataset_base():
    import keras

    return keras.utils.PyDataset


class StoreBatches(_keras_dataset_base()):
    """What every ``keras.utils.PyDataset`` of windows of a store shares: ``steps``
    batches an epoch, a seeded generator per batch (:meth:`_rng`), the store opened
    lazily in the process that reads (:meth:`_open`; loader workers too), the tracks
    found damaged, and the store's bins and feature settings."""

    def __init__(self, store_path, *, steps: int, seed: int, fixed: bool = False, workers: int = 0):
        kwargs = {"workers": workers, "use_multiprocessing": True} if workers > 0 else {}
        super().__init__(**kwargs)
        self.store_path = Path(store_path)
        self.steps, self.seed, self.fixed, self.epoch = int(steps), int(seed), fixed, 0
        self._store = None
        #: Track ids whose features could not be read (checksum mismatch): skipped.
        self.damaged: set = set()
        with FeatureStore(self.store_path) as store:
            self._bins = dict(store.feature_config.n_bins)
            self._feature_config = store.feature_config
            self._stored_names = frozenset(stored_names(store.layout, store.feature_config))

    def __len__(self):
        return self.steps

    def on_epoch_end(self):
        self.epoch += 1

    def _rng(self, index: int, *stream):
        """The generator of batch ``index`` (of every epoch when ``fixed``); ``stream`` names another one."""
        epoch = 0 if self.fixed else self.epoch
        return np.random.default_rng([self.seed, epoch, index, *stream])

    def _open(self) -> FeatureStore:
        if self._store is None:  # opened in the process that reads (loader workers too)
            self._store = FeatureStore(self.store_path)
        return self._store

    def _report_damaged(self, track_id: str, error: Exception) -> None:
        if track_id not in self.damaged:
            self.damaged.add(track_id)
            warnings.warn(f"skipping a damaged track: {error}", stacklevel=3)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_store"] = None
        return state


class WindowBatches(StoreBatches):
    """A ``keras.utils.PyDataset`` of ``(inputs, packed labels)`` batches.

    ``inputs`` is ``{"mel": (B, 128, 259), "cens": ..., "tempogram": ...}``
    (only the features the model reads; float16 as stored, or float32 where
    computed: :meth:`input_dtypes`; with :attr:`envelope`, ``"onset"`` and
    ``"onset_frames"`` stand for ``"tempogram"``); labels are
    :meth:`LabelLayout.encode` rows. Batch ``i`` of epoch ``e`` is a pure
    function of ``(seed, e, i)`` (with ``fixed=True``, of ``(seed, i)``: the
    same validation windows every epoch), so runs are reproducible with any
    number of loader workers.
    """

    def __init__(self, store_path, table: TrackTable, layout: LabelLayout, *, inputs, batch_size: int,
                 steps: int, segment_frames: int, seed: int, fixed: bool = False, workers: int = 0,
                 augment=None, pair_shares=None):
        super().__init__(store_path, steps=steps, seed=seed, fixed=fixed, workers=workers)
        self.table, self.layout, self.inputs = table, layout, tuple(inputs)
        self.batch_size, self.segment_frames = batch_size, segment_frames
        #: :class:`mdsim.features.augment.AugmentConfig` or ``None``; may be set after
        #: construction (training fits its input statistics on plain windows first).
        self.augment = augment
        self.sampler = ConditionalSampler(table, layout.dimensions, batch_size=batch_size, shares=pair_shares)
        self._labels = layout.encode(table.labels)
        self._unlabelled = layout.encode([{}])[0]
        #: ``(index, count)`` of this process among the processes of a multi-process run: each
        #: reads its own contiguous share of every batch (the global batch is the same in every
        #: process). ``(0, 1)``: the whole batch.
        self.process = (0, 1)
        #: Deliver matrices read as stored in the store's dtype (see :meth:`input_dtypes`);
        #: false: float32 throughout.
        self.stored_dtype = True
        #: Deliver the padded onset envelope of each window (``"onset"``, ``(B, 1, W +
        #: win_length - 1)`` float32, and ``"onset_frames"``, ``(B,)`` int32: the frames inside
        #: the track) instead of its ``"tempogram"``, for a model that computes the tempogram in
        #: its step (:class:`mdsim.model.tempogram.EnvelopeTrainer`). Only a compact store
        #: without augmentation can (:meth:`can_deliver_envelope`); the rest read as before.
        self.envelope = False

    def __getitem__(self, index: int):
        return self.read_batch(index, *self.process)

    def global_batch(self, index: int):
        """Batch ``index`` whole, whatever :attr:`process` says (the input statistics are fitted on it)."""
        return self.read_batch(index, 0, 1)

    def read_batch(self, index: int, process: int = 0, processes: int = 1):
        """Rows ``process * B / processes`` to ``(process + 1) * B / processes`` of batch ``index``:
        the tracks, windows and augmentation plans are drawn for the whole batch first, so the
        shares of the processes put together are the batch one process reads."""
        self._open()
        rng = self._rng(index)
        rows, pair_dims = self.sampler.batch_pairs(rng)
        seg = self.segment_frames
        starts = rng.integers(0, np.maximum(self.table.n_frames[rows] - seg, 0) + 1)
        plans = self._plans(index, pair_dims)
        mine = range(process * len(rows) // processes, (process + 1) * len(rows) // processes)
        # zeros: a track shorter than a window is followed by zeros, as Model.segments_from_features pads
        dtypes = self.input_dtypes()
        envelope = self.envelope and "tempogram" in self.inputs
        if envelope and not self.can_deliver_envelope():
            raise InputError("WindowBatches.envelope needs a compact store and no augmentation: the tempogram of "
                             "a full store is read, that of an augmented window computed on the CPU")
        names = [name for name in self.inputs if not (envelope and name == "tempogram")]
        x = {name: np.zeros((len(mine), self._bins[name], seg), dtypes[name]) for name in names}
        if envelope:
            x["onset"] = np.zeros((len(mine), 1, seg + self._feature_config.tempogram_win_length - 1), np.float32)
            x["onset_frames"] = np.zeros(len(mine), np.int32)
        labels = self._labels[rows[mine.start:mine.stop]].copy()
        for i, k in enumerate(mine):
            r, s = rows[k], starts[k]
            tid = self.table.track_ids[r]
            try:
                if plans is None or plans[k].is_identity:
                    self._read_item(self._store, tid, int(s), {name: x[name][i] for name in names})
                    if envelope:
                        x["onset_frames"][i] = self._store.read_envelope(tid, x["onset"][i], int(s))
                else:
                    feats = self._augmented(tid, int(r), int(s), plans[k])
                    labels[i] = self.layout.encode([self.augment.relabel(self.table.labels[r], plans[k])])[0]
                    for name in self.inputs:
                        x[name][i, :, :feats[name].shape[1]] = feats[name]
            except StoreError as e:
                # A damaged track is reported once and skipped: its window is zeros without
                # labels, so it is neither anchor, positive nor negative of any triplet.
                self._report_damaged(tid, e)
                for name in x:
                    x[name][i] = 0  # whatever was read before the damage was found
                labels[i] = self._unlabelled
        return x, labels

    def can_deliver_envelope(self) -> bool:
        """Whether :attr:`envelope` may be set: a compact store (its tempogram is computed, not
        stored) and no augmentation (a stretched or shifted window's tempogram is computed from
        the stretched features on the CPU, :func:`mdsim.features.augment.read_window`)."""
        return "tempogram" not in self._stored_names and "onset" in self._stored_names \
            and not (self.augment is not None and self.augment.enabled)

    def input_dtypes(self) -> dict:
        """The dtype each input is delivered in: the store's own (``float16``) for a matrix
        read as stored, ``float32`` for one computed here (the compact layout's tempogram,
        every input of an augmenting loader). The model casts its inputs to ``float32``
        inside its compiled step, so a stored matrix crosses to the device in half the
        bytes and the host does no conversion; the values are the same."""
        stored = np.dtype(self._feature_config.dtype)
        computed = (self.augment is not None and self.augment.enabled) or not self.stored_dtype
        return {name: np.dtype(np.float32) if computed or name not in self._stored_names else stored
                for name in self.inputs}

    def _read_item(self, store: FeatureStore, track_id: str, start: int, out: dict) -> None:
        """One item's plain window: frames ``start:start + seg`` of ``self.inputs`` into
        ``out`` (a batch's rows; fewer frames at the end of a short track, the rest stays
        zero), through :meth:`FeatureStore.read_window`; an augmented item reads through
        :meth:`_augmented` instead."""
        store.read_window(track_id, out, start)

    def _plans(self, index: int, pair_dims: list):
        """One augmentation plan per item, or ``None`` without augmentation.

        Drawn from their own generator of ``(seed, epoch, index)``, so the tracks and
        windows of a batch are those of the same run without augmentation. In
        ``label`` mode the two windows of a pair drawn for tempo or key share one
        plan (they stay a positive pair, in the new tempo or key).
        """
        if self.augment is None or not self.augment.enabled:
            return None
        rng = self._rng(index, 1)
        plans = [self.augment.draw(rng) for _ in pair_dims]
        if self.augment.mode == "label":
            for i in range(0, len(pair_dims) - 1, 2):
                if pair_dims[i] in ("tempo", "key"):
                    plans[i + 1] = plans[i]
        return plans

    def _augmented(self, track_id, row: int, start: int, plan) -> dict:
        from mdsim.features.augment import read_window

        def read(names, a, b):
            return self._store.features(track_id, names=names, start=a, stop=b)

        return read_window(read, start, self.segment_frames, plan, self.inputs,
                           track_frames=int(self.table.n_frames[row]), config=self._feature_config)


def run_split(table: TrackTable, split_path: Path, *, resume: bool, validation_fraction: float, seed: int,
              write: bool = True, command: str = "train") -> tuple[list, list]:
    """A run's train/validation track ids: read from ``split_path`` on resume, else drawn by
    :func:`split_tracks` and saved there (unless ``write`` is false: another process saves
    it). Raises :class:`InputError` when the saved split names tracks ``table`` lacks."""
    if resume and Path(split_path).exists():
        train_ids, val_ids = load_split(split_path)
    else:
        train_ids, val_ids = split_tracks(table, validation_fraction=validation_fraction, seed=seed)
        if write:
            save_split(split_path, train_ids, val_ids, by_group=splits_by_group(table))
    known = set(table.track_ids)
    missing = [t for t in train_ids + val_ids if t not in known]
    if missing:
        raise InputError(f"{split_path} names {len(missing)} tracks the store lacks (e.g. {missing[0]!r}); "
                         f"{command} a new run or use the store it was made with")
    return train_ids, val_ids


def default_steps(n_tracks: int, batch_size: int) -> int:
    """Batches for every track to appear about once."""
    return max(1, math.ceil(n_tracks / batch_size))


def save_split(path, train, val, *, by_group: bool) -> None:
    Path(path).write_text(json.dumps({"by_group": by_group, "train": train, "validation": val}, indent=1))


def load_split(path) -> tuple[list, list]:
    data = json.loads(Path(path).read_text())
    return data["train"], data["validation"]

