"""Damaged, concurrent and hostile input: nothing served wrong, nothing lost, nothing exhausted."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from mdsim.errors import StoreError
from mdsim.labels import DIMENSIONS

WIDTH = 6 * len(DIMENSIONS)


def vectors(rng, n):
    return rng.normal(size=(n, WIDTH)).astype(np.float32)


def flip(path, offset, n=4096):
    """Invert ``n`` bytes of ``path`` from ``offset`` (at most to its end)."""
    data = bytearray(path.read_bytes())
    stop = min(len(data), offset + n)
    data[offset:stop] = bytes(b ^ 0xFF for b in data[offset:stop])
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix", ["h5", "npz"])
def test_a_damaged_embeddings_file_is_refused_and_an_old_one_still_opens(tmp_path, rng, suffix):
    from mdsim.evaluation import read_embeddings, write_embeddings

    ids = [f"t{i}" for i in range(200)]
    x = vectors(rng, 200)
    path = tmp_path / f"emb.{suffix}"
    write_embeddings(path, ids, x, dimensions=DIMENSIONS, metadata={"model": "m.keras"})
    np.testing.assert_array_equal(read_embeddings(path).embeddings, x)
    if suffix == "h5":
        with h5py.File(path, "r") as f:
            offset = f["embeddings"].id.get_offset()
        flip(path, offset + 1000, 16)
    else:  # an NPZ member is stored: flip bytes inside the vectors, then mend the zip's CRC
        import zipfile

        with zipfile.ZipFile(path) as z:
            arrays = {n: z.read(n) for n in z.namelist()}
        raw = bytearray(arrays["embeddings.npy"])
        raw[-200:-184] = bytes(b ^ 0xFF for b in raw[-200:-184])
        arrays["embeddings.npy"] = bytes(raw)
        with zipfile.ZipFile(path, "w") as z:
            for n, b in arrays.items():
                z.writestr(n, b)
    with pytest.raises(StoreError, match=rf"{path.name} is damaged: .*embed again"):
        read_embeddings(path)
    # a file written before checksums opens as it is
    old = tmp_path / "old.h5"
    write_embeddings(old, ids, x, dimensions=DIMENSIONS)
    with h5py.File(old, "a") as f:
        del f.attrs["sha256"]
    np.testing.assert_array_equal(read_embeddings(old).embeddings, x)


def test_index_of_a_damaged_embeddings_file_is_one_line(tmp_path, rng, capsys):
    from mdsim.cli import main
    from mdsim.evaluation import write_embeddings

    path = tmp_path / "emb.h5"
    write_embeddings(path, [f"t{i}" for i in range(200)], vectors(rng, 200), dimensions=DIMENSIONS)
    with h5py.File(path, "r") as f:
        offset = f["embeddings"].id.get_offset()
    flip(path, offset + 2048)
    assert main(["index", str(path), "--out", str(tmp_path / "cat")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{path} is damaged" in err
    assert not (tmp_path / "cat").exists()


@pytest.mark.parametrize("name", ["index.faiss", "tracks.h5"])
def test_a_damaged_catalog_is_refused_and_an_old_one_still_opens(tmp_path, rng, capsys, name):
    from mdsim.cli import main
    from mdsim.search import Catalog

    ids = [f"t{i}" for i in range(300)]
    x = vectors(rng, 300)
    folder = tmp_path / "cat"
    Catalog(ids, x, dimensions=DIMENSIONS).save(folder)
    size = (folder / name).stat().st_size
    flip(folder / name, size // 2)
    with pytest.raises(StoreError, match=rf"{name} is damaged: .*rebuild the catalog"):
        Catalog.load(folder)
    assert main(["search", str(folder), "--query", "t1", "-k", "3"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{folder / name} is damaged" in err
    # a catalog written before checksums opens as it is
    Catalog(ids, x, dimensions=DIMENSIONS).save(folder)
    head = json.loads((folder / "catalog.json").read_text())
    del head["sha256"]
    (folder / "catalog.json").write_text(json.dumps(head))
    assert Catalog.load(folder).search("t1", k=1)[0].score <= 1.0 + 1e-5


def run_mdsim(*args, cwd):
    """``python -m mdsim ARGS`` in a child process (this checkout's mdsim), started now."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    return subprocess.Popen([sys.executable, "-m", "mdsim", *map(str, args)], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_index_add_waits_for_no_one_and_loses_nothing(tmp_path, rng):
    """Two `mdsim index --add` runs on one catalog: each one that exits 0 keeps its tracks;
    a run that finds the catalog being written fails at once, saying by whom."""
    import os

    from mdsim.evaluation import write_embeddings
    from mdsim.locking import exclusive_lock
    from mdsim.search import Catalog

    x = vectors(rng, 400)
    meta = {"model": "m.keras", "model_sha256": "aaa"}
    write_embeddings(tmp_path / "base.h5", ["b0"], x[:1], dimensions=DIMENSIONS, metadata=meta)
    cat = tmp_path / "cat"
    Catalog.from_embeddings(tmp_path / "base.h5").save(cat)
    with exclusive_lock(cat, what="test"):  # a writer at work: --add is refused, the catalog unchanged
        child = run_mdsim("index", tmp_path / "base.h5", "--out", cat, "--add", cwd=tmp_path)
        out, err = child.communicate(timeout=120)
    assert child.returncode == 2, out + err
    assert f"being written by another mdsim index (process {os.getpid()})" in err
    for trial in range(3):
        runs = []
        for side in "ab":
            ids = [f"{side}{trial}-{i}" for i in range(100)]
            write_embeddings(tmp_path / f"{side}.h5", ids, x[:100] if side == "a" else x[100:200],
                             dimensions=DIMENSIONS, metadata=meta)
            runs.append((ids, run_mdsim("index", tmp_path / f"{side}.h5", "--out", cat, "--add", cwd=tmp_path)))
        results = [(ids, child.wait(timeout=120), child.communicate()[1]) for ids, child in runs]
        held = set(Catalog.load(cat).track_ids)
        for ids, code, err in results:
            assert code in (0, 2), err
            if code == 0:
                assert set(ids) <= held, f"trial {trial}: a run exited 0 and its tracks are gone"
            else:
                assert "being written by another mdsim index" in err and not set(ids) & held


def write_store(path, ids, *, shard_tracks=2):
    from mdsim.config import FeatureConfig
    from mdsim.features.store import StoreWriter

    with StoreWriter(path, FeatureConfig(), shard_tracks=shard_tracks) as w:
        for tid in ids:
            w.add_track(tid, {"mel": np.zeros((128, 10)), "cens": np.zeros((12, 10)), "onset": np.zeros((1, 10))},
                        {"duration": 0.1, "n_frames": 10, "tempo": 120.0, "key": ""})


@pytest.mark.parametrize("which", ["middle", "last"])
def test_a_deleted_shard_is_reported_by_readers_inspect_and_verify(tmp_path, capsys, which):
    from mdsim.cli import main
    from mdsim.features.store import FeatureStore, shard_paths

    store = tmp_path / "s.h5"
    write_store(store, [f"t{i}" for i in range(6)])
    shards = shard_paths(store)
    assert [s.name[:8] for s in shards] == ["00000001", "00000002", "00000003"]
    gone = shards[1] if which == "middle" else shards[2]
    gone.unlink()
    number = int(gone.name[:8])
    with pytest.warns(UserWarning, match=rf"1 shard\(s\) missing .*{gone.name[:8]}-\*\.h5.*not served"):
        with FeatureStore(store) as fs:
            assert fs.missing_shards == [number] and len(fs) == 4
    with pytest.warns(UserWarning, match="missing") as caught:
        assert main(["inspect", str(store), "--verify"]) == 1
    out = capsys.readouterr().out
    assert len(caught) == 1  # one line, once
    assert f"DAMAGED shard {number:08d}" in out and "verify: 1 of 4" in out
    # a new run computes the lost tracks again and records the gap as known: readers are quiet again
    with pytest.warns(UserWarning, match="missing"):
        write_store(store, ["t2", "t3"] if which == "middle" else ["t4", "t5"])
    assert [s.name[:8] for s in shard_paths(store)][-1] == "00000004"  # a lost number is never reused
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with FeatureStore(store) as fs:
            assert fs.missing_shards == [] and len(fs) == 6 and fs.verify() == []


@pytest.fixture
def catalog_dir(tmp_path, rng):
    from mdsim.search import Catalog

    folder = tmp_path / "cat"
    Catalog([f"t{i}" for i in range(20)], vectors(rng, 20), dimensions=DIMENSIONS).save(folder)
    return folder


def one_line(text):
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


def test_search_k_beyond_the_catalog_and_scores_beyond_cosines(catalog_dir, capsys):
    from mdsim.cli import main

    for k in (10**12, 10**23):  # the whole catalog, not an allocation of k rows or an overflow
        assert main(["search", str(catalog_dir), "--query", "t1", "-k", str(k), "--json"]) == 0
        assert len(json.loads(capsys.readouterr().out)["results"]) == 19
    for k in ("1e12", "1e23"):
        with pytest.raises(SystemExit) as stop:
            main(["search", str(catalog_dir), "--query", "t1", "-k", k])
        assert stop.value.code == 2
        assert one_line(capsys.readouterr().err.splitlines()[-1]).endswith(f"expected a whole number, got '{k}'")
    for score in ("5", "-1.5", "nan"):
        assert main(["search", str(catalog_dir), "--query", "t1", "--min-score", score]) == 2
        assert "from -1 to 1" in one_line(capsys.readouterr().err)


def test_locality_with_more_neighbours_than_tracks_is_one_line(tmp_path, rng, capsys):
    from mdsim.cli import main
    from mdsim.evaluation import write_embeddings

    ids = [f"t{i}" for i in range(20)]
    write_embeddings(tmp_path / "e.h5", ids, vectors(rng, 20), dimensions=DIMENSIONS)
    rows = ["track_id,path,mood,tempo"] + [f"{t},{t}.wav,{'happy' if i % 2 else 'sad'},{100 + i}"
                                           for i, t in enumerate(ids)]
    (tmp_path / "m.csv").write_text("\n".join(rows) + "\n")
    assert main(["analyze", "locality", str(tmp_path / "e.h5"), "--labels", str(tmp_path / "m.csv"),
                 "--k", "50"]) == 2
    assert "k = 50 neighbours need at least 51 items; there are 20" in one_line(capsys.readouterr().err)


def test_inspect_into_a_closed_pipe_ends_quietly(tmp_path):
    store = tmp_path / "s.h5"
    write_store(store, [f"track-{i:05d}" for i in range(2500)], shard_tracks=5000)  # about 180 KB of listing
    child = run_mdsim("inspect", store, cwd=tmp_path)
    assert child.stdout.readline().startswith(str(store))
    child.stdout.close()  # `| head -1`
    err = child.stderr.read()
    assert child.wait(timeout=120) == 141
    assert err == "", err


def test_a_track_id_with_a_control_character_is_refused_naming_the_row(tmp_path, capsys):
    from mdsim.cli import main
    from mdsim.errors import InputError
    from mdsim.manifest import entries_from_folder, read_manifest

    manifest = tmp_path / "m.csv"
    manifest.write_text('track_id,path\nfine,a.wav\n"two\nlines",b.wav\n')
    with pytest.raises(InputError, match=r"m.csv, row 4: track_id 'two\\nlines' holds the control character "
                                         r"'\\n' \(U\+000A\)"):
        read_manifest(manifest)
    for bad in ("esc\x1b[31m", "tab\tbed", "nul\x00", "sep\u2028arator"):
        manifest.write_text(f"track_id,path\n{bad},a.wav\n")
        with pytest.raises(InputError, match="row 2: track_id .* holds the control character"):
            read_manifest(manifest)
    assert main(["prep", str(manifest), "--out", str(tmp_path / "s.h5")]) == 2
    assert "control character" in one_line(capsys.readouterr().err)
    assert not (tmp_path / "s.h5").exists()  # refused before any work
    # a folder's file name cannot be mended in a manifest: that file is skipped, the others go on
    music = tmp_path / "music"
    music.mkdir()
    (music / "good.wav").write_bytes(b"")
    (music / "bad\nname.wav").write_bytes(b"")
    with pytest.warns(UserWarning, match=r"skipping 'bad\\nname.wav': .*control character"):
        entries = entries_from_folder(music)
    assert [e.track_id for e in entries] == ["good"]


def test_embed_again_recomputes_the_tracks_whose_input_changed(tmp_path, rng, audio_dir):
    import shutil

    import mdsim
    from mdsim.embed import embed_to_file
    from mdsim.evaluation import read_embeddings
    from mdsim.features.store import StoreWriter
    from mdsim.model import ModelConfig, build_model, save_model

    path = tmp_path / "tiny.keras"
    save_model(build_model(ModelConfig(dimensions=("mood", "tempo"), embedding_size=16, width=0.25)), path)
    model = mdsim.load_model(path)
    cfg = model.feature_config

    def features(seed):
        r = np.random.default_rng(seed)
        return {"mel": r.random((cfg.n_mels, 300)), "cens": r.random((cfg.n_chroma, 300)),
                "onset": r.random((1, 300))}

    store = tmp_path / "s.h5"
    with StoreWriter(store, cfg) as w:
        for i, tid in enumerate(("a", "b", "c")):
            w.add_track(tid, features(i), {"duration": 3.5})
    out = tmp_path / "e.h5"
    first = embed_to_file([store], model, out, progress=False)
    assert (first.done, first.skipped) == (3, 0)
    before = read_embeddings(out)
    with StoreWriter(store, cfg) as w:  # b computed again (its audio changed), c only relabelled
        w.add_track("b", features(7), {"duration": 3.5})
        w.update_attrs("c", {"duration": 3.5, "mood": "calm"})
    again = embed_to_file([store], model, out, progress=False)
    assert (again.done, again.skipped) == (1, 2)
    after = read_embeddings(out)
    assert sorted(after.track_ids) == ["a", "b", "c"]
    from mdsim.features.store import FeatureStore

    with FeatureStore(store) as fs:
        new_b = model.embed_features([fs.features("b", names=model.config.inputs)], sources=["b"])[0].vectors
    np.testing.assert_allclose(after.get("b"), new_b, rtol=1e-5, atol=1e-6)
    assert not np.allclose(before.get("b"), after.get("b"))
    np.testing.assert_array_equal(before.get("a"), after.get("a"))
    assert embed_to_file([store], model, out, progress=False).done == 0  # nothing changed since
    # an audio file: a new content (size or modification time) is embedded again
    song = tmp_path / "song.ogg"
    shutil.copy(audio_dir / "trumpet.ogg", song)
    out2 = tmp_path / "f.h5"
    assert embed_to_file([song], model, out2, progress=False).done == 1
    assert embed_to_file([song], model, out2, progress=False).skipped == 1
    shutil.copy(audio_dir / "robin.ogg", song)
    assert embed_to_file([song], model, out2, progress=False).done == 1
    np.testing.assert_allclose(read_embeddings(out2).get("song"), model.embed(song).vectors, rtol=1e-5, atol=1e-6)
    # a file written before digests is resumed by track id, as it was
    with h5py.File(out, "a") as f:
        del f["source_digests"]
    with StoreWriter(store, cfg) as w:
        w.add_track("a", features(9), {"duration": 3.5})
    assert embed_to_file([store], model, out, progress=False).skipped == 3
