"""Shapes, parameters and FLOPs of a built model, stage by stage.

FLOPs are counted analytically from the layer shapes: the multiply-accumulates
(MACs) of every convolution and dense layer, times 2. Batch normalisation,
pooling, activations and concatenation are memory-bound and left out, as is
usual; they are a few percent of the arithmetic.
"""

from __future__ import annotations

import math

import keras
from keras import layers

from mdsim.model.head import find_head
from mdsim.model.subspaces import subspace_slices


def layer_macs(layer) -> int:
    """Multiply-accumulates of one forward pass of ``layer`` for one example (0 if not conv/dense)."""
    if isinstance(layer, layers.Conv2D):
        kh, kw, c_in_per_group, c_out = layer.kernel.shape
        positions = math.prod(layer.output.shape[1:]) // c_out  # either data format
        return positions * kh * kw * c_in_per_group * c_out
    if isinstance(layer, layers.Dense):
        return math.prod(layer.input.shape[1:]) * layer.units
    return 0


def model_flops(model: keras.Model) -> int:
    """Forward FLOPs per example: 2 x the MACs of every convolution and dense layer."""
    return 2 * sum(layer_macs(layer) for layer in model.layers)


def stage_of(layer_name: str) -> str:
    """The stage a layer belongs to: the first two parts of its name
    (``mel_block1_naive_3x3_conv`` -> ``mel_block1``)."""
    return "_".join(layer_name.split("_")[:2])


def stages(model: keras.Model) -> list[dict]:
    """One row per stage: name, output shape, parameters, MACs.

    Rows follow the data flow: each input's branch in turn, then the trunk
    and the head (Keras orders the layers of parallel branches interleaved).
    """
    rows: dict[str, dict] = {}
    for layer in model.layers:
        row = rows.setdefault(stage_of(layer.name),
                              {"stage": stage_of(layer.name), "params": 0, "macs": 0})
        row["shape"] = tuple(layer.output.shape[1:])  # the last layer's output
        row["params"] += layer.count_params()
        row["macs"] += layer_macs(layer)
    scopes = list(dict.fromkeys(name.split("_")[0] for name in rows))
    head = find_head(model)
    if head is not None:
        inputs = list(head.model_config.inputs)
        scopes = inputs + [s for s in scopes if s not in inputs]
    # sorted() is stable: build order is kept inside each scope.
    return sorted(rows.values(), key=lambda row: scopes.index(row["stage"].split("_")[0]))


def branches(model: keras.Model) -> list[dict]:
    """Parameters and MACs per branch: the stages of :func:`stages` summed by the first
    part of their name (each input's branch, ``trunk``, ``head``, ...), in data-flow order."""
    rows: dict[str, dict] = {}
    for row in stages(model):
        name = row["stage"].split("_")[0]
        total = rows.setdefault(name, {"branch": name, "params": 0, "macs": 0})
        total["params"] += row["params"]
        total["macs"] += row["macs"]
    return list(rows.values())


def summarize(model: keras.Model) -> str:
    """A Markdown table of every stage's output shape, parameters and MFLOPs, then totals,
    parameters and MFLOPs per branch, and the subspace slices. ``model.summary()`` lists
    every single layer."""
    lines = [f"{model.name}", "",
             "| stage | output shape | parameters | MFLOPs |", "|---|---|---:|---:|"]
    for row in stages(model):
        shape = " × ".join(str(d) for d in row["shape"])
        lines.append(f"| {row['stage']} | {shape} | {row['params']:,} | {2 * row['macs'] / 1e6:.1f} |")
    trainable = sum(math.prod(w.shape) for w in model.trainable_weights)
    lines += ["", f"parameters: {model.count_params():,} ({trainable:,} trainable); "
                  f"forward FLOPs per segment: {model_flops(model) / 1e9:.3f} G",
              "per branch: " + "; ".join(f"{b['branch']} {b['params']:,} parameters, "
                                         f"{2 * b['macs'] / 1e6:.1f} MFLOPs" for b in branches(model) if b["params"])]
    head = find_head(model)
    if head is not None:
        parts = [f"{d} [{s.start}:{s.stop}]" for d, s in subspace_slices(head.model_config).items()]
        lines.append("subspaces: " + ", ".join(parts))
    return "\n".join(lines)
