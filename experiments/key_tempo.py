"""Key and tempo on held-out tracks: the networks against the one-line baselines, and the ablations.

On a store with key and tempo labels (the rendered corpus of ``mdsim/recipes/rendered.py``, prepped
with ``--annotate none`` for exact labels), trains each configuration with ``mdsim train`` (the
same split for all: by group, so every transposition of a score is on one side), draws key and
tempo triplets on the held-out tracks and, to tell fitting from generalising, on the training
tracks, and scores each network in its own key and tempo subspaces beside the key-profile and
tempogram-peak baselines (``key_tempo_baselines.py``) on the same triplets, and each network's
held-out score minus its baseline's with a paired bootstrap interval (both resampled together,
so an interval above zero says the network beats the baseline on these triplets). Writes
``key_tempo.md`` and ``key_tempo.json`` to ``--out``; every step resumes.

Configurations (``--runs``, separated by ``;``), each ``name=backbone:dims``:

- ``multi_input=multi_input:genre,mood,instrument,tempo,key`` -- the full network, all labels;
- ``baseline=baseline:genre,mood,instrument,tempo,key`` -- mel only (the paper's comparison);
- ``multi_key_tempo=multi_input:tempo,key`` -- the full network with only the key and tempo losses;
- ``chroma=chroma:key`` -- the CENS branch alone, on key;
- ``rhythm=rhythm:tempo`` -- the tempogram branch alone, on tempo;
- ``multi_summaries=multi_input:genre,mood,instrument,tempo,key:cens,tempogram`` -- the full
  network with the CENS and tempogram summaries (``mdsim train --summaries``);
- ``chroma_summary=chroma:key:cens`` -- the CENS branch with its summary, on key.

A third field after the dimensions names the inputs of ``--summaries``, a fourth the mode of
``--augment`` (``label``: pitch-shift and time-stretch that transform the key and tempo labels;
``invariance``), e.g. ``multi_label=multi_input:genre,mood,instrument,tempo,key:cens,tempogram:label``.
``--key-profiles K`` gives the runs with a CENS summary K learned key profiles (``mdsim train
--key-profiles``); ``--key-head tonic --key-profiles K`` makes the key subspace of the runs with
key a tonic posterior (``mdsim train --key-head tonic``). ``--pair-shares key=3`` gives key three
turns of the sampler's pairs where each other dimension has one (``mdsim train --pair-shares``).

``--truth STORE``: train on ``store`` (e.g. the rendered audio prepped with ``--annotate madmom``
from a manifest without the key and tempo cells: the labels a user without ground truth has)
and draw the triplets from ``STORE``'s labels (the same tracks with the written key and tempo),
so a recipe is scored on what the music is, not on what the annotator said.

    python experiments/key_tempo.py rendered.h5 --out runs/kt --epochs 20 --steps 20
    python experiments/key_tempo.py rendered.h5 --out runs/kt --runs 'chroma=chroma:key' --epochs 5
    python experiments/key_tempo.py madmom.h5 --truth rendered.h5 --out runs/kt_madmom --epochs 60 \
        --runs 'multi_summaries=multi_input:genre,mood,instrument,tempo,key:cens,tempogram'
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "experiments"))

DEFAULT_RUNS = ("multi_input=multi_input:genre,mood,instrument,tempo,key",
                "baseline=baseline:genre,mood,instrument,tempo,key",
                "multi_key_tempo=multi_input:tempo,key", "chroma=chroma:key", "rhythm=rhythm:tempo",
                "multi_summaries=multi_input:genre,mood,instrument,tempo,key:cens,tempogram",
                "chroma_summary=chroma:key:cens")


def _mdsim(*args) -> None:
    cmd = [sys.executable, "-m", "mdsim.cli", *map(str, args)]
    print("$ mdsim " + " ".join(map(str, args)), flush=True)
    subprocess.run(cmd, check=True)


def _shares_of(shares: str, dims: str) -> str:
    """The items of ``--pair-shares`` (``"key=3,tempo=2"``) whose dimension a run trains."""
    trained = set(dims.split(","))
    return ",".join(s.strip() for s in shares.split(",") if s.split("=")[0].strip() in trained)


def parse_runs(text: str) -> dict:
    """``"name=backbone:dims[:summaries[:augment]];..."`` -> ``{name: (backbone, dims, summaries, augment)}``."""
    runs = {}
    for item in filter(None, (t.strip() for t in text.split(";"))):
        name, value = item.split("=", 1)
        backbone, dims, *rest = value.split(":")
        rest = [r.strip() for r in rest] + ["", ""]
        runs[name.strip()] = (backbone.strip(), dims.strip(), rest[0], rest[1] or "none")
    return runs


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("store", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--runs", default=";".join(DEFAULT_RUNS), help="name=backbone:dims;... (default: the five above)")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--steps", type=int, default=20, help="batches per epoch")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--embedding-size", type=int, default=80)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--validation-fraction", type=float, default=0.2)
    p.add_argument("--triplets", type=int, default=1000, help="triplets per dimension and side")
    p.add_argument("--chroma-padding", choices=("zero", "circular"), default="zero")
    p.add_argument("--tempo-axis", choices=("lag", "log"), default="lag")
    p.add_argument("--key-profiles", type=int, default=0, metavar="K",
                   help="mdsim train --key-profiles for the runs with a CENS summary (default 0)")
    p.add_argument("--key-head", choices=("dense", "tonic"), default="dense",
                   help="mdsim train --key-head for the runs with key (tonic: with --key-profiles K)")
    p.add_argument("--min-key-probability", type=float, default=0.0, metavar="P",
                   help="mdsim train --min-key-probability (default 0: every key)")
    p.add_argument("--pair-shares", metavar="DIM=N,...",
                   help="mdsim train --pair-shares for every run (e.g. key=3; default: the dimensions in turn)")
    p.add_argument("--stretch-probability", type=float, metavar="P",
                   help="mdsim train --stretch-probability for the augmented runs (0: pitch-shifts only)")
    p.add_argument("--bootstrap", type=int, default=500)
    p.add_argument("--truth", type=Path, metavar="STORE",
                   help="draw the triplets from this store's labels (same tracks and features; default: store's)")
    args = p.parse_args(argv)

    from key_tempo_baselines import baseline_embeddings

    from mdsim import load_model
    from mdsim.embed import store_embedding_set
    from mdsim.evaluation import bootstrap_ci, check_layout, combination_correct, evaluate, load_triplets, validate
    from mdsim.evaluation.embeddings import gather

    args.out.mkdir(parents=True, exist_ok=True)
    runs = parse_runs(args.runs)
    results_path = args.out / "key_tempo.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    split = None
    truth = args.truth or args.store
    for name, (backbone, dims, summaries, augment) in runs.items():
        run = args.out / name
        if not (run / "state.json").exists() or json.loads((run / "state.json").read_text())["epochs_done"] < args.epochs:
            resume = ["--resume", run] if (run / "state.json").exists() else ["--out", run]
            extra = [] if resume[0] == "--resume" else [
                "--backbone", backbone, "--dims", dims, "--width", args.width,
                "--embedding-size", args.embedding_size - args.embedding_size % len(dims.split(",")),
                "--batch-size", args.batch_size, "--learning-rate", args.learning_rate,
                "--steps-per-epoch", args.steps, "--validation-fraction", args.validation_fraction,
                "--chroma-padding", args.chroma_padding, "--tempo-axis", args.tempo_axis] + (
                ["--summaries", summaries] if summaries else []) + (
                ["--key-profiles", args.key_profiles] if args.key_profiles and (
                    "cens" in summaries or args.key_head == "tonic" and "key" in dims) else []) + (
                ["--key-head", args.key_head] if args.key_head == "tonic" and "key" in dims else []) + (
                ["--augment", augment] if augment != "none" else []) + (
                ["--stretch-probability", args.stretch_probability]
                if augment != "none" and args.stretch_probability is not None else []) + (
                ["--min-key-probability", args.min_key_probability] if args.min_key_probability else []) + (
                ["--pair-shares", shares] if (shares := _shares_of(args.pair_shares or "", dims)) else [])
            _mdsim("train", args.store, *resume, "--epochs", args.epochs, *extra, "--quiet")
        split = split or run / "split.json"
    # the same split for every run: check it, then draw the triplets on both sides
    splits = {json.dumps(json.loads((args.out / n / "split.json").read_text()), sort_keys=True) for n in runs}
    if len(splits) != 1:
        raise SystemExit("the runs were split differently; give them the same store, seed and fraction")
    split_data = json.loads(split.read_text())
    train_ids = args.out / "train_tracks.txt"
    train_ids.write_text("\n".join(split_data["train"]) + "\n")
    triplets = {}
    for side, tracks in (("held-out", split), ("training", train_ids)):
        for dim in ("key", "tempo"):
            path = args.out / f"{dim}_{side}.csv"
            if not path.exists():
                _mdsim("triplets", truth, "--dimension", dim, "--tracks", tracks, "--n", args.triplets,
                       "--out", path)
            triplets[(side, dim)] = load_triplets(path, min_agreement=0.0)

    def correct(emb, side, dim, subspace=None):
        """Each held-out triplet right (1) or not (0) in ``subspace`` (default: the whole
        embedding, as :func:`evaluate`'s ``full``), in the triplets' order."""
        kept, _ = validate(triplets[(side, dim)], emb)
        a, p, n = (gather(emb, ids) for ids in (kept.anchor, kept.positive, kept.negative))
        dims, slices = check_layout(emb.dimensions, emb.slices, a.shape[1])
        every = [slices[dims.index(subspace)]] if subspace else (slices or ((0, a.shape[1]),))
        return combination_correct(a, p, n, every, np.ones((1, len(every))))[:, 0], kept

    def score(emb, side, dim, subspace=None):
        r = evaluate(triplets[(side, dim)], emb, n_bootstrap=args.bootstrap)
        if subspace is not None:
            r = next(c for c in r["combinations"] if tuple(c["dims"]) == (subspace,))
        else:
            r = r["full"]
        return [round(r["score"], 4), round(r["ci_low"], 4), round(r["ci_high"], 4)]

    baseline_of = {"key": "key profile", "tempo": "tempo (tempogram peak)"}
    baseline_correct = {}
    for name, emb in baseline_embeddings(args.store).items():
        if name in baseline_of.values():
            results[name] = {f"{side} {dim}": score(emb, side, dim) for side in ("held-out", "training")
                             for dim in ("key", "tempo")}
            for dim in ("key", "tempo"):
                if baseline_of[dim] == name:
                    baseline_correct[dim] = correct(emb, "held-out", dim)
    for name in runs:
        model = load_model(args.out / name / "best.keras")
        emb = store_embedding_set(model, args.store, progress=False, name=name)
        results[name] = {f"{side} {dim}": score(emb, side, dim, dim) for side in ("held-out", "training")
                         for dim in ("key", "tempo") if dim in model.dimensions}
        for dim in ("key", "tempo"):
            if dim in model.dimensions:
                # paired: the network and the baseline on the same triplets, resampled together
                mine, kept = correct(emb, "held-out", dim, dim)
                base, base_kept = baseline_correct[dim]
                assert list(kept.anchor) == list(base_kept.anchor) and len(mine) == len(base)
                diff = mine.astype(np.float64) - base
                low, high = bootstrap_ci(diff[:, None], n_resamples=args.bootstrap)
                results[name][f"held-out {dim} minus baseline"] = [round(float(diff.mean()), 4),
                                                                   round(float(low[0]), 4), round(float(high[0]), 4)]
    results_path.write_text(json.dumps(results, indent=1))

    cols = ["held-out key", "held-out tempo", "training key", "training tempo"]
    lines = ["| embedding | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, r in results.items():
        cells = [f"{r[c][0]:.3f} [{r[c][1]:.3f}, {r[c][2]:.3f}]" if c in r else "" for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Held-out, each network minus the baseline on the same triplets (paired bootstrap):", "",
              "| network | key minus key profile | tempo minus tempogram peak |", "|---|---:|---:|"]
    for name, r in results.items():
        cells = [f"{r[c][0]:+.3f} [{r[c][1]:+.3f}, {r[c][2]:+.3f}]" if c in r else ""
                 for c in ("held-out key minus baseline", "held-out tempo minus baseline")]
        if any(cells):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    (args.out / "key_tempo.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
