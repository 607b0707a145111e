"""Benchmark: NT-Xent loss + gradient per batch, ours against the straightforward forms.

On the same batches (``N`` items, two views each, ``d``-wide embeddings; the
JAX backend, every form compiled with ``jax.jit`` of ``jax.value_and_grad``):

- ``ours``: :func:`mdsim.metric.contrastive.nt_xent` (one ``2N x 2N`` similarity
  matrix, the diagonal masked, ``logsumexp`` minus the positive picked by index);
- ``blocks``: the form of SimCLR's reference code: four ``N x N`` blocks
  (``aa``, ``ab``, ``ba``, ``bb``), a large number subtracted on the diagonals of
  ``aa`` and ``bb``, and a softmax cross-entropy against one-hot labels;
- ``loop``: one view at a time: its positive, its ``2N - 2`` negatives gathered
  by index, ``-log(exp(pos) / sum)``; timed on ``--loop-views`` views and scaled
  to ``2N`` (marked ``*``), as the loss and gradient are sums over views.

Each form is checked against ``ours`` (value and gradient, on a batch of 16) before it is timed;
times are the best of ``--repeats`` after a warm-up (compilation excluded).

    KERAS_BACKEND=jax .venv/bin/python experiments/bench_ntxent.py            # N = 256, d = 128
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def blocks_form(z1, z2, t):
    from keras import ops

    n = ops.shape(z1)[0]
    a = z1 / ops.norm(z1, axis=1, keepdims=True)
    b = z2 / ops.norm(z2, axis=1, keepdims=True)
    large = 1e9 * ops.eye(n)
    aa = ops.matmul(a, ops.transpose(a)) / t - large
    bb = ops.matmul(b, ops.transpose(b)) / t - large
    ab = ops.matmul(a, ops.transpose(b)) / t
    ba = ops.matmul(b, ops.transpose(a)) / t
    labels = ops.concatenate([ops.eye(n), ops.zeros((n, n))], axis=1)
    la = ops.categorical_crossentropy(labels, ops.concatenate([ab, aa], axis=1), from_logits=True)
    lb = ops.categorical_crossentropy(labels, ops.concatenate([ba, bb], axis=1), from_logits=True)
    return (ops.sum(la) + ops.sum(lb)) / (2 * n)


def loop_form(z1, z2, t, views):
    """The mean over ``views`` (indices into the 2N views) of each view's loss, one at a time."""
    from keras import ops

    z = ops.concatenate([z1, z2], axis=0)
    z = z / ops.norm(z, axis=1, keepdims=True)
    n2 = z.shape[0]
    total = 0.0
    for i in views:
        pos = (i + n2 // 2) % n2
        others = np.array([j for j in range(n2) if j != i])
        s_pos = ops.sum(z[i] * z[pos]) / t
        s_all = ops.matmul(ops.take(z, others, axis=0), z[i]) / t
        total = total + ops.logsumexp(s_all) - s_pos
    return total / len(views)


def best_time(fn, args, repeats: int) -> float:
    import jax

    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=256, help="items per batch (2N views; default 256)")
    p.add_argument("--dim", type=int, default=128, help="embedding width (default 128)")
    p.add_argument("--temperature", type=float, default=0.1)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--loop-views", type=int, default=32, help="views the loop form is timed on (default 32)")
    args = p.parse_args(argv)

    import jax
    import keras

    from mdsim.metric.contrastive import nt_xent

    assert keras.backend.backend() == "jax", "run with KERAS_BACKEND=jax"
    rng = np.random.default_rng(0)
    z1, z2 = (jax.numpy.asarray(rng.normal(size=(args.n, args.dim)).astype(np.float32)) for _ in range(2))
    t = args.temperature
    views = list(range(0, 2 * args.n, max(1, 2 * args.n // args.loop_views)))[: args.loop_views]
    forms = {
        "ours": jax.jit(jax.value_and_grad(lambda a, b: nt_xent(a, b, temperature=t), argnums=(0, 1))),
        "blocks": jax.jit(jax.value_and_grad(lambda a, b: blocks_form(a, b, t), argnums=(0, 1))),
        "loop": jax.jit(jax.value_and_grad(lambda a, b: loop_form(a, b, t, views), argnums=(0, 1))),
    }
    # every form against ours first, on a batch small enough for the loop over all its views
    small = [jax.numpy.asarray(rng.normal(size=(16, args.dim)).astype(np.float32)) for _ in range(2)]
    ref_value, ref_grad = jax.value_and_grad(lambda a, b: nt_xent(a, b, temperature=t), argnums=(0, 1))(*small)
    for name, form in (("blocks", lambda a, b: blocks_form(a, b, t)), ("loop", lambda a, b: loop_form(a, b, t, range(32)))):
        value, grad = jax.value_and_grad(form, argnums=(0, 1))(*small)
        assert abs(float(value) - float(ref_value)) < 1e-4 * max(1.0, abs(float(ref_value))), name
        np.testing.assert_allclose(np.asarray(grad[0]), np.asarray(ref_grad[0]), rtol=1e-3, atol=1e-6)
    rows = []
    for name, fn in forms.items():
        seconds = best_time(fn, (z1, z2), args.repeats if name != "loop" else max(3, args.repeats // 5))
        scale = 2 * args.n / len(views) if name == "loop" else 1.0
        rows.append((name, seconds * scale, scale != 1.0))
    ours = rows[0][1]
    print(f"NT-Xent loss + gradient, N = {args.n} items (2N = {2 * args.n} views), d = {args.dim}, "
          f"JAX {jax.__version__} on {jax.devices()[0].platform}, best of {args.repeats}\n")
    print("| form | ms per batch | time / ours |")
    print("|---|---:|---:|")
    for name, seconds, scaled in rows:
        print(f"| {name} | {seconds * 1e3:.2f}{'*' if scaled else ''} | {seconds / ours:.1f} |")
    if any(s for _, _, s in rows):
        print(f"\n* timed on {len(views)} of the {2 * args.n} views and scaled up")
    return 0


if __name__ == "__main__":
    sys.exit(main())
