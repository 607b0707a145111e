"""``mdsim manifold``: the 3-D map of a sound library (train, evaluate, map, trajectory, serve)."""

from __future__ import annotations

from mdsim.cli.options import positive_int


def add_parser(sub) -> None:
    p = sub.add_parser(
        "manifold", help="a 3-D map of a sound library (Humphrey's deep manifold)",
        description="Learn a 3-D embedding of short instrument notes from neighbourhood relations "
                    "(instrument, pitch, both, both within 2 semitones, or nearest neighbours in the "
                    "input), score it against PCA and t-SNE maps, and draw it. The manifold backbone reads "
                    "a constant-Q store (`mdsim prep MANIFEST --out STORE --features cqt --annotate none` "
                    "on a manifest with instrument and pitch columns), the Inception backbones (baseline, "
                    "multi_input) an STFT store of the same manifest (`mdsim prep MANIFEST --out STORE "
                    "--annotate none`) (docs/manifold.md).")
    group = p.add_subparsers(dest="manifold_command", metavar="ACTION")
    group.required = True

    t = group.add_parser("train", help="train a manifold network with the ternary loss",
                         description="Train a manifold network on the training notes of a store: the five-layer "
                                     "manifold backbone on a constant-Q store, or an Inception backbone with a "
                                     "3-D head on an STFT store; a quarter of the notes is held out for evaluate.")
    t.add_argument("store", help="features store: constant-Q (`mdsim prep ... --features cqt`) for the manifold "
                                 "backbone, STFT (`mdsim prep ...`) for baseline and multi_input")
    t.add_argument("--out", required=True, metavar="RUN_DIR", help="folder for the new run")
    from mdsim.training.neighbourhoods import NEIGHBOURHOODS

    t.add_argument("--neighbourhood", choices=tuple(NEIGHBOURHOODS), default="instrument",
                   help="who counts as a neighbour: same instrument (default), same pitch, both, "
                        "same instrument within 2 semitones (instrument+pitch2), or the 5 nearest notes "
                        "in the input space (knn)")
    t.add_argument("--steps", type=positive_int, default=2000, help="optimiser steps (default 2000)")
    t.add_argument("--batch-size", type=positive_int, default=32, help="triples per step (default 32, the paper's)")
    t.add_argument("--learning-rate", type=float, default=1e-3, help="Adam step size (default 1e-3)")
    t.add_argument("--positive-margin", type=float, default=0.0,
                   help="m_p: squared distance a neighbour may keep for free (default 0)")
    t.add_argument("--negative-margin", type=float, default=1.0,
                   help="m_n: distance a non-neighbour must reach (default 1)")
    from mdsim.model.manifold import DEFAULT_WIDTH, MANIFOLD_BACKBONES

    t.add_argument("--backbone", choices=MANIFOLD_BACKBONES, default="manifold",
                   help="manifold (default: Humphrey's five layers, 8 constant-Q frames); baseline (mel) or "
                        "multi_input (mel, CENS, tempogram): the Inception backbones with a 3-D head, one 3 s "
                        "window per note")
    t.add_argument("--width", type=float, default=None,
                   help=f"filter multiplier of the Inception backbones (default {DEFAULT_WIDTH})")
    t.add_argument("--output-dim", type=positive_int, default=3, help="embedding size (default 3)")
    t.add_argument("--window", type=positive_int, default=None,
                   help="frames per input window (default: 8 = 0.4 s at 20 frames/s for manifold; the "
                        "store's 3 s segment, 259 frames, for the Inception backbones)")
    t.add_argument("--held-out", type=float, default=0.25, help="fraction of notes kept out (default 0.25)")
    t.add_argument("--seed", type=int, default=0, help="seed of the split, weights and sampling (default 0)")
    t.set_defaults(run=run_manifold_train)

    e = group.add_parser("evaluate", help="k-NN, precision@k and analogies against PCA and t-SNE",
                         description="Score the run's 3-D map of its held-out notes: k-NN classification of "
                                     "instrument and pitch, precision@k, octave analogies (b - a + c), next "
                                     "to PCA-3D and t-SNE-3D of the notes' mean input frames (constant-Q, or "
                                     "mel, CENS and tempogram concatenated). Writes a Markdown table and a "
                                     "JSON file beside it.")
    e.add_argument("runs", nargs="+", metavar="RUN_DIR", help="one or more manifold runs (one table)")
    e.add_argument("--out", required=True, metavar="REPORT.md", help="the Markdown report (JSON beside it)")
    e.add_argument("--store", help="store of the runs' kind, constant-Q or STFT (default: the one each run was "
                                   "trained on)")
    e.add_argument("-k", "--k", type=positive_int, default=5, help="neighbours of the k-NN classifier (default 5)")
    e.add_argument("--precision-k", type=positive_int, default=10, help="depth of ranked retrieval (default 10)")
    e.set_defaults(run=run_manifold_evaluate)

    m = _run_action(group, "map", help="a static 3-D figure of every note",
                           description="Draw every note of the store in the run's 3-D map (PNG).")
    m.add_argument("--out", required=True, metavar="FIG.png", help="the figure")
    m.add_argument("--colour", choices=("instrument", "pitch"), default="instrument",
                   help="colour the notes by instrument (default) or pitch")
    m.add_argument("--store", help="store of the run's kind (default: the run's)")
    m.set_defaults(run=run_manifold_map)

    j = _run_action(group, "trajectory", help="one note's path through the map, frame by frame",
                           description="Embed every window of an audio file (a sustained note) and draw its "
                                       "path through the map over the library's notes (the paper's ADSR figure). "
                                       "Manifold-backbone runs only: an Inception run's 3 s window holds a whole note.")
    j.add_argument("audio", help="an audio file (any rate; analysed at the run's 16 kHz)")
    j.add_argument("--out", required=True, metavar="FIG.png", help="the figure")
    j.set_defaults(run=run_manifold_trajectory)

    v = _run_action(group, "serve", help="a local page showing the library in 3-D",
                           description="Serve a page with every note of the run's store in its 3-D map: drag to "
                                       "rotate, wheel to zoom, colour by instrument or pitch, click a note to "
                                       "play it. Only files under --audio-root are served.")
    v.add_argument("--audio-root", required=True, action="append",
                   help="folder holding the notes' audio (repeatable); files outside it are never served")
    v.add_argument("--store", help="store of the run's kind (default: the run's)")
    v.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=positive_int, default=8000, help="port (default 8000)")
    v.set_defaults(run=run_manifold_serve)


def _run_action(group, name: str, *, help: str, description: str):
    """An action on one manifold run: its parser, with the RUN_DIR argument."""
    q = group.add_parser(name, help=help, description=description)
    q.add_argument("run_dir", metavar="RUN_DIR", help="a manifold run")
    return q


def run_manifold_train(args) -> int:
    from mdsim.model.manifold import ManifoldConfig
    from mdsim.training.manifold import train_manifold

    run = train_manifold(args.store, args.out, neighbourhood=args.neighbourhood, steps=args.steps,
                         batch_size=args.batch_size, learning_rate=args.learning_rate,
                         positive_margin=args.positive_margin, negative_margin=args.negative_margin,
                         held_out=args.held_out, seed=args.seed,
                         config=ManifoldConfig(backbone=args.backbone, output_dim=args.output_dim,
                                               n_frames=args.window, width=args.width))
    print(f"manifold train: {run.run_dir}: {run.steps} steps in {run.seconds:.0f} s, final loss {run.final_loss:.4f}")
    return 0


def run_manifold_evaluate(args) -> int:
    from mdsim.manifold import evaluate_manifold, report_rows, write_report

    results = [evaluate_manifold(r, args.store, k=args.k, precision_k=args.precision_k) for r in args.runs]
    write_report(results, args.out)
    print(report_rows(results), end="")
    return 0


def run_manifold_map(args) -> int:
    import numpy as np

    from mdsim.evaluation.manifold_figures import plot_map
    from mdsim.manifold import load_manifold

    model = load_manifold(args.run_dir)
    notes = model.notes(args.store)
    labels = np.array(notes.instrument, dtype=object) if args.colour == "instrument" else notes.pitch
    plot_map(model.embed_notes(notes.frames), labels, args.out, colour_by=args.colour,
             title=f"neighbourhood {model.settings['neighbourhood']}: {len(notes)} notes by {args.colour}")
    print(args.out)
    return 0


def run_manifold_trajectory(args) -> int:
    from pathlib import Path

    from mdsim.evaluation.manifold_figures import plot_trajectory
    from mdsim.manifold import load_manifold

    model = load_manifold(args.run_dir)
    path = model.embed_audio(args.audio)  # first: an Inception run refuses before the library is read
    cfg = model.feature_config
    plot_trajectory(path, args.out, context=model.embed_notes(model.notes().frames),
                    frame_rate=cfg.sample_rate / cfg.hop_length,
                    title=f"{Path(args.audio).name} through the {model.settings['neighbourhood']} map")
    print(args.out)
    return 0


def run_manifold_serve(args) -> int:
    from mdsim.manifold import manifold_points
    from mdsim.serve import serve_manifold

    serve_manifold(manifold_points(args.run_dir, args.store), audio_root=args.audio_root, host=args.host,
                   port=args.port)
    return 0
