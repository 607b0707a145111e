"""Does training disentangle? The 6 x 6 matrix on a synthetic corpus, two backbones.

Generates a labelled synthetic corpus (``mdsim.synth``), preps it, trains
the 6-dimension multi-input model and the mel-only baseline with the same
budget, draws triplets per dimension on the held-out tracks, and scores
"triplets of dimension i in subspace j" for both models, and for the
multi-input model before training. Writes ``matrix.md`` (tables),
``matrix.json`` and ``heatmap.png`` to ``--out``. Every step resumes.

    python experiments/synthetic_disentanglement.py --out runs/synth --n 300 --epochs 30
    python experiments/synthetic_disentanglement.py --out /tmp/s --smoke      # minutes
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIMS = ("genre", "mood", "instrument", "era", "tempo", "key")


def subspace_matrix(model, store, triplet_files, *, model_name, bootstrap=200):
    """``{triplet dim: {subspace dim: score}}`` of one model (track-mode embeddings)."""
    from mdsim.embed import store_embedding_set
    from mdsim.evaluation import evaluate, load_triplets

    emb = store_embedding_set(model, store, progress=False, name=model_name)
    out = {}
    for dim, path in triplet_files.items():
        # the paper's protocol, as the figures in docs/synthetic.md were measured
        result = evaluate(load_triplets(path, min_agreement=0.0), emb, distance="paper", n_bootstrap=bootstrap)
        singles = {tuple(c["dims"]): c["score"] for c in result["combinations"] if len(c["dims"]) == 1}
        out[dim] = {j: singles[(j,)] for j in model.dimensions}
        out[dim]["full"] = result["full"]["score"]
    return out


def markdown(matrix, title) -> str:
    cols = list(DIMS) + ["full"]
    lines = [f"### {title}", "", "| triplets \\ subspace | " + " | ".join(cols) + " |",
             "|---|" + "---:|" * len(cols)]
    for i in DIMS:
        cells = []
        for j in cols:
            v = matrix[i][j]
            cells.append(f"**{v:.3f}**" if j == i else f"{v:.3f}")
        lines.append(f"| {i} | " + " | ".join(cells) + " |")
    diag = np.mean([matrix[i][i] for i in DIMS])
    off = np.mean([matrix[i][j] for i in DIMS for j in DIMS if i != j])
    lines += ["", f"mean diagonal {diag:.3f}, mean off-diagonal {off:.3f}", ""]
    return "\n".join(lines)


def heatmap(matrices: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(matrices), figsize=(4.6 * len(matrices) + 1.5, 4.6), squeeze=False)
    for k, (ax, (name, m)) in enumerate(zip(axes[0], matrices.items())):
        grid = np.array([[m[i][j] for j in DIMS] for i in DIMS])
        im = ax.imshow(grid, vmin=0.3, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(6), DIMS, rotation=45, ha="right")
        ax.set_yticks(range(6), DIMS if k == 0 else [])
        ax.set_xlabel("subspace")
        if k == 0:
            ax.set_ylabel("triplets of dimension")
        ax.set_title(name)
        for i in range(6):
            for j in range(6):
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center",
                        color="white" if grid[i, j] < 0.7 else "black", fontsize=8)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="triplet score")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def initial_network(model, seed: int):
    """The Keras network of a trained :class:`mdsim.api.Model` as its training started.

    `mdsim train` seeds Keras with its ``--seed`` right before building, so building again
    after the same seed draws the run's initial weights; the input normalisation (the
    ``*_standardize`` layers, fitted before the first step) is copied from ``model``.
    """
    import keras

    from mdsim.model import ModelConfig, build_model

    keras.utils.set_random_seed(seed)
    fresh = build_model(ModelConfig.from_dict(model.config.to_dict()), feature_config=model.feature_config)
    for layer in fresh.layers:
        if layer.name.endswith("_standardize"):
            layer.set_weights(model.keras_model.get_layer(layer.name).get_weights())
    return fresh


def add_run_arguments(p, *, epochs: int = 30, triplets: int = 100) -> None:
    """The corpus, budget and model options shared with ``experiments/augmentation.py``."""
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--n", type=int, default=300, help="synthetic tracks (default 300)")
    p.add_argument("--duration", type=float, nargs=2, default=(10.0, 30.0), metavar=("MIN", "MAX"))
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--steps", type=int, default=20, help="batches per epoch")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--embedding-size", type=int, default=96)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--triplets", type=int, default=triplets, help="triplets per dimension")
    p.add_argument("--validation-fraction", type=float, default=0.2)
    p.add_argument("--tempo-axis", choices=("lag", "log"), default="lag", help="mdsim train --tempo-axis")
    p.add_argument("--chroma-padding", choices=("zero", "circular"), default="zero",
                   help="mdsim train --chroma-padding")
    p.add_argument("--summaries", default="", metavar="INPUTS",
                   help="mdsim train --summaries, e.g. cens,tempogram (default none; runs get a _summaries suffix)")
    p.add_argument("--key-profiles", type=int, default=0, metavar="K",
                   help="mdsim train --key-profiles, with --summaries cens (default 0; runs get a _profiles suffix)")
    p.add_argument("--chroma-n-fft", type=int, help="mdsim prep --chroma-n-fft (the store in --out keeps it)")
    p.add_argument("--eager", action="store_true", help="train op by op (mdsim train --eager)")
    p.add_argument("--seed", type=int, default=0)


def model_suffix(args) -> str:
    """Run-folder suffix of the non-default model options (``_log``, ``_circular``, ``_summaries``,
    ``_profiles``)."""
    return ("_log" if args.tempo_axis == "log" else "") + ("_circular" if args.chroma_padding == "circular" else "") \
        + ("_summaries" if args.summaries else "") + ("_profiles" if args.key_profiles else "")


def prepare(args, mdsim) -> tuple[Path, list]:
    """Generate and prep the corpus in ``args.out`` (both resume); ``(store, mdsim train options)``."""
    from mdsim import synth

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "corpus" / "manifest.csv"
    if not manifest.exists():
        synth.generate_corpus(out / "corpus", args.n, seed=args.seed, duration_range=tuple(args.duration))
    store = out / "store.h5"
    chroma = ["--chroma-n-fft", str(args.chroma_n_fft)] if args.chroma_n_fft else []
    assert mdsim(["prep", str(manifest), "--out", str(store), "--quiet", *chroma]) == 0
    common = ["--dims", ",".join(DIMS), "--embedding-size", str(args.embedding_size), "--width", str(args.width),
              "--epochs", str(args.epochs), "--steps-per-epoch", str(args.steps), "--batch-size",
              str(args.batch_size), "--learning-rate", str(args.learning_rate), "--validation-fraction",
              str(args.validation_fraction), "--seed", str(args.seed), "--tempo-axis", args.tempo_axis,
              "--chroma-padding", args.chroma_padding, "--quiet"] + (["--eager"] if args.eager else []) \
        + (["--summaries", args.summaries] if args.summaries else []) \
        + (["--key-profiles", str(args.key_profiles)] if args.key_profiles else [])
    return store, common


def label_efficiency(args, store, pool, held, starts: dict, mdsim, common, *, suffix: str = "") -> dict:
    """The CSN from each start on shares of the labelled tracks; the held-out 6 x 6 matrices.

    ``starts``: ``{name: None}`` trains from scratch, ``{name: MODEL}`` from ``mdsim train
    --init-from MODEL`` (a path or ``"default"``); every start gets the same ``common`` options.
    For each of ``args.fractions`` the first ``fraction`` of ``pool`` in one seeded order
    (``mdsim train --tracks``; at least 8) is trained on, and ``held``'s triplets of every
    dimension are scored in every subspace. Runs resume; a run's matrix is cached beside it.
    """
    import mdsim as api

    triplet_files = draw_triplets(args, store, held, "held", mdsim)
    order = np.random.default_rng(args.seed).permutation(len(pool))
    out = {}
    for fraction in args.fractions:
        n = max(8, int(round(fraction * len(pool))))
        subset = sorted(pool[i] for i in order[:n])
        tracks = args.out / f"tracks_{fraction:g}.txt"
        tracks.write_text("\n".join(subset) + "\n")
        for start, init in starts.items():
            run = args.out / f"csn_{fraction:g}_{start.replace('+', 'p')}{suffix}"
            if (run / "state.json").exists():
                status = mdsim(["train", str(store), "--resume", str(run), "--epochs", str(args.epochs), "--quiet"])
            else:
                status = mdsim(["train", str(store), "--out", str(run), *common, "--tracks", str(tracks),
                                *(["--init-from", str(init)] if init else [])])
            assert status == 0, f"training {run} failed"
            cached = run / "held_matrix.json"
            if cached.exists() and cached.stat().st_mtime > (run / "best.keras").stat().st_mtime:
                matrix = json.loads(cached.read_text())
            else:
                matrix = subspace_matrix(api.load_model(run / "best.keras"), store, triplet_files,
                                         model_name=run.name)
                cached.write_text(json.dumps(matrix, indent=1))
            out[f"{fraction:g}/{start}"] = {"fraction": fraction, "tracks": n, "start": start, "matrix": matrix}
    return out


def efficiency_markdown(results: dict) -> str:
    """One row per (share, start): the own-subspace score of each dimension and their mean."""
    lines = ["| labelled tracks | start | " + " | ".join(DIMS) + " | mean diagonal |",
             "|---|---|" + "---:|" * (len(DIMS) + 1)]
    for r in results.values():
        diag = [r["matrix"][d][d] for d in DIMS]
        lines.append(f"| {r['fraction']:.0%} ({r['tracks']}) | {r['start']} | "
                     + " | ".join(f"{v:.3f}" for v in diag) + f" | {np.mean(diag):.3f} |")
    return "\n".join(lines) + "\n"


def split_triplets(runs, which: str, store, args, mdsim) -> tuple[dict, dict]:
    """The runs' shared split, and triplets per dimension drawn from its ``which`` tracks
    (``"validation"`` or ``"train"``; files in ``args.out``, drawn once)."""
    runs = list(runs)
    split = json.loads((runs[0] / "split.json").read_text())
    for run in runs:
        assert split == json.loads((run / "split.json").read_text()), "runs must share the split"
    return split, draw_triplets(args, store, split[which], which, mdsim)


def draw_triplets(args, store, tracks, which: str, mdsim) -> dict:
    """``{dimension: triplets file}`` drawn by ``mdsim triplets`` among ``tracks`` (their list in
    ``args.out / tracks_<which>.txt``, the files ``triplets_<which>_<dim>.csv``; drawn once)."""
    track_list = args.out / f"tracks_{which}.txt"
    track_list.write_text("\n".join(tracks) + "\n")
    files = {}
    for dim in DIMS:
        path = args.out / f"triplets_{which}_{dim}.csv"
        if not path.exists():
            assert mdsim(["triplets", str(store), "--dimension", dim, "--n", str(args.triplets), "--tracks",
                          str(track_list), "--seed", str(args.seed), "--out", str(path)]) == 0
        files[dim] = path
    return files


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(p)
    p.add_argument("--triplet-tracks", choices=("validation", "train"), default="validation",
                   help="draw the triplets from the held-out tracks (default) or from the training "
                        "tracks (does training learn each dimension at all?)")
    p.add_argument("--backbones", default="multi_input,baseline",
                   help="comma-separated backbones to train (default multi_input,baseline)")
    p.add_argument("--augment", choices=("none", "invariance", "label"), default="none",
                   help="mdsim train --augment; other modes than none train into run_<backbone>_<mode>")
    p.add_argument("--stretch-probability", type=float, metavar="P",
                   help="mdsim train --stretch-probability with --augment (0: pitch-shifts only; runs get a "
                        "_stretchP suffix; default the command's)")
    p.add_argument("--smoke", action="store_true", help="tiny corpus and budget: runs in minutes")
    args = p.parse_args(argv)
    if args.smoke:
        args.n, args.duration, args.epochs, args.steps, args.triplets = 48, (6.0, 8.0), 4, 8, 30

    from mdsim.cli import main as mdsim

    out = args.out
    store, common = prepare(args, mdsim)
    runs = {}
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    suffix = ("" if args.augment == "none" else f"_{args.augment}") + model_suffix(args) + (
        "" if args.stretch_probability is None else f"_stretch{args.stretch_probability:g}")
    for backbone in backbones:
        run = out / f"run_{backbone}{suffix}"
        if (run / "state.json").exists():
            status = mdsim(["train", str(store), "--resume", str(run), "--epochs", str(args.epochs)])
        else:
            status = mdsim(["train", str(store), "--out", str(run), "--backbone", backbone, *common,
                            "--augment", args.augment] + ([] if args.stretch_probability is None else [
                                "--stretch-probability", str(args.stretch_probability)]))
        assert status == 0
        runs[backbone] = run
    triplet_files = split_triplets(runs.values(), args.triplet_tracks, store, args, mdsim)[1]

    import mdsim as api
    from mdsim.api import Model

    matrices = {}
    for backbone, run in runs.items():
        model = api.load_model(run / "best.keras")
        matrices[f"{backbone} (trained)"] = subspace_matrix(model, store, triplet_files, model_name=backbone)
        if backbone == backbones[0]:
            untrained = Model(initial_network(model, args.seed), model.config)
            matrices[f"{backbone} (untrained)"] = subspace_matrix(untrained, store, triplet_files,
                                                                  model_name="untrained")
    (out / "matrix.json").write_text(json.dumps(matrices, indent=1))
    text = [f"## Synthetic disentanglement ({args.n} tracks, {args.epochs} epochs x {args.steps} batches of "
            f"{args.batch_size}, {args.triplets} triplets per dimension on the {args.triplet_tracks} tracks)", ""]
    text += [markdown(m, name) for name, m in matrices.items()]
    if {"multi_input", "baseline"} <= set(runs):
        mi, bl = matrices["multi_input (trained)"], matrices["baseline (trained)"]
        text.append("multi-input minus baseline on the diagonal: " +
                    ", ".join(f"{d} {mi[d][d] - bl[d][d]:+.3f}" for d in DIMS))
    (out / "matrix.md").write_text("\n".join(text) + "\n")
    heatmap(matrices, out / "heatmap.png")
    print("\n".join(text))
    print(f"\nwrote {out / 'matrix.md'}, {out / 'matrix.json'}, {out / 'heatmap.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
