"""mdsim.metric against brute-force oracles: loops over every (anchor, positive, negative).

Runs on the Keras backend of the process (TensorFlow by default);
``tests/test_backends.py`` reruns this file with ``KERAS_BACKEND=jax`` and
``torch`` in a subprocess (the backend is fixed at import time), leaving out
the slow end-to-end ``fit``.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mdsim.errors import InputError
from mdsim.labels import DIMENSIONS, LabelLayout, similarity_matrix
from mdsim.metric import (
    FALLBACKS,
    ConditionalTripletLoss,
    LossStatistic,
    SubspaceTripletMetric,
    conditional_triplet_loss,
    mine_semihard,
    similarity_masks,
    subspace_cosine_distances,
    subspace_metrics,
)

BACKEND = keras.backend.backend()
#: float32 distances and losses against float64 oracles.
ATOL = 1e-5
TRIPLET_MARGIN = 0.1
MINING_MARGIN = 0.1
#: Unequal subspace sizes on purpose (the paper's are equal).
SUBSPACES = [(0, 4), (4, 10), (10, 13), (13, 17), (17, 22), (22, 24)]
VOCABULARIES = {"genre": ["rock", "pop", "jazz", "folk"], "mood": ["sad", "happy", "calm"],
                "instrument": ["guitar", "piano"], "era": ["80s", "90s", "00s"]}


@pytest.fixture
def rng():
    return np.random.default_rng(20240501)


def random_records(rng, n):
    """Labels of ``n`` tracks in all six dimensions, about a fifth of them missing.

    Tempi lie on a 0.5 BPM grid (exact in float32) around octave-related
    values, so octave matches and the 5 BPM boundary both occur.
    """
    records = []
    for _ in range(n):
        rec = {d: [t for t in v if rng.random() < 0.35] for d, v in VOCABULARIES.items()}
        base = rng.choice([60.0, 90.0, 120.0, 140.0])
        tempo = base * 2.0 ** rng.integers(-1, 2) + 0.5 * rng.integers(-12, 13)
        rec["tempo"] = None if rng.random() < 0.2 else float(tempo)
        rec["key"] = None if rng.random() < 0.2 else int(rng.integers(0, 24))
        records.append(rec)
    return records


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


# ----------------------------------------------------------------------------------------
# Oracles: plain loops, float64


def oracle_masks(records, dimensions):
    positive, negative = [], []
    for dim in dimensions:
        sim, labelled = similarity_matrix(dim, [r[dim] for r in records])
        both = labelled[:, None] & labelled[None, :]
        positive.append(sim & both & ~np.eye(len(records), dtype=bool))
        negative.append(~sim & both)
    return np.array(positive), np.array(negative)


def oracle_distances(x, subspaces):
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    d = np.zeros((len(subspaces), n, n))
    for s, (start, stop) in enumerate(subspaces):
        for a in range(n):
            for b in range(n):
                u, v = x[a, start:stop], x[b, start:stop]
                d[s, a, b] = 1.0 - u @ v / (np.linalg.norm(u) * np.linalg.norm(v))
    return d


def oracle_mine(d, positive, negative, *, fallback):
    """``{(s, a, p): (n*, semihard)}`` for chosen triplets, and the set of pairs.

    ``n*`` is None when the pair has negatives but the fallback skips it.
    """
    chosen, pairs = {}, set()
    S, B, _ = d.shape
    for s in range(S):
        for a in range(B):
            negatives = [n for n in range(B) if negative[s, a, n]]
            for p in range(B):
                if not positive[s, a, p] or not negatives:
                    continue
                pairs.add((s, a, p))
                dap = d[s, a, p]
                farther = [n for n in negatives if d[s, a, n] > dap]
                nearest = min(farther, key=lambda n: d[s, a, n]) if farther else None
                farthest = max(negatives, key=lambda n: d[s, a, n])
                semihard = nearest is not None and d[s, a, nearest] < dap + MINING_MARGIN
                pick = {"nearest-farthest": nearest if farther else farthest,
                        "nearest": nearest,
                        "farthest": nearest if semihard else farthest,
                        "none": nearest if semihard else None}[fallback]
                if pick is not None:
                    chosen[(s, a, p)] = (pick, semihard)
    return chosen, pairs


def oracle_loss(d, chosen):
    S = d.shape[0]
    per_dim = np.zeros(S)
    counts = np.zeros(S)
    for (s, a, p), (n, _) in chosen.items():
        per_dim[s] += max(0.0, d[s, a, p] - d[s, a, n] + TRIPLET_MARGIN)
        counts[s] += 1
    per_dim = np.where(counts > 0, per_dim / np.maximum(counts, 1), 0.0)
    total = per_dim[counts > 0].mean() if (counts > 0).any() else 0.0
    return total, per_dim, counts


# ----------------------------------------------------------------------------------------
# Backend-specific helpers (tests only; the library is keras.ops)


def value_and_grad(fn, x):
    """``fn(x)`` (a scalar) and its gradient with respect to ``x``, as NumPy."""
    if BACKEND == "tensorflow":
        import tensorflow as tf
        x = tf.Variable(x)
        with tf.GradientTape() as tape:
            value = fn(x)
        return float(value), tape.gradient(value, x).numpy()
    if BACKEND == "jax":
        import jax
        value, grad = jax.jit(jax.value_and_grad(fn))(jax.numpy.asarray(x))
        return float(value), np.asarray(grad)
    if BACKEND == "torch":
        import torch
        x = torch.tensor(x, requires_grad=True)
        value = fn(x)
        value.backward()
        return value.item(), x.grad.numpy()
    pytest.skip(f"no gradient helper for backend {BACKEND}")


def compiled(fn, *, widths):
    """``fn`` compiled the way training compiles it, batch size left unknown on TF."""
    if BACKEND == "tensorflow":
        import tensorflow as tf
        return tf.function(fn, input_signature=[tf.TensorSpec((None, w), tf.float32) for w in widths])
    if BACKEND == "jax":
        import jax
        return jax.jit(fn)
    pytest.skip(f"backend {BACKEND} trains eagerly here; the eager tests cover it")


def make_batch(rng, n=12, dimensions=DIMENSIONS):
    records = random_records(rng, n)
    layout = LabelLayout(tuple(dimensions), VOCABULARIES)
    subspaces = SUBSPACES[: len(layout.dimensions)]
    x = rng.normal(size=(n, subspaces[-1][1])).astype(np.float32)
    return records, layout, layout.encode(records), x, subspaces


# ----------------------------------------------------------------------------------------
# Distances and masks


def test_distances_match_oracle(rng):
    x = rng.normal(size=(9, 24)).astype(np.float32)
    subspaces = SUBSPACES + [(2, 20)]  # an overlapping one is allowed
    d = to_numpy(subspace_cosine_distances(x, subspaces=subspaces))
    assert d.shape == (len(subspaces), 9, 9)
    np.testing.assert_allclose(d, oracle_distances(x, subspaces), atol=ATOL)


def test_zero_slice_is_at_distance_one(rng):
    x = rng.normal(size=(4, 8)).astype(np.float32)
    x[1, :4] = 0.0
    d = to_numpy(subspace_cosine_distances(x, subspaces=[(0, 4), (4, 8)]))
    np.testing.assert_allclose(d[0, 1], 1.0, atol=ATOL)
    np.testing.assert_allclose(d[0, 0, 0], 0.0, atol=ATOL)


@pytest.mark.parametrize("subspaces, match", [
    ([(0, 4), (4, 4)], "empty"), ([(0, 30)], "past the embedding size 24"), ([], "no subspace"),
    ([(0, "x")], "not a"),
])
def test_bad_subspaces_are_refused(rng, subspaces, match):
    with pytest.raises(InputError, match=match):
        subspace_cosine_distances(np.zeros((2, 24), np.float32), subspaces=subspaces)


def test_masks_match_similarity_matrix(rng):
    records, layout, y, _, _ = make_batch(rng, n=40)
    positive, negative = similarity_masks(y, layout=layout)
    want_positive, want_negative = oracle_masks(records, layout.dimensions)
    np.testing.assert_array_equal(to_numpy(positive), want_positive)
    np.testing.assert_array_equal(to_numpy(negative), want_negative)
    # the random batch exercises every rule: positives, negatives and missing labels
    assert want_positive.any(axis=(1, 2)).all() and want_negative.any(axis=(1, 2)).all()
    assert (~want_positive & ~want_negative).all(axis=2).any(axis=1).all()


def test_sound_masks_match_similarity_matrix(rng):
    """sound (self-supervised): two windows of one track are positives, windows of other tracks
    negatives, a window without a track number neither."""
    records = [{"sound": None if rng.random() < 0.2 else int(rng.integers(0, 6))} for _ in range(30)]
    layout = LabelLayout(("sound",))
    positive, negative = similarity_masks(layout.encode(records), layout=layout)
    want_positive, want_negative = oracle_masks(records, ("sound",))
    np.testing.assert_array_equal(to_numpy(positive), want_positive)
    np.testing.assert_array_equal(to_numpy(negative), want_negative)
    assert want_positive.any() and want_negative.any()
    same = np.array([[r["sound"] is not None and r["sound"] == q["sound"] for q in records] for r in records])
    np.testing.assert_array_equal(want_positive[0], same & ~np.eye(30, dtype=bool))


def test_tempo_octaves_and_parallel_keys():
    tempi = [120.0, 60.0, 240.0, 30.0, 480.0, 125.0, 125.5, 15.0, None, 300.0, 147.0]
    keys = [0, 12, 1, 13, None, 0, 12, 7, 19, 0, 2]
    records = [{"tempo": t, "key": k} for t, k in zip(tempi, keys)]
    layout = LabelLayout(("tempo", "key"))
    positive, negative = (to_numpy(m) for m in similarity_masks(layout.encode(records), layout=layout))
    n = len(records)
    tempo_similar_to_120 = {1, 2, 3, 4, 5}  # octaves 2**-2..2**2, and exactly 5 BPM away
    assert {j for j in range(n) if positive[0, 0, j]} == tempo_similar_to_120
    assert {j for j in range(n) if negative[0, 0, j]} == {6, 7, 9, 10}  # 5.5 BPM off; 2**3
    assert not positive[0, 8].any() and not negative[0, 8].any()  # missing tempo: no part
    assert not positive[0, :, 8].any() and not negative[0, :, 8].any()
    # 300 is 6 BPM from 2 * 147 but 147 is 3 BPM from 300 / 2: similar, both ways
    assert positive[0, 9, 10] and positive[0, 10, 9]
    assert {j for j in range(n) if positive[1, 0, j]} == {1, 5, 6, 9}  # C major ~ C minor
    assert {j for j in range(n) if positive[1, 7, j]} == {8}  # G major ~ G minor
    assert negative[1, 0, 2] and negative[1, 0, 3]  # C# major / minor
    assert not positive[1, 4].any() and not negative[1, :, 4].any()  # missing key


# ----------------------------------------------------------------------------------------
# Mining


def check_mining(d, positive, negative, *, fallback):
    """Masks and chosen negatives equal the oracle's, ties going to the lowest index."""
    mined = mine_semihard(d, positive, negative, mining_margin=MINING_MARGIN, fallback=fallback)
    chosen, pairs = oracle_mine(d.astype(np.float64), positive, negative, fallback=fallback)
    picked = to_numpy(mined.negative)
    assert set(zip(*np.nonzero(to_numpy(mined.pair)))) == pairs
    assert set(zip(*np.nonzero(to_numpy(mined.triplet)))) == set(chosen)
    assert set(zip(*np.nonzero(to_numpy(mined.semihard)))) == {k for k, (_, sh) in chosen.items() if sh}
    for (s, a, p), (n, _) in chosen.items():
        assert picked[s, a, p] == n, (s, a, p)
    return chosen, pairs


@pytest.mark.parametrize("fallback", FALLBACKS)
def test_mining_matches_brute_force(rng, fallback):
    records, layout, y, x, subspaces = make_batch(rng)
    d = to_numpy(subspace_cosine_distances(x, subspaces=subspaces))
    positive, negative = oracle_masks(records, layout.dimensions)
    chosen, pairs = check_mining(d, positive, negative, fallback=fallback)
    # every branch of the rule occurs in this batch, so the comparison means something
    n_semihard = sum(sh for _, sh in chosen.values())
    assert 0 < n_semihard < len(pairs)


@pytest.mark.parametrize("fallback", FALLBACKS)
def test_mining_with_tied_distances(rng, fallback):
    """Distances on a coarse grid: many d(a,n) == d(a,p), which are not 'farther',
    and many equally near or far negatives."""
    records, layout, _, _, _ = make_batch(rng)
    positive, negative = oracle_masks(records, layout.dimensions)
    d = (rng.integers(0, 9, size=positive.shape) * 0.03).astype(np.float32)  # 0.1 is no step
    d = np.minimum(d, np.swapaxes(d, 1, 2))
    chosen, _ = check_mining(d, positive, negative, fallback=fallback)
    assert chosen


def test_semihard_picks_the_hardest_in_the_window():
    # anchor 0, positive 1 at 0.30; negatives at 0.30 (tie: not farther), 0.32, 0.35, 0.50
    d = np.array([[[0.0, 0.30, 0.30, 0.35, 0.32, 0.50]]], np.float32)
    positive = np.zeros((1, 1, 6), bool)
    positive[0, 0, 1] = True
    negative = np.zeros((1, 1, 6), bool)
    negative[0, 0, 2:] = True
    mined = mine_semihard(d, positive, negative, mining_margin=MINING_MARGIN)
    assert to_numpy(mined.negative)[0, 0, 1] == 4
    assert to_numpy(mined.semihard)[0, 0, 1]


@pytest.mark.parametrize("fallback, want", [
    ("nearest-farthest", 3), ("nearest", 3), ("farthest", 4), ("none", None)])
def test_fallbacks_without_semihard_negative(fallback, want):
    # positive 1 at 0.30; negatives at 0.20, 0.45 (nearest farther, outside the window), 0.60
    d = np.array([[[0.0, 0.30, 0.20, 0.45, 0.60]]], np.float32)
    positive = np.zeros((1, 1, 5), bool)
    positive[0, 0, 1] = True
    negative = np.zeros((1, 1, 5), bool)
    negative[0, 0, 2:] = True
    mined = mine_semihard(d, positive, negative, mining_margin=MINING_MARGIN, fallback=fallback)
    assert bool(to_numpy(mined.triplet)[0, 0, 1]) == (want is not None)
    if want is not None:
        assert to_numpy(mined.negative)[0, 0, 1] == want
    assert not to_numpy(mined.semihard).any()


def test_unknown_fallback_is_refused():
    z = np.zeros((1, 2, 2), np.float32)
    with pytest.raises(InputError, match="unknown mining fallback 'hardest'.*nearest-farthest"):
        mine_semihard(z, z > 0, z > 0, fallback="hardest")


# ----------------------------------------------------------------------------------------
# Loss


@pytest.mark.parametrize("fallback", FALLBACKS)
def test_loss_matches_brute_force(rng, fallback):
    records, layout, y, x, subspaces = make_batch(rng)
    result = conditional_triplet_loss(y, x, layout=layout, subspaces=subspaces,
                                      triplet_margin=TRIPLET_MARGIN, mining_margin=MINING_MARGIN,
                                      fallback=fallback)
    d = oracle_distances(x, subspaces)
    positive, negative = oracle_masks(records, layout.dimensions)
    chosen, pairs = oracle_mine(d, positive, negative, fallback=fallback)
    total, per_dim, counts = oracle_loss(d, chosen)
    np.testing.assert_allclose(to_numpy(result.loss), total, atol=ATOL)
    np.testing.assert_allclose(to_numpy(result.dimension_loss), per_dim, atol=ATOL)
    np.testing.assert_array_equal(to_numpy(result.n_triplets), counts)
    n_pairs = np.bincount([s for s, _, _ in pairs], minlength=len(subspaces))
    n_semihard = np.bincount([s for (s, _, _), (_, sh) in chosen.items() if sh],
                             minlength=len(subspaces))
    np.testing.assert_array_equal(to_numpy(result.n_pairs), n_pairs)
    np.testing.assert_array_equal(to_numpy(result.n_semihard), n_semihard)
    np.testing.assert_allclose(to_numpy(result.semihard_fraction),
                               n_semihard / np.maximum(n_pairs, 1), atol=ATOL)
    assert total > 0


def test_dimension_without_triplets_is_left_out_of_the_mean(rng):
    records, layout, _, x, subspaces = make_batch(rng)
    for r in records:
        r["mood"] = []  # nobody labelled in mood
    y = layout.encode(records)
    result = conditional_triplet_loss(y, x, layout=layout, subspaces=subspaces)
    dimension_loss, n_triplets = to_numpy(result.dimension_loss), to_numpy(result.n_triplets)
    mood = layout.dimensions.index("mood")
    assert n_triplets[mood] == 0 and dimension_loss[mood] == 0
    others = np.delete(dimension_loss, mood)
    np.testing.assert_allclose(to_numpy(result.loss), others.mean(), atol=ATOL)


@pytest.mark.parametrize("case", ["no labels", "no negatives", "batch of one"])
def test_batch_without_triplets_gives_zero_loss_and_finite_gradients(rng, case):
    records, layout, _, x, subspaces = make_batch(rng, n=1 if case == "batch of one" else 12)
    if case == "no labels":
        records = [{} for _ in records]
    elif case == "no negatives":
        records = [{"genre": ["rock"], "mood": ["sad"], "instrument": ["piano"], "era": ["80s"],
                    "tempo": 120.0, "key": 3} for _ in records]
    y = layout.encode(records)
    value, grad = value_and_grad(
        lambda e: conditional_triplet_loss(y, e, layout=layout, subspaces=subspaces).loss, x)
    assert value == 0.0
    assert np.isfinite(grad).all() and not grad.any()


@pytest.mark.parametrize("embedding", ["identical", "zero"])
def test_collapsed_embeddings_fall_back_to_farthest(rng, embedding):
    """All distances equal: no negative is farther, every pair takes the farthest one."""
    records, layout, y, x, subspaces = make_batch(rng)
    x = np.zeros_like(x) if embedding == "zero" else np.tile(x[:1], (len(x), 1))
    result = conditional_triplet_loss(y, x, layout=layout, subspaces=subspaces)
    value, grad = value_and_grad(
        lambda e: conditional_triplet_loss(y, e, layout=layout, subspaces=subspaces).loss, x)
    np.testing.assert_allclose(value, TRIPLET_MARGIN, atol=ATOL)
    assert not to_numpy(result.n_semihard).any()
    assert np.isfinite(grad).all()


def test_gradients_are_finite_and_flow_to_every_subspace(rng):
    _, layout, y, x, subspaces = make_batch(rng)
    value, grad = value_and_grad(
        lambda e: conditional_triplet_loss(y, e, layout=layout, subspaces=subspaces).loss, x)
    assert value > 0 and np.isfinite(grad).all()
    for start, stop in subspaces:
        assert np.abs(grad[:, start:stop]).sum() > 0


def test_compiled_loss_matches_eager(rng):
    _, layout, y, x, subspaces = make_batch(rng)
    loss = ConditionalTripletLoss(layout=layout, subspaces=subspaces)
    fn = compiled(lambda labels, embeddings: loss(labels, embeddings), widths=(y.shape[1], x.shape[1]))
    np.testing.assert_allclose(to_numpy(fn(y, x)), to_numpy(loss(y, x)), atol=ATOL)
    np.testing.assert_allclose(to_numpy(fn(y[:7], x[:7])), to_numpy(loss(y[:7], x[:7])), atol=ATOL)


# ----------------------------------------------------------------------------------------
# Keras objects


def test_loss_object_round_trips_through_keras_serialisation(rng):
    _, layout, y, x, subspaces = make_batch(rng)
    loss = ConditionalTripletLoss(layout=layout, subspaces=subspaces, triplet_margin=0.2,
                                  mining_margin=0.05, fallback="nearest")
    again = keras.losses.deserialize(keras.losses.serialize(loss))
    assert isinstance(again, ConditionalTripletLoss)
    assert again.get_config() == loss.get_config()
    assert again.settings.layout == layout
    want = conditional_triplet_loss(y, x, layout=layout, subspaces=subspaces, triplet_margin=0.2,
                                    mining_margin=0.05, fallback="nearest").loss
    np.testing.assert_allclose(to_numpy(again(y, x)), to_numpy(want), atol=ATOL)


def test_loss_object_refuses_bad_settings(rng):
    _, layout, y, x, subspaces = make_batch(rng, n=4)
    with pytest.raises(InputError, match="5 subspaces for 6 label dimensions"):
        ConditionalTripletLoss(layout=layout, subspaces=subspaces[:5])
    with pytest.raises(InputError, match="unknown mining fallback"):
        ConditionalTripletLoss(layout=layout, subspaces=subspaces, fallback="semihard")
    with pytest.raises(InputError, match="layout must be a mdsim.labels.LabelLayout"):
        ConditionalTripletLoss(layout=layout.to_dict(), subspaces=subspaces)
    with pytest.raises(InputError, match="no sample_weight"):
        ConditionalTripletLoss(layout=layout, subspaces=subspaces)(y, x, sample_weight=np.ones(4))


def test_metrics_pool_batches_and_match_the_loss(rng):
    _, layout, y, x, subspaces = make_batch(rng, n=24)
    names = [m.name for m in subspace_metrics(layout=layout, subspaces=subspaces)]
    assert names == [f"{d}_{s}" for d in layout.dimensions for s in ("loss", "semihard", "accuracy")]
    halves = [(y[:12], x[:12]), (y[12:], x[12:])]
    results = [conditional_triplet_loss(yy, xx, layout=layout, subspaces=subspaces) for yy, xx in halves]
    metrics = {}
    for dim in ("mood", "tempo", "key"):  # each mines its own subspace only
        i = layout.dimensions.index(dim)
        for statistic in ("loss", "semihard", "accuracy"):
            metric = metrics[dim, statistic] = SubspaceTripletMetric(
                dimension=dim, statistic=statistic, layout=layout, subspaces=subspaces)
            for yy, xx in halves:
                metric.update_state(yy, xx)
        triplets = sum(to_numpy(r.n_triplets)[i] for r in results)
        loss = sum(to_numpy(r.dimension_loss)[i] * to_numpy(r.n_triplets)[i] for r in results)
        semihard = sum(to_numpy(r.n_semihard)[i] for r in results)
        pairs = sum(to_numpy(r.n_pairs)[i] for r in results)
        assert triplets > 0 and semihard > 0
        np.testing.assert_allclose(to_numpy(metrics[dim, "loss"].result()),
                                   loss / triplets, atol=ATOL)
        np.testing.assert_allclose(to_numpy(metrics[dim, "semihard"].result()),
                                   semihard / pairs, atol=ATOL)
        ordered = sum(to_numpy(r.n_ordered)[i] for r in results)
        np.testing.assert_allclose(to_numpy(metrics[dim, "accuracy"].result()),
                                   ordered / sum(to_numpy(r.n_all)[i] for r in results), atol=ATOL)
    metric = metrics["tempo", "semihard"]
    again = SubspaceTripletMetric.from_config(metric.get_config())
    assert again.get_config() == metric.get_config()
    with pytest.raises(InputError, match="unknown statistic 'fraction'"):
        SubspaceTripletMetric(dimension="tempo", statistic="fraction", layout=layout,
                              subspaces=subspaces)


def _dense_model(width, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((width,))
    return keras.Model(inputs, keras.layers.Dense(width)(inputs))


@pytest.mark.parametrize("eager", [True, False], ids=["eager", "compiled"])
def test_loss_statistics_equal_the_metrics_from_one_mining(rng, monkeypatch, eager):
    """The figures the loss records are the standalone metrics' (over two batches, in the
    backend's compiled step too: JAX's is stateless), and a step mines once, not 1 + 3S times."""
    import mdsim.metric.losses as losses

    _, layout, y, x, subspaces = make_batch(rng, n=24)
    calls = []
    mine = losses.mine_semihard
    monkeypatch.setattr(losses, "mine_semihard", lambda *a, **k: calls.append(1) or mine(*a, **k))
    figures = {}
    for how in ("statistics", "metrics"):
        loss = ConditionalTripletLoss(layout=layout, subspaces=subspaces)
        metrics = loss.statistics() if how == "statistics" else subspace_metrics(layout=layout,
                                                                                 subspaces=subspaces)
        model = _dense_model(x.shape[1])
        model.compile(loss=loss, metrics=metrics, run_eagerly=eager)
        model.evaluate(x[:12], y[:12], batch_size=12, verbose=0)  # builds (Keras traces the loss once)
        calls.clear()
        figures[how] = model.evaluate(x, y, batch_size=12, verbose=0, return_dict=True)
        if eager:  # traced once per compilation otherwise
            assert len(calls) == (2 if how == "statistics" else 2 * (1 + 3 * len(layout.dimensions)))
    assert set(figures["statistics"]) == set(figures["metrics"]) >= {"loss", "genre_loss", "key_semihard",
                                                                     "key_accuracy"}
    assert figures["statistics"]["genre_loss"] > 0
    for name, value in figures["metrics"].items():
        np.testing.assert_allclose(figures["statistics"][name], value, atol=ATOL, err_msg=name)


def test_loss_statistics_round_trip_and_refuse_bad_settings(rng):
    _, layout, _, _, subspaces = make_batch(rng)
    statistics = ConditionalTripletLoss(layout=layout, subspaces=subspaces).statistics()
    assert [m.name for m in statistics] == [f"{d}_{s}" for d in layout.dimensions
                                            for s in ("loss", "semihard", "accuracy")]
    again = keras.metrics.deserialize(keras.metrics.serialize(statistics[3]))
    assert isinstance(again, LossStatistic) and again.get_config() == statistics[3].get_config()
    with pytest.raises(InputError, match="unknown statistic 'fraction'"):
        LossStatistic(dimension="tempo", statistic="fraction", layout=layout)


@pytest.mark.slow
def test_model_trains_with_the_loss_and_reports_metrics(rng):
    _, layout, y, x, subspaces = make_batch(rng, n=16, dimensions=("genre", "tempo"))
    inputs = keras.Input((x.shape[1],))
    model = keras.Model(inputs, keras.layers.Dense(x.shape[1])(inputs))
    model.compile(optimizer=keras.optimizers.Adam(1e-2),
                  loss=ConditionalTripletLoss(layout=layout, subspaces=subspaces),
                  metrics=subspace_metrics(layout=layout, subspaces=subspaces))
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    assert {"loss", "genre_loss", "genre_semihard", "tempo_loss", "tempo_semihard"} <= set(history)
    assert history["loss"][-1] < history["loss"][0]


def test_triplet_accuracy_counts_every_triplet_of_the_batch():
    """The loss's ``<dim>_accuracy``: against a loop over every (anchor, positive, negative) of the
    batch; a model whose positives are nearer scores 1, one whose negatives are nearer 0."""
    from mdsim.metric.losses import triplet_order_counts

    rng = np.random.default_rng(4)
    S, B = 3, 9
    d = rng.random((S, B, B)).astype("float32")
    positive = rng.random((S, B, B)) < 0.3
    negative = ~positive & (rng.random((S, B, B)) < 0.6)
    ordered, total = (keras.ops.convert_to_numpy(v) for v in triplet_order_counts(d, positive, negative))
    for s in range(S):
        want = [(d[s, a, p] < d[s, a, n]) for a in range(B) for p in range(B) for n in range(B)
                if positive[s, a, p] and negative[s, a, n]]
        assert total[s] == len(want) > 0 and ordered[s] == sum(want)
    # through the loss: positives near and negatives far score 1; positives opposite, 0
    near = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], "float32")
    opposite = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], "float32")
    for emb, want in ((near, 1.0), (opposite, 0.0)):
        records = [{"genre": [g]} for g in "aabb"]
        layout = LabelLayout.from_records(("genre",), records)
        r = conditional_triplet_loss(layout.encode(records), emb, layout=layout, subspaces=[(0, 2)])
        assert keras.ops.convert_to_numpy(r.n_all)[0] == 8
        assert keras.ops.convert_to_numpy(r.n_ordered / r.n_all)[0] == pytest.approx(want)
