"""Training learns each dimension in its own subspace (synthetic corpus, tiny model).

Runs ``experiments/synthetic_disentanglement.py`` end to end on a small
generated corpus: generate, prep, train the 6-dimension multi-input model
briefly, draw triplets of each dimension, score them in every subspace with
the trained model and with the same network before training (same seed, same
initial weights). The triplets come from the training tracks: the budget a
CI machine allows shows that each dimension is learned, in its own subspace;
the held-out figures of a longer run are in docs/synthetic.md.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIMS = ("genre", "mood", "instrument", "era", "tempo", "key")
N_TRIPLETS = 150
#: Chance is 0.5; at 150 triplets its standard deviation is 0.041, so 0.62 is 2.9 sigma above it.
FLOOR = 0.62


@pytest.mark.slow
def test_each_dimension_is_learned_in_its_own_subspace(tmp_path):
    out = tmp_path / "exp"
    cmd = [sys.executable, str(ROOT / "experiments" / "synthetic_disentanglement.py"), "--out", str(out),
           "--n", "48", "--duration", "6", "9", "--epochs", "6", "--steps", "15", "--batch-size", "32",
           "--width", "0.25", "--embedding-size", "48", "--learning-rate", "1e-3", "--triplets",
           str(N_TRIPLETS), "--triplet-tracks", "train", "--validation-fraction", "0",
           "--backbones", "multi_input", "--seed", "0"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    matrices = json.loads((out / "matrix.json").read_text())
    trained, untrained = matrices["multi_input (trained)"], matrices["multi_input (untrained)"]
    report = "\n".join(f"{d}: trained {trained[d][d]:.3f}, untrained {untrained[d][d]:.3f}, "
                       f"other subspaces {max(trained[d][j] for j in DIMS if j != d):.3f} max" for d in DIMS)
    for d in DIMS:
        assert trained[d][d] >= FLOOR, f"{d} not learned:\n{report}"
        assert trained[d][d] >= untrained[d][d] + 0.05, f"{d} no better than before training:\n{report}"
    # Disentangled: on average a dimension's triplets are scored best in its own subspace.
    diagonal = sum(trained[d][d] for d in DIMS) / len(DIMS)
    off = sum(trained[d][j] for d in DIMS for j in DIMS if j != d) / (len(DIMS) * (len(DIMS) - 1))
    assert diagonal >= off + 0.1, report
    assert (out / "heatmap.png").stat().st_size > 0 and "mean diagonal" in (out / "matrix.md").read_text()
