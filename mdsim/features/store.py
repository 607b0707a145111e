"""The features store: a small root file and immutable shards beside it.

Layout (``docs/store.md`` has every attribute)::

    STORE.h5                      root: attrs format, format_version (2), mdsim_version,
                                  feature_config (JSON), layout ("compact" or "full")
    STORE.h5.shards/NNNNNNNN.h5   shards, each written once, never modified:
      /index/track_id  (B,)  uint8      UTF-8 lines, one JSON string per entry, in the order written
      /index/status    (N,)  int8       1 features, 2 labels only, 3 failed, 4 removed
      /index/attrs     (B,)  uint8      UTF-8 lines, one JSON object of attributes per entry
      /index/offset    (N,)  int64      first frame of the track in /features (-1: none)
      /index/n_frames  (N,)  int64
      /features/mel        (128, F)  float16, fletcher32 checksums
      /features/cens       (12, F)   float16
      /features/onset      (1, F)    float32  (compact layout: the tempogram's source)
      /features/tempogram  (384, F)  float16  (full layout only)
      /features/cqt        (192, F)  float16  (instead of all of the above in a constant-Q store)
    STORE.h5.lock                 the writer's lock (one writer at a time)

Every track's frames are contiguous in its shard, so a 3 s window is one slice
of each matrix. A later shard supersedes an earlier one entry by entry: a
label edit writes a "labels only" entry (status 2) that keeps the features of
the older one; a source that now fails writes a "failed" entry (status 3), and
its old features are no longer served.

A writer (``mdsim prep``) holds the lock, fills one shard at a time under a
temporary name and renames it into place (fsync first) every ``shard_tracks``
tracks or ``shard_seconds`` seconds and at the end: a committed shard is whole,
so a kill loses at most the shard being filled. A run's cost grows with its
own tracks; nothing is rewritten. Readers open each shard once to read its
index, then keep at most :data:`MAX_OPEN_SHARDS` shards open.

In the compact layout (the default) the tempogram is not stored: the onset
envelope it is computed from is (4 bytes a frame against 768), and
:meth:`FeatureStore.features` rebuilds the frames asked for with
:func:`mdsim.features.spectral.tempogram_frames` -- the same values as the
whole-track computation.
"""

from __future__ import annotations

import json
import os
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from mdsim.config import CQT_FEATURES, FeatureConfig
from mdsim.errors import StoreError
from mdsim.features.spectral import FEATURE_NAMES, padded_envelope, tempogram_frames
from mdsim.labels import TAG_DIMENSIONS, parse_tags

STORE_FORMAT = "mdsim-features"
SHARD_FORMAT = "mdsim-features-shard"
STORE_VERSION = 2
LAYOUTS = ("compact", "full")
#: Frames per HDF5 chunk along time: a 259-frame window touches two or three chunks (reads stay small).
CHUNK_FRAMES = 256
#: Shards a reader keeps open at once (least recently used closed first).
MAX_OPEN_SHARDS = 8
#: Shards whose feature chunks a reader keeps mapped for :meth:`FeatureStore.read_window`
#: (no file descriptor each; least recently used unmapped first).
MAX_MAPPED_SHARDS = 4096

STATUS_FEATURES, STATUS_LABELS, STATUS_FAILED, STATUS_REMOVED = 1, 2, 3, 4

_STR = None  # set lazily: h5py.string_dtype()


def _h5py():
    import h5py

    global _STR
    if _STR is None:
        _STR = h5py.string_dtype("utf-8")
    return h5py


def is_store(path) -> bool:
    """Whether ``path`` is a features store's root file (HDF5 with ``format = "mdsim-features"``)."""
    path = Path(path)
    if not path.is_file():
        return False
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            return _attr_str(f.attrs.get("format", "")) == STORE_FORMAT
    except OSError:
        return False


def shards_dir(path) -> Path:
    """Folder of a store's shards: ``STORE.h5.shards``."""
    return Path(str(path) + ".shards")


def parts_dir(path) -> Path:
    """Folder of the parts of an unmerged version-1 run (read by the upgrade only)."""
    return Path(str(path) + ".parts")


def stored_names(layout: str, config: FeatureConfig | None = None) -> tuple:
    """The matrices a shard of ``layout`` holds (a constant-Q store: ``("cqt",)`` whatever the layout)."""
    if config is not None and config.features == CQT_FEATURES:
        return CQT_FEATURES
    return ("mel", "cens", "onset") if layout == "compact" else ("mel", "cens", "onset", "tempogram")


def _attr_str(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def labels_from_attrs(attrs) -> dict:
    """Labels of a track (the :mod:`mdsim.labels` contract) from its attributes."""
    labels = {d: parse_tags(_attr_str(attrs.get(d, ""))) for d in TAG_DIMENSIONS}
    tempo = float(attrs.get("tempo", np.nan))
    labels["tempo"] = tempo if np.isfinite(tempo) and tempo > 0 else None
    key = int(attrs.get("key_index", -1))
    labels["key"] = key if key >= 0 else None
    return labels


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot store {type(value).__name__} in track attributes")


def _read_root(path: Path) -> dict:
    """The root file's attributes, checked; version-1 stores are named as such."""
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in f.attrs}
            has_tracks = "tracks" in f
    except OSError as e:
        raise StoreError(f"{path}: not a readable HDF5 features store ({e})") from None
    if _attr_str(attrs.get("format", "")) != STORE_FORMAT:
        raise StoreError(f"{path}: not an mdsim features store (no format attribute '{STORE_FORMAT}')")
    version = int(attrs.get("format_version", 0))
    if version > STORE_VERSION:
        raise StoreError(f"{path}: store format version {version} is newer than this mdsim reads "
                         f"({STORE_VERSION}); upgrade mdsim")
    if version < 2 or has_tracks:
        raise StoreError(f"{path} is a version-1 features store; upgrade it once with "
                         f"`mdsim inspect {path} --upgrade` (or any `mdsim prep ... --out {path}`)")
    try:
        config = FeatureConfig.from_dict(json.loads(_attr_str(attrs["feature_config"])))
    except (KeyError, ValueError, TypeError) as e:
        raise StoreError(f"{path}: damaged root attributes ({e}); the shards in {shards_dir(path)} are "
                         "intact: rebuild the root with `mdsim prep` and --overwrite only if they are not") from None
    layout = _attr_str(attrs.get("layout", "compact"))
    return {"config": config, "layout": layout, "last_shard": int(attrs.get("last_shard", 0)),
            "lost_shards": [int(n) for n in json.loads(_attr_str(attrs.get("lost_shards", "[]")))]}


class _ShardIndex:
    """Where each live track is, over all shards, later entries winning.

    Only positions are held (a few dozen bytes a track): attributes are read from
    their shard when asked for, so memory stays small at 10^6 tracks.
    """

    def __init__(self):
        self.shards: list[Path] = []
        self.attr_spans: list[np.ndarray] = []  # per shard: byte offsets of its attribute lines
        self.entries: dict = {}  # track_id -> (shard number, row) of its latest attributes
        self.features_of: dict = {}  # track_id -> (shard number, offset, n_frames) of its features
        self.failed: dict = {}  # track_id -> (path, reason)

    def add_shard(self, shard: Path, ids, status, spans, offset, n_frames, failures) -> None:
        k = len(self.shards)
        self.shards.append(shard)
        self.attr_spans.append(spans)
        for row, (tid, st) in enumerate(zip(ids, status)):
            st = int(st)
            if st == STATUS_FEATURES:
                self.features_of[tid] = (k, int(offset[row]), int(n_frames[row]))
                self.entries[tid] = (k, row)
                self.failed.pop(tid, None)
            elif st == STATUS_LABELS:
                if tid in self.features_of:
                    self.entries[tid] = (k, row)
            elif st == STATUS_FAILED:
                self.features_of.pop(tid, None)
                self.entries.pop(tid, None)
                self.failed[tid] = failures[row]
            elif st == STATUS_REMOVED:
                self.features_of.pop(tid, None)
                self.entries.pop(tid, None)
                self.failed.pop(tid, None)


def _lines(blob) -> list[str]:
    """Decode an index blob: UTF-8 text, one JSON value per line."""
    text = np.asarray(blob, dtype=np.uint8).tobytes().decode("utf-8")
    return text.split("\n") if text else []


def _blob(lines) -> np.ndarray:
    return np.frombuffer("\n".join(lines).encode("utf-8"), dtype=np.uint8)


def shard_paths(path) -> list[Path]:
    """Committed shards of a store, oldest first."""
    d = shards_dir(path)
    return sorted(d.glob("*.h5")) if d.is_dir() else []


def _shard_number(shard: Path) -> int | None:
    """The sequence number a shard's name starts with (``00000003-<pid>.h5`` -> 3)."""
    head = shard.name.split("-")[0]
    return int(head) if head.isdigit() else None


def missing_shards(path, root: dict | None = None) -> list[int]:
    """Sequence numbers of committed shards that are gone from the shards folder.

    Shards are numbered 1, 2, 3, ... as they are committed, and the root records
    the last number (``last_shard``), so a shard deleted from the middle leaves a
    gap and the last one a number past the end. Numbers a later ``mdsim prep``
    took note of (``lost_shards``) are not listed again.
    """
    root = _read_root(Path(path)) if root is None else root
    present = {n for n in map(_shard_number, shard_paths(path)) if n is not None}
    last = max(present | {root["last_shard"]})
    return sorted(set(range(1, last + 1)) - present - set(root["lost_shards"]))


def _missing_message(path, numbers) -> str:
    names = ", ".join(f"{n:08d}-*.h5" for n in numbers)
    return (f"{path}: {len(numbers)} shard(s) missing from {shards_dir(path)} ({names}): the tracks they held "
            "are not served; restore them, or run `mdsim prep` on the store's input again to compute those "
            "tracks anew")


def read_shard_index(shard: Path) -> tuple:
    """``(track_ids, status, attr_spans, offset, n_frames, failures)`` of one shard.

    ``attr_spans`` holds the byte offsets of the attribute lines (``N + 1``);
    ``failures`` maps the rows of failed entries to ``(path, reason)``.

    Raises
    ------
    StoreError
        When the shard's index cannot be read (damaged metadata or checksums).
    """
    h5py = _h5py()
    try:
        with h5py.File(shard, "r") as f:
            if _attr_str(f.attrs.get("format", "")) != SHARD_FORMAT:
                raise StoreError(f"{shard}: not an mdsim store shard")
            g = f["index"]
            ids = [json.loads(line) for line in _lines(g["track_id"][()])]
            blob = np.asarray(g["attrs"][()], dtype=np.uint8)
            status, offset, n_frames = g["status"][()], g["offset"][()], g["n_frames"][()]
        breaks = np.flatnonzero(blob == ord("\n"))
        spans = np.concatenate([[0], breaks + 1, [len(blob) + 1]]).astype(np.int64) if len(blob) else \
            np.zeros(1, np.int64)
        if not len(ids) == len(spans) - 1 == len(status) == len(offset) == len(n_frames):
            raise ValueError("index arrays of different lengths")
        failures = {}
        for row in np.flatnonzero(status == STATUS_FAILED):
            info = json.loads(blob[spans[row]:spans[row + 1] - 1].tobytes().decode("utf-8"))
            failures[int(row)] = (info.get("source_path", ""), info.get("reason", ""))
        return ids, status, spans, offset, n_frames, failures
    except StoreError:
        raise
    except (OSError, KeyError, ValueError) as e:
        raise StoreError(f"{shard}: damaged shard index ({e}); move the shard away and re-run `mdsim prep` "
                         "on its tracks (they are then computed again)") from None


class _ChunkMap:
    """One shard's feature chunks, mapped read-only, for :meth:`FeatureStore.read_window`.

    A window's frames lie in two or three chunks of :data:`CHUNK_FRAMES` frames per
    matrix. HDF5 reads (and checksums) whole chunks and then copies the window out,
    in several library calls per matrix; here each chunk's place in the file is
    looked up once (``chunk_iter``) and a window is copied from the mapped bytes.
    Integrity is kept: a chunk is copied this way only after this process read it
    once through HDF5, which verified its Fletcher-32 checksum; shards are never
    modified after they are committed. A matrix stored another way (compressed,
    shuffled, chunked otherwise: not a layout mdsim writes) is read through HDF5
    every time.
    """

    def __init__(self, path: Path, datasets: dict):
        import mmap

        self.names = frozenset(datasets)
        self.raw: dict = {}  # name -> (bins, chunk frames, dtype, chunk byte offsets, verified)
        for name, ds in datasets.items():
            layout = self._raw_layout(ds)
            if layout is not None:
                self.raw[name] = layout
        self.buffer = None
        #: Matrices copied from the mapping so far (the rest went through HDF5).
        self.mapped_reads = 0
        if self.raw:
            with open(path, "rb") as f:
                self.buffer = np.frombuffer(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), np.uint8)

    @staticmethod
    def _raw_layout(ds):
        chunks = ds.chunks
        if (chunks is None or len(ds.shape) != 2 or chunks[0] != ds.shape[0] or ds.compression is not None
                or ds.shuffle or ds.scaleoffset is not None or ds.dtype.byteorder == ">"
                or ds.id.get_create_plist().get_nfilters() != int(bool(ds.fletcher32))):
            return None
        bins, frames = chunks
        size = bins * frames * ds.dtype.itemsize + (4 if ds.fletcher32 else 0)
        n = -(-ds.shape[1] // frames)
        offsets = np.full(n, -1, np.int64)

        def visit(info):
            if info.filter_mask == 0 and info.size == size:
                offsets[info.chunk_offset[1] // frames] = info.byte_offset

        try:
            ds.id.chunk_iter(visit)
        except (AttributeError, RuntimeError, OSError):  # chunk_iter needs HDF5 >= 1.12.3
            return None
        return bins, frames, ds.dtype, offsets, bytearray(n)  # bytes, not a NumPy array: checked per read

    def copy(self, name: str, a: int, b: int, out: np.ndarray, dataset) -> None:
        """Frames ``a:b`` of matrix ``name`` into ``out[:, :b - a]`` (cast to ``out``'s dtype);
        ``dataset()`` gives the h5py dataset, opened only when HDF5 must read."""
        if b <= a:
            return
        raw = self.raw.get(name)
        if raw is None:
            out[:, :b - a] = dataset()[:, a:b]
            return
        bins, frames, dtype, offsets, seen = raw
        c0, c1 = a // frames, (b - 1) // frames
        if not all(seen[c0:c1 + 1]):
            out[:, :b - a] = dataset()[:, a:b]  # through HDF5: the chunks' checksums are verified
            seen[c0:c1 + 1] = (offsets[c0:c1 + 1] >= 0).tobytes()
            return
        nbytes = bins * frames * dtype.itemsize
        self.mapped_reads += 1
        pos = 0
        for c in range(c0, c1 + 1):
            chunk = self.buffer[offsets[c]:offsets[c] + nbytes].view(dtype).reshape(bins, frames)
            lo, hi = max(a - c * frames, 0), min(b - c * frames, frames)
            out[:, pos:pos + hi - lo] = chunk[:, lo:hi]
            pos += hi - lo


class FeatureStore:
    """Read a features store.

    Parameters
    ----------
    path : str or Path
        The store's root file (``STORE.h5``).

    Notes
    -----
    Shard handles are opened lazily (at most :data:`MAX_OPEN_SHARDS` at once)
    and reopened after pickling, so a store can be handed to worker processes.
    """

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.exists():
            raise StoreError(f"{self.path}: no features store here; build one with "
                             f"`mdsim prep INPUT --out {self.path}`")
        root = _read_root(self.path)
        self._config, self.layout = root["config"], root["layout"]
        self._open_files: OrderedDict = OrderedDict()
        self._datasets_of: dict = {}
        self._chunk_maps: OrderedDict = OrderedDict()
        self._index = _ShardIndex()
        for shard in shard_paths(self.path):
            self._index.add_shard(shard, *read_shard_index(shard))
        #: Sequence numbers of shards deleted from the store (their tracks are not served).
        self.missing_shards = missing_shards(self.path, root)
        if self.missing_shards:
            import warnings

            warnings.warn(_missing_message(self.path, self.missing_shards), stacklevel=2)

    # -- handles -----------------------------------------------------------
    def _file(self, shard: Path):
        f = self._open_files.get(shard)
        if f is not None:
            self._open_files.move_to_end(shard)
            return f
        h5py = _h5py()
        try:
            f = h5py.File(shard, "r")
        except OSError as e:
            raise StoreError(f"{shard}: cannot open shard ({e})") from None
        self._open_files[shard] = f
        while len(self._open_files) > MAX_OPEN_SHARDS:
            closed, old = self._open_files.popitem(last=False)
            self._datasets_of.pop(closed, None)
            old.close()
        return f

    def _datasets(self, shard: Path) -> dict:
        """The shard's ``/features`` datasets by name (looked up once per opening: an
        h5py lookup costs about as much as reading a window)."""
        f = self._file(shard)
        cached = self._datasets_of.get(shard)
        if cached is None or cached[0] is not f:
            g = f["features"]
            cached = self._datasets_of[shard] = (f, {name: g[name] for name in g})
        return cached[1]

    def close(self) -> None:
        for f in self._open_files.values():
            f.close()
        self._open_files.clear()
        self._datasets_of.clear()
        self._chunk_maps.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):
        return {"path": self.path}

    def __setstate__(self, state):
        self.__init__(state["path"])

    # -- reading -----------------------------------------------------------
    @property
    def feature_config(self) -> FeatureConfig:
        return self._config

    def track_ids(self) -> list[str]:
        """Every track in the store, sorted."""
        return sorted(self._index.entries)

    def __len__(self) -> int:
        return len(self._index.entries)

    def __contains__(self, track_id) -> bool:
        return track_id in self._index.entries

    def attrs(self, track_id) -> dict:
        """All attributes of a track as Python values (read from its shard)."""
        try:
            k, row = self._index.entries[track_id]
        except KeyError:
            raise StoreError(f"{self.path}: no track {track_id!r} in the store") from None
        shard = self._index.shards[k]
        spans = self._index.attr_spans[k]
        try:
            raw = self._file(shard)["index/attrs"][spans[row]:spans[row + 1] - 1]
            return json.loads(raw.tobytes().decode("utf-8"))
        except (OSError, KeyError, ValueError) as e:
            raise StoreError(f"{shard}: damaged shard index ({e}); move the shard away and re-run `mdsim prep` "
                             "on its tracks") from None

    def labels(self, track_id) -> dict:
        """Labels of a track (tags, tempo in BPM, key index)."""
        return labels_from_attrs(self.attrs(track_id))

    def n_frames(self, track_id) -> int:
        if track_id not in self._index.features_of:
            raise StoreError(f"{self.path}: no track {track_id!r} in the store")
        return self._index.features_of[track_id][2]

    def features_version(self, track_id) -> str:
        """A short text that changes whenever the track's features are written again
        (``SHARD:OFFSET:FRAMES`` of its current entry; a label edit leaves it as it is),
        so a reader can tell "unchanged since" without reading the features."""
        shard, offset, n = self._locate(track_id)
        return f"{shard.name}:{offset}:{n}"

    def _locate(self, track_id) -> tuple:
        """``(shard, first frame in the shard, frames)`` of a track's features."""
        try:
            k, offset, n = self._index.features_of[track_id]
            return self._index.shards[k], offset, n
        except KeyError:
            raise StoreError(f"{self.path}: no track {track_id!r} in the store") from None

    def _damaged(self, track_id, shard: Path, error: Exception) -> StoreError:
        return StoreError(f"{self.path}: the features of track {track_id!r} are damaged ({shard.name}: {error}); "
                          "`mdsim prep INPUT --out STORE --verify` computes damaged tracks again")

    def _tempogram(self, read_onset, start: int, stop: int, n: int) -> np.ndarray:
        """Frames ``start:stop`` of a compact track's tempogram, from only the envelope they read
        (``win_length // 2`` on either side): ``read_onset(lo, hi)`` gives samples ``lo:hi``."""
        cfg = self._config
        if stop <= start:
            return np.zeros((cfg.tempogram_win_length, 0), np.float32)
        half = cfg.tempogram_win_length // 2
        lo, hi = max(0, start - half), min(n, stop + half)
        return tempogram_frames(read_onset(lo, hi), start, stop, win_length=cfg.tempogram_win_length,
                                cyclic=cfg.cyclic_tempogram, envelope_span=(lo, n))

    def features(self, track_id, *, names=FEATURE_NAMES, start: int = 0, stop: int | None = None) -> dict:
        """Feature matrices of a track, frames ``start:stop``, as ``float32``.

        ``names`` may include ``"onset"`` (the onset envelope, ``(1, T)``). In the
        compact layout the tempogram is computed from the stored envelope. A
        constant-Q store holds ``"cqt"`` only (ask for ``names=("cqt",)``).

        Raises
        ------
        StoreError
            Unknown track, or damaged feature data (a checksum mismatch), naming
            the track and the shard.

        Returns
        -------
        dict
            ``{name: np.ndarray [shape=(n_bins, stop - start), dtype=float32]}``.
        """
        shard, offset, n = self._locate(track_id)
        start = max(0, int(start))
        stop = n if stop is None else max(start, min(int(stop), n))
        out = {}
        try:
            feats = self._datasets(shard)
            for name in names:
                if name == "tempogram" and "tempogram" not in feats:
                    out[name] = self._tempogram(lambda lo, hi: feats["onset"][0, offset + lo:offset + hi],
                                                start, stop, n)
                else:
                    out[name] = feats[name][:, offset + start:offset + stop].astype(np.float32)
        except (OSError, KeyError) as e:
            raise self._damaged(track_id, shard, e) from None
        return out

    def read_window(self, track_id, out: dict, start: int = 0) -> int:
        """Frames ``start:start + W`` of a track into preallocated arrays: the training loader's read.

        ``out`` maps feature names to arrays shaped ``(n_bins, W)`` (a batch's row,
        say); values are cast to each array's dtype on assignment, so a ``float16``
        array receives the stored values as they are. Frames past the end of the
        track are left untouched. In the compact layout the tempogram is computed
        from the stored envelope, as :meth:`features` does. After a chunk has been
        read once through HDF5 (which verifies its checksum), later reads copy it
        from the mapped shard (:class:`_ChunkMap`): several times faster than
        :meth:`features` on a warm store.

        Returns
        -------
        int
            The number of frames written (``W``, or fewer at the end of the track).

        Raises
        ------
        StoreError
            As :meth:`features`.
        """
        shard, offset, n = self._locate(track_id)
        start = max(0, int(start))
        width = min((v.shape[1] for v in out.values()), default=0)
        stop = max(start, min(start + width, n))
        if stop == start:
            return 0
        try:
            chunks = self._chunk_map(shard)
            for name, dest in out.items():
                if name == "tempogram" and "tempogram" not in chunks.names:
                    dest[:, :stop - start] = self._tempogram(self._onset_reader(chunks, shard, offset), start, stop, n)
                else:
                    chunks.copy(name, offset + start, offset + stop, dest,
                                lambda name=name: self._datasets(shard)[name])
        except (OSError, KeyError) as e:
            raise self._damaged(track_id, shard, e) from None
        return stop - start

    def read_envelope(self, track_id, out: np.ndarray, start: int = 0) -> int:
        """The padded onset envelope that tempogram frames ``start:start + W`` read, into ``out``.

        The compact layout's training read when the tempogram is computed in the model's
        step (:class:`mdsim.model.tempogram.OnsetTempogram`): ``out`` is shaped
        ``(W + win_length - 1,)`` (or with a leading axis of 1) and receives
        :func:`mdsim.features.spectral.padded_envelope` of frames ``start`` to
        ``min(start + W, T)``, the edge ramps included; past the end of a track shorter
        than the window, ``out`` is left untouched. The samples are read through the
        same mapped chunks as :meth:`read_window`.

        Returns
        -------
        int
            The number of tempogram frames the samples written cover (``W``, or fewer
            at the end of the track).

        Raises
        ------
        StoreError
            As :meth:`features`.
        """
        shard, offset, n = self._locate(track_id)
        out = out.reshape(1, -1)
        win_length = self._config.tempogram_win_length
        start = max(0, int(start))
        stop = max(start, min(start + out.shape[1] - win_length + 1, n))
        if stop == start:
            return 0
        half = win_length // 2
        lo, hi = start - half, stop - 1 + win_length - half  # the samples the frames read
        try:
            chunks = self._chunk_map(shard)
            if lo >= 0 and hi <= n:  # inside the track: the stored samples as they are
                chunks.copy("onset", offset + lo, offset + hi, out, lambda: self._datasets(shard)["onset"])
                return stop - start
            lo, hi = max(lo, 0), min(hi, n)
            samples = self._onset_reader(chunks, shard, offset)(lo, hi)
        except (OSError, KeyError) as e:
            raise self._damaged(track_id, shard, e) from None
        padded = padded_envelope(samples, start, stop, win_length=win_length, envelope_span=(lo, n))
        out[0, :padded.shape[0]] = padded
        return stop - start

    def _chunk_map(self, shard: Path) -> _ChunkMap:
        """The shard's :class:`_ChunkMap`, kept for the :data:`MAX_MAPPED_SHARDS` shards used last."""
        chunks = self._chunk_maps.get(shard)
        if chunks is None:
            chunks = self._chunk_maps[shard] = _ChunkMap(shard, self._datasets(shard))
            while len(self._chunk_maps) > MAX_MAPPED_SHARDS:
                self._chunk_maps.popitem(last=False)
        else:
            self._chunk_maps.move_to_end(shard)
        return chunks

    def _onset_reader(self, chunks: _ChunkMap, shard: Path, offset: int):
        """``read(lo, hi)``: envelope samples ``lo:hi`` of the track at ``offset`` of ``shard``."""
        def read(lo, hi):
            onset = np.empty((1, hi - lo), np.float32)
            chunks.copy("onset", offset + lo, offset + hi, onset, lambda: self._datasets(shard)["onset"])
            return onset[0]

        return read

    def failures(self) -> list[tuple[str, str, str]]:
        """``(track_id, path, reason)`` of inputs that failed and never succeeded since."""
        return sorted((tid, p, r) for tid, (p, r) in self._index.failed.items())

    def n_shards(self) -> int:
        return len(shard_paths(self.path))

    def verify(self, track_ids=None, *, progress=None) -> list[tuple[str, str]]:
        """Read every feature matrix through its checksums; ``[(track_id, reason)]`` of damaged ones,
        after ``("shard NNNNNNNN", reason)`` for each shard missing from the store."""
        ids = self.track_ids() if track_ids is None else list(track_ids)
        names = stored_names(self.layout, self._config)
        bad = [(f"shard {n:08d}", _missing_message(self.path, [n])) for n in self.missing_shards]
        for tid in (progress(ids) if progress else ids):
            try:
                self.features(tid, names=names)
            except StoreError as e:
                bad.append((tid, str(e)))
        return bad


class StoreWriter:
    """The one writer of a store: shards committed whole, under a lock.

    Use as a context manager (the lock is held until it exits).

    Parameters
    ----------
    path : str or Path
        The store's root file.
    feature_config : FeatureConfig
        Must match the settings an existing store was built with.
    layout : {"compact", "full"}
        ``compact`` stores the tempogram's onset envelope, ``full`` the tempogram
        too (about 3.7 x the bytes, no computation at read time). An existing
        store keeps its layout.
    overwrite : bool
        Start from an empty store (the old root and shards are removed).
    shard_tracks, shard_seconds : int, float
        Commit the shard being filled after this many tracks or seconds.

    Raises
    ------
    InputError
        When another process writes the store.
    StoreError
        When the store was built with other feature settings.
    """

    def __init__(self, path, feature_config: FeatureConfig, *, layout: str = "compact", overwrite: bool = False,
                 shard_tracks: int = 512, shard_seconds: float = 60.0):
        if layout not in LAYOUTS:
            raise StoreError(f"unknown store layout {layout!r} (valid: {', '.join(LAYOUTS)})")
        self.path = Path(path)
        self.config = feature_config
        self.layout = layout
        self.shard_tracks, self.shard_seconds = shard_tracks, shard_seconds
        self._lock = None
        self._shard = None
        self._overwrite = overwrite

    # -- lifecycle ---------------------------------------------------------
    def __enter__(self):
        from mdsim.locking import exclusive_lock

        self._lock = exclusive_lock(self.path, what="mdsim prep")
        self._lock.__enter__()
        try:
            self._open_store()
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc):
        try:
            self.commit()
        finally:
            self._lock.__exit__(None, None, None)

    def _open_store(self) -> None:
        if self._overwrite:
            import shutil

            self.path.unlink(missing_ok=True)
            shutil.rmtree(shards_dir(self.path), ignore_errors=True)
            shutil.rmtree(parts_dir(self.path), ignore_errors=True)
        if self.path.exists() and _is_version_1(self.path):
            upgrade_store(self.path, locked=True)
        if self.path.exists():
            root = _read_root(self.path)
            old = root["config"]
            if old.analysis_dict() != self.config.analysis_dict():
                diff = "; ".join(old.differences(self.config, names=("store", "this run")))
                raise StoreError(f"{self.path} was built with other feature settings ({diff}); write to a new "
                                 "--out, or pass --overwrite to rebuild it")
            self.layout = root["layout"]
            self.config = FeatureConfig.from_dict({**self.config.to_dict(), "dtype": old.dtype})
        else:
            _write_root(self.path, self.config, self.layout)
        shards_dir(self.path).mkdir(parents=True, exist_ok=True)
        for stale in shards_dir(self.path).glob("*.tmp"):
            stale.unlink()  # a shard a killed writer was filling: never committed
        root = _read_root(self.path)
        self._last_shard, self._lost = root["last_shard"], root["lost_shards"]
        gone = missing_shards(self.path, root)
        if gone:
            import warnings

            # This run computes again the tracks of its input the store lacks; its first commit
            # records the numbers as known, so readers stop reporting them.
            warnings.warn(_missing_message(self.path, gone), stacklevel=2)
            self._lost = sorted(set(self._lost) | set(gone))

    # -- writing -----------------------------------------------------------
    def add_track(self, track_id: str, features: dict, attrs: dict) -> None:
        """Add one finished track to the shard being filled."""
        self._shard_open().add(track_id, STATUS_FEATURES, {"track_id": track_id, **attrs}, features)
        self._maybe_commit()

    def update_attrs(self, track_id: str, attrs: dict) -> None:
        """New attributes (labels) for a track whose features stay as stored."""
        self._shard_open().add(track_id, STATUS_LABELS, {"track_id": track_id, **attrs}, None)
        self._maybe_commit()

    def add_failure(self, track_id: str, path: str, reason: str) -> None:
        """Record an input that failed (its old features, if any, are no longer served)."""
        self._shard_open().add(track_id, STATUS_FAILED, {"track_id": track_id, "source_path": str(path),
                                                          "reason": reason}, None)
        self._maybe_commit()

    def remove(self, track_id: str) -> None:
        """Stop serving a track."""
        self._shard_open().add(track_id, STATUS_REMOVED, {"track_id": track_id}, None)
        self._maybe_commit()

    def _shard_open(self) -> "_ShardBuilder":
        if self._shard is None:
            self._shard = _ShardBuilder(shards_dir(self.path), self.config, self.layout)
        return self._shard

    def _maybe_commit(self) -> None:
        s = self._shard
        if s is not None and (s.n >= self.shard_tracks or time.monotonic() - s.t0 >= self.shard_seconds):
            self.commit()

    def commit(self) -> Path | None:
        """Commit the shard being filled (fsync, rename); after this its tracks survive any crash."""
        if self._shard is None:
            return None
        shard, self._shard = self._shard, None
        final = shard.commit(after=self._last_shard)
        if final is not None:
            self._last_shard = _shard_number(final)
            _update_root(self.path, last_shard=self._last_shard, lost_shards=json.dumps(self._lost))
        return final


class _ShardBuilder:
    """One shard being filled under a temporary name."""

    def __init__(self, folder: Path, config: FeatureConfig, layout: str):
        h5py = _h5py()
        self.folder, self.config, self.layout = folder, config, layout
        self.t0 = time.monotonic()
        self.n = 0
        self.tmp = folder / f"{time.time_ns():020d}-{os.getpid()}.tmp"
        self.f = h5py.File(self.tmp, "w")
        self.f.attrs["format"] = SHARD_FORMAT
        self.f.attrs["format_version"] = STORE_VERSION
        self.f.attrs["feature_config"] = json.dumps(config.to_dict(), sort_keys=True)
        self.f.attrs["layout"] = layout
        self.rows = {"track_id": [], "status": [], "attrs": [], "offset": [], "n_frames": []}
        self.frames = 0
        g = self.f.create_group("features")
        bins = {"mel": config.n_mels, "cens": config.n_chroma, "onset": 1, "tempogram": config.tempogram_win_length,
                "cqt": config.cqt_n_bins}
        self.data = {}
        for name in stored_names(layout, config):
            dtype = "float32" if name == "onset" else config.dtype
            self.data[name] = g.create_dataset(name, shape=(bins[name], 0), maxshape=(bins[name], None),
                                               dtype=dtype, chunks=(bins[name], CHUNK_FRAMES), fletcher32=True)

    def add(self, track_id: str, status: int, attrs: dict, features: dict | None) -> None:
        offset, n = -1, 0
        if features is not None:
            n = int(features[next(iter(self.data))].shape[1])
            offset = self.frames
            for name, ds in self.data.items():
                ds.resize(self.frames + n, axis=1)
                ds[:, self.frames:self.frames + n] = np.asarray(features[name], dtype=ds.dtype)
            self.frames += n
        self.rows["track_id"].append(track_id)
        self.rows["status"].append(status)
        self.rows["attrs"].append(json.dumps(attrs, sort_keys=True, default=_json_default))
        self.rows["offset"].append(offset)
        self.rows["n_frames"].append(n)
        self.n += 1

    def commit(self, *, after: int = 0) -> Path | None:
        """Close, fsync and rename the shard to the next sequence number (past ``after``,
        the last number the root records, so a deleted last shard's number is never reused)."""
        h5py = _h5py()
        if self.n == 0:
            self.f.close()
            self.tmp.unlink(missing_ok=True)
            return None
        g = self.f.create_group("index")
        # Index text as UTF-8 bytes (variable-length strings cannot carry HDF5 checksums).
        g.create_dataset("track_id", data=_blob(json.dumps(t) for t in self.rows["track_id"]), fletcher32=True,
                         chunks=True)
        g.create_dataset("attrs", data=_blob(self.rows["attrs"]), fletcher32=True, chunks=True)
        g.create_dataset("status", data=np.array(self.rows["status"], dtype=np.int8), fletcher32=True, chunks=True)
        for name in ("offset", "n_frames"):
            g.create_dataset(name, data=np.array(self.rows[name], dtype=np.int64), fletcher32=True, chunks=True)
        self.f.close()
        _fsync(self.tmp)
        numbers = [n for n in map(_shard_number, self.folder.glob("*.h5")) if n is not None]
        seq = max(numbers + [after]) + 1
        final = self.folder / f"{seq:08d}-{os.getpid()}.h5"
        os.replace(self.tmp, final)
        del h5py
        return final


def _write_root(path: Path, config: FeatureConfig, layout: str) -> None:
    """Write a store's root file (temporary name, fsync, rename)."""
    from mdsim._version import __version__

    h5py = _h5py()
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(tmp, "w") as f:
        f.attrs["format"] = STORE_FORMAT
        f.attrs["format_version"] = STORE_VERSION
        f.attrs["mdsim_version"] = __version__
        f.attrs["feature_config"] = json.dumps(config.to_dict(), sort_keys=True)
        f.attrs["layout"] = layout
    _fsync(tmp)
    os.replace(tmp, path)


def _update_root(path: Path, **attrs) -> None:
    """Set attributes of a store's root file (a copy under a temporary name, fsync, rename)."""
    import shutil

    h5py = _h5py()
    tmp = path.with_name(path.name + ".tmp")
    shutil.copyfile(path, tmp)
    with h5py.File(tmp, "a") as f:
        for name, value in attrs.items():
            f.attrs[name] = value
    _fsync(tmp)
    os.replace(tmp, path)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


# -- version 1 ---------------------------------------------------------------------------------


def _is_version_1(path: Path) -> bool:
    h5py = _h5py()
    try:
        with h5py.File(path, "r") as f:
            return int(f.attrs.get("format_version", 0)) < 2 or "tracks" in f
    except OSError:
        return False


def upgrade_store(path, *, locked: bool = False, log=None) -> int:
    """Convert a version-1 store (one file, a group per track, plus unmerged parts) to
    version 2 in the full layout (its tempograms are kept; no audio is needed).

    The new root replaces the old file only after its shard is committed, so a kill
    leaves either the old store or the new one. Returns the number of tracks.
    """
    from contextlib import nullcontext
    from urllib.parse import unquote

    from mdsim.locking import exclusive_lock

    path = Path(path)
    h5py = _h5py()
    with (nullcontext() if locked else exclusive_lock(path, what="mdsim store upgrade")):
        sources = ([path] if path.exists() else []) + sorted(parts_dir(path).glob("*.h5"))
        tracks, failed, config = {}, {}, None
        files = []
        try:
            for src in sources:
                try:
                    f = h5py.File(src, "r")
                except OSError as e:
                    raise StoreError(f"{src}: cannot read this version-1 store file ({e})") from None
                files.append(f)
                if config is None:
                    config = FeatureConfig.from_dict(json.loads(_attr_str(f.attrs["feature_config"])))
                for name, grp in f.get("tracks", {}).items():
                    tracks[unquote(name)] = grp
                    failed.pop(unquote(name), None)
                if "failed" in f:
                    g = f["failed"]
                    for tid, p, r in zip(g["track_id"].asstr()[()], g["path"].asstr()[()], g["reason"].asstr()[()]):
                        if tid not in tracks:
                            failed[tid] = (p, r)
            folder = shards_dir(path)
            folder.mkdir(parents=True, exist_ok=True)
            builder = _ShardBuilder(folder, config, "full")
            for tid in sorted(tracks):
                grp = tracks[tid]
                attrs = {k: (_attr_str(v) if isinstance(v, (bytes, str)) else
                             (v.item() if hasattr(v, "item") else v)) for k, v in grp.attrs.items()}
                feats = {n: grp[n][()] for n in FEATURE_NAMES}
                # version 1 kept no onset envelope: a NaN row marks it unknown
                feats["onset"] = np.full((1, feats["mel"].shape[1]), np.nan, np.float32)
                builder.add(tid, STATUS_FEATURES, {**attrs, "track_id": tid}, feats)
            for tid, (p, r) in sorted(failed.items()):
                builder.add(tid, STATUS_FAILED, {"track_id": tid, "source_path": p, "reason": r}, None)
            builder.commit()
        finally:
            for f in files:
                f.close()
        _write_root(path, config, "full")
        for part in sorted(parts_dir(path).glob("*")):
            part.unlink()
        if parts_dir(path).is_dir():
            parts_dir(path).rmdir()
        if log is not None:
            print(f"upgraded {path} to store format version {STORE_VERSION}: {len(tracks)} tracks, "
                  f"{len(failed)} failures", file=log)
        return len(tracks)
