"""The Python API and `mdsim embed` / `evaluate` / `triplets` on an untrained tiny model."""

import h5py
import numpy as np
import pytest

import mdsim
from mdsim.cli import main
from mdsim.errors import InputError, ModelError

from conftest import SR, sine

DIMS = ("genre", "mood", "tempo", "key")


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    from mdsim.model import ModelConfig, build_model, save_model

    config = ModelConfig(dimensions=DIMS, embedding_size=32, width=0.25)
    path = tmp_path_factory.mktemp("model") / "tiny.keras"
    save_model(build_model(config), path)
    return path


@pytest.fixture(scope="module")
def model(model_path):
    return mdsim.load_model(model_path)


def test_embed_paths_arrays_and_dims(model, audio_dir):
    a, b = model.embed([audio_dir / "trumpet.ogg", audio_dir / "brahms.ogg"])
    assert a.vectors.shape == (32,) and a.dimensions == DIMS and a["mood"].shape == (8,)
    sub = model.embed(audio_dir / "brahms.ogg", dims=["tempo", "mood"])
    assert sub.dimensions == ("mood", "tempo")  # embedding order
    np.testing.assert_allclose(sub["tempo"], b["tempo"], atol=1e-5)
    segs = model.embed(audio_dir / "brahms.ogg", mode="segments")
    assert segs.vectors.shape == (15, 32) and segs.starts[1] == pytest.approx(259 * 256 / SR)
    np.testing.assert_allclose(segs.vectors.mean(axis=0), b.vectors, atol=1e-5)
    y = sine(440, 4.0, sr=44100)
    assert model.embed(y, sr=44100).vectors.shape == (32,)


def test_segments_of_several_tracks_share_batches_exactly(model, audio_dir):
    """Batching across tracks gives the same vectors as one track at a time."""
    paths = [audio_dir / "trumpet.ogg", audio_dir / "speech.ogg"]
    together = model.embed(paths, batch_size=4)
    for p, e in zip(paths, together):
        np.testing.assert_allclose(model.embed(p, batch_size=64).vectors, e.vectors, atol=1e-4)


def test_short_audio_is_padded_with_a_warning(model, audio_dir):
    with pytest.warns(UserWarning, match="shorter than one 3 s segment"):
        e = model.embed(audio_dir / "robin.ogg")
    assert e.padded and np.all(np.isfinite(e.vectors))


def test_similarity_and_nearest(model, audio_dir):
    a, b, c = model.embed([audio_dir / f"{n}.ogg" for n in ("trumpet", "brahms", "nutcracker")])
    assert model.similarity(a, a, dims=["mood"]) == pytest.approx(1.0, abs=1e-5)
    s = model.similarity(a, b, weights={"mood": 1.0, "tempo": 3.0})
    manual = (model.similarity(a, b, dims=["mood"]) + 3 * model.similarity(a, b, dims=["tempo"])) / 4
    assert s == pytest.approx(manual, abs=1e-6)
    ranked = model.nearest(a, {"a": a, "b": b, "c": c}, k=2, dims=["tempo"])
    assert ranked[0][0] == "a" and len(ranked) == 2 and ranked[0][1] >= ranked[1][1]


def test_bad_input_errors(model, model_path, tmp_path):
    with pytest.raises(InputError, match="unknown dimension 'colour'.*genre, mood, tempo, key"):
        model.embed(np.zeros(10), sr=SR, dims=["colour"])
    with pytest.raises(InputError, match="needs its sample rate"):
        model.embed(sine(440, 1.0))
    y = sine(440, 4.0)
    y[5] = np.inf
    with pytest.raises(InputError, match="NaN or infinite"):
        model.embed(y, sr=SR)
    with pytest.raises(ModelError, match="does not exist"):
        mdsim.load_model(tmp_path / "missing.keras")
    (tmp_path / "text.keras").write_text("not a model")
    with pytest.raises(ModelError, match="not a .keras model file"):
        mdsim.load_model(tmp_path / "text.keras")


def test_cli_embed_is_resumable_and_readable_by_h5py(model_path, audio_dir, tmp_path, capsys):
    out = tmp_path / "emb.h5"
    inputs = [str(audio_dir / "trumpet.ogg"), str(audio_dir / "speech.ogg")]
    assert main(["embed", *inputs, "--model", str(model_path), "--out", str(out), "--dims", "mood,key",
                 "--segments", "--quiet"]) == 0
    with h5py.File(out, "r") as f:
        assert f["embeddings"].shape == (2, 16) and list(f["track_ids"].asstr()) == ["trumpet", "speech"]
        assert f["segments/embeddings"].shape[0] == f["segments/track_index"].shape[0] == 1 + 4
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF garbage")
    assert main(["embed", *inputs, str(bad), "--model", str(model_path), "--out", str(out), "--dims",
                 "mood,key", "--segments"]) == 0
    err = capsys.readouterr().err
    assert "skipped 2, failed 1" in err and "bad.wav" in err


def test_cli_triplets_and_evaluate_on_a_store(model_path, tmp_path, small_corpus, capsys):
    from mdsim.features.pipeline import prep

    store = tmp_path / "s.h5"
    prep(small_corpus, store, workers=1, progress=False)
    trip = tmp_path / "t.csv"
    assert main(["triplets", str(store), "--dimension", "genre", "--n", "10", "--out", str(trip)]) == 0
    report = tmp_path / "report"
    assert main(["evaluate", "--triplets", str(trip), "--model", str(model_path), "--store", str(store),
                 "--out", str(report), "--bootstrap", "50"]) == 0
    import json

    result = json.loads((report / "evaluation.json").read_text())
    assert result["triplets"]["n_scored"] == 10 and len(result["combinations"]) == 15
    assert (report / "evaluation_radar.png").stat().st_size > 1000
    emb = tmp_path / "e.h5"
    assert main(["embed", str(store), "--model", str(model_path), "--out", str(emb), "--quiet"]) == 0
    both = tmp_path / "both"
    assert main(["evaluate", "--triplets", str(trip), "--model", str(model_path), "--store", str(store),
                 "--compare", str(emb), "--name", "live", "--name", "file", "--out", str(both),
                 "--bootstrap", "50"]) == 0
    compared = json.loads((both / "evaluation.json").read_text())["results"]
    assert [r["model"] for r in compared] == ["live", "file"]
    assert compared[0]["full"]["score"] == pytest.approx(compared[1]["full"]["score"])
    assert main(["evaluate", "--triplets", str(trip), "--model", str(model_path), "--out", str(report)]) == 2
    assert "--model needs --store" in capsys.readouterr().err


def test_similarity_nearest_and_evaluate_agree_on_distance():
    """Where a subspace's large norms decide the paper's Euclidean distance, similarity, nearest
    and evaluate's default all count each subspace by direction only, and so agree."""
    from mdsim.api import Model
    from mdsim.evaluation import EmbeddingSet, Triplets, evaluate
    from mdsim.model import ModelConfig

    m = Model(None, ModelConfig(dimensions=("mood", "tempo"), embedding_size=4))  # no network needed
    a, p, n = (np.array(v, dtype=np.float32) for v in ([1, 0, 10, 0], [1, 0, 0, 10], [-1, 0, 20, 0]))
    assert m.similarity(a, p) > m.similarity(a, n)
    assert [name for name, _ in m.nearest(a, {"n": n, "p": p})] == ["p", "n"]
    source = EmbeddingSet(["a", "p", "n"], np.stack([a, p, n]), dimensions=m.dimensions)
    t = Triplets(anchor=["a"], positive=["p"], negative=["n"])
    assert evaluate(t, source, n_bootstrap=0)["full"]["score"] == 1.0           # agrees
    assert evaluate(t, source, distance="paper", n_bootstrap=0)["full"]["score"] == 0.0
    # with equal weights, 1 - similarity is half the mean squared normalised distance
    sq = sum(np.sum((a[s] / np.linalg.norm(a[s]) - n[s] / np.linalg.norm(n[s])) ** 2) for s in m.slices.values())
    assert 1 - m.similarity(a, n) == pytest.approx(sq / (2 * len(m.dimensions)))
