"""Table 2 of Ribecky et al.: the multi-dimensional analysis of the best model.

Scores the triplets with every combination of active subspaces (``2^k - 1``:
63 for six dimensions) and writes ``table2.md`` in the paper's layout (the
paper's six best combinations, then each dimension alone, our figure beside
the paper's; then our own six best), ``table2.json`` (every combination) and
``table2_radar.png`` (single dimensions, ours against the paper's, like its
Figure 2) to ``--out``.

    python experiments/table2.py --table1 runs/table1 --out runs/table2      # best of table1's runs
    python experiments/table2.py --model runs/x/best.keras --triplets dimsim_high.csv \\
        --triplets-store dimsim.h5 --out runs/table2
    python experiments/table2.py --out /tmp/t1 --smoke                        # minutes, synthetic

By default the model is the best of ``table1.json``'s runs by full-embedding
score, and its evaluation there (which already holds every combination) is
reused. With ``--model`` the model is evaluated into ``OUT/evaluation/``
(triplets, store and settings default to table1's), and that evaluation is
reused on the next run while it is newer than the model. ``--smoke`` first
runs (or resumes) ``table1.py --smoke`` in the ``--table1`` folder.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import table1  # noqa: E402  (experiments/table1.py)

DIMS = ("genre", "mood", "instrument", "era", "tempo", "key")

#: The paper's Table 2 (6-dimension multi-input 384-d model, 426 Dim-sim triplets), in its order:
#: the six best combinations, then each dimension alone.
PAPER_COMBINATIONS = (
    (("genre", "mood", "instrument", "era", "tempo", "key"), 0.8380),
    (("genre", "mood", "instrument", "era", "key"), 0.8286),
    (("genre", "instrument", "era", "tempo"), 0.8286),
    (("genre", "mood", "instrument", "era", "tempo"), 0.8263),
    (("genre", "mood", "era", "tempo", "key"), 0.8263),
    (("genre", "mood", "instrument", "era"), 0.8263),
)
PAPER_SINGLES = (("genre", 0.7535), ("mood", 0.7535), ("instrument", 0.6901), ("era", 0.7559),
                 ("tempo", 0.5798), ("key", 0.6362))
#: What a table cell says for a combination the model does not have.
NOT_IN_MODEL = "\u2013 (not in this model)"

PAPER = {**{c: s for c, s in PAPER_COMBINATIONS}, **{(d,): s for d, s in PAPER_SINGLES}}


def _marks(dims) -> str:
    return " | ".join("\u2713" if d in dims else "" for d in DIMS)


def rows_of(result: dict, keys) -> list:
    """Our entry (or None) for each combination in ``keys``, with the paper's figure."""
    ours = {tuple(sorted(c["dims"], key=DIMS.index)): c for c in result["combinations"]}
    out = []
    for key in keys:
        c = ours.get(tuple(key))
        out.append({"dims": list(key), "paper": PAPER.get(tuple(key)),
                    "score": c["score"] if c else None, "ci_low": c["ci_low"] if c else None,
                    "ci_high": c["ci_high"] if c else None, "rank": c["rank"] if c else None})
    return out


def markdown(t: dict) -> str:
    from mdsim.evaluation import format_score

    def _cell(entry):
        return format_score(entry if entry is not None and entry["score"] is not None else None,
                            missing=NOT_IN_MODEL)

    n = t["n_combinations"]
    head = "| Genre | Mood | Inst. | Era | Tempo | Key | Triplet score (ours) [95 % CI] | Our rank (of " \
           f"{n}) | Paper |"
    rule = "|" + ":-:|" * 6 + "---:|---:|---:|"
    tr = t["triplets"]
    lines = [f"# Table 2: multi-dimensional analysis of `{t['model']}`"
             + (" (SMOKE: synthetic corpus, tiny budget; scores meaningless)" if t["smoke"] else ""), "",
             f"Model `{t['model_path']}`; {tr['n_scored']} triplets scored (`{tr['source']}`, agreement >= "
             f"{tr['min_agreement']}; the paper: 426). Full embedding: **{_cell(t['full'])}**. Each row "
             "activates only the marked subspaces (track mode, the paper's Euclidean distance on the raw "
             "slices); 95 % bootstrap intervals.",
             "", "## The paper's six best combinations", "", head, rule]
    for r in t["paper_combinations"]:
        rank = r["rank"] if r["rank"] is not None else "\u2013"
        lines.append(f"| {_marks(r['dims'])} | {_cell(r)} | {rank} | "
                     f"{r['paper']:.4f} |")
    lines += ["", "## Each dimension alone", "", head, rule]
    for r in t["singles"]:
        rank = r["rank"] if r["rank"] is not None else "\u2013"
        lines.append(f"| {_marks(r['dims'])} | {_cell(r)} | {rank} | "
                     f"{r['paper']:.4f} |")
    lines += ["", f"## Our {len(t['top'])} best combinations", "",
              "| Rank | Genre | Mood | Inst. | Era | Tempo | Key | Triplet score (ours) [95 % CI] | Paper |",
              "|---:|" + ":-:|" * 6 + "---:|---:|"]
    for r in t["top"]:
        paper = f"{r['paper']:.4f}" if r["paper"] is not None else "\u2013"
        lines.append(f"| {r['rank']} | {_marks(r['dims'])} | {_cell(r)} | {paper} |")
    lines += ["", f"All {n} combinations, ranked: `table2.json` (and `{t['evaluation']}`). "
              "\"\u2013\" in the paper's column: the combination is not in the paper's table. "
              "Radar chart of the single dimensions: `table2_radar.png`.", ""]
    return "\n".join(lines)


def radar(result: dict, path: Path) -> None:
    from mdsim.evaluation import radar_chart

    paper = {"model": "paper (Ribecky et al.)", "dimensions": list(DIMS),
             "combinations": [{"dims": [d], "score": s} for d, s in PAPER_SINGLES]}
    radar_chart([result, paper], path, title_text="Triplet score per subspace: ours and the paper's")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, required=True, help="folder for table2.md, table2.json, the radar chart")
    p.add_argument("--table1", type=Path, help="table1.py's --out folder (default: --out)")
    p.add_argument("--run", help="one of table1's configurations (e.g. multi_input_6dim_384, the paper's "
                                 "Table 2 model) instead of the best")
    p.add_argument("--model", type=Path, help="a trained model (.keras) instead of table1's runs")
    p.add_argument("--triplets", type=Path, help="triplets CSV (default: table1's)")
    p.add_argument("--triplets-store", type=Path, help="store with the triplets' tracks (default: table1's)")
    p.add_argument("--min-agreement", type=float, help="triplet vote agreement (default: table1's, else 0.9)")
    p.add_argument("--bootstrap", type=int, help="bootstrap resamples (default: table1's, else 1000)")
    p.add_argument("--seed", type=int, help="bootstrap seed (default: table1's, else 0)")
    p.add_argument("--top", type=int, default=6, help="rows of our own ranking (default 6, as the paper)")
    p.add_argument("--smoke", action="store_true", help="run (or resume) table1.py --smoke in --table1 first")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    table1_dir = args.table1 or out
    if args.smoke:
        status = table1.main(["--smoke", "--out", str(table1_dir), "--seed", str(args.seed or 0)])
        if status != 0:
            return status
    settings = {}
    t1_path = table1_dir / "table1.json"
    if t1_path.exists():
        t1 = json.loads(t1_path.read_text())
        settings = t1["settings"]
    elif not args.model:
        p.error(f"{t1_path} does not exist: run experiments/table1.py first, or give --model")
    from mdsim.evaluation import read_results

    if args.model:
        triplets = args.triplets or settings.get("triplets")
        store = args.triplets_store or settings.get("triplets_store")
        if not (triplets and store):
            p.error("--model needs --triplets and --triplets-store (or a table1.json to take them from)")
        min_agreement = args.min_agreement if args.min_agreement is not None else settings.get("min_agreement", 0.9)
        bootstrap = args.bootstrap if args.bootstrap is not None else settings.get("bootstrap", 1000)
        seed = args.seed if args.seed is not None else settings.get("seed", 0)
        before = table1.eager_tensorflow if args.smoke else None
        name = args.model.parent.name if args.model.name == "best.keras" else args.model.stem
        result = table1.evaluate_model(name, args.model, triplets, store, out / "evaluation",
                                       min_agreement=min_agreement, bootstrap=bootstrap, seed=seed,
                                       before_network=before)
        model_path, evaluation = args.model, out / "evaluation" / "evaluation.json"
    else:
        name = args.run or t1.get("best")
        if name not in t1["evaluations"]:
            p.error(f"{t1_path} has no evaluation of {name or 'any run'} yet: run experiments/table1.py "
                    f"(with that configuration) first")
        row = next(r for r in t1["rows"] if r["config"] == name)
        model_path, evaluation = Path(row["model_path"]), Path(t1["evaluations"][name])
        result = read_results(evaluation)[0]
        which = "chosen" if args.run else "best"
        print(f"table2: the {which} of table1's runs is {name} ({row['score']:.4f}); "
              f"its evaluation {evaluation} is reused", flush=True)

    dims = [d for d in DIMS if d in result["dimensions"]]
    table = {"schema": "mdsim.table2/1", "smoke": bool(settings.get("smoke")) or args.smoke,
             "model": result["model"], "model_path": str(model_path), "evaluation": str(evaluation),
             "dimensions": dims, "triplets": result["triplets"], "full": result["full"],
             "n_combinations": len(result["combinations"]),
             "paper_combinations": rows_of(result, [c for c, _ in PAPER_COMBINATIONS]),
             "singles": rows_of(result, [(d,) for d, _ in PAPER_SINGLES]),
             "top": rows_of(result, [tuple(sorted(c["dims"], key=DIMS.index))
                                     for c in result["combinations"][:args.top]]),
             "combinations": result["combinations"]}
    (out / "table2.json").write_text(json.dumps(table, indent=1) + "\n")
    text = markdown(table)
    (out / "table2.md").write_text(text)
    radar(result, out / "table2_radar.png")
    print(text)
    print(f"table2: wrote {out / 'table2.md'}, {out / 'table2.json'}, {out / 'table2_radar.png'} "
          f"({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
