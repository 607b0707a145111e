"""``mdsim prep``: audio in, features store out; resumable, parallel, one writer.

Workers (local processes, or a Dask cluster) only compute: each call of
:func:`process_track` decodes one file, extracts the features and the
annotations it needs, and returns them. The main process is the store's
single writer (it holds the store's lock) and adds each result to the shard
being filled, committed every ``shard_tracks`` tracks or ``shard_seconds``
(see :mod:`mdsim.features.store`), so a killed run loses at most that shard.
At most ``2 * workers`` tracks are in flight, so memory stays bounded however
many tracks the input lists; local workers end with the process that started
them, ``kill -9`` included.

Resuming follows the input: a finished track whose audio is unchanged is not
recomputed, but label, group and metadata edits in the manifest are applied
(a "labels only" entry); a track whose source now fails is recorded as
failed and its old features are no longer served; a source that disappeared
is reported and its features kept.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mdsim.audio import file_hash, load_audio
from mdsim.config import FeatureConfig
from mdsim.errors import InputError, MdsimError, stop_if_terminated
from mdsim.features.annotators import annotate_track, check_method
from mdsim.features.compile_lock import first_compile
from mdsim.features.spectral import extract_features
from mdsim.labels import TAG_DIMENSIONS, key_name
from mdsim.manifest import TrackEntry, read_input


def _source_stamp(path: Path) -> dict:
    st = os.stat(path)
    return {"source_size": int(st.st_size), "source_mtime": float(st.st_mtime)}


def label_attrs(entry: TrackEntry) -> dict:
    """The attributes a manifest sets directly: tags, group and metadata."""
    attrs = {d: ";".join(entry.labels.get(d) or []) for d in TAG_DIMENSIONS}
    attrs["group"] = entry.group
    attrs["metadata"] = json.dumps(entry.metadata, sort_keys=True)
    if entry.labels.get("pitch") is not None:  # a note of a sound library (MIDI number)
        attrs["pitch"] = int(entry.labels["pitch"])
    return attrs


def relabelled(entry: TrackEntry, stored: dict) -> dict | None:
    """The stored attributes with the manifest's current labels, or ``None`` when
    nothing changed. Raises ``_NeedsAnnotation`` when a tempo or key the manifest
    gave is now left to estimation (which needs the audio)."""
    new = dict(stored)
    new.update(label_attrs(entry))
    if entry.labels.get("pitch") is None:
        new.pop("pitch", None)  # a pitch the manifest no longer gives
    tempo, key = entry.labels.get("tempo"), entry.labels.get("key")
    if tempo is not None:
        new.update(tempo=float(tempo), tempo_source="manifest", tempo_strength=float("nan"))
    elif stored.get("tempo_source") == "manifest":
        raise _NeedsAnnotation
    if key is not None:
        new.update(key=key_name(key), key_index=int(key), key_source="manifest", key_probability=float("nan"))
    elif stored.get("key_source") == "manifest":
        raise _NeedsAnnotation

    def same(a, b):
        return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))

    return None if set(new) == set(stored) and all(same(new[k], stored.get(k)) for k in new) else new


class _NeedsAnnotation(Exception):
    pass


def process_track(entry: TrackEntry, config: FeatureConfig, tempo_mode: str = "full",
                  annotate: str = "madmom", keep=None) -> dict:
    """Compute everything the store keeps for one track (runs in a worker).

    Returns
    -------
    dict
        ``{"track_id", "ok": True, "features": {...}, "attrs": {...}}`` or
        ``{"track_id", "ok": False, "path", "reason"}``; never raises for bad
        input, so one corrupt file cannot stop a batch.

    A worker's first track (features and annotation) is computed under the machine-wide compile
    lock of :mod:`mdsim.features.compile_lock`, so two workers never compile librosa's kernels
    into numba's cache at once.
    """
    with first_compile() as compiled:
        result = _process_track(entry, config, tempo_mode, annotate, keep)
        compiled.ok = result["ok"]  # a failed track may not have compiled everything: the next one locks
    return result


def _process_track(entry: TrackEntry, config: FeatureConfig, tempo_mode: str, annotate: str, keep) -> dict:
    try:
        t0 = time.perf_counter()
        stamp = _source_stamp(entry.path) if entry.path.exists() else {}
        y = load_audio(entry.path, sr=config.sample_rate)
        features = extract_features(y, config=config)
        found = annotate_track(entry.labels, y=y, sr=config.sample_rate, features=features, path=entry.path,
                               method=annotate, tempo_mode=tempo_mode)
        duration = len(y) / config.sample_rate
        attrs = {
            "source_path": str(Path(entry.path).resolve()),
            "sha1": file_hash(entry.path),
            **stamp,
            "duration": duration,
            "sample_rate": config.sample_rate,
            "n_frames": int(next(iter(features.values())).shape[1]),
            "too_short": bool(next(iter(features.values())).shape[1] < config.segment_frames),
            **found,
            "seconds_to_compute": time.perf_counter() - t0,
        }
        attrs.update(label_attrs(entry))
        if keep is not None:  # only what the store keeps travels back to the writer
            features = {name: features[name] for name in keep}
        return {"track_id": entry.track_id, "ok": True, "features": features, "attrs": attrs}
    except MdsimError as e:
        return {"track_id": entry.track_id, "ok": False, "path": str(entry.path), "reason": str(e)}
    except Exception as e:  # noqa: BLE001 - a worker must report, not die
        return {"track_id": entry.track_id, "ok": False, "path": str(entry.path),
                "reason": f"{entry.path}: {type(e).__name__}: {e}"}


@dataclass
class PrepSummary:
    """What a ``prep`` run did."""

    done: int = 0
    skipped: int = 0
    failed: int = 0
    too_short: int = 0
    audio_seconds: float = 0.0
    wall_seconds: float = 0.0
    relabelled: int = 0
    missing: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    tracks: list = field(default_factory=list)
    interrupted: bool = False
    store_tracks: int = 0

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else float("nan")

    def line(self) -> str:
        return (f"done {self.done}, skipped {self.skipped} (relabelled {self.relabelled}), failed {self.failed}, "
                f"audio {self.audio_seconds / 3600:.3f} h, wall {self.wall_seconds:.1f} s, "
                f"{self.realtime_factor:.1f}x real time")


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker when the process that started it ends.

    On Linux the kernel sends SIGKILL when the parent dies (``PR_SET_PDEATHSIG``);
    elsewhere, and as a second guard, a thread checks every second whether the
    parent is gone (the worker is then re-parented)."""
    import signal
    import threading

    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before the line above
        os._exit(1)

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="mdsim-parent-watch").start()
    # Ctrl-C reaches the whole process group: the writer handles it, workers only compute.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class _LocalExecutor:
    """Worker processes on this machine (``spawn``: no state leaks from the writer)."""

    def __init__(self, workers: int):
        import concurrent.futures
        import multiprocessing

        self._cf = concurrent.futures
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=_die_with_parent, initargs=(os.getpid(),))

    def submit(self, *args):
        return self._pool.submit(process_track, *args)

    def wait_one(self, pending):
        done, _ = self._cf.wait(pending, return_when=self._cf.FIRST_COMPLETED)
        return done

    def close(self, cancel=False):
        self._pool.shutdown(wait=not cancel, cancel_futures=cancel)


class _DaskExecutor:
    """The same job on an existing Dask cluster."""

    def __init__(self, address: str):
        try:
            import distributed
        except ImportError:
            raise InputError("--scheduler needs Dask: pip install 'dask[distributed]'") from None
        self._dist = distributed
        try:
            self._client = distributed.Client(address, timeout="20s")
        except OSError as e:
            raise InputError(f"cannot reach the Dask scheduler at {address} ({e})") from None

    def submit(self, *args):
        return self._client.submit(process_track, *args, pure=False)

    def wait_one(self, pending):
        return self._dist.wait(list(pending), return_when="FIRST_COMPLETED").done

    def close(self, cancel=False):
        self._client.close()


class _InlineExecutor:
    """``--workers 1``: compute in this process (no start-up cost)."""

    class _Done:
        def __init__(self, value):
            self._value = value

        def result(self):
            return self._value

    def submit(self, *args):
        return self._Done(process_track(*args))

    def wait_one(self, pending):
        return set(pending)

    def close(self, cancel=False):
        pass


def _is_unchanged(entry: TrackEntry, attrs: dict) -> bool:
    """Whether a finished track's audio file is the one its features were computed from."""
    stamp = _source_stamp(entry.path)
    if stamp["source_size"] == attrs.get("source_size") and stamp["source_mtime"] == attrs.get("source_mtime"):
        return True
    return file_hash(entry.path) == attrs.get("sha1")


def prep(input_path, out, *, workers: int | None = None, scheduler: str | None = None,
         tempo_mode: str = "full", annotate: str = "madmom", config: FeatureConfig = FeatureConfig(),
         layout: str = "compact", overwrite: bool = False, verify: bool = False,
         shard_tracks: int = 512, shard_seconds: float = 60.0,
         progress: bool = True, log=None) -> PrepSummary:
    """Build or extend a features store from a folder or a manifest.

    Parameters
    ----------
    input_path : str or Path
        A folder (searched recursively for audio) or a manifest CSV.
    out : str or Path
        The store's root file (``.h5``).
    workers : int, optional
        Local worker processes (default: the machine's cores; 1 computes in
        this process).
    scheduler : str, optional
        Address of a running Dask scheduler; overrides ``workers``.
    tempo_mode : {"full", "fast"}
        madmom beat ensemble size for tempo estimation.
    annotate : {"madmom", "fast", "none"}
        How tempo and key are estimated where the manifest gives none.
    config : FeatureConfig
    layout : {"compact", "full"}
        What a new store keeps (:class:`mdsim.features.store.StoreWriter`).
    overwrite : bool
        Rebuild from scratch instead of resuming.
    verify : bool
        Read the stored features of every unchanged input through their
        checksums and recompute the damaged ones.
    shard_tracks, shard_seconds : int, float
        Commit a shard after this many tracks or seconds (what a kill can lose).

    Raises
    ------
    KeyboardInterrupt
        After committing what was finished (``summary`` is printed first).

    Returns
    -------
    PrepSummary
    """
    from tqdm import tqdm

    from mdsim.features.store import FeatureStore, StoreWriter, stored_names

    log = log if log is not None else sys.stderr
    check_method(annotate)
    t0 = time.perf_counter()
    entries = read_input(input_path)  # validates everything before any work
    summary = PrepSummary()
    with StoreWriter(out, config, layout=layout, overwrite=overwrite, shard_tracks=shard_tracks,
                     shard_seconds=shard_seconds) as writer:
        todo = _plan(entries, writer, summary, verify=verify, log=log)
        keep = stored_names(writer.layout, writer.config)
        config = writer.config
        if workers is None:
            workers = os.cpu_count() or 1
        if scheduler:
            executor = _DaskExecutor(scheduler)
            in_flight = 64
        elif workers <= 1 or len(todo) <= 1:
            executor, in_flight = _InlineExecutor(), 1
        else:
            executor, in_flight = _LocalExecutor(min(workers, len(todo))), 2 * workers
        bar = tqdm(total=len(todo), unit="track", disable=not progress, file=log, dynamic_ncols=True,
                   desc="prep")
        pending: dict = {}
        queue = iter(todo)
        cancelled = True
        try:
            while True:
                while len(pending) < in_flight:
                    e = next(queue, None)
                    if e is None:
                        break
                    pending[executor.submit(e, config, tempo_mode, annotate, keep)] = e
                if not pending:
                    break
                for fut in executor.wait_one(set(pending)):
                    del pending[fut]
                    _commit(writer, fut.result(), summary, log, bar)
                    bar.update(1)
                    hours = summary.audio_seconds / 3600
                    rt = summary.audio_seconds / max(time.perf_counter() - t0, 1e-9)
                    bar.set_postfix_str(f"{hours:.2f} h audio, {rt:.1f}x rt, failed {summary.failed}")
                    stop_if_terminated()
            cancelled = False
        except KeyboardInterrupt:
            summary.interrupted = True
            raise
        finally:
            executor.close(cancel=cancelled)
            bar.close()
            writer.commit()  # also after Ctrl-C: keep what was finished
            summary.wall_seconds = time.perf_counter() - t0
            with FeatureStore(out) as store:
                summary.store_tracks = len(store)
            if summary.interrupted:
                print(f"\nprep: interrupted; kept the {summary.done} tracks finished in this run "
                      f"({summary.failed} failed), {out} holds {summary.store_tracks} tracks. "
                      "Run the same command again to continue.", file=log)
    if progress:
        print(f"prep: {summary.line()}; store {out} holds {summary.store_tracks} tracks", file=log)
    return summary


def _plan(entries, writer, summary: PrepSummary, *, verify: bool, log) -> list:
    """The inputs to compute; applies manifest label edits to unchanged tracks on the way."""
    from mdsim.features.store import FeatureStore

    store = FeatureStore(writer.path)
    todo = []
    try:
        for e in entries:
            if e.track_id not in store:
                todo.append(e)
                continue
            stored = store.attrs(e.track_id)
            if not e.path.exists():
                summary.missing.append(e.track_id)
                summary.skipped += 1
                print(f"prep: note {e.track_id}: its source {e.path} is gone; its stored features are kept",
                      file=log)
                continue
            if not _is_unchanged(e, stored):
                todo.append(e)
                continue
            damaged = store.verify([e.track_id]) if verify else []
            if damaged:
                print(f"prep: {damaged[0][1]}: computing it again", file=log)
                todo.append(e)
                continue
            try:
                new = relabelled(e, stored)
            except _NeedsAnnotation:
                todo.append(e)  # a manifest tempo or key was removed: estimate it from the audio
                continue
            if new is not None:
                writer.update_attrs(e.track_id, {k: v for k, v in new.items() if k != "track_id"})
                summary.relabelled += 1
            summary.skipped += 1
    finally:
        store.close()
    return todo


def _commit(writer, result: dict, summary: PrepSummary, log, bar) -> None:
    tid = result["track_id"]
    if not result["ok"]:
        writer.add_failure(tid, result["path"], result["reason"])
        summary.failed += 1
        summary.failures.append((tid, result["reason"]))
        bar.write(f"prep: failed {tid}: {result['reason']}", file=log)
        return
    writer.add_track(tid, result["features"], result["attrs"])
    a = result["attrs"]
    summary.done += 1
    summary.audio_seconds += a["duration"]
    summary.tracks.append(tid)
    if a["too_short"]:
        summary.too_short += 1
        bar.write(f"prep: note {tid}: {a['duration']:.1f} s is shorter than one 3 s segment "
                  "(kept; zero-padded for embedding and training)", file=log)
