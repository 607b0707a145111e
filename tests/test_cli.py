"""The CLI: help texts, the docs that mirror them, and staying light."""

import subprocess
import sys
from pathlib import Path

import pytest

from mdsim.cli import build_parser, help_markdown, main

ROOT = Path(__file__).resolve().parent.parent


def test_docs_cli_reference_matches_help():
    assert (ROOT / "docs" / "cli.md").read_text() == help_markdown(), \
        "docs/cli.md is stale: run `python -m mdsim.cli --markdown > docs/cli.md`"


@pytest.mark.parametrize("command", ["prep", "inspect", "train", "embed", "triplets", "evaluate"])
def test_every_option_has_help(command):
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for action in sub.choices[command]._actions:
        assert action.help, f"mdsim {command} {action.option_strings or action.dest} has no help"


def test_help_and_prep_never_import_tensorflow():
    code = ("import sys; from mdsim.cli import build_parser; build_parser().format_help(); "
            "import mdsim.features.pipeline, mdsim.embed, mdsim.evaluation, mdsim.model, mdsim.training; "
            "bad = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_python_dash_m_and_version(capsys):
    r = subprocess.run([sys.executable, "-m", "mdsim", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("mdsim ")
    with pytest.raises(SystemExit):
        main(["prep", "somewhere"])
    assert "the following arguments are required: --out" in capsys.readouterr().err


def test_configs_of_table_1_load():
    from mdsim.training.config import read_run_config

    configs = sorted((ROOT / "experiments" / "configs").glob("*.toml"))
    assert len(configs) == 5
    seen = {(m.backbone, len(m.dimensions), m.embedding_size) for m, _ in map(read_run_config, configs)}
    assert seen == {("baseline", 4, 256), ("multi_input", 4, 256), ("baseline", 6, 258),
                    ("baseline", 6, 384), ("multi_input", 6, 384)}
