"""The features store at scale: shards, one writer, checksums, compact layout, resumes that follow
the manifest, the version-1 upgrade, and prep's processes."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from mdsim.audio import load_audio
from mdsim.cli import main
from mdsim.config import FeatureConfig
from mdsim.errors import InputError, StoreError
from mdsim.features.pipeline import prep
from mdsim.features.spectral import extract_features
from mdsim.features.store import FeatureStore, StoreWriter, shard_paths, shards_dir

from conftest import SR, clicks, exit_status, interruptible, sine, wait_until_caught, write_manifest, write_wav

DATA = Path(__file__).parent / "data"
#: float16 storage: relative rounding 2**-11 on values of order 1.
ATOL_FLOAT16 = 2e-3


def _corpus(folder: Path, n: int, seconds: float = 1.0, **extra) -> Path:
    rows = []
    for i in range(n):
        y = 0.5 * clicks(bpm=60 + (i * 7) % 120, seconds=seconds) + 0.2 * sine(200 + (i * 13) % 800, seconds)
        write_wav(folder / f"t{i:05d}.wav", y)
        rows.append({"track_id": f"t{i:05d}", "path": f"t{i:05d}.wav", "genre": ["rock", "jazz"][i % 2],
                     "mood": ["calm", "sad", "happy"][i % 3], "tempo": 60 + (i * 7) % 120, "key": "C major",
                     **extra})
    return write_manifest(folder / "m.csv", rows)


def _prep_code(manifest, out, **kw) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    return (f"import sys; from mdsim.features.pipeline import prep; "
            f"prep({str(manifest)!r}, {str(out)!r}, progress=False, {args})")


# -- compact layout ------------------------------------------------------------------------------


def test_compact_store_serves_the_features_of_the_extractor(tmp_path, audio_dir):
    """Windows at the start, middle and end: the tempogram built at read time from the stored
    onset envelope equals the whole-track one, within float16 storage tolerance."""
    shutil.copy(audio_dir / "vibeace.ogg", tmp_path)
    for cyclic in (False, True):
        config = FeatureConfig(cyclic_tempogram=cyclic)
        out = tmp_path / f"s{cyclic}.h5"
        prep(tmp_path, out, workers=1, annotate="none", config=config, progress=False)
        want = extract_features(load_audio(tmp_path / "vibeace.ogg"), config=config)
        n = want["mel"].shape[1]
        with FeatureStore(out) as store:
            assert store.layout == "compact"
            for start in (0, n // 2, n - 259):
                got = store.features("vibeace", start=start, stop=start + 259)
                for name in ("mel", "cens", "tempogram"):
                    np.testing.assert_allclose(got[name], want[name][:, start:start + 259], atol=ATOL_FLOAT16,
                                               err_msg=f"{name} at {start}")


def test_compact_layout_is_under_30_kb_per_audio_second(tmp_path):
    folder = tmp_path / "c"
    manifest = _corpus(folder, 6, seconds=20.0)
    sizes = {}
    for layout in ("compact", "full"):
        out = tmp_path / f"{layout}.h5"
        prep(manifest, out, workers=1, layout=layout, progress=False)
        sizes[layout] = sum(p.stat().st_size for p in shard_paths(out)) + out.stat().st_size
    seconds = 6 * 20.0
    assert sizes["compact"] / seconds < 30_000, sizes
    assert sizes["full"] / seconds > 80_000  # the tempogram is 73 % of a full store


# -- scale: open files, cost of a resume ----------------------------------------------------------


@pytest.mark.slow
def test_prep_of_more_tracks_than_open_files_allowed(tmp_path):
    manifest = _corpus(tmp_path / "c", 300, seconds=0.5)
    out = tmp_path / "store.h5"

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))

    code = _prep_code(manifest, out, workers=1, shard_tracks=16) + \
        "; from mdsim.features.store import FeatureStore; s = FeatureStore(sys.argv[1]); " \
        "print(len(s), sum(s.features(t)['mel'].shape[1] > 0 for t in s.track_ids()), s.n_shards())"
    proc = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=600,
                          preexec_fn=limit)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["300", "300", str(len(shard_paths(out)))]
    assert len(shard_paths(out)) >= 300 // 16  # more shards than a reader keeps open


def test_a_resume_writes_only_its_new_tracks(tmp_path):
    folder = tmp_path / "c"
    manifest = _corpus(folder, 12, seconds=0.5)
    out = tmp_path / "store.h5"
    rows = manifest.read_text().splitlines()
    first = folder / "first.csv"
    first.write_text("\n".join(rows[:11]) + "\n")  # header + 10 tracks
    prep(first, out, workers=1, progress=False)
    before = {p: p.stat().st_mtime_ns for p in shard_paths(out)}
    s = prep(manifest, out, workers=1, progress=False)
    assert (s.done, s.skipped) == (2, 10)
    after = shard_paths(out)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items())  # nothing rewritten
    (new,) = set(after) - set(before)
    with h5py.File(new, "r") as f:
        assert f["index/offset"].shape == (2,)
    with FeatureStore(out) as store:
        assert len(store) == 12


# -- one writer --------------------------------------------------------------------------------------


@pytest.mark.slow
def test_two_concurrent_preps_on_one_store(tmp_path):
    """10 trials of two processes (8 + 8 tracks) on one store: each either finishes with all
    its tracks kept, or is refused at once with a message naming the other writer."""
    folder = tmp_path / "c"
    manifest = _corpus(folder, 16, seconds=0.5)
    rows = manifest.read_text().splitlines()
    halves = []
    for k, part in enumerate((rows[1:9], rows[9:17])):
        path = folder / f"half{k}.csv"
        path.write_text("\n".join([rows[0], *part]) + "\n")
        halves.append((path, {r.split(",")[0] for r in part}))
    outcomes = set()
    for trial in range(10):
        out = tmp_path / f"store{trial}.h5"
        procs = [subprocess.Popen([sys.executable, "-m", "mdsim", "prep", str(path), "--out", str(out),
                                   "--workers", "1", "--quiet"], stderr=subprocess.PIPE, text=True)
                 for path, _ in halves]
        results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
        kept = set()
        with FeatureStore(out) as store:
            stored = set(store.track_ids())
        for (rc, err), (_, ids) in zip(results, halves):
            if rc == 0:
                kept |= ids
            else:
                assert rc == 2 and "is being written by another mdsim prep (process" in err, err
        assert stored == kept, (trial, results)
        outcomes.add(tuple(rc for rc, _ in results))
    assert any(0 in o for o in outcomes)


# -- checksums ---------------------------------------------------------------------------------------


def _damage(path: Path, dataset: str, n_bytes: int = 4096) -> None:
    """Overwrite bytes in the middle of a dataset's first chunk on disk."""
    with h5py.File(path, "r") as f:
        info = f[dataset].id.get_chunk_info(0)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + min(64, info.size // 4))
        fh.write(np.random.default_rng(0).integers(0, 256, min(n_bytes, info.size // 2), dtype=np.uint8).tobytes())


def test_a_damaged_feature_array_is_reported_and_skipped(tmp_path, capsys):
    import mdsim
    from mdsim.model import ModelConfig, build_model, save_model

    folder = tmp_path / "c"
    manifest = _corpus(folder, 4, seconds=4.0)
    out = tmp_path / "store.h5"
    prep(manifest, out, workers=1, progress=False, shard_tracks=1)  # one track a shard
    victim = shard_paths(out)[1]
    with h5py.File(victim, "r") as f:
        (tid,) = [json.loads(t) for t in f["index/track_id"][()].tobytes().decode().split("\n")]
    _damage(victim, "features/mel")
    with FeatureStore(out) as store:
        with pytest.raises(StoreError, match=f"the features of track '{tid}' are damaged"):
            store.features(tid)
        assert [t for t, _ in store.verify()] == [tid]
    assert main(["inspect", str(out), "--verify"]) == 1
    assert f"DAMAGED {tid}" in capsys.readouterr().out
    # embed reports it and goes on
    model_path = tmp_path / "m.keras"
    save_model(build_model(ModelConfig(dimensions=("genre",), embedding_size=8, width=0.25),
                           feature_config=FeatureConfig()), model_path)
    emb = tmp_path / "e.h5"
    assert main(["embed", str(out), "--model", str(model_path), "--out", str(emb), "--quiet"]) == 0
    assert sorted(mdsim.evaluation.read_embeddings(emb).track_ids) == sorted(
        {f"t{i:05d}" for i in range(4)} - {tid})
    # the training loader skips it, once reported
    from mdsim.labels import LabelLayout
    from mdsim.training.data import TrackTable, WindowBatches

    with FeatureStore(out) as store:
        table, _ = TrackTable.from_store(store, min_frames=259)
    layout = LabelLayout.from_records(("genre",), table.labels)
    data = WindowBatches(out, table, layout, inputs=("mel",), batch_size=8, steps=4, segment_frames=259, seed=0)
    with pytest.warns(UserWarning, match=f"skipping a damaged track.*{tid}"):
        for i in range(4):
            x, y = data[i]
    assert data.damaged == {tid}
    # prep --verify computes it again
    s = prep(manifest, out, workers=1, verify=True, progress=False)
    assert s.done == 1
    with FeatureStore(out) as store:
        assert store.verify() == []


def _random_store(path: Path, layout: str, lengths) -> Path:
    """A store of random features (``len(lengths)`` tracks of those frame counts), several shards."""
    from mdsim.features.spectral import tempogram_frames

    rng = np.random.default_rng(len(lengths))
    with StoreWriter(path, FeatureConfig(), layout=layout, overwrite=True, shard_tracks=5) as writer:
        for i, n in enumerate(lengths):
            onset = np.abs(rng.standard_normal((1, n))).astype(np.float32)
            features = {"mel": rng.random((128, n), dtype=np.float32), "cens": rng.random((12, n), dtype=np.float32),
                        "onset": onset}
            if layout == "full":
                features["tempogram"] = tempogram_frames(onset[0], 0, n)
            writer.add_track(f"t{i:03d}", features, {"n_frames": n})
    return path


@pytest.mark.parametrize("layout", ["full", "compact"])
def test_read_window_gives_the_stored_frames_first_through_hdf5_then_mapped(tmp_path, layout):
    """The loader's read against :meth:`FeatureStore.features`, for windows inside one chunk, across
    two and three chunks, at the start and the end of a track, past the end, and in tracks shorter
    than a window; read twice: the first read goes through HDF5 (checksums), the second copies the
    mapped chunks, and both must give the stored values."""
    lengths = [100, 256, 259, 300, 511, 512, 513, 777, 1030, 2000, 3001, 260]
    store_path = _random_store(tmp_path / "s.h5", layout, lengths)
    names = ("mel", "cens", "tempogram")
    rng = np.random.default_rng(1)
    with FeatureStore(store_path) as store:
        cases = []
        for i, n in enumerate(lengths):
            starts = {0, max(n - 259, 0), n - 1, n + 5, 255, 256, 257, 253, int(rng.integers(0, n))}
            cases += [(f"t{i:03d}", s) for s in sorted(starts)]
        mapped = []
        for attempt in ("through HDF5", "mapped"):
            mapped.append(sum(m.mapped_reads for m in store._chunk_maps.values()))
            for tid, start in cases:
                out = {"mel": np.zeros((128, 259), np.float16), "cens": np.zeros((12, 259), np.float16),
                       "tempogram": np.zeros((384, 259), np.float32)}
                m = store.read_window(tid, out, start)
                want = store.features(tid, names=names, start=start, stop=start + 259)
                assert m == want["mel"].shape[1], (attempt, tid, start)
                for name in names:
                    np.testing.assert_array_equal(out[name][:, :m].astype(np.float32), want[name],
                                                  err_msg=f"{attempt} {name} {tid} {start}")
                    assert not out[name][:, m:].any(), "frames past the end are left as they were"
        # the first pass read every window through HDF5, the second every one from the mapping
        # (three matrices a window: mel, cens and the tempogram or, compact, its envelope)
        windows = sum(start < lengths[int(tid[1:])] for tid, start in cases)
        assert mapped[0] == 0
        assert sum(m.mapped_reads for m in store._chunk_maps.values()) - mapped[1] == 3 * windows
        assert ("tempogram" in next(iter(store._chunk_maps.values())).raw) == (layout == "full")


def test_read_envelope_gives_the_padded_envelope_of_the_windows_frames(tmp_path):
    """The compact loader's read for a tempogram computed in the step: the envelope samples of a
    window's frames with the whole track's edge ramps, at the start and end of tracks, across
    chunks, in tracks shorter than a window and past their end; through HDF5, then mapped."""
    from mdsim.features.spectral import padded_envelope

    lengths = [100, 259, 300, 513, 1030, 3001]
    store_path = _random_store(tmp_path / "s.h5", "compact", lengths)
    with FeatureStore(store_path) as store:
        for attempt in ("through HDF5", "mapped"):
            for i, n in enumerate(lengths):
                oenv = store.features(f"t{i:03d}", names=("onset",))["onset"][0]
                for start in sorted({0, 5, max(n - 259, 0), n - 40, n - 1, n + 5, 255, n // 2}):
                    out = np.full((1, 259 + 383), -1.0, np.float32)
                    m = store.read_envelope(f"t{i:03d}", out, start)
                    assert m == max(0, min(259, n - start)), (attempt, n, start)
                    if m:
                        want = padded_envelope(oenv, start, start + m)
                        np.testing.assert_array_equal(out[0, :want.size], want, err_msg=f"{attempt} {n} {start}")
                        assert want.size == m + 383
                    assert np.all(out[0, m + 383 if m else 0:] == -1), "samples past the frames are left as they were"
        assert sum(m.mapped_reads for m in store._chunk_maps.values()) > 0

def test_read_window_checks_a_damaged_chunk_before_mapping_it(tmp_path):
    store_path = _random_store(tmp_path / "s.h5", "full", [600] * 5)
    (shard,) = shard_paths(store_path)
    _damage(shard, "features/tempogram")
    out = {"mel": np.zeros((128, 259), np.float16), "tempogram": np.zeros((384, 259), np.float16)}
    with FeatureStore(store_path) as store:
        for _ in range(2):  # not mapped after the failed read either
            with pytest.raises(StoreError, match="the features of track 't000' are damaged"):
                store.read_window("t000", out, 0)
        assert store.read_window("t001", out, 100) == 259  # the other chunks are sound


def test_the_loader_delivers_stored_matrices_in_the_store_dtype(tmp_path):
    """Full layout: every input float16 as stored, values equal to the float32 reads; compact: the
    tempogram (computed) in float32; an augmenting loader: float32 throughout."""
    from mdsim.features.augment import AugmentConfig
    from mdsim.labels import LabelLayout
    from mdsim.training.data import TrackTable, WindowBatches

    for layout, tempogram_dtype in (("full", np.float16), ("compact", np.float32)):
        path = _random_store(tmp_path / f"{layout}.h5", layout, [400 + 37 * i for i in range(10)])
        with FeatureStore(path) as store:
            table, _ = TrackTable.from_store(store, min_frames=259)
            table.labels = [{"genre": ["a" if i % 2 else "b"]} for i in range(len(table))]
            labels = LabelLayout.from_records(("genre",), table.labels)
            data = WindowBatches(path, table, labels, inputs=("mel", "cens", "tempogram"), batch_size=4, steps=2,
                                 segment_frames=259, seed=0)
            x, _ = data[0]
            assert (x["mel"].dtype, x["cens"].dtype, x["tempogram"].dtype) == (np.float16, np.float16, tempogram_dtype)
            rng = np.random.default_rng([0, 0, 0])
            rows = data.sampler.batch(rng)
            starts = rng.integers(0, np.maximum(table.n_frames[rows] - 259, 0) + 1)
            for i, (r, s) in enumerate(zip(rows, starts)):
                want = store.features(table.track_ids[r], names=("mel", "tempogram"), start=s, stop=s + 259)
                np.testing.assert_array_equal(x["mel"][i].astype(np.float32), want["mel"])
                np.testing.assert_allclose(x["tempogram"][i].astype(np.float32), want["tempogram"], rtol=1e-3)
            data.stored_dtype = False  # what mdsim train sets on TensorFlow without a GPU
            assert {v.dtype for v in data[0][0].values()} == {np.dtype(np.float32)}
            np.testing.assert_array_equal(data[0][0]["mel"], x["mel"].astype(np.float32))
            data.stored_dtype = True
            data.augment = AugmentConfig(mode="invariance", eq_probability=1.0)
            assert {v.dtype for v in data[0][0].values()} == {np.dtype(np.float32)}


def test_damaged_metadata_is_a_clear_error(tmp_path):
    manifest = _corpus(tmp_path / "c", 2, seconds=1.0)
    out = tmp_path / "store.h5"
    prep(manifest, out, workers=1, progress=False)
    (shard,) = shard_paths(out)
    _damage(shard, "index/attrs", 64)
    with pytest.raises(StoreError, match=f"{shard.name}: damaged shard index"):
        FeatureStore(out)


# -- resume follows the manifest -------------------------------------------------------------------


def test_manifest_edits_are_applied_on_resume_without_recomputing(tmp_path):
    folder = tmp_path / "c"
    manifest = _corpus(folder, 4, seconds=1.0)
    out = tmp_path / "store.h5"
    prep(manifest, out, workers=1, progress=False)
    text = manifest.read_text().splitlines()
    text[1] = text[1].replace(",rock,", ",metal,")  # t00000: genre edited
    text[2] = text[2].replace(",67,", ",134,")  # t00001: tempo edited
    manifest.write_text("\n".join(text) + "\n")
    s = prep(manifest, out, workers=1, progress=False)
    assert (s.done, s.skipped, s.relabelled) == (0, 4, 2)
    with FeatureStore(out) as store:
        assert store.labels("t00000")["genre"] == ["metal"]
        assert store.labels("t00001")["tempo"] == 134.0
        assert store.labels("t00002")["genre"] == ["rock"]
    with h5py.File(shard_paths(out)[-1], "r") as f:  # the edit wrote labels only
        assert list(f["index/status"][()]) == [2, 2] and f["features/mel"].shape[1] == 0
    assert prep(manifest, out, workers=1, progress=False).relabelled == 0  # applied once


def test_a_source_that_now_fails_is_no_longer_served(tmp_path, capsys):
    folder = tmp_path / "c"
    manifest = _corpus(folder, 3, seconds=1.0)
    out = tmp_path / "store.h5"
    prep(manifest, out, workers=1, progress=False)
    (folder / "t00001.wav").write_bytes(b"RIFF now broken")
    (folder / "t00002.wav").unlink()
    s = prep(manifest, out, workers=1, progress=True)
    assert (s.failed, s.missing) == (1, ["t00002"])
    err = capsys.readouterr().err
    assert "t00002: its source" in err and "is gone" in err
    with FeatureStore(out) as store:
        assert store.track_ids() == ["t00000", "t00002"]
        assert [t for t, _, _ in store.failures()] == ["t00001"]


def test_annotate_none_leaves_tempo_and_key_unknown(tmp_path):
    folder = tmp_path / "c"
    for i in range(2):
        write_wav(folder / f"a{i}.wav", clicks(100, 2.0))
    out = tmp_path / "s.h5"
    prep(folder, out, workers=1, annotate="none", progress=False)
    with FeatureStore(out) as store:
        a = store.attrs("a0")
        assert a["tempo_source"] == a["key_source"] == "none"
        assert store.labels("a0")["tempo"] is None and store.labels("a0")["key"] is None
    with pytest.raises(InputError, match="unknown annotator 'slow'"):
        prep(folder, out, annotate="slow", progress=False)


@pytest.mark.slow
def test_annotate_none_then_train_on_genre_and_mood(tmp_path):
    folder = tmp_path / "c"
    rows = []
    for i in range(8):
        write_wav(folder / f"a{i}.wav", clicks(80 + 10 * i, 3.5) + 0.2 * sine(300 + 50 * i, 3.5))
        rows.append({"track_id": f"a{i}", "path": f"a{i}.wav", "genre": ["rock", "jazz"][i % 2],
                     "mood": ["calm", "sad"][i // 4]})
    manifest = write_manifest(folder / "m.csv", rows)
    out = tmp_path / "s.h5"
    assert main(["prep", str(manifest), "--out", str(out), "--annotate", "none", "--workers", "1", "--quiet"]) == 0
    assert main(["train", str(out), "--out", str(tmp_path / "run"), "--dims", "genre,mood", "--epochs", "1",
                 "--steps-per-epoch", "1", "--batch-size", "4", "--width", "0.25", "--embedding-size", "16",
                 "--eager", "--quiet"]) == 0


# -- version 1 -----------------------------------------------------------------------------------------


def test_a_version_1_store_is_upgraded_once(tmp_path, capsys):
    old = tmp_path / "v1.h5"
    shutil.copy(DATA / "store_v1.h5", old)
    with h5py.File(old, "r") as f:
        want = {t: f[f"tracks/{t}/mel"][()] for t in f["tracks"]}
        tempo = {t: f[f"tracks/{t}"].attrs["tempo"] for t in f["tracks"]}
    with pytest.raises(StoreError, match="version-1 features store; upgrade it once"):
        FeatureStore(old)
    assert main(["inspect", str(old), "--upgrade"]) == 0
    assert "upgraded" in capsys.readouterr().out
    with FeatureStore(old) as store:
        assert store.track_ids() == sorted(want) and store.layout == "full"
        for t, mel in want.items():
            np.testing.assert_array_equal(store.features(t, names=("mel",))["mel"], mel.astype(np.float32))
            assert store.attrs(t)["tempo"] == tempo[t]
        assert store.features("v1", names=("tempogram",))["tempogram"].shape[0] == 384
        assert [t for t, _, _ in store.failures()] == ["broken"]
    # a prep into an upgraded store adds to it
    folder = tmp_path / "more"
    write_wav(folder / "new.wav", clicks(100, 3.5))
    prep(folder, old, workers=1, annotate="none", progress=False)
    with FeatureStore(old) as store:
        assert "new" in store and len(store) == len(want) + 1


# -- processes -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_kill_9_of_prep_leaves_no_worker_running(tmp_path):
    psutil = pytest.importorskip("psutil")
    manifest = _corpus(tmp_path / "c", 40, seconds=3.0)
    proc = subprocess.Popen([sys.executable, "-c", _prep_code(manifest, tmp_path / "s.h5", workers=2)],
                            stderr=subprocess.DEVNULL)
    parent = psutil.Process(proc.pid)
    deadline = time.time() + 120
    while time.time() < deadline and len(parent.children()) < 2:
        time.sleep(0.1)
    workers = parent.children(recursive=True)
    assert len(workers) >= 2
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    assert not alive, [p.pid for p in alive]


@pytest.mark.slow
@pytest.mark.parametrize("stop, when", [(signal.SIGINT, "at once"), (signal.SIGINT, "after a track"),
                                        (signal.SIGTERM, "after a track")], ids=["ctrl-c at once",
                                                                                 "ctrl-c after a track",
                                                                                 "sigterm after a track"])
def test_ctrl_c_or_sigterm_says_what_was_kept_and_exits_130_or_143(tmp_path, stop, when):
    # SIGTERM (`kill PID`, a batch scheduler's or container's stop) keeps finished work as Ctrl-C does.
    manifest = _corpus(tmp_path / "c", 200, seconds=3.0)
    out = tmp_path / "s.h5"
    # SIGINT at its default in the child: a suite started with `&`, nohup or a CI wrapper runs with
    # SIGINT ignored, which the child would inherit (and rightly not be interrupted by Ctrl-C)
    proc = interruptible([sys.executable, "-m", "mdsim", "prep", str(manifest), "--out", str(out), "--workers", "1"])
    if when == "at once":  # as soon as the command runs (its main() catches SIGTERM from then on)
        assert wait_until_caught(proc.pid, signal.SIGTERM), "mdsim prep never started its command"
    else:  # once the first shard is being filled (a track is finished)
        deadline = time.time() + 120
        while time.time() < deadline and not (out.exists() and shards_dir(out).is_dir()
                                              and list(shards_dir(out).glob("*.tmp"))):
            time.sleep(0.02)
    proc.send_signal(stop)
    rc, err = exit_status(proc)
    assert rc == (130 if stop == signal.SIGINT else 143), err[-2000:]
    if stop == signal.SIGTERM:
        assert "mdsim prep: terminated (SIGTERM); finished work is kept" in err
    if out.exists():
        assert "prep: interrupted; kept the" in err and f"{out} holds" in err
        with FeatureStore(out) as store:
            assert len(store) == int(err.split(f"{out} holds ")[1].split()[0])
    else:  # interrupted while importing, before the store was opened
        assert "interrupted" in err
