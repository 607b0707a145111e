"""The deep manifold of a generated sound library: one run per neighbourhood definition.

Generates the note library (``data_prep.sound_library``: 6 instruments x 25
pitches x 3 dynamics = 450 notes), preps it as a constant-Q store, trains the
manifold network once per neighbourhood with the same budget, scores each
map of the held-out notes against PCA-3D and t-SNE-3D (``mdsim manifold
evaluate``), and draws one figure per neighbourhood (by instrument and by
pitch, side by side) and the trajectory of one sustained bowed note. Writes ``report.md``,
``report.json`` and the figures to ``--out``; every step is skipped when its
output exists, so a killed run resumes.

    python experiments/manifold_library.py --out runs/manifold --steps 2000
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
    from data_prep.sound_library import generate_library, render_note
    from mdsim.cli import main as mdsim
    from mdsim.training.neighbourhoods import NEIGHBOURHOODS

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--steps", type=int, default=2000, help="training steps per neighbourhood (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the library, split and training")
    p.add_argument("--neighbourhoods", default=",".join(NEIGHBOURHOODS), help="comma-separated subset")
    p.add_argument("--figures", default=None, help="also copy the figures here (e.g. docs/images)")
    p.add_argument("--smoke", action="store_true", help="a small library and 100 steps (checks the wiring)")
    args = p.parse_args(argv)
    out = Path(args.out)
    small = dict(instruments=("plucked", "bowed", "flute", "mallet"), low=55, high=67, dynamics=("pp", "ff"))
    manifest = out / "library" / "manifest.csv"
    if not manifest.exists():
        generate_library(out / "library", seed=args.seed, **(small if args.smoke else {}))
    store = out / "library.h5"
    if not store.exists():
        assert mdsim(["prep", str(manifest), "--out", str(store), "--features", "cqt", "--annotate", "none",
                      "--workers", "1", "--quiet"]) == 0
    steps = 100 if args.smoke else args.steps
    names = args.neighbourhoods.split(",")
    runs = []
    for name in names:
        run = out / "runs" / name.replace("+", "_")
        if not (run / "model.keras").exists():
            assert mdsim(["manifold", "train", str(store), "--out", str(run), "--neighbourhood", name,
                          "--steps", str(steps), "--seed", str(args.seed)]) == 0
        runs.append(run)
    report = out / "report.md"
    if not report.exists() or report.stat().st_mtime < max((r / "model.keras").stat().st_mtime for r in runs):
        assert mdsim(["manifold", "evaluate", *map(str, runs), "--out", str(report)]) == 0
    figures = Path(args.figures) if args.figures else out / "figures"
    from mdsim.evaluation.manifold_figures import plot_map_pair
    from mdsim.manifold import load_manifold, load_notes

    notes = load_notes(store, n_frames=8)
    for name, run in zip(names, runs):
        m = load_manifold(run)
        plot_map_pair(m.embed_notes(notes.frames), np.array(notes.instrument, dtype=object), notes.pitch,
                      figures / f"manifold_map_{run.name}.png",
                      title=f"neighbourhood {name}: {len(notes)} notes ({steps} steps)")
    note = out / "sustained_bowed_C4.wav"
    if not note.exists():
        import soundfile as sf

        sf.write(note, render_note("bowed", 60, "mf", rng=np.random.default_rng(args.seed), gate=2.5), 16000)
    for run in runs:
        if run.name in ("instrument", "knn"):
            assert mdsim(["manifold", "trajectory", str(run), str(note), "--out",
                          str(figures / f"manifold_adsr_{run.name}.png")]) == 0
    print(out / "report.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
