"""Table 1 of Ribecky et al.: the five model configurations, trained and scored on Dim-sim.

Trains every configuration of ``mdsim/configs/`` on a features store
(``mdsim train``), scores each best model on similarity triplets
(``mdsim evaluate``: the full embedding, the paper's protocol, plus every
combination of subspaces), and writes ``table1.md`` (the paper's layout, our
score with its bootstrap interval beside the paper's figure) and
``table1.json`` to ``--out``. OpenL3's row is the paper's figure only (not run
here: no OpenL3 model in this project).

    python experiments/table1.py --store msd.h5 --triplets dimsim_high.csv \\
        --triplets-store dimsim.h5 --out runs/table1
    python experiments/table1.py --out /tmp/t1 --smoke                  # minutes, synthetic

``--triplets-store`` is the store holding the triplets' tracks (``mdsim prep``
of the Dim-sim clips); it defaults to ``--store`` (one store may hold both).

Every step resumes: a finished run (its ``state.json`` counts the epochs of
its ``config.toml``) is not retrained, an interrupted one continues with
``mdsim train --resume``, and an evaluation already written for the current
``best.keras`` (same triplets file, agreement threshold and bootstrap) is
reused. ``--smoke`` generates a small synthetic corpus (training store,
held-out store, mixed generated triplets), shrinks every configuration to a
tiny budget and runs the same steps; its scores mean nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CONFIG_DIR = ROOT / "mdsim" / "configs"
DIMS = ("genre", "mood", "instrument", "era", "tempo", "key")

#: The paper's Table 1, in its order. ``config``: our file that trains the row (None: not run here).
PAPER_TABLE1 = (
    {"model": "Baseline (Lee et al.)", "config": "baseline_4dim_256", "n_dims": 4, "multi_input": False,
     "embedding_size": 256, "score": 0.8192},
    {"model": "OpenL3", "config": None, "n_dims": None, "multi_input": False, "embedding_size": 512,
     "score": 0.7958},
    {"model": "Proposed", "config": "multi_input_4dim_256", "n_dims": 4, "multi_input": True,
     "embedding_size": 256, "score": 0.8286},
    {"model": "Proposed", "config": "baseline_6dim_258", "n_dims": 6, "multi_input": False,
     "embedding_size": 258, "score": 0.7934},
    {"model": "Proposed", "config": "baseline_6dim_384", "n_dims": 6, "multi_input": False,
     "embedding_size": 384, "score": 0.8169},
    {"model": "Proposed", "config": "multi_input_6dim_384", "n_dims": 6, "multi_input": True,
     "embedding_size": 384, "score": 0.8380},
)
CONFIGS = tuple(r["config"] for r in PAPER_TABLE1 if r["config"])
INPUTS = {"baseline": "mel", "multi_input": "mel + CENS + tempogram"}

#: --smoke: corpus, held-out share and the budget every configuration is shrunk to.
SMOKE = {"n_tracks": 40, "duration": (6.0, 8.0), "heldout_groups": 2, "triplets_per_dimension": 10,
         "width": 0.125, "epochs": 1, "steps_per_epoch": 2, "validation_steps": 1, "batch_size": 8,
         "learning_rate": 1e-3, "normalization_windows": 64}


def _cli(argv) -> int:
    from mdsim.cli import main as mdsim

    print("table1: mdsim " + " ".join(str(a) for a in argv), flush=True)
    return mdsim([str(a) for a in argv])


def eager_tensorflow() -> None:
    """Run TensorFlow functions eagerly: for a few steps, cheaper than building the graph.

    On a two-core machine the first training step of a graph costs 1-2 minutes
    of tracing per model; the smoke budget is two steps, which run in seconds
    eagerly. Real runs keep the graph (``--smoke`` alone calls this).
    """
    import os
    import warnings

    if os.environ.get("KERAS_BACKEND", "tensorflow") != "tensorflow":
        return
    import tensorflow as tf

    warnings.filterwarnings("ignore", message=".*run_functions_eagerly.*")
    tf.config.run_functions_eagerly(True)


# -- smoke data ----------------------------------------------------------------------------
def smoke_data(out: Path, seed: int = 0):
    """Synthetic corpus -> training store, held-out store and mixed triplets (Dim-sim CSV)."""
    from mdsim import synth

    data = out / "smoke_data"
    corpus = data / "corpus"
    manifest = corpus / "manifest.csv"
    if not manifest.exists():
        synth.generate_corpus(corpus, SMOKE["n_tracks"], seed=seed, duration_range=SMOKE["duration"])
    train_csv, heldout_csv = corpus / "train.csv", corpus / "heldout.csv"
    if not heldout_csv.exists():  # hold out whole artists, like Dim-sim's tracks are not MSD training tracks
        with open(manifest, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            fields, rows = reader.fieldnames, list(reader)
        groups = sorted({r["group"] for r in rows})
        held = set(groups[-SMOKE["heldout_groups"]:])
        for path, keep in ((train_csv, False), (heldout_csv, True)):
            with open(path, "w", newline="", encoding="utf-8") as f:
                w = csv.DictWriter(f, fieldnames=fields)
                w.writeheader()
                w.writerows(r for r in rows if (r["group"] in held) == keep)
    store, heldout = data / "train.h5", data / "heldout.h5"
    for src, dst in ((train_csv, store), (heldout_csv, heldout)):
        if _cli(["prep", src, "--out", dst, "--quiet"]) != 0:
            raise SystemExit(f"table1: prep of {src} failed")
    triplets = data / "triplets.csv"
    if not triplets.exists():
        rows, fields = [], None
        for dim in DIMS:
            path = data / f"triplets_{dim}.csv"
            if not path.exists() and _cli(["triplets", heldout, "--dimension", dim, "--n",
                                           SMOKE["triplets_per_dimension"], "--seed", seed, "--out", path]) != 0:
                print(f"table1: no {dim} triplets among the held-out tracks; leaving {dim} out", flush=True)
                continue
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                fields = reader.fieldnames
                rows += [{**r, "triplet_id": f"{dim}-{r['triplet_id']}"} for r in reader]
        tmp = triplets.with_suffix(".tmp")
        with open(tmp, "w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=fields)
            w.writeheader()
            w.writerows(rows)
        tmp.replace(triplets)
    return store, triplets, heldout


def smoke_config(name: str, out: Path, config_dir: Path) -> Path:
    """The configuration with the smoke budget: same dimensions and embedding size, tiny rest."""
    from mdsim.training import read_run_config, write_run_config

    model, training = read_run_config(config_dir / f"{name}.toml")
    model = model.replace(width=SMOKE["width"])
    training = training.replace(**{k: SMOKE[k] for k in ("epochs", "steps_per_epoch", "validation_steps",
                                                          "batch_size", "learning_rate",
                                                          "normalization_windows")})
    path = out / "smoke_configs" / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_run_config(path, model, training)
    return path


# -- runs and evaluations ------------------------------------------------------------------
def run_progress(run_dir: Path):
    """``(epochs done, epochs planned)`` of a run folder, ``(0, None)`` before its first epoch."""
    from mdsim.training import read_run_config

    state = run_dir / "state.json"
    if not state.exists() or not (run_dir / "config.toml").exists():
        return 0, None
    _, training = read_run_config(run_dir / "config.toml")
    return json.loads(state.read_text())["epochs_done"], training.epochs


def train_run(name, store, run_dir: Path, config: Path, *, epochs=None, quiet=False, before_network=None) -> int:
    """Train a configuration, resume it, or skip it when finished. Returns the exit status."""
    done, planned = run_progress(run_dir)
    target = epochs or planned
    if planned is not None and done >= target and (run_dir / "best.keras").exists():
        print(f"table1: {name}: finished ({done}/{target} epochs), skipped", flush=True)
        return 0
    if before_network:
        before_network()
    extra = (["--epochs", epochs] if epochs else []) + (["--quiet"] if quiet else [])
    if planned is not None:
        print(f"table1: {name}: resuming after epoch {done} of {target}", flush=True)
        return _cli(["train", store, "--resume", run_dir, *extra])
    return _cli(["train", store, "--out", run_dir, "--config", config, *extra])


def evaluation_is_current(path: Path, model_path: Path, triplets, min_agreement, bootstrap, seed) -> bool:
    """An evaluation JSON written after the model, of the same triplets and settings."""
    from mdsim.evaluation import read_results

    if not path.exists() or path.stat().st_mtime < model_path.stat().st_mtime:
        return False
    r = read_results(path)[0]
    same_file = r["triplets"]["source"] and Path(r["triplets"]["source"]).resolve() == Path(triplets).resolve()
    return (same_file and r["triplets"]["min_agreement"] == min_agreement and r["distance"] == "euclidean"
            and r["bootstrap"]["n_resamples"] == bootstrap and r["bootstrap"]["seed"] == seed)


def evaluate_model(name, model_path: Path, triplets, triplets_store, eval_dir: Path, *, min_agreement=0.9,
                   bootstrap=1000, seed=0, before_network=None) -> dict:
    """``mdsim evaluate`` of one model into ``eval_dir``, or the evaluation already there."""
    from mdsim.evaluation import read_results

    path = eval_dir / "evaluation.json"
    if evaluation_is_current(path, model_path, triplets, min_agreement, bootstrap, seed):
        print(f"table1: {name}: evaluation in {path} is current, reused", flush=True)
    else:
        if before_network:
            before_network()
        status = _cli(["evaluate", "--triplets", triplets, "--model", model_path, "--store", triplets_store,
                       "--out", eval_dir, "--name", name, "--min-agreement", min_agreement,
                       "--bootstrap", bootstrap, "--seed", seed, "--distance", "paper"])
        if status != 0:
            raise SystemExit(f"table1: evaluation of {name} failed (exit status {status})")
    return read_results(path)[0]


# -- the table -----------------------------------------------------------------------------
def markdown(table: dict) -> str:
    from mdsim.evaluation import format_score

    s = table["settings"]
    title = "Table 1: model configurations on Dim-sim triplets"
    lines = [f"# {title}" + (" (SMOKE: synthetic corpus, tiny budget; scores meaningless)" if s["smoke"] else ""),
             "",
             f"Triplets: `{s['triplets']}` (agreement >= {s['min_agreement']}), tracks from `{s['triplets_store']}`; "
             f"models trained on `{s['store']}`. Track mode (mean of 3 s segments), Euclidean distance on the "
             f"raw embedding (the paper's protocol, `--distance paper`), full embedding; 95 % percentile "
             f"bootstrap over triplets ({s['bootstrap']} resamples).", "",
             "| Model | Num. of dim. | Multi-input | Emb. size | Input | Triplet score (ours) [95 % CI] | Paper "
             "| Triplets scored | Config | Epochs |",
             "|---|---:|:-:|---:|---|---:|---:|---:|---|---:|"]
    notes = []
    for r in table["rows"]:
        paper = f"{r['paper_score']:.4f}"
        if r["config"] and r["multi_input"] != r["paper_multi_input"]:
            paper += " (1)"
            notes.append(f"(1) The paper marks its {r['embedding_size']}-d {r['n_dims']}-dimension model "
                         f"{'multi' if r['paper_multi_input'] else 'single'}-input; `{r['config']}.toml` trains "
                         f"the {'multi-input' if r['multi_input'] else 'mel-only'} backbone, so this row "
                         "differs from the paper's configuration in the input.")
        check = "\u2713" if r["multi_input"] else "\u2717"
        dims = str(r["n_dims"]) if r["n_dims"] else "\u2013"
        epochs = f"{r['epochs_done']}/{r['epochs_planned']}" if r["config"] and r.get("epochs_planned") else "\u2013"
        score = format_score(r if r.get("score") is not None else None, missing="not run")
        lines.append(f"| {r['model']} | {dims} | {check} | {r['embedding_size']} | {r['input']} | "
                     f"{score} | {paper} | {r.get('n_scored') or chr(0x2013)} | "
                     f"{('`' + r['config'] + '`') if r['config'] else chr(0x2013)} | {epochs} |")
    lines.append("")
    lines += notes + ([""] if notes else [])
    lines.append("OpenL3: not run (the paper's figure; this project has no OpenL3 model). Other rows "
                 "marked \"not run\" were left out with `--configs` and have no evaluation yet.")
    if table.get("best"):
        b = next(r for r in table["rows"] if r["config"] == table["best"])
        lines += ["", f"Best here: `{b['config']}` ({b['score']:.4f}); the paper's best: the 6-dimension "
                      "multi-input 384-d model (0.8380). The paper scored 426 high-agreement triplets."]
    return "\n".join(lines) + "\n"


def build_rows(results: dict, progress: dict, models: dict, config_dir: Path = CONFIG_DIR,
               runs: Path | None = None) -> list:
    from mdsim.training import read_run_config

    rows = []
    for p in PAPER_TABLE1:
        row = {"model": p["model"], "config": p["config"], "n_dims": p["n_dims"],
               "multi_input": p["multi_input"], "paper_multi_input": p["multi_input"],
               "embedding_size": p["embedding_size"], "input": "\u2013", "paper_score": p["score"],
               "status": "not run", "score": None, "ci_low": None, "ci_high": None, "n_scored": None}
        name = p["config"]
        if name:
            run_config = runs / name / "config.toml" if runs else None
            source = run_config if run_config and run_config.exists() else config_dir / f"{name}.toml"
            model, _ = read_run_config(source)
            row.update(n_dims=len(model.dimensions), multi_input=model.backbone == "multi_input",
                       embedding_size=model.embedding_size, input=INPUTS[model.backbone],
                       dimensions=list(model.dimensions))
        if name in progress:
            row["epochs_done"], row["epochs_planned"] = progress[name]
        if name in results:
            r = results[name]
            row.update(status="done", score=r["full"]["score"], ci_low=r["full"]["ci_low"],
                       ci_high=r["full"]["ci_high"], n_scored=r["triplets"]["n_scored"],
                       model_path=str(models[name]))
        rows.append(row)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, help="features store to train on (e.g. MSD with Last.fm tags)")
    p.add_argument("--triplets", type=Path, help="triplets CSV (Dim-sim raw or clean format)")
    p.add_argument("--triplets-store", type=Path, help="store holding the triplets' tracks (default: --store)")
    p.add_argument("--out", type=Path, required=True, help="folder for runs, evaluations and the table")
    p.add_argument("--configs", help=f"comma-separated subset of: {', '.join(CONFIGS)} (default: all)")
    p.add_argument("--config-dir", type=Path, default=CONFIG_DIR, help="where the .toml files are")
    p.add_argument("--epochs", type=int, help="epochs per run instead of the configs' (100); "
                                              "raising it continues finished runs")
    p.add_argument("--min-agreement", type=float, default=0.9, help="triplet vote agreement (default 0.9)")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (default 1000)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (and the smoke corpus's)")
    p.add_argument("--quiet", action="store_true", help="no training progress bars")
    p.add_argument("--smoke", action="store_true",
                   help="synthetic corpus, every configuration at a tiny budget: the pipeline in minutes")
    args = p.parse_args(argv)
    configs = CONFIGS if not args.configs else tuple(c.strip() for c in args.configs.split(",") if c.strip())
    unknown = [c for c in configs if c not in CONFIGS]
    if unknown:
        p.error(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(CONFIGS)}")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    network_ready = []

    def before_network():  # smoke: eager TensorFlow, set once, only when something is trained or embedded
        if args.smoke and not network_ready:
            eager_tensorflow()
            network_ready.append(True)

    if args.smoke:
        args.store, args.triplets, args.triplets_store = smoke_data(out, seed=args.seed)
        args.quiet = True
    elif not (args.store and args.triplets):
        p.error("--store and --triplets are required (or --smoke)")
    args.triplets_store = args.triplets_store or args.store
    for what, path in (("--store", args.store), ("--triplets", args.triplets),
                       ("--triplets-store", args.triplets_store)):
        if not Path(path).is_file():  # fail now, not after days of training
            p.error(f"{what} {path}: no such file")

    results, progress, models = {}, {}, {}
    for name in configs:
        run_dir = out / "runs" / name
        config = smoke_config(name, out, args.config_dir) if args.smoke else args.config_dir / f"{name}.toml"
        status = train_run(name, args.store, run_dir, config, epochs=args.epochs, quiet=args.quiet,
                           before_network=before_network)
        if status != 0:
            print(f"table1: training {name} stopped (exit status {status}); run the same command to resume",
                  file=sys.stderr)
            return status
        progress[name] = run_progress(run_dir)
        models[name] = run_dir / "best.keras"
        results[name] = evaluate_model(name, models[name], args.triplets, args.triplets_store, out / "eval" / name,
                                       min_agreement=args.min_agreement, bootstrap=args.bootstrap, seed=args.seed,
                                       before_network=before_network)
    from mdsim.evaluation import read_results

    for name in (c for c in CONFIGS if c not in configs):  # left out by --configs: shown if already scored
        run_dir, path = out / "runs" / name, out / "eval" / name / "evaluation.json"
        if (run_dir / "best.keras").exists() and evaluation_is_current(
                path, run_dir / "best.keras", args.triplets, args.min_agreement, args.bootstrap, args.seed):
            print(f"table1: {name}: not chosen, its current evaluation {path} is shown", flush=True)
            progress[name], models[name] = run_progress(run_dir), run_dir / "best.keras"
            results[name] = read_results(path)[0]

    rows = build_rows(results, progress, models, args.config_dir, out / "runs")
    done = [r for r in rows if r["score"] is not None]
    table = {"schema": "mdsim.table1/1",
             "settings": {"smoke": args.smoke, "store": str(args.store), "triplets": str(args.triplets),
                          "triplets_store": str(args.triplets_store), "min_agreement": args.min_agreement,
                          "bootstrap": args.bootstrap, "seed": args.seed, "configs": list(configs),
                          **({"smoke_budget": SMOKE} if args.smoke else {})},
             "best": max(done, key=lambda r: r["score"])["config"] if done else None,
             "rows": rows,
             "evaluations": {name: str(out / "eval" / name / "evaluation.json") for name in CONFIGS
                             if name in results}}
    (out / "table1.json").write_text(json.dumps(table, indent=1) + "\n")
    text = markdown(table)
    (out / "table1.md").write_text(text)
    print(text)
    print(f"table1: wrote {out / 'table1.md'}, {out / 'table1.json'} ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
