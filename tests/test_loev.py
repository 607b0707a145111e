"""Self-supervised pretraining without labels: the pitch-variant subspace finds neighbours in key.

Generates a small synthetic corpus, preps it, pretrains LOEV++ (invariant and pitch-variant
subspaces) briefly without reading a label, with the recipe of docs/loev.md for key
("Neighbours in key"): the CENS summary (``--summaries cens``) and the pitch subspace
contrasted with the track's own views only (``--variant-negatives track``). On the tracks the
pretraining held out:

- the pitch subspace's 5 nearest neighbours share the query's tonic more often than the
  invariant subspace's and than random neighbours (without the summary or without the track
  negatives the two subspaces are level, docs/loev.md);
- the pitch subspace moves further than the invariant one when a window's features are
  pitch-shifted, over the distance between tracks (the paper's Figure 3), by a wide margin
  (a pairing rule that lost the difference, or a pitch-shift that did not move the CENS
  summary, fails it).

The bars (``BARS``) sit below the worst of the runs measured over seeds and processors.

Also: a resumed pretraining continues where it stopped, and `mdsim train --init-from` starts
a CSN from the result, its CENS summary included.
"""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import record_learning

#: Neighbours per query.
K = 5
#: Pretraining epochs (12 steps of 16 tracks each), half of them before the resume.
EPOCHS = 12


def _tonic_hits(X, keys, k=K) -> np.ndarray:
    """Per query, the share of its k nearest neighbours (cosine) with the same tonic."""
    from mdsim.analysis.locality import nearest_neighbours

    nb = nearest_neighbours(X, k)
    return (keys[nb] % 12 == keys[:, None] % 12).mean(axis=1)


def measure_pitch_subspace(tmp_path, seed: int = 0) -> dict:
    """Generate, prep and pretrain as the test below does, with ``seed`` for the corpus and the
    pretraining (the test uses seed 0; ``experiments/learning_spread.py`` runs others); returns
    ``{"tonic": (pitch - invariant tonic precision per held-out query), "moved": (pitch - invariant
    pitch-shift distance per track), "pitch", "invariant", "random", "run", "store", "held"}``."""
    import mdsim
    from mdsim import synth
    from mdsim.analysis.sensitivity import feature_sensitivity
    from mdsim.cli import main as cli
    from mdsim.embed import store_embedding_set
    from mdsim.features.store import FeatureStore

    manifest = synth.generate_corpus(tmp_path / "corpus", 72, seed=1 + seed, duration_range=(6.0, 8.0))
    store = tmp_path / "store.h5"
    # the 4096-sample chroma window: at the default 512 a window's chroma hardly tells the key
    # (docs/augmentation.md), and no subspace can be organised by what its input lacks
    assert cli(["prep", str(manifest), "--out", str(store), "--quiet", "--annotate", "none",
                "--chroma-n-fft", "4096"]) == 0
    run = tmp_path / "pre"
    common = ["--objective", "loev++", "--variants", "pitch", "--summaries", "cens", "--variant-negatives", "track",
              "--width", "0.25", "--embedding-size", "64", "--batch-size", "16", "--steps-per-epoch", "12",
              "--learning-rate", "1e-3", "--validation-fraction", "0.5", "--seed", str(seed), "--quiet"]
    assert cli(["pretrain", str(store), "--out", str(run), "--epochs", str(EPOCHS // 2), *common]) == 0
    # a resumed run continues after its last epoch, with its own settings
    assert cli(["pretrain", str(store), "--resume", str(run), "--epochs", str(EPOCHS), "--quiet"]) == 0
    state = json.loads((run / "state.json").read_text())
    assert state["epochs_done"] == EPOCHS
    assert len((run / "log.csv").read_text().strip().splitlines()) == 1 + EPOCHS

    model = mdsim.load_model(run / "best.keras")
    assert model.dimensions == ("invariant", "pitch")
    held = json.loads((run / "split.json").read_text())["validation"]
    emb = store_embedding_set(model, store, held, progress=False)
    with FeatureStore(store) as st:
        keys = np.array([st.labels(t)["key"] for t in emb.track_ids.tolist()])
    assert (keys >= 0).all() and len(keys) >= 30
    invariant = _tonic_hits(emb.embeddings[:, emb.slices[0][0]:emb.slices[0][1]], keys)
    pitch = _tonic_hits(emb.embeddings[:, emb.slices[1][0]:emb.slices[1][1]], keys)
    random = float(np.mean([((keys % 12 == k % 12).sum() - 1) / (len(keys) - 1) for k in keys]))
    sens = feature_sensitivity(model, store, held[:24], seed=0)
    moved = {s: np.array(sens["per_track"]["pitch"][s]) for s in ("invariant", "pitch")}
    return {"tonic": pitch - invariant, "moved": moved["pitch"] - moved["invariant"], "pitch": pitch.mean(),
            "invariant": invariant.mean(), "random": random, "run": run, "store": store, "held": held}


def statistics(measured: dict) -> dict:
    """The figures the bars apply to, of :func:`measure_pitch_subspace`'s result."""
    se = lambda x: float(np.std(x, ddof=1) / np.sqrt(len(x)))  # noqa: E731
    return {"tonic lead": float(measured["tonic"].mean()), "tonic lead se": se(measured["tonic"]),
            "moved lead": float(measured["moved"].mean()), "moved lead se": se(measured["moved"]),
            "pitch": float(measured["pitch"]), "invariant": float(measured["invariant"]),
            "random": measured["random"], "pitch - random": float(measured["pitch"]) - measured["random"]}


#: The bars, each below the worst run measured (``experiments/learning_spread.py loev``; every run in
#: docs/testing.md). A fixed seed gives the same figures on one machine whatever its load, not across
#: processors. Tonic precision, pitch minus invariant subspace: 0.070-0.150 over seeds 0-4 and
#: TensorFlow's other kernels here, 0.020 for seed 0 on another processor (pitch 0.115, invariant
#: 0.095, random 0.071): one run's lead over the invariant subspace can be that small, so the bar
#: asks only that the pitch subspace be ahead of it and of random neighbours (0.044-0.149). The
#: pitch-shift distance, pitch minus invariant subspace, 0.69-0.86 (standard error over tracks
#: 0.06-0.09), carries the margin.
BARS = {"tonic lead": 0.0, "pitch - random": 0.02, "moved lead": 0.3}


@pytest.mark.slow
def test_pretraining_makes_the_pitch_subspace_find_neighbours_in_key(tmp_path):
    import mdsim
    from mdsim.cli import main as cli

    m = measure_pitch_subspace(tmp_path, seed=0)
    run, store = m["run"], m["store"]
    stats = statistics(m)
    record_learning("loev", stats)
    print(f"tonic precision@{K} on {len(m['tonic'])} held-out tracks: pitch {m['pitch']:.3f}, invariant "
          f"{m['invariant']:.3f}, random {m['random']:.3f}; pitch-shift distance, pitch minus invariant "
          f"{m['moved'].mean():.3f}")
    short = [f"{name} {stats[name]:.3f} < {bar}" for name, bar in BARS.items() if not stats[name] >= bar]
    assert not short, short

    # the pretrained backbone starts a CSN, its CENS summary included
    from mdsim.model.saving import initialize_from

    csn = tmp_path / "csn"
    assert cli(["train", str(store), "--out", str(csn), "--width", "0.25", "--embedding-size", "60",
                "--summaries", "cens", "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "16", "--eager",
                "--init-from", str(run / "best.keras"), "--quiet"]) == 0
    assert Path(csn / "best.keras").exists()
    fresh = mdsim.load_model(csn / "best.keras").keras_model
    assert {"cens_summary_dense", "trunk_block6_reduce_1x1_conv", "cens_standardize"} <= \
        set(initialize_from(fresh, run / "best.keras").copied)
