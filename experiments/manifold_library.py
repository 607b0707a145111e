"""The deep manifold of a generated sound library: one run per neighbourhood definition.

Generates the note library (``mdsim.recipes.sound_library``: 6 instruments x 25
pitches x 3 dynamics = 450 notes), preps it as a constant-Q store (the
``manifold`` backbone) or an STFT store (``--backbone baseline|multi_input``: the
Inception backbones with the 3-D head), trains the network once per
neighbourhood with the same budget, scores each map of the held-out notes
against PCA-3D and t-SNE-3D (``mdsim manifold evaluate``), and draws one figure
per neighbourhood (by instrument and by pitch, side by side) and, for the
``manifold`` backbone, the trajectory of one sustained bowed note. Writes the
report (``report.md`` and ``report.json``; ``report_BACKBONE.*`` for an Inception
backbone), the figures and the seconds per training step of each run
(``steps_BACKBONE.md``) to ``--out``; every step is skipped when its output
exists, so a killed run resumes, and the backbones share the library.

    python experiments/manifold_library.py --out runs/manifold --steps 2000
    python experiments/manifold_library.py --out runs/manifold --backbone multi_input --steps 1000 \
        --neighbourhoods instrument,instrument+pitch
    python experiments/manifold_library.py --out /tmp/m --smoke            # a minute or two
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from mdsim.recipes.sound_library import generate_library, render_note
    from mdsim.cli import main as mdsim
    from mdsim.model.manifold import DEFAULT_WIDTH, MANIFOLD_BACKBONES
    from mdsim.training.neighbourhoods import NEIGHBOURHOODS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--steps", type=int, default=2000, help="training steps per neighbourhood (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the library, split and training")
    p.add_argument("--neighbourhoods", default=",".join(NEIGHBOURHOODS), help="comma-separated subset")
    p.add_argument("--backbone", choices=MANIFOLD_BACKBONES, default="manifold",
                   help="manifold (default; constant-Q store) or an Inception backbone (STFT store)")
    p.add_argument("--width", type=float, default=None,
                   help=f"filter multiplier of an Inception backbone (default {DEFAULT_WIDTH})")
    p.add_argument("--figures", default=None, help="also copy the figures here (e.g. docs/images)")
    p.add_argument("--smoke", action="store_true", help="a small library and 100 steps (checks the wiring)")
    args = p.parse_args(argv)
    out = Path(args.out)
    small = dict(instruments=("plucked", "bowed", "flute", "mallet"), low=55, high=67, dynamics=("pp", "ff"))
    manifest = out / "library" / "manifest.csv"
    if not manifest.exists():
        generate_library(out / "library", seed=args.seed, **(small if args.smoke else {}))
    inception = args.backbone != "manifold"
    # the manifold backbone keeps its names (library.h5, runs/NAME, report.md)
    store = out / ("library_stft.h5" if inception else "library.h5")
    if not store.exists():
        features = [] if inception else ["--features", "cqt"]
        assert mdsim(["prep", str(manifest), "--out", str(store), *features, "--annotate", "none",
                      "--workers", "1", "--quiet"]) == 0
    steps = 100 if args.smoke else args.steps
    names = args.neighbourhoods.split(",")
    tag = f"_{args.backbone}" if inception else ""
    runs = []
    for name in names:
        run = out / "runs" / ((f"{args.backbone}_" if inception else "") + name.replace("+", "_"))
        if not (run / "model.keras").exists():
            width = ["--width", str(args.width)] if args.width is not None else []
            assert mdsim(["manifold", "train", str(store), "--out", str(run), "--neighbourhood", name,
                          "--steps", str(steps), "--seed", str(args.seed), "--backbone", args.backbone,
                          *width]) == 0
        runs.append(run)
    report = out / f"report{tag}.md"
    if not report.exists() or report.stat().st_mtime < max((r / "model.keras").stat().st_mtime for r in runs):
        assert mdsim(["manifold", "evaluate", *map(str, runs), "--out", str(report)]) == 0
    (out / f"steps{tag}.md").write_text(step_times(names, runs))
    figures = Path(args.figures) if args.figures else out / "figures"
    from mdsim.evaluation.manifold_figures import plot_map_pair
    from mdsim.manifold import load_manifold

    for name, run in zip(names, runs):
        m = load_manifold(run)
        notes = m.notes()
        plot_map_pair(m.embed_notes(notes.frames), np.array(notes.instrument, dtype=object), notes.pitch,
                      figures / f"manifold_map_{run.name}.png",
                      title=f"{args.backbone}, neighbourhood {name}: {len(notes)} notes ({steps} steps)")
    if inception:  # no trajectory: a 3 s window holds a whole note (mdsim manifold trajectory refuses)
        print(report)
        return 0
    note = out / "sustained_bowed_C4.wav"
    if not note.exists():
        import soundfile as sf

        sf.write(note, render_note("bowed", 60, "mf", rng=np.random.default_rng(args.seed), gate=2.5), 16000)
    for run in runs:
        if run.name in ("instrument", "knn"):
            assert mdsim(["manifold", "trajectory", str(run), str(note), "--out",
                          str(figures / f"manifold_adsr_{run.name}.png")]) == 0
    print(report)
    return 0


def step_times(names, runs) -> str:
    """A Markdown table of each run's training time from its ``log.csv``: the first logged block
    (graph building included) and the seconds per step after it."""
    import csv

    lines = ["| run | steps | first logged block | seconds per step after it |", "|---|---:|---|---:|"]
    for name, run in zip(names, runs):
        rows = list(csv.DictReader(open(run / "log.csv")))
        (s0, t0), (s1, t1) = [(int(r["step"]), float(r["seconds"])) for r in (rows[0], rows[-1])]
        per_step = (t1 - t0) / (s1 - s0) if s1 > s0 else float("nan")
        lines.append(f"| {run.name} | {s1} | {s0} steps in {t0:.1f} s | {per_step:.3f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
