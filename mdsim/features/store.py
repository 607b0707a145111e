"""The features store: one HDF5 file, one group per track.

Layout (``docs/store.md`` has every attribute)::

    STORE.h5
      /                attrs: format, format_version, mdsim_version, feature_config (JSON)
      /tracks/<name>/  attrs: track_id, labels, tempo, key, duration, ...
          mel        (128, T)  float16
          cens       (12, T)   float16
          tempogram  (384, T)  float16
      /failed/         track_id, path, reason: 1-D utf-8 string datasets

Crash safety. The store file is never modified in place. While ``prep``
runs, every finished track is written to its own small HDF5 file in
``STORE.h5.parts/`` (written under a temporary name, flushed, then renamed,
so a part either exists whole or not at all). At the end of a run the parts
are merged with the old store into a new file that is renamed over
``STORE.h5``. A ``kill -9`` at any moment therefore leaves the old store and
a set of whole parts; :class:`FeatureStore` reads both, and the next ``prep``
run merges them.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np

from mdsim.config import FeatureConfig
from mdsim.errors import StoreError
from mdsim.features.spectral import FEATURE_NAMES
from mdsim.labels import TAG_DIMENSIONS, parse_tags

STORE_FORMAT = "mdsim-features"
STORE_VERSION = 1
#: Frames per HDF5 chunk along time: a 259-frame window touches at most two chunks.
CHUNK_FRAMES = 512

_STR = None  # set lazily: h5py.string_dtype()


def _h5py():
    import h5py

    global _STR
    if _STR is None:
        _STR = h5py.string_dtype("utf-8")
    return h5py


def group_name(track_id: str) -> str:
    """HDF5 group name of a track id (``/`` and ``%`` escaped, ``.`` alone too)."""
    name = quote(track_id, safe=" !#$&'()*+,-;<=>?@[]^_`{|}~:")
    return "%2E" if name == "." else name


def track_id_of(name: str) -> str:
    """Inverse of :func:`group_name`."""
    return unquote(name)


def parts_dir(path) -> Path:
    """Folder of the parts of a run that has not been merged yet."""
    return Path(str(path) + ".parts")


def _attr_str(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8")
    return str(value)


def labels_from_attrs(attrs) -> dict:
    """Labels of a track (the :mod:`mdsim.labels` contract) from its group attributes."""
    labels = {d: parse_tags(_attr_str(attrs.get(d, ""))) for d in TAG_DIMENSIONS}
    tempo = float(attrs.get("tempo", np.nan))
    labels["tempo"] = tempo if np.isfinite(tempo) and tempo > 0 else None
    key = int(attrs.get("key_index", -1))
    labels["key"] = key if key >= 0 else None
    return labels


def write_track_group(group, features: dict, attrs: dict, *, dtype: str) -> None:
    """Fill an HDF5 group with a track's feature matrices and attributes."""
    for name in FEATURE_NAMES:
        data = np.asarray(features[name], dtype=dtype)
        chunks = (data.shape[0], max(1, min(CHUNK_FRAMES, data.shape[1])))
        group.create_dataset(name, data=data, chunks=chunks)
    for key, value in attrs.items():
        group.attrs[key] = value


class FeatureStore:
    """Read a features store, including the parts of an interrupted run.

    Parameters
    ----------
    path : str or Path
        The store file. It may be missing when only parts exist.

    Notes
    -----
    Handles are opened lazily and reopened after pickling, so a store can be
    handed to worker processes.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._files = None
        self._index = None
        self._config = None
        if not self.path.exists() and not self._part_paths():
            raise StoreError(f"{self.path}: no features store here; build one with `mdsim prep INPUT --out {self.path}`")
        self._open()

    # -- opening -----------------------------------------------------------
    def _part_paths(self) -> list[Path]:
        d = parts_dir(self.path)
        return sorted(d.glob("*.h5")) if d.is_dir() else []

    def _open(self) -> None:
        h5py = _h5py()
        files, index, failed = [], {}, {}
        sources = ([self.path] if self.path.exists() else []) + self._part_paths()
        for src in sources:
            try:
                f = h5py.File(src, "r")
            except OSError as e:
                if src == self.path:
                    raise StoreError(f"{src}: not a readable HDF5 features store ({e})") from None
                continue  # a part being written right now; it is complete once renamed
            self._check_header(f, src)
            files.append(f)
            for name, grp in f.get("tracks", {}).items():
                index[track_id_of(name)] = grp  # later sources supersede earlier ones
                failed.pop(track_id_of(name), None)
            if "failed" in f:
                g = f["failed"]
                for tid, p, reason in zip(g["track_id"].asstr()[()], g["path"].asstr()[()], g["reason"].asstr()[()]):
                    if tid not in index:
                        failed[tid] = (p, reason)
        self._files, self._index, self._failed = files, index, failed

    def _check_header(self, f, src) -> None:
        if _attr_str(f.attrs.get("format", "")) != STORE_FORMAT:
            raise StoreError(f"{src}: not an mdsim features store (no format attribute '{STORE_FORMAT}')")
        version = int(f.attrs.get("format_version", 0))
        if version > STORE_VERSION:
            raise StoreError(f"{src}: store format version {version} is newer than this mdsim reads "
                             f"({STORE_VERSION}); upgrade mdsim")
        config = FeatureConfig.from_dict(json.loads(_attr_str(f.attrs["feature_config"])))
        if self._config is None:
            self._config = config
        elif config.analysis_dict() != self._config.analysis_dict():
            raise StoreError(f"{src}: built with other feature settings than {self.path}")

    def close(self) -> None:
        for f in self._files or []:
            f.close()
        self._files, self._index = [], {}

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
        return sorted(self._index)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, track_id) -> bool:
        return track_id in self._index

    def _group(self, track_id):
        try:
            return self._index[track_id]
        except KeyError:
            raise StoreError(f"{self.path}: no track {track_id!r} in the store") from None

    def attrs(self, track_id) -> dict:
        """All attributes of a track as Python values."""
        out = {}
        for k, v in self._group(track_id).attrs.items():
            out[k] = _attr_str(v) if isinstance(v, (bytes, str)) else (v.item() if hasattr(v, "item") else v)
        return out

    def labels(self, track_id) -> dict:
        """Labels of a track (tags, tempo in BPM, key index)."""
        return labels_from_attrs(self._group(track_id).attrs)

    def n_frames(self, track_id) -> int:
        return int(self._group(track_id)["mel"].shape[1])

    def features(self, track_id, *, names=FEATURE_NAMES, start: int = 0, stop: int | None = None) -> dict:
        """Feature matrices of a track, frames ``start:stop``, as ``float32``.

        Returns
        -------
        dict
            ``{name: np.ndarray [shape=(n_bins, stop - start), dtype=float32]}``.
        """
        g = self._group(track_id)
        return {n: g[n][:, start:stop].astype(np.float32) for n in names}

    def failures(self) -> list[tuple[str, str, str]]:
        """``(track_id, path, reason)`` of inputs that failed and never succeeded since."""
        return sorted((tid, p, r) for tid, (p, r) in self._failed.items())

    def n_parts(self) -> int:
        """Parts not yet merged into the store file (non-zero after an interrupted run)."""
        return len(self._part_paths())


class StoreWriter:
    """The one writer of a store: atomic parts during a run, an atomic merge at the end.

    Parameters
    ----------
    path : str or Path
        The store file.
    feature_config : FeatureConfig
        Must match the settings an existing store was built with.
    overwrite : bool
        Start from an empty store (the old file and parts are removed).
    """

    def __init__(self, path, feature_config: FeatureConfig, *, overwrite: bool = False):
        self.path = Path(path)
        self.config = feature_config
        self.parts = parts_dir(self.path)
        if overwrite:
            if self.path.exists():
                self.path.unlink()
            if self.parts.is_dir():
                for p in self.parts.iterdir():
                    p.unlink()
        if self.path.exists() or self.parts.is_dir() and any(self.parts.glob("*.h5")):
            with FeatureStore(self.path) as old:
                if old.feature_config.analysis_dict() != feature_config.analysis_dict():
                    raise StoreError(
                        f"{self.path} was built with other feature settings "
                        f"({json.dumps(old.feature_config.analysis_dict(), sort_keys=True)}); "
                        "write to a new --out, or pass --overwrite to rebuild it")
        self.parts.mkdir(parents=True, exist_ok=True)
        self._seq = 0

    def _init_root(self, f) -> None:
        from mdsim import __version__

        f.attrs["format"] = STORE_FORMAT
        f.attrs["format_version"] = STORE_VERSION
        f.attrs["mdsim_version"] = __version__
        f.attrs["feature_config"] = json.dumps(self.config.to_dict(), sort_keys=True)

    def finished(self) -> dict:
        """``{track_id: attrs}`` of every track already in the store or its parts."""
        if not (self.path.exists() or any(self.parts.glob("*.h5"))):
            return {}
        with FeatureStore(self.path) as store:
            return {tid: store.attrs(tid) for tid in store.track_ids()}

    def _write_part(self, fill) -> Path:
        h5py = _h5py()
        self._seq += 1
        final = self.parts / f"{time.time_ns():020d}-{os.getpid()}-{self._seq:06d}.h5"
        tmp = final.with_suffix(".tmp")
        with h5py.File(tmp, "w") as f:
            self._init_root(f)
            fill(f)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, final)
        return final

    def add_track(self, track_id: str, features: dict, attrs: dict) -> None:
        """Commit one finished track (atomic: after this returns it survives any crash)."""
        def fill(f):
            g = f.create_group("tracks").create_group(group_name(track_id))
            write_track_group(g, features, {"track_id": track_id, **attrs}, dtype=self.config.dtype)
        self._write_part(fill)

    def add_failure(self, track_id: str, path: str, reason: str) -> None:
        """Record an input that failed, with a one-line reason."""
        def fill(f):
            g = f.create_group("failed")
            for name, value in (("track_id", track_id), ("path", path), ("reason", reason)):
                g.create_dataset(name, data=np.array([value], dtype=object), dtype=_STR)
        self._write_part(fill)

    def merge(self, *, progress=None) -> int:
        """Merge the parts into the store file (new file, then atomic rename).

        Returns the number of tracks in the merged store.
        """
        parts = sorted(self.parts.glob("*.h5"))
        for stale in self.parts.glob("*.tmp"):
            stale.unlink()
        if not parts and self.path.exists():
            with FeatureStore(self.path) as s:
                return len(s)
        h5py = _h5py()
        tmp = self.path.with_name(self.path.name + ".merging")
        with FeatureStore(self.path) as store, h5py.File(tmp, "w") as out:
            self._init_root(out)
            tracks = out.create_group("tracks")
            ids = store.track_ids()
            for tid in (progress(ids) if progress else ids):
                src = store._group(tid)
                src.file.copy(src, tracks, name=group_name(tid))
            fails = store.failures()
            g = out.create_group("failed")
            for i, name in enumerate(("track_id", "path", "reason")):
                g.create_dataset(name, data=np.array([r[i] for r in fails], dtype=object), dtype=_STR)
            n = len(ids)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        for p in parts:
            p.unlink()
        return n
