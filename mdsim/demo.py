"""``make demo``: the main job on the recordings bundled in the repository.

Run as ``python -m mdsim.demo --out demo_out``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mdsim.cli import main as mdsim_main

BUNDLED_AUDIO = Path(__file__).resolve().parent.parent / "tests" / "data" / "audio"


def run(out: Path, *, workers: int | None = None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    store = out / "bundled.h5"
    print(f"== mdsim prep: features, tempo and key of the {len(list(BUNDLED_AUDIO.glob('*.ogg')))} "
          f"bundled recordings -> {store}", flush=True)
    argv = ["prep", str(BUNDLED_AUDIO), "--out", str(store)]
    if workers:
        argv += ["--workers", str(workers)]
    status = mdsim_main(argv)
    if status:
        return status
    print(f"\n== mdsim inspect {store}", flush=True)
    return mdsim_main(["inspect", str(store)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m mdsim.demo", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("demo_out"), help="folder for everything the demo writes")
    p.add_argument("--workers", type=int, default=None, help="worker processes for prep")
    args = p.parse_args(argv)
    return run(args.out, workers=args.workers)


if __name__ == "__main__":
    sys.exit(main())
