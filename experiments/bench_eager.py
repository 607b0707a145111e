"""`mdsim train --eager` against the compiled step: whole-run wall time for a few step counts.

TensorFlow builds the training graph before the first step (a minute or more on two
cores); eager execution skips that but runs every step op by op. This times the same
short run both ways, in fresh processes, so the crossover is measured, not guessed.

    python experiments/bench_eager.py --store demo_out/store.h5 --steps 2 30
    python experiments/bench_eager.py --steps 2 30          # generates a small corpus first
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run(store, out, steps, eager, width, batch) -> float:
    cmd = [sys.executable, "-m", "mdsim.cli", "train", str(store), "--out", str(out),
           "--dims", "genre,mood,instrument,era,tempo,key", "--embedding-size", "48", "--width", str(width),
           "--epochs", "1", "--steps-per-epoch", str(steps), "--batch-size", str(batch),
           "--learning-rate", "1e-3", "--validation-fraction", "0", "--quiet"] + (["--eager"] if eager else [])
    t = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--store", type=Path, help="features store (default: generate 24 synthetic tracks)")
    p.add_argument("--steps", type=int, nargs="+", default=[2, 30])
    p.add_argument("--width", type=float, default=0.25)
    p.add_argument("--batch-size", type=int, default=32)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = args.store
        if store is None:
            from mdsim import synth
            from mdsim.cli import main as mdsim

            synth.generate_corpus(tmp / "corpus", 24, seed=0, duration_range=(6.0, 8.0))
            store = tmp / "store.h5"
            assert mdsim(["prep", str(tmp / "corpus" / "manifest.csv"), "--out", str(store), "--quiet"]) == 0
        print(f"| steps | compiled (s) | eager (s) | compiled / eager |\n|---:|---:|---:|---:|")
        for steps in args.steps:
            graph = run(store, tmp / f"g{steps}", steps, False, args.width, args.batch_size)
            eager = run(store, tmp / f"e{steps}", steps, True, args.width, args.batch_size)
            print(f"| {steps} | {graph:.0f} | {eager:.0f} | {graph / eager:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
