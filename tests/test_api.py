"""The Python API and `mdsim embed` / `evaluate` / `triplets` on an untrained tiny model."""

import h5py
import numpy as np
import pytest

import mdsim
from mdsim.cli import main
from mdsim.errors import InputError, ModelError
from mdsim.evaluation import read_embeddings

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


# -- a model carries its feature settings -------------------------------------------------------

OTHER_FEATURES = dict(tuning=None, cyclic_tempogram=True)


@pytest.fixture(scope="module")
def cyclic_model_path(tmp_path_factory):
    from mdsim.config import FeatureConfig
    from mdsim.model import ModelConfig, build_model, save_model

    config = ModelConfig(dimensions=DIMS, embedding_size=32, width=0.25)
    path = tmp_path_factory.mktemp("cyclic") / "cyclic.keras"
    save_model(build_model(config, feature_config=FeatureConfig(**OTHER_FEATURES)), path)
    return path


def test_a_model_embeds_with_the_feature_settings_it_was_built_with(cyclic_model_path, audio_dir):
    from mdsim.audio import load_audio
    from mdsim.config import FeatureConfig
    from mdsim.features.spectral import extract_features
    from mdsim.model import read_feature_config

    model = mdsim.load_model(cyclic_model_path)
    assert model.feature_config == FeatureConfig(**OTHER_FEATURES)
    assert read_feature_config(cyclic_model_path) == model.feature_config  # without Keras
    y = load_audio(audio_dir / "trumpet.ogg")
    got = model.embed(audio_dir / "trumpet.ogg").vectors
    want = model.embed_features([extract_features(y, config=FeatureConfig(**OTHER_FEATURES))])[0].vectors
    default = model.embed_features([extract_features(y, config=FeatureConfig())])[0].vectors
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.abs(got - default).max() > 1e-3  # the settings change what the network sees


def test_a_store_of_other_feature_settings_is_refused(cyclic_model_path, model_path, tmp_path, small_corpus,
                                                      capsys):
    from mdsim.features.pipeline import prep

    store = tmp_path / "s.h5"
    prep(small_corpus, store, workers=1, progress=False)
    assert main(["embed", str(store), "--model", str(cyclic_model_path), "--out", str(tmp_path / "e.h5"),
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "other feature settings" in err and "cyclic_tempogram: True (model) vs False (features store" in err
    trip = tmp_path / "t.csv"
    assert main(["triplets", str(store), "--dimension", "genre", "--n", "5", "--out", str(trip)]) == 0
    assert main(["evaluate", "--triplets", str(trip), "--model", str(cyclic_model_path), "--store", str(store),
                 "--out", str(tmp_path / "r"), "--bootstrap", "10"]) == 2
    assert "tuning: None (model) vs 0.0 (features store" in capsys.readouterr().err
    # the store a model of the same settings reads is accepted (and so is the training store)
    assert main(["embed", str(store), "--model", str(model_path), "--out", str(tmp_path / "ok.h5"),
                 "--quiet"]) == 0


def test_model_input_sizes_are_checked_against_the_features():
    from mdsim.config import FeatureConfig
    from mdsim.model import ModelConfig, check_feature_config

    check_feature_config(ModelConfig(), FeatureConfig())
    with pytest.raises(InputError, match=r"mel: 96 bins in features store s.h5, the model reads 128"):
        check_feature_config(ModelConfig(), FeatureConfig(n_mels=96), source="features store s.h5")
    # a mel-only model does not read the tempogram, whatever its size
    check_feature_config(ModelConfig(backbone="baseline"), FeatureConfig(tempogram_win_length=192))


# -- embeddings files: one model, one writer, appended checkpoints -----------------------------------


def _other_model_path(tmp_path):
    import keras

    from mdsim.model import ModelConfig, build_model, save_model

    keras.utils.set_random_seed(7)
    path = tmp_path / "other.keras"
    save_model(build_model(ModelConfig(dimensions=DIMS, embedding_size=32, width=0.25)), path)
    return path


def test_embed_refuses_to_mix_two_models_in_one_file(model_path, audio_dir, tmp_path, capsys):
    out = tmp_path / "emb.h5"
    trumpet, speech = str(audio_dir / "trumpet.ogg"), str(audio_dir / "speech.ogg")
    assert main(["embed", trumpet, "--model", str(model_path), "--out", str(out), "--quiet"]) == 0
    other = _other_model_path(tmp_path)
    assert main(["embed", trumpet, speech, "--model", str(other), "--out", str(out), "--quiet"]) == 2
    assert "vectors of two models cannot share a file" in capsys.readouterr().err
    first = read_embeddings(out)
    assert list(first.track_ids) == ["trumpet"]  # untouched
    assert main(["embed", trumpet, speech, "--model", str(other), "--out", str(out), "--quiet",
                 "--overwrite"]) == 0
    again = read_embeddings(out)
    assert list(again.track_ids) == ["trumpet", "speech"]
    assert again.metadata["model_sha256"] == mdsim.load_model(other).fingerprint
    assert np.abs(again.embeddings[0] - first.embeddings[0]).max() > 1e-4


def test_a_second_writer_of_one_output_fails_at_once(model_path, audio_dir, tmp_path, capsys):
    from mdsim.locking import exclusive_lock

    out = tmp_path / "emb.h5"
    with exclusive_lock(out, what="mdsim embed"):  # another run holds the output
        assert main(["embed", str(audio_dir / "trumpet.ogg"), "--model", str(model_path), "--out", str(out),
                     "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"{out} is being written by another mdsim embed (process " in err
    assert not out.exists()
    assert main(["embed", str(audio_dir / "trumpet.ogg"), "--model", str(model_path), "--out", str(out),
                 "--quiet"]) == 0  # the lock went with its holder


def test_embed_checkpoints_append_only_new_tracks_and_a_killed_run_resumes(model, audio_dir, tmp_path,
                                                                           monkeypatch):
    import mdsim.embed as embed_module
    from mdsim.embed import embed_to_file

    files = [audio_dir / f"{n}.ogg" for n in ("trumpet", "speech", "robin", "humpback")]
    real_load = embed_module.load_audio

    def dies_at_robin(path, **kw):
        if "robin" in str(path):
            raise KeyboardInterrupt  # as a kill would, mid-run
        return real_load(path, **kw)

    out = tmp_path / "emb.h5"
    monkeypatch.setattr(embed_module, "load_audio", dies_at_robin)
    with pytest.raises(KeyboardInterrupt):
        embed_to_file(files, model, out, batch_size=1, checkpoint_tracks=1, progress=False)
    parts = sorted((tmp_path / "emb.h5.parts").glob("part-*.h5"))
    # one part per checkpoint, each holding only the tracks embedded since the one before
    assert [list(read_embeddings(p).track_ids) for p in parts] == [["trumpet"], ["speech"]]
    assert not out.exists()

    monkeypatch.setattr(embed_module, "load_audio", real_load)
    summary = embed_to_file(files, model, out, batch_size=1, checkpoint_tracks=1, progress=False)
    assert (summary.skipped, summary.done) == (2, 2)
    result = read_embeddings(out)
    assert list(result.track_ids) == ["trumpet", "speech", "robin", "humpback"]
    assert not (tmp_path / "emb.h5.parts").exists()
    np.testing.assert_allclose(result.embeddings[1], model.embed(files[1]).vectors, rtol=1e-5, atol=1e-6)


def test_an_interrupted_embed_writes_what_it_embedded_and_says_so(model, audio_dir, tmp_path, monkeypatch):
    import io

    import mdsim.embed as embed_module
    from mdsim.embed import embed_to_file

    files = [audio_dir / f"{n}.ogg" for n in ("trumpet", "speech", "robin", "humpback")]
    real_load = embed_module.load_audio

    def stopped_at_robin(path, **kw):
        if "robin" in str(path):
            raise KeyboardInterrupt  # Ctrl-C, or SIGTERM as `mdsim embed` raises it
        return real_load(path, **kw)

    out, log = tmp_path / "emb.h5", io.StringIO()
    monkeypatch.setattr(embed_module, "load_audio", stopped_at_robin)
    with pytest.raises(KeyboardInterrupt):  # no checkpoint due for 1000 tracks or 60 s
        embed_to_file(files, model, out, batch_size=1, progress=False, log=log)
    parts = sorted((tmp_path / "emb.h5.parts").glob("part-*.h5"))
    assert [list(read_embeddings(p).track_ids) for p in parts] == [["trumpet", "speech"]]
    assert "embed: interrupted; kept the 2 tracks embedded in this run (0 failed)" in log.getvalue()
    monkeypatch.setattr(embed_module, "load_audio", real_load)
    summary = embed_to_file(files, model, out, batch_size=1, progress=False)
    assert (summary.skipped, summary.done) == (2, 2)


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
