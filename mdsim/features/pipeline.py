"""``mdsim prep``: audio in, features store out; resumable, parallel, one writer.

Workers (local processes, or a Dask cluster) only compute: each call of
:func:`process_track` decodes one file, extracts the features and the
madmom annotations it needs, and returns them. The main process is the
store's single writer and commits each result atomically as it arrives
(see :mod:`mdsim.features.store`), so a killed run loses only the tracks in
flight. At most ``2 * workers`` tracks are in flight, so memory stays
bounded however many tracks the input lists.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from mdsim.audio import file_hash, load_audio
from mdsim.config import FeatureConfig
from mdsim.errors import InputError, MdsimError
from mdsim.features.annotators import annotate_track, check_method
from mdsim.features.spectral import extract_features
from mdsim.features.store import StoreWriter
from mdsim.labels import TAG_DIMENSIONS
from mdsim.manifest import TrackEntry, read_input


def _source_stamp(path: Path) -> dict:
    st = os.stat(path)
    return {"source_size": int(st.st_size), "source_mtime": float(st.st_mtime)}


def process_track(entry: TrackEntry, config: FeatureConfig, tempo_mode: str = "full",
                  annotate: str = "madmom") -> dict:
    """Compute everything the store keeps for one track (runs in a worker).

    Returns
    -------
    dict
        ``{"track_id", "ok": True, "features": {...}, "attrs": {...}}`` or
        ``{"track_id", "ok": False, "path", "reason"}``; never raises for bad
        input, so one corrupt file cannot stop a batch.
    """
    try:
        t0 = time.perf_counter()
        stamp = _source_stamp(entry.path) if entry.path.exists() else {}
        y = load_audio(entry.path, sr=config.sample_rate)
        features = extract_features(y, config=config)
        labels = entry.labels
        found = annotate_track(labels, y=y, sr=config.sample_rate, features=features, path=entry.path,
                               method=annotate, tempo_mode=tempo_mode)
        duration = len(y) / config.sample_rate
        attrs = {
            "source_path": str(Path(entry.path).resolve()),
            "sha1": file_hash(entry.path),
            **stamp,
            "duration": duration,
            "sample_rate": config.sample_rate,
            "n_frames": int(features["mel"].shape[1]),
            "too_short": bool(features["mel"].shape[1] < config.segment_frames),
            **found,
            "group": entry.group,
            "metadata": json.dumps(entry.metadata, sort_keys=True),
            "seconds_to_compute": time.perf_counter() - t0,
        }
        for d in TAG_DIMENSIONS:
            attrs[d] = ";".join(labels.get(d) or [])
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
    failures: list = field(default_factory=list)
    tracks: list = field(default_factory=list)

    @property
    def realtime_factor(self) -> float:
        return self.audio_seconds / self.wall_seconds if self.wall_seconds > 0 else float("nan")

    def line(self) -> str:
        return (f"done {self.done}, skipped {self.skipped}, failed {self.failed}, "
                f"audio {self.audio_seconds / 3600:.3f} h, wall {self.wall_seconds:.1f} s, "
                f"{self.realtime_factor:.1f}x real time")


class _LocalExecutor:
    """Worker processes on this machine (``spawn``: no state leaks from the writer)."""

    def __init__(self, workers: int):
        import concurrent.futures
        import multiprocessing

        self._cf = concurrent.futures
        self._pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"))

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
    """A finished track is skipped unless its source file changed since."""
    if not entry.path.exists():
        return True  # nothing to recompute from; keep what we have
    stamp = _source_stamp(entry.path)
    if stamp["source_size"] == attrs.get("source_size") and stamp["source_mtime"] == attrs.get("source_mtime"):
        return True
    return file_hash(entry.path) == attrs.get("sha1")


def prep(input_path, out, *, workers: int | None = None, scheduler: str | None = None,
         tempo_mode: str = "full", annotate: str = "madmom", config: FeatureConfig = FeatureConfig(),
         overwrite: bool = False, progress: bool = True, log=sys.stderr) -> PrepSummary:
    """Build or extend a features store from a folder or a manifest.

    Parameters
    ----------
    input_path : str or Path
        A folder (searched recursively for audio) or a manifest CSV.
    out : str or Path
        The store file (``.h5``).
    workers : int, optional
        Local worker processes (default: the machine's cores; 1 computes in
        this process).
    scheduler : str, optional
        Address of a running Dask scheduler; overrides ``workers``.
    tempo_mode : {"full", "fast"}
        madmom beat ensemble size for tempo estimation.
    annotate : {"madmom", "fast", "none"}
        How tempo and key the manifest does not give are estimated
        (:mod:`mdsim.features.annotators`).
    config : FeatureConfig
    overwrite : bool
        Rebuild from scratch instead of resuming.

    Returns
    -------
    PrepSummary
    """
    from tqdm import tqdm

    t0 = time.perf_counter()
    check_method(annotate)
    entries = read_input(input_path)  # validates everything before any work
    writer = StoreWriter(out, config, overwrite=overwrite)
    summary = PrepSummary()
    finished = writer.finished()
    todo = []
    for e in entries:
        if e.track_id in finished and _is_unchanged(e, finished[e.track_id]):
            summary.skipped += 1
        else:
            todo.append(e)
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
                pending[executor.submit(e, config, tempo_mode, annotate)] = e
            if not pending:
                break
            for fut in executor.wait_one(set(pending)):
                del pending[fut]
                result = fut.result()
                _commit(writer, result, summary, log, bar)
                bar.update(1)
                hours = summary.audio_seconds / 3600
                rt = summary.audio_seconds / max(time.perf_counter() - t0, 1e-9)
                bar.set_postfix_str(f"{hours:.2f} h audio, {rt:.1f}x rt, failed {summary.failed}")
        cancelled = False
    finally:
        executor.close(cancel=cancelled)
        bar.close()
        n = writer.merge()  # also after Ctrl-C: keep what was finished
        summary.wall_seconds = time.perf_counter() - t0
    if progress:
        print(f"prep: {summary.line()}; store {out} holds {n} tracks", file=log)
    return summary


def _commit(writer: StoreWriter, result: dict, summary: PrepSummary, log, bar) -> None:
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
