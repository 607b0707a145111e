"""``mdsim embed``: embeddings of many tracks into one file, resumable.

Inputs are audio files, folders, manifests or features stores. Segments of
several tracks share network batches; the next tracks' decoding and
features are computed in a background thread while the network runs. The
output is the embeddings file of :mod:`mdsim.evaluation.embeddings` (track
mode: ``/embeddings`` and ``/track_ids``), plus in segment mode
``/segments/{embeddings,track_index,start_seconds}``.

One writer at a time (``OUT.lock``, :mod:`mdsim.locking`). While a run goes on,
the tracks embedded since the last checkpoint are written as a new part file
(``OUT.parts/``) every ``checkpoint_seconds`` or ``checkpoint_tracks``; the end
of the run writes ``OUT`` from the old file and the parts. A killed run keeps
every checkpoint, and a re-run skips the tracks ``OUT`` and its parts hold, unless
their input changed since (``/source_digests``: an audio file's size and modification
time, a store track's :meth:`~mdsim.features.store.FeatureStore.features_version`). The
file records the model's fingerprint (:attr:`mdsim.api.Model.fingerprint`) and
feature settings: a file of another model is refused (``overwrite`` starts over).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mdsim.audio import load_audio, prefetch
from mdsim.errors import InputError, MdsimError, stop_if_terminated
from mdsim.features.spectral import extract_features
from mdsim.manifest import TrackEntry, entries_from_folder, read_manifest


@dataclass
class _Source:
    track_id: str
    load: object  # () -> features dict
    digest: str | None = None  # changes when the input's content changes; None: unknown


def _file_digest(path) -> str | None:
    """An audio file's size and modification time (as ``mdsim prep`` skips unchanged files)."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return f"file:{st.st_size}:{st.st_mtime_ns}"


@dataclass
class EmbedSummary:
    done: int = 0
    skipped: int = 0
    failed: list = field(default_factory=list)
    segments: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0

    def line(self) -> str:
        rate = self.audio_seconds / self.wall_seconds if self.wall_seconds else float("nan")
        return (f"done {self.done}, skipped {self.skipped}, failed {len(self.failed)}, "
                f"{self.segments} segments, {rate:.1f}x real time")


def collect_sources(inputs, model) -> list[_Source]:
    """Audio files, folders, manifests and features stores, as loaders of whole-track features.

    Audio is analysed with ``model.feature_config``; a store made with other
    settings is refused (:meth:`mdsim.api.Model.check_features`).
    """
    from mdsim.features.store import FeatureStore, is_store

    feature_config = model.feature_config

    def from_audio(entry: TrackEntry) -> _Source:
        return _Source(entry.track_id,
                       lambda p=entry.path: extract_features(load_audio(p, sr=feature_config.sample_rate),
                                                             config=feature_config),
                       _file_digest(entry.path))

    sources: list[_Source] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            sources += [from_audio(e) for e in entries_from_folder(path)]
        elif path.suffix.lower() == ".csv":
            sources += [from_audio(e) for e in read_manifest(path)]
        elif path.suffix.lower() in (".h5", ".hdf5") and is_store(path):
            store = FeatureStore(path)
            model.check_features(store.feature_config, source=f"features store {path}")
            sources += [_Source(t, lambda t=t, s=store: s.features(t, names=model.config.inputs),
                                f"store:{store.features_version(t)}") for t in store.track_ids()]
        elif path.is_file():
            sources.append(from_audio(TrackEntry(path.stem, path)))
        else:
            raise InputError(f"{path}: no such file or folder")
    seen = set()
    for s in sources:
        if s.track_id in seen:
            raise InputError(f"track id {s.track_id!r} comes twice from the inputs; embed them to separate files")
        seen.add(s.track_id)
    return sources


def _part_paths(out: Path) -> list[Path]:
    folder = Path(str(out) + ".parts")
    return sorted(folder.glob("part-*.h5")) if folder.is_dir() else []


def _read_vectors(path: Path, segments: bool) -> dict:
    """Everything an embeddings file (or a checkpoint part) holds, as lists."""
    import h5py

    from mdsim.evaluation import read_embeddings

    e = read_embeddings(path)
    data = {"ids": list(e.track_ids), "vectors": list(np.asarray(e.embeddings)), "meta": e.metadata or {},
            "dims": tuple(e.dimensions), "seg_vectors": [], "seg_track": [], "seg_start": [],
            "digests": [None] * len(e.track_ids)}
    if h5py.is_hdf5(path):
        with h5py.File(path, "r") as f:
            if segments:
                g = f["segments"]
                data["seg_vectors"] = list(g["embeddings"][()])
                data["seg_track"] = list(g["track_index"][()])
                data["seg_start"] = list(g["start_seconds"][()])
            if "source_digests" in f:  # files written before digests have none: never re-embedded
                data["digests"] = [d or None for d in f["source_digests"].asstr()[()]]
    return data


class _Output:
    """The embeddings file of earlier runs, this run's checkpoint parts, and what is pending.

    A checkpoint writes only the tracks embedded since the last one, as a new
    part file ``OUT.parts/part-NNNNNN.h5`` (temporary name, fsync, rename: whole
    or absent). The end of a run writes ``OUT`` once from the old file and the
    parts (temporary file, rename) and then deletes the parts, so a run's cost
    grows with the catalog once, not at every checkpoint, and a killed run keeps
    every checkpoint. Every file records the model's fingerprint; files of
    another model, or of another mode or dimension set, are refused.
    """

    def __init__(self, path: Path, model, *, dims, segments: bool):
        self.path, self.segments = path, segments
        self.dims = tuple(dims)
        self.meta = {"model": str(model.path), "model_sha256": model.fingerprint,
                     "backbone": model.config.backbone, "mode": "segments" if segments else "track",
                     "feature_config": model.feature_config.to_dict(), "failed": []}
        self.done_ids: set = set()
        self.digests: dict = {}  # track id -> digest of the input it was embedded from (None: unknown)
        self.failed: dict = {}
        self._pending = self._empty()
        for source in ([path] if path.exists() else []) + _part_paths(path):
            data = self._read_checked(source)
            self.done_ids.update(data["ids"])
            self.digests.update(zip(data["ids"], data["digests"]))
            self.failed.update({t: r for t, r in data["meta"].get("failed", [])})

    @staticmethod
    def _empty() -> dict:
        return {"ids": [], "vectors": [], "seg_vectors": [], "seg_track": [], "seg_start": [], "digests": []}

    def is_current(self, source: _Source) -> bool:
        """Whether ``source`` is held, embedded from the same content (as far as is known)."""
        if source.track_id not in self.done_ids:
            return False
        held = self.digests.get(source.track_id)
        return held is None or source.digest is None or held == source.digest

    def _read_checked(self, source: Path) -> dict:
        try:
            data = _read_vectors(source, self.segments)
        except (OSError, KeyError, ValueError) as exc:
            raise InputError(f"{source} is not a readable embeddings file ({exc}); delete it or start over "
                             "with --overwrite") from None
        meta = data["meta"]
        if meta.get("model_sha256") != self.meta["model_sha256"]:
            what = (f"model {meta.get('model')} (sha256 {meta['model_sha256'][:12]})" if meta.get("model_sha256")
                    else f"a model of unknown identity ({meta.get('model') or 'not recorded'})")
            raise InputError(f"{source} holds embeddings of {what}, not of this model ({self.meta['model']}, "
                             f"sha256 {self.meta['model_sha256'][:12]}); vectors of two models cannot share a "
                             "file: write to another --out, or start over with --overwrite")
        if data["dims"] != self.dims or meta.get("mode") != self.meta["mode"]:
            raise InputError(f"{source} holds {meta.get('mode')} embeddings of dimensions {','.join(data['dims'])}, "
                             f"this run writes {self.meta['mode']} embeddings of {','.join(self.dims)}; write to "
                             "another --out, or start over with --overwrite")
        return data

    @property
    def n_pending(self) -> int:
        return len(self._pending["ids"])

    def add(self, track_id, emb, digest=None) -> None:
        p = self._pending
        p["digests"].append(digest)
        self.digests[track_id] = digest
        if self.segments:
            index = len(p["ids"])
            p["seg_vectors"] += list(emb.vectors)
            p["seg_track"] += [index] * len(emb.vectors)
            p["seg_start"] += list(emb.starts)
            p["vectors"].append(emb.vectors.mean(axis=0))
        else:
            p["vectors"].append(emb.vectors)
        p["ids"].append(track_id)
        self.done_ids.add(track_id)
        self.failed.pop(track_id, None)

    def fail(self, track_id, reason) -> None:
        self.failed[track_id] = reason

    def _write(self, target: Path, data: dict, slices) -> None:
        import h5py

        from mdsim.evaluation import write_embeddings

        tmp = target.with_name(target.name + ".tmp.h5")
        width = sum(s.stop - s.start for s in slices.values())
        X = np.stack(data["vectors"]) if data["vectors"] else np.zeros((0, width), np.float32)
        meta = dict(self.meta, failed=sorted([t, r] for t, r in self.failed.items()))
        write_embeddings(tmp, data["ids"], X, dimensions=list(self.dims),
                         slices=[[s.start, s.stop] for s in slices.values()], metadata=meta)
        if self.segments:
            with h5py.File(tmp, "a") as f:
                g = f.create_group("segments")
                g["embeddings"] = np.stack(data["seg_vectors"]).astype(np.float32) if data["seg_vectors"] \
                    else np.zeros((0, width), np.float32)
                g["track_index"] = np.asarray(data["seg_track"], dtype=np.int64)
                g["start_seconds"] = np.asarray(data["seg_start"], dtype=np.float64)
        if h5py.is_hdf5(tmp):
            with h5py.File(tmp, "a") as f:
                f.create_dataset("source_digests", data=np.array([d or "" for d in data["digests"]], dtype=object),
                                 dtype=h5py.string_dtype("utf-8"))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)

    def checkpoint(self, slices) -> None:
        """Write the tracks embedded since the last checkpoint as a new part."""
        if not self.n_pending:
            return
        folder = Path(str(self.path) + ".parts")
        folder.mkdir(exist_ok=True)
        existing = _part_paths(self.path)
        n = int(existing[-1].stem.split("-")[1]) + 1 if existing else 0
        self._write(folder / f"part-{n:06d}.h5", self._pending, slices)
        self._pending = self._empty()

    def finish(self, slices) -> int:
        """Write ``OUT`` from the old file, the parts and what is pending; delete the parts.

        Returns the number of tracks ``OUT`` holds."""
        self.checkpoint(slices)
        latest: dict = {}  # track id -> (vector, digest, segment vectors, segment starts); later files win
        for source in ([self.path] if self.path.exists() else []) + _part_paths(self.path):
            data = self._read_checked(source)
            rows_of: dict = {}  # track row -> its segment rows, grouped in one pass
            for j, t in enumerate(data["seg_track"]):
                rows_of.setdefault(int(t), []).append(j)
            for i, tid in enumerate(data["ids"]):
                # A track embedded again (its input changed) is in a later part than its old
                # vector; a part merged before a crash holds the same vector again.
                rows = rows_of.get(i, [])
                latest.pop(tid, None)  # keep the order of the latest embedding
                latest[tid] = (data["vectors"][i], data["digests"][i], [data["seg_vectors"][j] for j in rows],
                               [data["seg_start"][j] for j in rows])
        merged = self._empty()
        for tid, (vector, digest, seg_vectors, seg_starts) in latest.items():
            if self.segments:
                merged["seg_vectors"] += seg_vectors
                merged["seg_track"] += [len(merged["ids"])] * len(seg_vectors)
                merged["seg_start"] += seg_starts
            merged["ids"].append(tid)
            merged["vectors"].append(vector)
            merged["digests"].append(digest)
        self._write(self.path, merged, slices)
        for part in _part_paths(self.path):
            part.unlink()
        folder = Path(str(self.path) + ".parts")
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
        return len(merged["ids"])


def _remove_output(out: Path) -> None:
    import shutil

    for p in (out, out.with_name(out.name + ".tmp.h5")):
        p.unlink(missing_ok=True)
    shutil.rmtree(Path(str(out) + ".parts"), ignore_errors=True)


def embed_to_file(inputs, model, out, *, dims=None, segments: bool = False, batch_size: int = 64,
                  checkpoint_seconds: float = 60.0, checkpoint_tracks: int = 1000, overwrite: bool = False,
                  progress: bool = True, log=None) -> EmbedSummary:
    """Embed every track of ``inputs`` with ``model`` (an :class:`mdsim.api.Model`) into ``out``.

    Parameters
    ----------
    checkpoint_seconds, checkpoint_tracks : float, int
        Write a checkpoint (the tracks embedded since the last one) whenever this
        many seconds have passed or this many tracks are waiting, whichever first.
    overwrite : bool
        Start ``out`` over; otherwise tracks it holds are skipped, and a file written
        by another model (or mode, or dimension set) is refused.

    Raises
    ------
    InputError
        When another process is writing ``out``, or ``out`` cannot be resumed.

    Returns
    -------
    EmbedSummary
    """
    from mdsim.locking import exclusive_lock

    log = log if log is not None else sys.stderr  # looked up per call: stderr may be replaced
    out = Path(out)
    with exclusive_lock(out, what="mdsim embed"):
        if overwrite:
            _remove_output(out)
        return _embed_locked(inputs, model, out, dims=dims, segments=segments, batch_size=batch_size,
                             checkpoint_seconds=checkpoint_seconds, checkpoint_tracks=checkpoint_tracks,
                             progress=progress, log=log)


def _embed_locked(inputs, model, out: Path, *, dims, segments, batch_size, checkpoint_seconds,
                  checkpoint_tracks, progress, log) -> EmbedSummary:
    from tqdm import tqdm

    t0 = time.perf_counter()
    dims = model.check_dims(dims)
    sources = collect_sources(inputs, model)
    output = _Output(out, model, dims=dims, segments=segments)
    todo = [s for s in sources if not output.is_current(s)]
    summary = EmbedSummary(skipped=len(sources) - len(todo))
    _, slices = model._select(np.zeros((1, model.config.embedding_size), np.float32), dims)
    last_write = time.perf_counter()
    sr_frames = model.feature_config.hop_length / model.feature_config.sample_rate

    def load(s: _Source):
        try:
            return s, s.load(), None
        except MdsimError as e:
            return s, None, str(e)
        except Exception as e:  # noqa: BLE001 - one bad file never stops a batch
            return s, None, f"{s.track_id}: {type(e).__name__}: {e}"

    bar = tqdm(total=len(todo), unit="track", desc="embed", disable=not progress, file=log, dynamic_ncols=True)
    loaded: list = []  # (source, features) waiting for the network
    try:
        for (s, feats, error), last in prefetch(todo, load):
            if error:
                summary.failed.append((s.track_id, error))
                output.fail(s.track_id, error)
                bar.write(f"embed: failed {s.track_id}: {error}", file=log)
                bar.update(1)
            else:
                loaded.append((s, feats))
            if loaded and (sum(model.n_segments(f) for _, f in loaded) >= batch_size or last):
                results = model.embed_features([f for _, f in loaded], dims=dims,
                                               mode="segments" if segments else "track",
                                               batch_size=batch_size, sources=[x.track_id for x, _ in loaded])
                for (src, f), emb in zip(loaded, results):
                    output.add(src.track_id, emb, src.digest)
                    summary.done += 1
                    summary.segments += model.n_segments(f)
                    summary.audio_seconds += f["mel"].shape[1] * sr_frames
                bar.update(len(loaded))
                loaded = []
                if (time.perf_counter() - last_write > checkpoint_seconds
                        or output.n_pending >= checkpoint_tracks):
                    output.checkpoint(slices)
                    last_write = time.perf_counter()
            stop_if_terminated()
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: what was embedded is written, as a checkpoint would
        bar.close()
        output.checkpoint(slices)
        print(f"\nembed: interrupted; kept the {summary.done} tracks embedded in this run "
              f"({len(summary.failed)} failed) in {out} and {out}.parts. Run the same command again to continue.",
              file=log)
        raise
    bar.close()
    held = output.finish(slices)
    summary.wall_seconds = time.perf_counter() - t0
    if progress:
        print(f"embed: {summary.line()}; {out} holds {held} tracks", file=log)
    return summary


def store_embedding_set(model, store_path, track_ids=None, *, name=None, batch_size: int = 64,
                        progress: bool = True, log=None):
    """Track-mode embeddings (mean over 3 s segments) of a store's tracks, all subspaces.

    Returns an :class:`mdsim.evaluation.EmbeddingSet` named after the model.
    """
    log = log if log is not None else sys.stderr
    from tqdm import tqdm

    from mdsim.evaluation import EmbeddingSet
    from mdsim.features.store import FeatureStore

    with FeatureStore(store_path) as store:
        model.check_features(store.feature_config, source=f"features store {store_path}")
        ids = [t for t in (track_ids if track_ids is not None else store.track_ids()) if t in store]
        vectors = []
        chunk = max(1, batch_size // 8)
        for i in tqdm(range(0, len(ids), chunk), desc="embed", unit="chunk", disable=not progress, file=log):
            part = ids[i:i + chunk]
            embs = model.embed_features([store.features(t, names=model.config.inputs) for t in part],
                                        batch_size=batch_size, sources=part)
            vectors += [e.vectors for e in embs]
    slices = [(model.slices[d].start, model.slices[d].stop) for d in model.dimensions]
    X = np.stack(vectors) if vectors else np.zeros((0, model.config.embedding_size), np.float32)
    return EmbeddingSet(ids, X, dimensions=model.dimensions, slices=slices, name=name or str(model.path))


def store_clip_embeddings(model, store_path, *, name=None):
    """Clip-mode embeddings: the 3 s window of a store's track at a start time, computed on demand."""
    from mdsim.evaluation import ClipEmbeddings
    from mdsim.features.store import FeatureStore

    store = FeatureStore(store_path)
    model.check_features(store.feature_config, source=f"features store {store_path}")
    seg = model.config.n_frames
    frames_per_second = model.feature_config.sample_rate / model.feature_config.hop_length

    def lookup(track_id, start_seconds):
        n = store.n_frames(track_id)
        start = int(round((start_seconds or 0.0) * frames_per_second))
        start = max(0, min(start, n - seg)) if n >= seg else 0
        feats = store.features(track_id, names=model.config.inputs, start=start, stop=start + seg)
        inputs, _, _ = model.segments_from_features(feats)
        return model.embed_segments(inputs)[0]

    slices = [(model.slices[d].start, model.slices[d].stop) for d in model.dimensions]
    return ClipEmbeddings(lookup, track_ids=store.track_ids(), dimensions=model.dimensions, slices=slices,
                          name=name or str(model.path))
