"""``mdsim analyze``: neighbourhood locality and sensitivity to manipulation."""

from __future__ import annotations

from mdsim.cli.options import add_model_option, load_cli_model, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "analyze", help="what an embedding is organised by: neighbourhood locality, sensitivity to manipulation",
        description="Analyses of a trained embedding (docs/augmentation.md): `locality` reads an embeddings "
                    "file and labels; `sensitivity` embeds audio and manipulated versions of it.")
    group = p.add_subparsers(dest="analysis", metavar="ANALYSIS")
    group.required = True
    q = group.add_parser(
        "locality", help="how alike in tempo, key and tags each item's nearest neighbours are, per subspace",
        description="For every track its k nearest neighbours (cosine) in each subspace and the full "
                    "embedding: tempo locality (RMS octave-folded tempo difference, %%), same-key and "
                    "same-tonic precision@k, tag precision@k for genre, mood, instrument and era, each "
                    "against k random neighbours. Prints a table; --out also writes locality.md, "
                    "locality.json and locality.png (a heat map of the lift over random).")
    q.add_argument("embeddings", help="embeddings file from `mdsim embed` (track mode)")
    q.add_argument("--labels", required=True, metavar="STORE_OR_MANIFEST",
                   help="features store or manifest CSV with the tracks' labels")
    q.add_argument("-k", "--k", type=positive_int, default=10, help="neighbours per track (default 10)")
    q.add_argument("--seed", type=int, default=0, help="seed of the random-neighbour baseline (default 0)")
    q.add_argument("--out", metavar="DIR", help="folder for the table, JSON and heat map")
    q.set_defaults(run=run_locality)
    q = group.add_parser(
        "sensitivity", help="distance of each subspace to the original against pitch shift, stretch and EQ",
        description="Embed each track and versions of it pitch-shifted, time-stretched and equalised on "
                    "the audio (librosa, scipy); per subspace the cosine distance to the original against "
                    "the amount (curves), and a subspace x manipulation matrix: the mean distance divided "
                    "by the mean distance between different tracks. Prints the matrix; --out also writes "
                    "sensitivity.md, sensitivity.json and sensitivity.png.")
    q.add_argument("audio", nargs="+", help="audio files (two or more for the normalised matrix)")
    add_model_option(q, "the model whose subspaces are measured")
    q.add_argument("--pitch", type=int, nargs="+", metavar="SEMITONES",
                   help="pitch shifts (default -6 .. 6)")
    q.add_argument("--stretch", type=float, nargs="+", metavar="RATE",
                   help="time-stretch rates, > 1 faster (default 0.7 0.8 .. 1.4)")
    q.add_argument("--eq", type=float, nargs="+", metavar="DB", help="EQ gains in dB (default 0 3 6 9 12)")
    q.add_argument("--out", metavar="DIR", help="folder for the table, JSON and curves")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.set_defaults(run=run_sensitivity)


def _write_analysis(out, name: str, result: dict, text: str, draw) -> None:
    import json
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(text)
    (out / f"{name}.json").write_text(json.dumps(result, indent=1))
    draw(result, out / f"{name}.png")
    print(f"wrote {out / (name + '.md')}, {out / (name + '.json')}, {out / (name + '.png')}")


def run_locality(args) -> int:
    from mdsim.analysis.locality import heatmap, locality, markdown
    from mdsim.evaluation import read_embeddings
    from mdsim.search.build import info_from

    result = locality(read_embeddings(args.embeddings), info_from(args.labels)[0], k=args.k, seed=args.seed)
    text = markdown(result)
    print(text, end="")
    if args.out:
        _write_analysis(args.out, "locality", result, text, heatmap)
    return 0


def run_sensitivity(args) -> int:
    from mdsim.analysis.sensitivity import DEFAULT_AMOUNTS, markdown, plot, sensitivity

    amounts = {k: tuple(v if v is not None else DEFAULT_AMOUNTS[k])
               for k, v in (("pitch", args.pitch), ("stretch", args.stretch), ("eq", args.eq))}
    result = sensitivity(load_cli_model(args.model, "analyze"), args.audio, amounts=amounts, progress=not args.quiet)
    text = markdown(result)
    print(text, end="")
    if args.out:
        _write_analysis(args.out, "sensitivity", result, text, plot)
    return 0
