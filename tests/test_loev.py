"""Self-supervised pretraining without labels: the pitch-variant subspace finds neighbours in key.

Generates a small synthetic corpus, preps it, pretrains LOEV++ (invariant and pitch-variant
subspaces) briefly without reading a label, with the recipe of docs/loev.md for key
("Neighbours in key"): the CENS summary (``--summaries cens``) and the pitch subspace
contrasted with the track's own views only (``--variant-negatives track``). On the tracks the
pretraining held out:

- the pitch subspace's 5 nearest neighbours share the query's tonic more often than the
  invariant subspace's, by more than twice the standard error of the paired difference over
  queries (the issue's goal; a pairing rule that lost the difference, or a pitch-shift that
  did not move the CENS summary, fails it: without the summary or without the track
  negatives the two subspaces are level, docs/loev.md);
- the pitch subspace moves further than the invariant one when a window's features are
  pitch-shifted, over the distance between tracks (the paper's Figure 3), by the same margin.

Also: a resumed pretraining continues where it stopped, and `mdsim train --init-from` starts
a CSN from the result, its CENS summary included.
"""

import json
from pathlib import Path

import numpy as np
import pytest

#: Neighbours per query.
K = 5
#: Pretraining epochs (12 steps of 16 tracks each), half of them before the resume.
EPOCHS = 12


def _tonic_hits(X, keys, k=K) -> np.ndarray:
    """Per query, the share of its k nearest neighbours (cosine) with the same tonic."""
    from mdsim.analysis.locality import nearest_neighbours

    nb = nearest_neighbours(X, k)
    return (keys[nb] % 12 == keys[:, None] % 12).mean(axis=1)


@pytest.mark.slow
def test_pretraining_makes_the_pitch_subspace_find_neighbours_in_key(tmp_path):
    import mdsim
    from mdsim import synth
    from mdsim.analysis.sensitivity import feature_sensitivity
    from mdsim.cli import main as cli
    from mdsim.embed import store_embedding_set
    from mdsim.features.store import FeatureStore

    manifest = synth.generate_corpus(tmp_path / "corpus", 72, seed=1, duration_range=(6.0, 8.0))
    store = tmp_path / "store.h5"
    # the 4096-sample chroma window: at the default 512 a window's chroma hardly tells the key
    # (docs/augmentation.md), and no subspace can be organised by what its input lacks
    assert cli(["prep", str(manifest), "--out", str(store), "--quiet", "--annotate", "none",
                "--chroma-n-fft", "4096"]) == 0
    run = tmp_path / "pre"
    common = ["--objective", "loev++", "--variants", "pitch", "--summaries", "cens", "--variant-negatives", "track",
              "--width", "0.25", "--embedding-size", "64", "--batch-size", "16", "--steps-per-epoch", "12",
              "--learning-rate", "1e-3", "--validation-fraction", "0.5", "--seed", "0", "--quiet"]
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
    hits = pitch - invariant
    se = hits.std(ddof=1) / np.sqrt(len(hits))
    print(f"tonic precision@{K} on {len(keys)} held-out tracks: pitch {pitch.mean():.3f}, invariant "
          f"{invariant.mean():.3f}, random {np.mean([((keys % 12 == k % 12).sum() - 1) / (len(keys) - 1) for k in keys]):.3f} "
          f"(SE of the difference {se:.3f})")
    assert hits.mean() > 2 * se, (pitch.mean(), invariant.mean(), se)

    sens = feature_sensitivity(model, store, held[:24], seed=0)
    moved = {s: np.array(sens["per_track"]["pitch"][s]) for s in ("invariant", "pitch")}
    diff = moved["pitch"] - moved["invariant"]
    se = diff.std(ddof=1) / np.sqrt(len(diff))
    print(f"pitch-shift distance / between tracks: pitch {moved['pitch'].mean():.3f}, invariant "
          f"{moved['invariant'].mean():.3f} (SE of the difference {se:.3f})")
    assert diff.mean() > 2 * se, (moved["pitch"].mean(), moved["invariant"].mean(), se)

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
