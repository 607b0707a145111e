"""The deep-manifold recipe end to end on a small generated library: prep, train, evaluate, draw.

The library: 4 instruments x 13 pitches x 2 dynamics = 104 notes; a quarter is
held out. A brief training (120 steps, 15 to 60 s here depending on the load) on
the instrument neighbourhood must classify held-out notes by instrument (5-NN in
3-D) at least MARGIN above chance (1/4: four instruments, equally many notes);
the same training on shuffled labels must not (the test can fail).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mdsim.cli import main

INSTRUMENTS = ("plucked", "bowed", "flute", "mallet")
#: Required k-NN instrument accuracy above chance on held-out notes. Measured at 120 steps, seed 0:
#: 0.962 with the labels, 0.269 with them shuffled (a 52-note library: 0.846 and 0.077).
MARGIN = 0.35
CHANCE = 1 / len(INSTRUMENTS)
STEPS = 120


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
