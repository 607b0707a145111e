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
