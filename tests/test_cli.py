"""The CLI: help texts, the docs that mirror them, and staying light."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mdsim.cli import build_parser, help_markdown, main, parse_args

ROOT = Path(__file__).resolve().parent.parent


def test_docs_cli_reference_matches_help():
    assert (ROOT / "docs" / "cli.md").read_text() == help_markdown(), \
        "docs/cli.md is stale: run `python -m mdsim.cli --markdown > docs/cli.md`"


@pytest.mark.parametrize("command", ["prep", "inspect", "train", "embed", "triplets", "evaluate",
                                     "index", "search", "playlist", "serve"])
def test_every_option_has_help(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for action in sub.choices[command]._actions:
        assert action.help, f"mdsim {command} {action.option_strings or action.dest} has no help"


def _subparsers(parser, path=()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subparsers(sub, path + (name,))
    yield path, parser


def test_counts_are_spelled_the_same_way_in_every_command():
    # -k and --k (neighbours, results), -n and --n (tracks, triplets): whichever a user types
    for path, parser in _subparsers(build_parser()):
        for action in parser._actions:
            names = set(action.option_strings)
            for short, long in (("-k", "--k"), ("-n", "--n")):
                if names & {short, long}:
                    assert {short, long} <= names, f"mdsim {' '.join(path)} takes {sorted(names)}"
    assert parse_args(["search", "cat", "--query", "t", "--k", "3"]).k == 3
    assert parse_args(["analyze", "locality", "e.h5", "--labels", "s.h5", "-k", "3"]).k == 3


def test_help_and_prep_never_import_tensorflow():
    code = ("import sys; from mdsim.cli import build_parser; build_parser().format_help(); "
            "import mdsim.features.pipeline, mdsim.embed, mdsim.evaluation, mdsim.model, mdsim.training; "
            "bad = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


#: What TensorFlow's C++ writes to descriptor 2 while it starts (issue 32), one line of each kind.
START_UP_LINES = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
                  "cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.",
                  "cuda_platform.cc:52] failed call to cuInit",
                  "oneDNN custom operations are on")


def test_tensorflow_start_up_lines_never_reach_the_terminal_but_errors_do(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    r = subprocess.run([sys.executable, "-m", "mdsim", "train", str(tmp_path / "none.h5"), "--out",
                        str(tmp_path / "run")], capture_output=True, text=True, env=env)
    assert "tensorflow" in _imported_by_train(env)  # the command does start TensorFlow
    assert r.returncode == 2 and "mdsim train: error:" in r.stderr and "no features store here" in r.stderr
    assert not [line for line in START_UP_LINES if line in r.stderr], r.stderr


def _imported_by_train(env) -> str:
    code = "import sys; from mdsim.training import train; print(' '.join(sys.modules))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.split()


def test_start_up_filter_passes_every_other_line(capfd):
    from mdsim.native_log import _native_stderr_filtered

    with _native_stderr_filtered():
        os.write(2, b"I0000 00:00:1796613865.309908   28256 cudart_stub.cc:31] Could not find cuda drivers\n"
                    b"E0000 00:00:1796613838.117236   27821 cuda_platform.cc:52] failed call to cuInit\n"
                    b"2024-01-01 10:00:00.000000: I tensorflow/core/util/port.cc:113] oneDNN custom operations "
                    b"are on.\nlibfoo.so: cannot open shared object file\n")
    assert capfd.readouterr().err == "libfoo.so: cannot open shared object file\n"


def test_python_dash_m_and_version(capsys):
    r = subprocess.run([sys.executable, "-m", "mdsim", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("mdsim ")
    with pytest.raises(SystemExit):
        main(["prep", "somewhere"])
    assert "the following arguments are required: --out" in capsys.readouterr().err


def test_shipped_configs_load():
    from mdsim.configs import CONFIG_DIR
    from mdsim.training.config import read_run_config

    configs = {p.name: read_run_config(p) for p in sorted(CONFIG_DIR.glob("*.toml"))}
    seen = {(m.backbone, len(m.dimensions), m.embedding_size) for name, (m, _) in configs.items()
            if name.startswith(("baseline_", "multi_input_"))}
    assert seen == {("baseline", 4, 256), ("multi_input", 4, 256), ("baseline", 6, 258),
                    ("baseline", 6, 384), ("multi_input", 6, 384)}
    # docs/key_tempo.md's tonic key head run: the learning rate held (no plateau cut in 200 epochs)
    model, training = configs["key_tonic_5dim_80.toml"]
    assert (model.key_head, model.key_profiles, training.epochs, training.lr_patience) == ("tonic", 8, 200, 1000)
    # the same with three turns of the sampler's pairs for key
    shares_model, shares_training = configs["key_tonic_shares_5dim_80.toml"]
    assert shares_model == model and shares_training == training.replace(pair_shares={"key": 3})
    # the default model's network: the same recipe on instrument, tempo, key and sound, 16 each, the
    # tempo subspace from the tempogram alone, label-moving augmentation
    default_model, default_training = configs["default_model.toml"]
    assert default_model == model.replace(dimensions=("instrument", "tempo", "key", "sound"), embedding_size=64,
                                          tempo_head="tempogram")
    assert default_training.pair_shares == {"key": 2} and default_training.lr_patience == 1000
    assert default_training.augment == "label"
    assert len(configs) == 8


@pytest.mark.parametrize("source", ["manifest", "store"])
def test_triplets_draw_clip_starts_within_each_track(small_corpus, tmp_path, source):
    """Clip-mode scores need clips from all over the tracks, not always their first 3 s."""
    from mdsim.evaluation import read_triplets

    if source == "store":
        from mdsim.features.pipeline import prep

        prep(small_corpus, tmp_path / "s.h5", workers=1, progress=False)
    path = small_corpus if source == "manifest" else tmp_path / "s.h5"

    def draw(seed, out):
        assert main(["triplets", str(path), "--dimension", "genre", "--n", "20", "--seed", str(seed),
                     "--out", str(tmp_path / out)]) == 0
        t = read_triplets(tmp_path / out)
        return [(s, t.sampling_rate[0], getattr(t, f"{r}_start_seconds"))
                for r, s in (("anchor", t.anchor_start_samples), ("song1", t.song1_start_samples),
                             ("song2", t.song2_start_samples))]

    first = draw(0, "a.csv")
    for samples, sr, seconds in first:
        # the corpus' tracks last 4 s: a whole 3 s clip fits when it starts in [0, 1 s]
        assert samples.min() >= 0 and samples.max() <= 1 * sr and len(set(samples)) > 10
        np.testing.assert_allclose(seconds, samples / sr)
    again = draw(0, "b.csv")
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))   # seeded
    other = draw(1, "c.csv")
    assert not all(np.array_equal(a[0], b[0]) for a, b in zip(first, other))


def test_evaluate_distance_option(tmp_path, capsys):
    """--distance picks the protocol; the default is the normalised one the API ranks by."""
    import json

    from mdsim.evaluation import write_embeddings

    emb = write_embeddings(tmp_path / "e.npz", ["a", "p", "n"], [[1, 0, 10, 0], [1, 0, 0, 10], [-1, 0, 20, 0]],
                           dimensions=["mood", "tempo"])
    trip = tmp_path / "t.csv"
    trip.write_text("triplet_id,anchor_id,anchor_start_seconds,anchor_start_samples,song1_id,song1_start_seconds,"
                    "song1_start_samples,song2_id,song2_start_seconds,song2_start_samples,sampling_rate,"
                    "clip_lengths_seconds,clip_lengths_samples,song1_vote,song2_vote\n"
                    "t0,a,0,0,p,0,0,n,0,0,22050,3,66150,1,0\n")
    scores = {}
    for option in ([], ["--distance", "paper"], ["--distance", "normalised"]):
        out = tmp_path / ("r" + "".join(option))
        assert main(["evaluate", "--triplets", str(trip), "--embeddings", str(emb), "--out", str(out),
                     "--bootstrap", "0", *option]) == 0
        result = json.loads((out / "evaluation.json").read_text())
        scores[tuple(option)] = (result["distance"], result["full"]["score"])
    assert scores[()] == scores[("--distance", "normalised")] == ("normalised-euclidean", 1.0)
    assert scores[("--distance", "paper")] == ("euclidean", 0.0)


def test_help_texts_print_percent_signs_once():
    """Descriptions are not %-formatted by argparse (help strings are): '%%' would show."""
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for name, parser in sub.choices.items():
        assert "%%" not in parser.format_help(), name
    assert "bootstrap 95 % intervals" in " ".join(sub.choices["evaluate"].format_help().split())


def test_train_key_options_reach_the_configs_and_refuse_with_one_line(tmp_path, capsys):
    """``--key-profiles``, ``--min-key-probability`` and ``--pair-shares`` land in the run's model
    and training settings; a key profile without the CENS summary, a probability out of range or
    a share of a dimension the model lacks is one error line naming the fix, before any store is
    opened; a malformed share is argparse's usage error."""
    from mdsim.cli.train import train_configs

    args = build_parser().parse_args(["train", "s.h5", "--out", "r", "--summaries", "cens,tempogram",
                                      "--key-profiles", "8", "--min-key-probability", "0.6"])
    model, training, _ = train_configs(args)
    assert (model.summaries, model.key_profiles, training.min_key_probability) == (("cens", "tempogram"), 8, 0.6)
    args = build_parser().parse_args(["train", "s.h5", "--out", "r", "--pair-shares", "key=3, tempo=2"])
    assert train_configs(args)[1].pair_shares == {"key": 3, "tempo": 2}
    for options, message in ((["--key-profiles", "4"], "add cens to summaries (--summaries cens)"),
                             (["--min-key-probability", "3"], "min_key_probability must be a number in [-1, 1]"),
                             (["--dims", "tempo,key", "--pair-shares", "era=2"],
                              "pair_shares name 'era', which the model does not have")):
        assert main(["train", str(tmp_path / "none.h5"), "--out", str(tmp_path / "run"), *options]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], err
    for value, message in (("key", "expected DIM=N, got 'key'"), ("key=0", "expected 1 or more, got 0")):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["train", "s.h5", "--out", "r", "--pair-shares", value])
        assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_train_dims_without_embedding_size_take_64_per_dimension(tmp_path):
    """Five --dims do not split the six dimensions' 384: without --embedding-size the
    embedding is 64 per dimension given; a size on the command line or in --config stands."""
    from mdsim.cli.train import train_configs

    def model_of(*options):
        return train_configs(build_parser().parse_args(["train", "s.h5", "--out", "r", *options]))[0]

    five = "genre,mood,instrument,tempo,key"
    assert model_of().embedding_size == 384
    assert (model_of("--dims", five).embedding_size, model_of("--dims", five).sizes) == (320, (64,) * 5)
    assert model_of("--dims", "tempo,key").embedding_size == 128
    assert model_of("--dims", five, "--embedding-size", "160").sizes == (32,) * 5
    config = tmp_path / "run.toml"
    config.write_text('[model]\nembedding_size = 120\n')
    assert model_of("--config", str(config), "--dims", "tempo,key").sizes == (60, 60)
    config.write_text('[training]\nepochs = 3\n')
    assert model_of("--config", str(config), "--dims", five).embedding_size == 320
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["train"].format_help().split())
    assert "default 64 per dimension" in help_text


def test_train_config_by_name_or_path(tmp_path, capsys, monkeypatch):
    """``--config NAME`` finds a config shipped in the package from any folder; a path still
    works; anything else is one error line that lists the names, also listed in --help."""
    from mdsim.cli.train import train_configs
    from mdsim.configs import CONFIG_DIR, config_names, find_config

    monkeypatch.chdir(tmp_path)
    assert "multi_input_6dim_384" in config_names() and len(config_names()) == 8
    by_name = train_configs(build_parser().parse_args(["train", "s.h5", "--out", "r", "--config",
                                                       "baseline_4dim_256"]))
    by_path = train_configs(build_parser().parse_args(["train", "s.h5", "--out", "r", "--config",
                                                       str(CONFIG_DIR / "baseline_4dim_256.toml")]))
    assert by_name == by_path and by_name[0].embedding_size == 256
    assert find_config("baseline_4dim_256.toml") == CONFIG_DIR / "baseline_4dim_256.toml"
    own = tmp_path / "baseline_4dim_256.toml"  # a file of that name here is read, not the shipped one
    own.write_text("[training]\nepochs = 3\n")
    assert find_config("baseline_4dim_256.toml").resolve() == own
    assert main(["train", "s.h5", "--out", "r", "--config", "no_such_config"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no such file, nor a named config (names: baseline_4dim_256" in err[0], err
    help_text = " ".join(build_parser()._subparsers._group_actions[0].choices["train"].format_help().split())
    assert "a named config: baseline_4dim_256, baseline_6dim_258" in help_text


@pytest.mark.parametrize("recipe", ["msd_lastfm", "dimsim", "rendered", "sound_library"])
def test_recipes_run_from_the_package_and_by_their_old_names(recipe, tmp_path):
    """The dataset recipes ship in the package (python -m mdsim.recipes.NAME, from any folder);
    python -m data_prep.NAME and import data_prep.NAME reach the very same module."""
    import importlib

    assert importlib.import_module(f"data_prep.{recipe}") is importlib.import_module(f"mdsim.recipes.{recipe}")
    r = subprocess.run([sys.executable, "-m", f"mdsim.recipes.{recipe}", "--help"], capture_output=True,
                       text=True, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.startswith(f"usage: python -m mdsim.recipes.{recipe}"), r.stderr
    r = subprocess.run([sys.executable, "-m", f"data_prep.{recipe}", "--help"], capture_output=True, text=True,
                       cwd=ROOT)
    assert r.returncode == 0 and r.stdout.startswith(f"usage: python -m mdsim.recipes.{recipe}"), r.stderr


_LOST_INTERRUPT = r"""
import time
from mdsim.cli import _sigterm_as_interrupt
from mdsim.errors import Terminated, stop_if_terminated

class Finalized:
    def __del__(self):
        print("finalizing", flush=True)
        time.sleep(3)  # SIGTERM arrives here: Python prints the interrupt and drops it

with _sigterm_as_interrupt():
    try:
        x = Finalized()
        del x
        for _ in range(100):  # a loop of work, checking at each step as train's and prep's do
            time.sleep(0.05)
            stop_if_terminated()
        print("ran on")
    except Terminated:
        print("stopped")
"""


def test_a_sigterm_lost_in_a_finalizer_still_stops_the_loop():
    # Python drops an interrupt raised inside __del__ ("Exception ignored in"); the handler then
    # ignores further SIGTERMs, so without the remembered request a training would run on.
    import signal

    from conftest import exit_status, interruptible

    proc = interruptible([sys.executable, "-c", _LOST_INTERRUPT], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == "finalizing\n"
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    rc, err = exit_status(proc)
    assert "Exception ignored" in err and "Terminated" in err  # the interrupt was lost, as intended
    assert rest == "stopped\n" and rc == 0
