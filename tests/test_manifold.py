"""The deep-manifold recipe end to end on a small generated library: prep, train, evaluate, draw.

The library: 4 instruments x 13 pitches x 2 dynamics = 104 notes; a quarter is
held out. A brief training (120 steps, 15 to 60 s here depending on the load) on
the instrument neighbourhood must classify held-out notes by instrument (5-NN in
3-D) at least MARGIN above chance (1/4: four instruments, equally many notes);
the same training on shuffled labels must not (the test can fail).

The same library as an STFT store trains the multi_input Inception backbone
with the 3-D head (60 steps of 8 triples, about 50 s here under load): it must
beat chance by INCEPTION_MARGIN, and with shuffled labels must not.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdsim.cli import main

INSTRUMENTS = ("plucked", "bowed", "flute", "mallet")
ATOL = 1e-5  # float32 outputs of one network, computed twice
#: Required k-NN instrument accuracy above chance on held-out notes. Measured at 120 steps, seed 0:
#: 0.962 with the labels, 0.269 with them shuffled (a 52-note library: 0.846 and 0.077).
MARGIN = 0.35
CHANCE = 1 / len(INSTRUMENTS)
STEPS = 120
#: The multi_input backbone with the 3-D head: width, steps and triples per step of its brief training.
INCEPTION_WIDTH, INCEPTION_STEPS, INCEPTION_BATCH = 0.25, 60, 8
#: Required above chance. Measured at seed 0: 1.000 with the labels, 0.346 with them shuffled (two runs
#: each). Training on the CPU is not always bit-reproducible (threaded reductions): at 16 triples a step
#: the shuffled control ranged from 0.500 to 0.654 over three runs. An untrained network already scores
#: about 0.58 (random convolutions over 3 s separate these timbres), so the bar (0.70) is set above that,
#: not at the manifold backbone's 0.35.
INCEPTION_MARGIN = 0.45


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    from data_prep.sound_library import generate_library

    root = tmp_path_factory.mktemp("library")
    manifest = generate_library(root / "notes", instruments=INSTRUMENTS, low=55, high=67, dynamics=("pp", "ff"))
    assert main(["prep", str(manifest), "--out", str(root / "cqt.h5"), "--features", "cqt",
                 "--annotate", "none", "--workers", "1", "--quiet"]) == 0
    return root


def _instrument_accuracy(run_dir, capsys):
    report = run_dir / "report.md"
    assert main(["manifold", "evaluate", str(run_dir), "--out", str(report)]) == 0
    assert "| instrument | **learned 3-D** |" in capsys.readouterr().out
    (result,) = json.loads(report.with_suffix(".json").read_text())
    return result


@pytest.fixture(scope="module")
def trained(library):
    run = library / "run"
    assert main(["manifold", "train", str(library / "cqt.h5"), "--out", str(run), "--steps", str(STEPS)]) == 0
    return run


def test_brief_training_beats_chance(trained, capsys):
    result = _instrument_accuracy(trained, capsys)
    learned = result["maps"]["learned"]["instrument"]["knn"]
    print(f"held-out 5-NN instrument accuracy {learned:.3f}, chance {CHANCE:.3f}")
    assert result["n_held_out"] == 26 and result["n_train"] == 78
    assert learned >= CHANCE + MARGIN, result
    assert set(result["maps"]) == {"learned", "pca", "tsne"}
    assert 0 < result["analogy"]["learned"]["queries"] <= 500


def test_map_and_trajectory_figures(trained, tmp_path):
    import soundfile as sf

    from data_prep.sound_library import render_note

    assert main(["manifold", "map", str(trained), "--out", str(tmp_path / "map.png"), "--colour", "pitch"]) == 0
    note = render_note("bowed", 60, "mf", rng=np.random.default_rng(0), gate=1.5)
    sf.write(tmp_path / "held.wav", note, 16000)
    assert main(["manifold", "trajectory", str(trained), str(tmp_path / "held.wav"),
                 "--out", str(tmp_path / "adsr.png")]) == 0
    assert (tmp_path / "map.png").stat().st_size > 10_000 and (tmp_path / "adsr.png").stat().st_size > 10_000

    from mdsim.manifold import load_manifold

    path = load_manifold(trained).embed_audio(tmp_path / "held.wav")
    assert path.shape == (1 + len(note) // 800 - 8 + 1, 3) and np.isfinite(path).all()


def test_points_for_the_3d_page(trained, library):
    from mdsim.manifold import manifold_points

    points = manifold_points(trained)
    assert len(points["track_ids"]) == 104 and np.isfinite(points["xyz"]).all()
    assert points["split"].count("held_out") == 26 and "mallet" in points["instrument"]
    assert all(p.startswith(str(library / "notes")) for p in points["source_path"])


@pytest.mark.slow
def test_shuffled_labels_score_near_chance(library, tmp_path, capsys):
    """The control: with the training notes' labels permuted the same recipe must fail the margin."""
    from mdsim.training.manifold import train_manifold

    train_manifold(library / "cqt.h5", tmp_path / "run", steps=STEPS, shuffle_labels=True, log=open("/dev/null", "w"))
    result = _instrument_accuracy(tmp_path / "run", capsys)
    learned = result["maps"]["learned"]["instrument"]["knn"]
    print(f"shuffled labels: held-out 5-NN instrument accuracy {learned:.3f}, chance {CHANCE:.3f}")
    assert learned < CHANCE + MARGIN, result


@pytest.fixture(scope="module")
def stft_store(library):
    """The same notes as a standard STFT store (mel, CENS, tempogram; one 3 s window per note)."""
    store = library / "stft.h5"
    assert main(["prep", str(library / "notes" / "manifest.csv"), "--out", str(store), "--annotate", "none",
                 "--workers", "1", "--quiet"]) == 0
    return store


def _train_multi_input(store, run_dir, *, shuffle_labels=False):
    from mdsim.model.manifold import ManifoldConfig
    from mdsim.training.manifold import train_manifold

    if not shuffle_labels:  # the command, as a user runs it
        assert main(["manifold", "train", str(store), "--out", str(run_dir), "--backbone", "multi_input",
                     "--width", str(INCEPTION_WIDTH), "--steps", str(INCEPTION_STEPS),
                     "--batch-size", str(INCEPTION_BATCH)]) == 0
    else:
        train_manifold(store, run_dir, steps=INCEPTION_STEPS, batch_size=INCEPTION_BATCH, shuffle_labels=True,
                       config=ManifoldConfig(backbone="multi_input", width=INCEPTION_WIDTH), log=open("/dev/null", "w"))
    return run_dir


@pytest.fixture(scope="module")
def trained_multi_input(stft_store, library):
    return _train_multi_input(stft_store, library / "run_multi_input")


def test_multi_input_3d_head_beats_chance(trained_multi_input, capsys):
    result = _instrument_accuracy(trained_multi_input, capsys)
    learned = result["maps"]["learned"]["instrument"]["knn"]
    print(f"multi_input, 3-D head: held-out 5-NN instrument accuracy {learned:.3f}, chance {CHANCE:.3f}")
    assert result["n_held_out"] == 26 and result["n_train"] == 78
    assert learned >= CHANCE + INCEPTION_MARGIN, result
    settings = json.loads((trained_multi_input / "manifold.json").read_text())
    assert settings["network"]["backbone"] == "multi_input" and settings["network"]["n_frames"] == 259
    assert settings["network"]["width"] == INCEPTION_WIDTH


@pytest.mark.slow
def test_multi_input_shuffled_labels_score_near_chance(stft_store, tmp_path, capsys):
    """The control of the Inception backbone: permuted training labels must fail its margin."""
    result = _instrument_accuracy(_train_multi_input(stft_store, tmp_path / "run", shuffle_labels=True), capsys)
    learned = result["maps"]["learned"]["instrument"]["knn"]
    print(f"multi_input, shuffled labels: held-out 5-NN instrument accuracy {learned:.3f}, chance {CHANCE:.3f}")
    assert learned < CHANCE + INCEPTION_MARGIN, result


def test_multi_input_run_maps_serves_and_refuses_a_trajectory(trained_multi_input, tmp_path, capsys):
    from mdsim.errors import InputError
    from mdsim.manifold import load_manifold, manifold_points

    assert main(["manifold", "map", str(trained_multi_input), "--out", str(tmp_path / "map.png")]) == 0
    assert (tmp_path / "map.png").stat().st_size > 10_000
    points = manifold_points(trained_multi_input)
    assert len(points["track_ids"]) == 104 and np.isfinite(points["xyz"]).all()
    model = load_manifold(trained_multi_input)
    notes = model.notes()
    assert list(notes.frames[0]) == ["mel", "cens", "tempogram"]
    assert notes.frames[0]["mel"].shape == (128, 259) and notes.mean_inputs().shape == (104, 128 + 12 + 384)
    assert {name: w.shape for name, w in model.windows(notes.frames[0]).items()} == {
        "mel": (1, 128, 259), "cens": (1, 12, 259), "tempogram": (1, 384, 259)}
    with pytest.raises(InputError, match="no trajectory; draw one with a run trained with --backbone manifold"):
        model.trajectory(notes.frames[0]["mel"])
    capsys.readouterr()
    assert main(["manifold", "trajectory", str(trained_multi_input), str(tmp_path / "none.wav"),
                 "--out", str(tmp_path / "t.png")]) == 2
    assert "--backbone manifold" in capsys.readouterr().err and not (tmp_path / "t.png").exists()


@pytest.mark.parametrize("backbone", ["baseline", "multi_input"])
def test_inception_3d_network_maps_dict_inputs_and_reloads(backbone, tmp_path, rng):
    import keras

    from mdsim.model.manifold import ManifoldConfig, build_manifold_network, build_ternary_model
    from mdsim.model.normalization import fit_normalization

    config = ManifoldConfig(backbone=backbone, width=0.125)
    network = build_manifold_network(config)
    shapes = config.model_config().input_shapes
    x = {name: rng.standard_normal((2, *shape)).astype(np.float32) + 1.0 for name, shape in shapes.items()}
    assert sorted(network.input) == sorted(config.inputs) == sorted(shapes)
    assert network.layers[-1].name == "embedding" and network.layers[-2].name == "dense1"
    assert not any(isinstance(layer, keras.layers.LayerNormalization) for layer in network.layers)
    fit_normalization(network, x)
    z = network.predict(x, verbose=0)
    assert z.shape == (2, 3) and np.isfinite(z).all()
    triples = build_ternary_model(network).predict({role: x for role in ("anchor", "positive", "negative")},
                                                    verbose=0)
    assert triples.shape == (2, 3, 3)
    np.testing.assert_allclose(triples[:, 0], z, atol=ATOL)

    from mdsim.model import backbones, normalization  # noqa: F401  (registers the custom layers)

    network.save(tmp_path / "model.keras")
    again = keras.saving.load_model(tmp_path / "model.keras", compile=False)
    np.testing.assert_allclose(again.predict(x, verbose=0), z, atol=ATOL)


def test_manifold_config_per_backbone():
    from mdsim.config import FeatureConfig
    from mdsim.errors import InputError
    from mdsim.model.config import BACKBONES
    from mdsim.model.manifold import DEFAULT_WIDTH, MANIFOLD_BACKBONES, ManifoldConfig

    assert MANIFOLD_BACKBONES == ("manifold", *BACKBONES)
    assert (ManifoldConfig().n_frames, ManifoldConfig().width) == (8, None)
    config = ManifoldConfig(backbone="multi_input")
    assert (config.width, config.n_frames, config.inputs) == (DEFAULT_WIDTH, None, ("mel", "cens", "tempogram"))
    assert config.for_store(FeatureConfig()).n_frames == 259
    assert ManifoldConfig.from_dict(config.for_store(FeatureConfig()).to_dict()).n_frames == 259
    model_config = config.model_config(FeatureConfig(n_mels=96))
    assert (model_config.mel_bins, model_config.width, model_config.n_frames) == (96, DEFAULT_WIDTH, 259)
    with pytest.raises(InputError, match="width 0.5 scales the filters of the Inception backbones"):
        ManifoldConfig(width=0.5)
    with pytest.raises(InputError, match="8 frames cannot be max-pooled to 16 frames"):
        ManifoldConfig(backbone="baseline", n_frames=8)
    with pytest.raises(InputError, match="width must be a positive number"):
        ManifoldConfig(backbone="baseline", width=0)
    with pytest.raises(InputError, match=r"reads mel, not cqt: prep an STFT store"):
        ManifoldConfig(backbone="baseline").model_config(FeatureConfig.constant_q())


def test_a_constant_q_store_is_refused_by_the_inception_backbones(library):
    from mdsim.errors import InputError
    from mdsim.training.manifold import load_notes

    with pytest.raises(InputError, match=r"holds cqt, not the mel, cens, tempogram the multi_input backbone reads: "
                                         r"prep it with `mdsim prep INPUT --out STORE --annotate none`"):
        load_notes(library / "cqt.h5", n_frames=259, backbone="multi_input")
    with pytest.raises(InputError, match="unknown manifold backbone 'resnet'"):
        load_notes(library / "cqt.h5", n_frames=8, backbone="resnet")


def test_a_store_of_stft_features_is_refused(tmp_path, small_corpus):
    from mdsim.errors import InputError
    from mdsim.features.pipeline import prep
    from mdsim.training.manifold import load_notes

    prep(small_corpus, tmp_path / "s.h5", workers=1, annotate="none", progress=False)
    with pytest.raises(InputError, match="not the constant-Q input of the manifold: prep it with .*--features cqt"):
        load_notes(tmp_path / "s.h5", n_frames=8)


def test_every_manifold_option_has_help():
    import argparse

    from mdsim.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    group = next(a for a in sub.choices["manifold"]._actions if isinstance(a, argparse._SubParsersAction))
    assert set(group.choices) == {"train", "evaluate", "map", "trajectory", "serve"}
    for name, parser in group.choices.items():
        for action in parser._actions:
            assert action.help, f"mdsim manifold {name} {action.option_strings or action.dest} has no help"


def test_manifold_modules_load_without_keras():
    """`mdsim manifold --help` and the note library stay light: Keras loads when a network runs."""
    import subprocess
    import sys

    code = ("import sys, mdsim; mdsim.load_manifold; import mdsim.manifold, mdsim.training.manifold, "
            "mdsim.training.neighbourhoods, mdsim.evaluation.manifold, mdsim.model, data_prep.sound_library; "
            "from mdsim.cli import build_parser; build_parser().parse_args(['manifold', 'train', 's', '--out', 'r']); "
            "bad = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_figures_refuse_points_that_are_not_3d(tmp_path):
    from mdsim.errors import InputError
    from mdsim.evaluation.manifold_figures import plot_map, plot_trajectory

    with pytest.raises(InputError, match=r"needs points of 3 coordinates, got shape \(4, 2\)"):
        plot_map(np.zeros((4, 2)), ["a"] * 4, tmp_path / "m.png", colour_by="instrument", title="t")
    with pytest.raises(InputError, match="needs points of 3 coordinates"):
        plot_trajectory(np.zeros((5, 4)), tmp_path / "t.png", title="t")
