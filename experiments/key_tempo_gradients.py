"""Gradient norms per branch and per dimension: where each dimension's loss pushes the network.

For a run of ``mdsim train`` (its ``config.toml``, ``labels.json``, ``split.json``), draws
``--batches`` training batches as the run did and takes, for every trained dimension ``d``,
the gradient of ``d``'s triplet loss alone (``conditional_triplet_loss(...).dimension_loss[d]``)
with respect to each part of the network: the ``mel``, ``cens`` and ``tempogram`` branches,
the shared ``trunk``, the ``head`` (the representation layers), and the input ``summaries``
(``mdsim train --summaries``). Reports the mean L2 norm per (dimension, part), for the
run's initial weights (``--initial``: the network rebuilt with the run's seed, as training
started, ``synthetic_disentanglement.initial_network``) and its ``best.keras``. A dimension
whose loss hardly reaches its own input's branch (key and CENS) shows it here: the table says
where the gradient goes, not only that a score stays at chance. Uses TensorFlow's ``GradientTape`` (the suite's backend).

    python experiments/key_tempo_gradients.py runs/kt/multi_input runs/kt/multi_summaries \\
        --store rendered.h5 --batches 8 --initial
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

#: Parts of the network, by the first matching layer-name prefix (checked in this order).
PARTS = (("summaries", ("cens_summary", "tempogram_summary", "summary_")), ("mel", ("mel_",)),
         ("cens", ("cens_",)), ("tempogram", ("tempogram_",)), ("trunk", ("trunk_",)), ("head", ("head_",)))


def part_of(path: str) -> str | None:
    for part, prefixes in PARTS:
        if any(path.startswith(p) for p in prefixes):
            return part
    return None


def batches(run: Path, store_path, n: int, batch_size: int | None = None):
    """``(model config, layout, subspaces, [(inputs, labels), ...])`` of the run's training batches."""
    from mdsim.features.store import FeatureStore
    from mdsim.labels import LabelLayout
    from mdsim.model import subspace_slices
    from mdsim.training.config import read_run_config
    from mdsim.training.data import TrackTable, WindowBatches, load_split

    model_config, train_config = read_run_config(run / "config.toml")
    layout = LabelLayout.from_dict(json.loads((run / "labels.json").read_text()))
    train_ids, _ = load_split(run / "split.json")
    with FeatureStore(store_path) as store:
        table, _ = TrackTable.from_store(store, min_frames=model_config.n_frames)
    keep = set(train_ids)
    table = table.subset([i for i, t in enumerate(table.track_ids) if t in keep])
    data = WindowBatches(store_path, table, layout, inputs=model_config.inputs,
                         batch_size=batch_size or train_config.batch_size, steps=n,
                         segment_frames=model_config.n_frames, seed=train_config.seed)
    data.stored_dtype = False
    s = subspace_slices(model_config)
    subspaces = [(s[d].start, s[d].stop) for d in layout.dimensions]
    return model_config, train_config, layout, subspaces, [data[i] for i in range(n)]


def gradient_norms(keras_model, layout, subspaces, items) -> dict:
    """``{dimension: {part: mean L2 norm}}`` over the batches ``items``."""
    import tensorflow as tf

    from mdsim.metric.losses import conditional_triplet_loss

    variables = [v for v in keras_model.trainable_variables if part_of(v.path) is not None]
    parts = [part_of(v.path) for v in variables]
    sums = {d: {p: [] for p in dict.fromkeys(parts)} for d in layout.dimensions}
    for inputs, labels in items:
        with tf.GradientTape(persistent=True) as tape:
            emb = keras_model({k: tf.convert_to_tensor(v, tf.float32) for k, v in inputs.items()}, training=True)
            result = conditional_triplet_loss(tf.convert_to_tensor(labels, tf.float32), emb, layout=layout,
                                              subspaces=subspaces)
            losses = [result.dimension_loss[i] for i in range(len(layout.dimensions))]  # taped
        for i, d in enumerate(layout.dimensions):
            if float(result.n_triplets[i]) == 0:
                continue
            grads = tape.gradient(losses[i], [v.value for v in variables],
                                  unconnected_gradients="zero")
            squares = {}
            for part, g in zip(parts, grads):
                squares[part] = squares.get(part, 0.0) + float(tf.reduce_sum(g ** 2))
            for part, total in squares.items():
                sums[d][part].append(float(np.sqrt(total)))
        del tape
    return {d: {p: float(np.mean(v)) if v else float("nan") for p, v in parts.items()} for d, parts in sums.items()}


def markdown(norms: dict, title: str) -> str:
    parts = [p for p, _ in PARTS if any(p in v for v in norms.values())]
    lines = [f"#### {title}", "", "| loss of \\ gradient in | " + " | ".join(parts) + " |",
             "|---|" + "---:|" * len(parts)]
    for d, v in norms.items():
        lines.append(f"| {d} | " + " | ".join(f"{v[p]:.3g}" if p in v else "" for p in parts) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="run folders of mdsim train")
    p.add_argument("--store", required=True, help="the runs' features store")
    p.add_argument("--batches", type=int, default=8, help="training batches averaged over (default 8)")
    p.add_argument("--batch-size", type=int, help="default: the run's")
    p.add_argument("--initial", action="store_true", help="also the run's initial weights")
    p.add_argument("--out", type=Path, help="write the tables (markdown) and the numbers (.json) here")
    args = p.parse_args(argv)

    from synthetic_disentanglement import initial_network

    import mdsim

    text, results = [], {}
    for run in args.runs:
        _, train_config, layout, subspaces, items = batches(run, args.store, args.batches, args.batch_size)
        trained = mdsim.load_model(run / "best.keras")
        models = [("best.keras", trained.keras_model)]
        if args.initial:
            models.insert(0, ("initial", initial_network(trained, train_config.seed)))
        for name, model in models:
            norms = gradient_norms(model, layout, subspaces, items)
            results[f"{run.name} ({name})"] = norms
            text.append(markdown(norms, f"{run.name}, {name}: mean gradient norm of each dimension's loss "
                                        f"per part ({args.batches} training batches)"))
            print(text[-1], flush=True)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gradients.md").write_text("\n".join(text))
        (args.out / "gradients.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
