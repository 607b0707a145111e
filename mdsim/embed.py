"""``mdsim embed``: embeddings of many tracks into one file, resumable.

Inputs are audio files, folders, manifests or features stores. Segments of
several tracks share network batches; the next tracks' decoding and
features are computed in a background thread while the network runs. The
output is the embeddings file of :mod:`mdsim.evaluation.embeddings` (track
mode: ``/embeddings`` and ``/track_ids``), plus in segment mode
``/segments/{embeddings,track_index,start_seconds}``. It is rewritten
atomically (temporary file, then rename) every ``checkpoint_seconds`` and at
the end, so a killed run keeps what was checkpointed, and a re-run skips
tracks the file already holds.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mdsim.audio import load_audio
from mdsim.errors import InputError, MdsimError, StoreError
from mdsim.features.spectral import extract_features
from mdsim.manifest import TrackEntry, entries_from_folder, read_manifest


@dataclass
class _Source:
    track_id: str
    load: object  # () -> features dict


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


def _is_store(path: Path) -> bool:
    if path.suffix.lower() not in (".h5", ".hdf5"):
        return False
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("format", "")) == "mdsim-features"
    except OSError:
        return False


def collect_sources(inputs, feature_config) -> list[_Source]:
    """Audio files, folders, manifests and features stores, as loaders of whole-track features."""
    from mdsim.features.store import FeatureStore

    def from_audio(entry: TrackEntry) -> _Source:
        return _Source(entry.track_id,
                       lambda p=entry.path: extract_features(load_audio(p, sr=feature_config.sample_rate),
                                                             config=feature_config))

    sources: list[_Source] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            sources += [from_audio(e) for e in entries_from_folder(path)]
        elif path.suffix.lower() == ".csv":
            sources += [from_audio(e) for e in read_manifest(path)]
        elif _is_store(path):
            store = FeatureStore(path)
            if store.feature_config.analysis_dict() | {"segment_frames": 0} != \
                    feature_config.analysis_dict() | {"segment_frames": 0}:
                raise StoreError(f"{path} was built with other feature settings than the model expects")
            sources += [_Source(t, lambda t=t, s=store: s.features(t)) for t in store.track_ids()]
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


class _Output:
    """What has been embedded so far, and its atomic checkpoints."""

    def __init__(self, path: Path, model, *, dims, segments: bool):
        self.path, self.segments = path, segments
        self.dims = tuple(dims)
        self.meta = {"model": str(model.path), "backbone": model.config.backbone,
                     "mode": "segments" if segments else "track", "failed": []}
        self.ids: list = []
        self.vectors: list = []
        self.seg_vectors: list = []
        self.seg_track: list = []
        self.seg_start: list = []
        if path.exists():
            self._load_existing()

    def _load_existing(self):
        import h5py

        from mdsim.evaluation import read_embeddings

        existing = read_embeddings(self.path)
        meta = existing.metadata or {}
        if tuple(existing.dimensions) != self.dims or meta.get("mode") != self.meta["mode"]:
            raise InputError(f"{self.path} holds {meta.get('mode')} embeddings of dimensions "
                             f"{','.join(existing.dimensions)}; write to another --out or delete it")
        self.ids = list(existing.track_ids)
        self.vectors = list(np.asarray(existing.embeddings))
        if self.segments:
            with h5py.File(self.path, "r") as f:
                g = f["segments"]
                self.seg_vectors = list(g["embeddings"][()])
                self.seg_track = list(g["track_index"][()])
                self.seg_start = list(g["start_seconds"][()])

    def add(self, track_id, emb) -> None:
        if self.segments:
            index = len(self.ids)
            self.seg_vectors += list(emb.vectors)
            self.seg_track += [index] * len(emb.vectors)
            self.seg_start += list(emb.starts)
            self.vectors.append(emb.vectors.mean(axis=0))
        else:
            self.vectors.append(emb.vectors)
        self.ids.append(track_id)

    def write(self, slices) -> None:
        import h5py

        from mdsim.evaluation import write_embeddings

        tmp = self.path.with_name(self.path.name + ".tmp.h5")
        width = sum(s.stop - s.start for s in slices.values())
        X = np.stack(self.vectors) if self.vectors else np.zeros((0, width), np.float32)
        write_embeddings(tmp, self.ids, X, dimensions=list(self.dims),
                         slices=[[s.start, s.stop] for s in slices.values()], metadata=self.meta)
        if self.segments:
            with h5py.File(tmp, "a") as f:
                g = f.create_group("segments")
                g["embeddings"] = np.stack(self.seg_vectors).astype(np.float32) if self.seg_vectors \
                    else np.zeros((0, width), np.float32)
                g["track_index"] = np.asarray(self.seg_track, dtype=np.int64)
                g["start_seconds"] = np.asarray(self.seg_start, dtype=np.float64)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)


def embed_to_file(inputs, model, out, *, dims=None, segments: bool = False, batch_size: int = 64,
                  checkpoint_seconds: float = 60.0, progress: bool = True, log=sys.stderr) -> EmbedSummary:
    """Embed every track of ``inputs`` with ``model`` (an :class:`mdsim.api.Model`) into ``out``.

    Returns
    -------
    EmbedSummary
    """
    from tqdm import tqdm

    from mdsim.api import prefetch

    t0 = time.perf_counter()
    out = Path(out)
    dims = model.check_dims(dims)
    sources = collect_sources(inputs, model.feature_config)
    output = _Output(out, model, dims=dims, segments=segments)
    done = set(output.ids)
    todo = [s for s in sources if s.track_id not in done]
    summary = EmbedSummary(skipped=len(sources) - len(todo))
    slices = None
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
    for (s, feats, error), last in prefetch(todo, load):
        if error:
            summary.failed.append((s.track_id, error))
            output.meta["failed"].append([s.track_id, error])
            bar.write(f"embed: failed {s.track_id}: {error}", file=log)
            bar.update(1)
        else:
            loaded.append((s, feats))
        if loaded and (sum(model.n_segments(f) for _, f in loaded) >= batch_size or last):
            results = model.embed_features([f for _, f in loaded], dims=dims,
                                           mode="segments" if segments else "track",
                                           batch_size=batch_size, sources=[x.track_id for x, _ in loaded])
            for (src, f), emb in zip(loaded, results):
                output.add(src.track_id, emb)
                summary.done += 1
                summary.segments += model.n_segments(f)
                summary.audio_seconds += f["mel"].shape[1] * sr_frames
                slices = emb.slices
            bar.update(len(loaded))
            loaded = []
            if time.perf_counter() - last_write > checkpoint_seconds:
                output.write(slices)
                last_write = time.perf_counter()
    bar.close()
    if slices is None:
        _, slices = model._select(np.zeros((1, model.config.embedding_size), np.float32), dims)
    output.write(slices)
    summary.wall_seconds = time.perf_counter() - t0
    if progress:
        print(f"embed: {summary.line()}; {out} holds {len(output.ids)} tracks", file=log)
    return summary


def store_embedding_set(model, store_path, track_ids=None, *, name=None, batch_size: int = 64,
                        progress: bool = True, log=sys.stderr):
    """Track-mode embeddings (mean over 3 s segments) of a store's tracks, all subspaces.

    Returns an :class:`mdsim.evaluation.EmbeddingSet` named after the model.
    """
    from tqdm import tqdm

    from mdsim.evaluation import EmbeddingSet
    from mdsim.features.store import FeatureStore

    with FeatureStore(store_path) as store:
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
