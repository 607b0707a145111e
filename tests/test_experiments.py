"""experiments/table1.py and table2.py in smoke mode: the Table 1 / Table 2 pipeline end to end.

One test, in subprocesses (smoke mode switches TensorFlow to eager execution for
the whole process): table1 --smoke trains and scores the five configurations on
a synthetic corpus; table2 --smoke then resumes table1 (nothing retrained, no
evaluation repeated) and writes Table 2; table2 --run picks the 6-dimension model.

Beyond "it ran": each table row is the score of its own configuration's model, the
best is the best, and Table 2's 63 combinations are recomputed here by brute force
(Euclidean distance on the concatenated subspace slices of the 6-dimension model's
embeddings, one triplet at a time) and must equal the script's figures.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = ("baseline_4dim_256", "multi_input_4dim_256", "baseline_6dim_258", "baseline_6dim_384",
           "multi_input_6dim_384")
PAPER_TABLE1 = ("0.8192", "0.7958", "0.8286", "0.7934", "0.8169", "0.8380")
DIMS = ("genre", "mood", "instrument", "era", "tempo", "key")
PAPER_TABLE2 = ("0.8380", "0.8286", "0.8263", "0.7535", "0.6901", "0.7559", "0.5798", "0.6362")


def _run(script, *args) -> str:
    proc = subprocess.run([sys.executable, str(ROOT / "experiments" / script), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=1200)
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc.stdout


def _table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| Model")
            and not line.startswith("| Genre") and not line.startswith("| Rank")]


def _brute_force_scores(model_path: Path, triplets_path: Path, store: Path, min_agreement: float) -> dict:
    """``{dims tuple: score}`` of every combination, one triplet at a time (the oracle)."""
    import itertools

    import numpy as np

    import mdsim
    from mdsim.embed import store_embedding_set
    from mdsim.evaluation import load_triplets

    triplets = load_triplets(triplets_path, min_agreement=min_agreement)
    model = mdsim.load_model(model_path)
    emb = store_embedding_set(model, store, sorted(triplets.track_ids()), progress=False)
    vector = {t: emb.embeddings[i].astype(np.float64) for i, t in enumerate(emb.track_ids)}
    cols = {d: np.arange(*emb.slices[i]) for i, d in enumerate(emb.dimensions)}
    kept = [(a, p, n) for a, p, n in zip(triplets.anchor, triplets.positive, triplets.negative)
            if a in vector and p in vector and n in vector]

    def score(c):  # a tie is wrong
        return sum(np.linalg.norm(vector[a][c] - vector[p][c]) < np.linalg.norm(vector[a][c] - vector[n][c])
                   for a, p, n in kept) / len(kept)

    scores = {dims: score(np.concatenate([cols[d] for d in dims]))
              for size in range(1, len(emb.dimensions) + 1) for dims in itertools.combinations(emb.dimensions, size)}
    scores["full"] = score(np.arange(emb.embeddings.shape[1]))
    scores["n_scored"] = len(kept)
    return scores


def _stamps(out: Path) -> dict:
    files = [out / "runs" / c / f for c in CONFIGS for f in ("state.json", "best.keras", "last.keras")]
    files += [out / "eval" / c / "evaluation.json" for c in CONFIGS]
    return {str(f): f.stat().st_mtime_ns for f in files}


@pytest.mark.slow
def test_table1_and_table2_smoke_and_resume(tmp_path):
    out = tmp_path / "tables"
    t0 = time.perf_counter()
    _run("table1.py", "--smoke", "--out", out)
    first = time.perf_counter() - t0

    md = (out / "table1.md").read_text()
    assert "SMOKE" in md
    rows = _table_rows(md)
    assert len(rows) == 6  # the paper's rows: five configurations and OpenL3
    for config in CONFIGS:
        (row,) = [r for r in rows if f"`{config}`" in r]
        assert "not run" not in row and "1/1" in row
    (openl3,) = [r for r in rows if r.startswith("| OpenL3")]
    assert "not run" in openl3 and "0.7958" in openl3
    for figure in PAPER_TABLE1:
        assert figure in md
    t1 = json.loads((out / "table1.json").read_text())
    assert t1["best"] in CONFIGS and set(t1["evaluations"]) == set(CONFIGS)
    from mdsim.evaluation import read_results
    from mdsim.training import read_run_config

    scored = [r for r in t1["rows"] if r["config"]]
    for r in scored:  # each row is its own configuration's model, evaluation and layout
        evaluation = read_results(t1["evaluations"][r["config"]])[0]
        assert Path(r["model_path"]) == out / "runs" / r["config"] / "best.keras"
        assert (r["score"], r["n_scored"]) == (evaluation["full"]["score"], evaluation["triplets"]["n_scored"])
        assert r["n_scored"] > 0
        model, _ = read_run_config(out / "runs" / r["config"] / "config.toml")
        assert (r["n_dims"], r["embedding_size"], r["multi_input"]) == (
            len(model.dimensions), model.embedding_size, model.backbone == "multi_input")
        assert evaluation["dimensions"] == list(model.dimensions)
    assert t1["best"] == max(scored, key=lambda r: r["score"])["config"]
    before = _stamps(out)

    # table2 --smoke resumes table1 in the same folder: nothing retrained, no evaluation repeated
    t0 = time.perf_counter()
    stdout = _run("table2.py", "--smoke", "--out", out)
    second = time.perf_counter() - t0
    assert _stamps(out) == before
    for config in CONFIGS:
        assert f"table1: {config}: finished (1/1 epochs), skipped" in stdout
        assert f"table1: {config}: evaluation in" in stdout
    assert "mdsim train" not in stdout and "mdsim evaluate" not in stdout
    md2 = (out / "table2.md").read_text()
    for figure in PAPER_TABLE2:
        assert figure in md2
    assert len(_table_rows(md2)) == 6 + 6 + 6  # paper's combinations, single dimensions, our best six
    resumed = json.loads((out / "table1.json").read_text())
    assert [r["score"] for r in resumed["rows"]] == [r["score"] for r in t1["rows"]]
    t2 = json.loads((out / "table2.json").read_text())
    assert t2["model"] == t1["best"] and t2["evaluation"] == t1["evaluations"][t1["best"]]
    dims = t2["dimensions"]
    assert dims == next(r["dimensions"] for r in t1["rows"] if r["config"] == t1["best"])
    assert t2["n_combinations"] == len(t2["combinations"]) == 2 ** len(dims) - 1
    subsets = {frozenset(c["dims"]) for c in t2["combinations"]}
    assert len(subsets) == 2 ** len(dims) - 1 and set().union(*subsets) == set(dims)
    best_eval = read_results(t1["evaluations"][t1["best"]])[0]
    assert t2["combinations"] == best_eval["combinations"]
    for row in t2["singles"]:  # a dimension the model lacks is "not in this model", not a score
        assert (row["score"] is None) == (row["dims"][0] not in dims)
    scores = sorted((c["score"] for c in t2["combinations"]), reverse=True)
    assert [r["score"] for r in t2["top"]] == scores[:len(t2["top"])]
    assert (out / "table2_radar.png").stat().st_size > 0

    # the paper's Table 2 model: six dimensions, 63 combinations, every paper row scored
    _run("table2.py", "--table1", out, "--run", "multi_input_6dim_384", "--out", out / "table2_6d")
    t2 = json.loads((out / "table2_6d" / "table2.json").read_text())
    assert t2["n_combinations"] == 63
    assert all(r["score"] is not None for r in t2["paper_combinations"] + t2["singles"])
    settings = t1["settings"]
    oracle = _brute_force_scores(out / "runs" / "multi_input_6dim_384" / "best.keras", Path(settings["triplets"]),
                                 Path(settings["triplets_store"]), settings["min_agreement"])
    assert t2["triplets"]["n_scored"] == oracle["n_scored"]
    assert t2["full"]["score"] == oracle["full"]
    ours = {tuple(sorted(c["dims"], key=DIMS.index)): c["score"] for c in t2["combinations"]}
    assert ours == {k: v for k, v in oracle.items() if isinstance(k, tuple)}
    for row in t2["paper_combinations"] + t2["singles"]:
        assert row["score"] == oracle[tuple(row["dims"])]
    print(f"\ntable1 --smoke {first:.0f} s; table2 --smoke (resuming table1) {second:.1f} s")


def test_key_and_tempo_baselines_read_what_they_should():
    import numpy as np

    sys.path.insert(0, str(ROOT / "experiments"))
    from key_tempo_baselines import KK_MAJOR, KK_MINOR, key_estimate, tempo_estimate, tempo_circle

    for pc in range(12):
        assert key_estimate(np.roll(KK_MAJOR, pc)) == pc
        assert key_estimate(np.roll(KK_MINOR, pc)) == pc + 12
    scale = np.zeros(12)
    scale[[2, 4, 6, 7, 9, 11, 1]] = 1.0
    scale[2] = scale[9] = 2.0                                   # D major, tonic and fifth stressed
    assert key_estimate(scale) == 2
    lags = np.arange(384)
    bpm = 60 * 22050 / (256 * 43)                               # ~120 BPM
    assert tempo_estimate(np.exp(-0.5 * ((lags - 43) / 1.0) ** 2)) == pytest.approx(bpm)
    np.testing.assert_allclose(tempo_circle(60.0), tempo_circle(120.0), atol=1e-12)   # octaves coincide
    assert np.dot(tempo_circle(100.0), tempo_circle(141.4)) < -0.99                   # half an octave: opposite
