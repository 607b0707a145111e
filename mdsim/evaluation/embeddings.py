"""Where the scores get embeddings from: the embeddings file format and embedding sources.

An embedding source answers ``get(track_id, start_seconds=None) -> vector``
and says which tracks it has and how its embedding splits into named
subspaces (:class:`EmbeddingSource`). Two are provided:

- :class:`EmbeddingSet`: one vector per track (track mode), held in memory,
  read from and written to the embeddings file format
  (:func:`read_embeddings`, :func:`write_embeddings`; see docs/evaluation.md).
- :class:`ClipEmbeddings`: one vector per (track, start time) (clip mode),
  from a mapping or a callable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from mdsim.errors import InputError, StoreError

#: Value of the ``format`` attribute (HDF5) / array (NPZ) of an embeddings file.
FORMAT_NAME = "mdsim-embeddings"
FORMAT_VERSION = 1
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")


@runtime_checkable
class EmbeddingSource(Protocol):
    """What :func:`mdsim.evaluation.evaluate` needs from embeddings.

    ``dimensions`` names the subspaces and ``slices`` gives their
    ``[start, stop)`` columns (both empty when the embedding has no named
    subspaces; ``slices`` empty with ``dimensions`` given means equal
    contiguous slices). ``track_ids`` is the collection of tracks it can
    embed. ``get`` returns a 1-D float vector; ``start_seconds`` is ``None``
    for a whole-track embedding and the clip start in clip mode.
    """

    name: str | None
    dimensions: tuple[str, ...]
    slices: tuple[tuple[int, int], ...]

    @property
    def track_ids(self) -> Collection[str]: ...

    def get(self, track_id: str, start_seconds: float | None = None) -> np.ndarray: ...


def track_embedding(segment_embeddings) -> np.ndarray:
    """The track embedding of the paper's protocol: the mean of its segment embeddings.

    Parameters
    ----------
    segment_embeddings : np.ndarray [shape=(n_segments, D)]
        Embeddings of the non-overlapping 3 s segments of one whole track.

    Returns
    -------
    np.ndarray [shape=(D,), dtype=float32]
        Not re-normalised: the paper averages and compares with Euclidean distance.
    """
    x = np.asarray(segment_embeddings, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputError(f"segment embeddings have shape {x.shape}, expected (n_segments >= 1, D)")
    return x.mean(axis=0)


def check_layout(dimensions, slices, width: int):
    """Validate named subspaces against an embedding width and normalise them.

    Returns ``(dimensions, slices)`` as tuples. No dimensions: no slices.
    Dimensions without slices: ``width`` split into equal contiguous slices
    (it must divide). Slices must lie in ``0..width``, be non-empty and not
    overlap (the combination scores add per-subspace squared distances);
    they need not cover the whole embedding.
    """
    dimensions = tuple(str(d) for d in (dimensions or ()))
    slices = tuple((int(a), int(b)) for a, b in (slices if slices is not None else ()))
    if not dimensions:
        if slices:
            raise InputError(f"{len(slices)} slices given without dimension names")
        return (), ()
    if len(set(dimensions)) != len(dimensions) or not all(dimensions):
        raise InputError(f"dimension names must be unique and non-empty, got {list(dimensions)}")
    if not slices:
        if width % len(dimensions):
            raise InputError(f"cannot split a {width}-d embedding into {len(dimensions)} equal slices: "
                             f"give the slices explicitly")
        step = width // len(dimensions)
        return dimensions, tuple((i * step, (i + 1) * step) for i in range(len(dimensions)))
    if len(slices) != len(dimensions):
        raise InputError(f"{len(dimensions)} dimensions but {len(slices)} slices")
    for d, (a, b) in zip(dimensions, slices):
        if not 0 <= a < b <= width:
            raise InputError(f"slice [{a}, {b}) of {d!r} is empty or outside the {width}-d embedding")
    ordered = sorted(slices)
    for (_, stop), (start, _) in zip(ordered, ordered[1:]):
        if start < stop:
            raise InputError(f"slices overlap: {list(map(list, slices))}")
    return dimensions, slices


@dataclass(frozen=True)
class EmbeddingSet:
    """One embedding per track, optionally split into named subspaces.

    ``track_ids`` is a ``str`` array ``(N,)`` of unique ids, ``embeddings``
    ``float32 [shape=(N, D)]``, finite. ``metadata`` holds free-form,
    JSON-serialisable facts (model name, mode, ...). Answers track-mode
    queries only.
    """

    track_ids: np.ndarray
    embeddings: np.ndarray
    dimensions: tuple[str, ...] = ()
    slices: tuple[tuple[int, int], ...] = ()
    metadata: dict = field(default_factory=dict)
    name: str | None = None

    def __post_init__(self):
        ids = np.asarray(self.track_ids, dtype=str)
        x = np.asarray(self.embeddings, dtype=np.float32)
        if x.ndim != 2 or ids.shape != (x.shape[0],):
            raise InputError(f"embeddings have shape {x.shape} for {ids.shape} track ids, expected (N, D) and (N,)")
        unique, counts = np.unique(ids, return_counts=True)
        if (counts > 1).any():
            raise InputError(f"track id(s) listed twice: {', '.join(unique[counts > 1][:5])}")
        bad = ~np.isfinite(x).all(axis=1)
        if bad.any():
            raise InputError(f"{int(bad.sum())} embedding(s) are not finite, e.g. track {ids[bad][0]}")
        dims, slices = check_layout(self.dimensions, self.slices, x.shape[1])
        object.__setattr__(self, "track_ids", ids)
        object.__setattr__(self, "embeddings", x)
        object.__setattr__(self, "dimensions", dims)
        object.__setattr__(self, "slices", slices)
        object.__setattr__(self, "metadata", dict(self.metadata))
        if self.name is None:
            object.__setattr__(self, "name", self.metadata.get("model"))

    def __len__(self) -> int:
        return len(self.track_ids)

    def __contains__(self, track_id) -> bool:
        return track_id in self._index

    @cached_property
    def _index(self) -> dict:
        return {t: i for i, t in enumerate(self.track_ids.tolist())}

    def get(self, track_id: str, start_seconds: float | None = None) -> np.ndarray:
        if start_seconds is not None:
            raise InputError("these are whole-track embeddings: score them in track mode, "
                             "or give clip embeddings (ClipEmbeddings) for clip mode")
        try:
            return self.embeddings[self._index[track_id]]
        except KeyError:
            raise InputError(f"no embedding for track {track_id!r}") from None


class ClipEmbeddings:
    """Clip-mode embeddings: one vector per (track id, start in seconds).

    Parameters
    ----------
    lookup : Mapping or callable
        ``{(track_id, start_seconds): vector}`` or
        ``lookup(track_id, start_seconds) -> vector``. Mapping keys are
        matched with start times rounded to the millisecond.
    track_ids : collection of str, optional
        The tracks available; taken from the mapping's keys when omitted,
        required with a callable.
    dimensions, slices
        The named subspaces, as for :class:`EmbeddingSet`.
    name : str, optional
        Model name for reports.
    """

    def __init__(self, lookup: Mapping | Callable, *, track_ids: Collection[str] | None = None,
                 dimensions=(), slices=(), name: str | None = None):
        if isinstance(lookup, Mapping):
            table = {(str(t), _ms(s)): v for (t, s), v in lookup.items()}
            self._lookup = lambda t, s: table[(t, _ms(s))]
            if track_ids is None:
                track_ids = {t for t, _ in table}
        elif callable(lookup):
            if track_ids is None:
                raise InputError("clip embeddings from a callable need track_ids (the tracks it can embed)")
            self._lookup = lookup
        else:
            raise InputError(f"clip embeddings need a mapping or a callable, got {type(lookup).__name__}")
        self._track_ids = frozenset(track_ids)
        self.dimensions = tuple(dimensions or ())
        self.slices = tuple(tuple(s) for s in (slices or ()))
        self.name = name

    @property
    def track_ids(self) -> frozenset:
        return self._track_ids

    def get(self, track_id: str, start_seconds: float | None = None) -> np.ndarray:
        if start_seconds is None:
            raise InputError("clip embeddings need a start time: score them in clip mode")
        try:
            return np.asarray(self._lookup(track_id, start_seconds), dtype=np.float32)
        except KeyError:
            raise InputError(f"no clip embedding for track {track_id!r} at {start_seconds} s") from None


def _ms(seconds) -> int:
    return int(round(float(seconds) * 1000))


def gather(source: EmbeddingSource, track_ids, starts=None) -> np.ndarray:
    """Stack ``source.get`` for each id (and start): ``float64 [shape=(n, D)]``.

    Each distinct (track, start) is asked for once.
    """
    keys = list(zip(track_ids, [None] * len(track_ids) if starts is None else [float(s) for s in starts]))
    cache, rows = {}, []
    for key in keys:
        if key not in cache:
            vector = np.asarray(source.get(*key), dtype=np.float64)
            if vector.ndim != 1 or not np.isfinite(vector).all():
                raise InputError(f"embedding of track {key[0]!r} is not a finite 1-D vector (shape {vector.shape})")
            cache[key] = vector
        rows.append(cache[key])
    widths = {len(r) for r in rows}
    if len(widths) > 1:
        raise InputError(f"embeddings have different sizes: {sorted(widths)}")
    return np.stack(rows) if rows else np.zeros((0, 0))


# --------------------------------------------------------------------------------------
# The embeddings file format (HDF5 or NPZ), documented in docs/evaluation.md


def write_embeddings(path, track_ids, embeddings, *, dimensions=None, slices=None,
                     metadata: dict | None = None) -> Path:
    """Write track embeddings as HDF5 (``.h5``/``.hdf5``) or NPZ (``.npz``), by suffix.

    Parameters
    ----------
    track_ids : sequence of str [shape=(N,)]
    embeddings : np.ndarray [shape=(N, D)], stored as float32
    dimensions : sequence of str, optional
        Names of the subspaces.
    slices : sequence of (start, stop), optional
        Their columns; equal contiguous slices when omitted.
    metadata : dict, optional
        JSON-serialisable facts kept with the file (e.g. ``{"model": "mdsim-6d"}``).
    """
    path = Path(path)
    es = EmbeddingSet(track_ids, embeddings, dimensions=tuple(dimensions or ()), slices=tuple(slices or ()),
                      metadata=metadata or {})
    meta = json.dumps(es.metadata)
    layout = _layout_text(es.dimensions, es.slices)
    digest = content_digest(es.track_ids, es.embeddings, layout, meta)
    if path.suffix.lower() in _HDF5_SUFFIXES:
        import h5py

        with h5py.File(path, "w") as f:
            f.attrs["format"] = FORMAT_NAME
            f.attrs["format_version"] = FORMAT_VERSION
            f.create_dataset("embeddings", data=es.embeddings)
            f.create_dataset("track_ids", data=es.track_ids.astype(object), dtype=h5py.string_dtype("utf-8"))
            if layout:
                f.attrs["dimensions"], f.attrs["slices"] = layout
            f.attrs["metadata"] = meta
            f.attrs["sha256"] = digest
    elif path.suffix.lower() == ".npz":
        arrays = {"format": np.array(FORMAT_NAME), "format_version": np.array(FORMAT_VERSION),
                  "track_ids": es.track_ids, "embeddings": es.embeddings, "metadata": np.array(meta),
                  "sha256": np.array(digest)}
        if es.dimensions:
            arrays["dimensions"] = np.array(es.dimensions, dtype=str)
            arrays["slices"] = np.array(es.slices, dtype=np.int64).reshape(-1, 2)
        with open(path, "wb") as handle:  # a handle, so numpy does not append ".npz"
            np.savez(handle, **arrays)
    else:
        raise InputError(f"cannot tell the embeddings format of {path}: name it .h5, .hdf5 or .npz")
    return path


def read_embeddings(path, *, name: str | None = None) -> EmbeddingSet:
    """Read an embeddings file written by :func:`write_embeddings` (or by hand to the same format).

    ``name`` (default: ``metadata["model"]``, else the file's stem) labels it in reports.

    Raises
    ------
    StoreError
        When the file is missing, not an embeddings file, or inconsistent.
    """
    path = Path(path)
    if not path.is_file():
        raise StoreError(f"embeddings file {path} does not exist")
    try:
        with open(path, "rb") as handle:
            magic = handle.read(8)
        if magic.startswith(b"\x89HDF"):
            fields = _read_hdf5(path)
        elif magic.startswith(b"PK"):
            fields = _read_npz(path)
        else:
            raise StoreError(f"{path} is neither HDF5 nor NPZ")
        _check_digest(path, fields)
        version = fields.pop("format_version")
        if version is not None and int(version) > FORMAT_VERSION:
            raise StoreError(f"{path} has embeddings format version {int(version)}; "
                             f"this mdsim reads up to {FORMAT_VERSION}: upgrade mdsim")
        metadata = json.loads(fields.pop("metadata") or "{}")
        return EmbeddingSet(**fields, metadata=metadata, name=name or metadata.get("model") or path.stem)
    except (InputError, KeyError, ValueError, OSError) as e:
        detail = f"missing {e}" if isinstance(e, KeyError) else str(e)
        raise StoreError(f"{path} is not a valid embeddings file: {detail} (format: docs/evaluation.md)") from e


def _layout_text(dimensions, slices) -> tuple | None:
    """``(dimensions, slices)`` as the JSON texts the file stores; ``None`` without names."""
    if not len(dimensions):
        return None
    return json.dumps(list(dimensions)), json.dumps([list(s) for s in slices])


def content_digest(track_ids, embeddings, layout, metadata: str) -> str:
    """SHA-256 of what an embeddings file holds: its ids, float32 vectors, layout and metadata.

    ``layout`` is ``(dimensions, slices)`` as the JSON text the file stores, or
    ``None`` for an embedding without named subspaces. Computed from the values,
    not the file's bytes, so HDF5 and NPZ files of the same embeddings agree.
    """
    h = hashlib.sha256()
    for part in (json.dumps([str(t) for t in track_ids]), json.dumps(layout), metadata or ""):
        h.update(part.encode())
        h.update(b"\0")
    h.update(np.ascontiguousarray(embeddings, dtype="<f4").tobytes())
    return h.hexdigest()


def _check_digest(path, fields: dict) -> None:
    """Refuse a file whose content differs from the checksum written with it (files
    written before checksums, without ``sha256``, are read as they are)."""
    expected = fields.pop("sha256", None)
    if expected is None:
        return
    layout = _layout_text(fields["dimensions"], fields["slices"])
    if content_digest(fields["track_ids"], fields["embeddings"], layout, fields["metadata"]) != str(expected):
        raise StoreError(f"{path} is damaged: its content does not match the checksum written with it; "
                         "embed again into a new file (`mdsim embed ... --overwrite`)")


def _read_hdf5(path) -> dict:
    import h5py

    with h5py.File(path, "r") as f:
        attrs = f.attrs
        return {"track_ids": f["track_ids"].asstr()[()], "embeddings": f["embeddings"][()],
                "dimensions": json.loads(attrs["dimensions"]) if "dimensions" in attrs else (),
                "slices": json.loads(attrs["slices"]) if "slices" in attrs else (),
                "metadata": attrs.get("metadata"), "format_version": attrs.get("format_version"),
                "sha256": attrs.get("sha256")}


def _read_npz(path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        return {"track_ids": z["track_ids"], "embeddings": z["embeddings"],
                "dimensions": z["dimensions"].tolist() if "dimensions" in z else (),
                "slices": z["slices"].tolist() if "slices" in z else (),
                "metadata": str(z["metadata"]) if "metadata" in z else None,
                "format_version": z["format_version"] if "format_version" in z else None,
                "sha256": str(z["sha256"]) if "sha256" in z else None}
