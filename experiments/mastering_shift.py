"""How a model holds up when the same music is mastered differently: the rendered test corpus
as the default model's recipe renders it, against the same tracks through the renderer's
``--mastering`` chain (band-limiting, compression, stereo width, a noise floor, the peak level).

Both stores hold the same track ids (the same scores, keys, soundfont and seed), so the same
triplets score both: each dimension's own-subspace accuracy and its one-line baseline's
(``experiments/default_model.py``'s ``score_set``), on the plain and on the mastered audio.

    python -m mdsim.recipes.rendered --out mastered/ --palette gm --soundfont TimGM6mb.sf2 \\
        --scores 40 --keys 4 --seconds 20 --seed 1 --mastering --jobs 2
    mdsim prep mastered/manifest.csv --out mastered.h5 --annotate none
    python experiments/mastering_shift.py runs/default/test.h5 mastered.h5 --triplets runs/default/triplets
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("plain", type=Path, help="store of the corpus as the recipe renders it")
    p.add_argument("mastered", type=Path, help="store of the same tracks rendered with --mastering")
    p.add_argument("--triplets", type=Path, required=True,
                   help="folder of the recipe's triplet files (DIMENSION.csv; written there if missing)")
    p.add_argument("--model", type=Path, default=None, help="model file (default: the default model)")
    p.add_argument("--n", type=int, default=1000, help="triplets per dimension (default 1000)")
    p.add_argument("--bootstrap", type=int, default=1000)
    args = p.parse_args(argv)

    import default_model as recipe

    from mdsim.models import DEFAULT_MODEL

    model = args.model or DEFAULT_MODEL
    args.triplets.mkdir(parents=True, exist_ok=True)
    scores = {name: recipe.score_set(store, args.triplets, model, dims=recipe.DIMENSIONS, n=args.n,
                                     bootstrap=args.bootstrap, sound="score")
              for name, store in (("plain", args.plain), ("mastered", args.mastered))}

    def cell(v):
        return f"{v[0]:.3f} [{v[1]:.3f}, {v[2]:.3f}]"

    print("| dimension | triplets | model, plain | model, mastered | baseline | baseline, plain | baseline, mastered |")
    print("|---|---:|---:|---:|---|---:|---:|")
    for dim, plain in scores["plain"].items():
        mastered = scores["mastered"].get(dim)
        if mastered is None:
            continue
        print(f"| {dim} | {plain['triplets']} | {cell(plain['model'])} | {cell(mastered['model'])} | "
              f"{plain['baseline']} | {cell(plain['baseline score'])} | {cell(mastered['baseline score'])} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
