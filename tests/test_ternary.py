"""The ternary loss against a brute-force float64 loop, and its gradients."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mdsim.errors import InputError
from mdsim.metric.ternary import TernaryLoss, ternary_loss, ternary_terms
from tests.test_metric import value_and_grad

#: float32 loss against a float64 oracle.
ATOL = 1e-5


def oracle(a, p, n, m_p, m_n):
    """``max(0, Dp**2 - m_p) + max(0, m_n - Dn)**2`` per triple, by a plain loop."""
    out = []
    for i in range(len(a)):
        dp = np.sqrt(sum((float(a[i, j]) - float(p[i, j])) ** 2 for j in range(a.shape[1])))
        dn = np.sqrt(sum((float(a[i, j]) - float(n[i, j])) ** 2 for j in range(a.shape[1])))
        out.append(max(0.0, dp ** 2 - m_p) + max(0.0, m_n - dn) ** 2)
    return np.array(out)


@pytest.mark.parametrize("m_p, m_n", [(0.0, 1.0), (0.1, 0.5), (0.0, 2.0), (1.0, 0.0)])
def test_loss_matches_loop(m_p, m_n):
    rng = np.random.default_rng(7)
    a, p, n = (rng.normal(scale=0.6, size=(32, 3)).astype("float32") for _ in range(3))
    pull, push = ternary_terms(a, p, n, positive_margin=m_p, negative_margin=m_n)
    expected = oracle(a, p, n, m_p, m_n)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(pull + push), expected, atol=ATOL)
    assert float(ternary_loss(a, p, n, positive_margin=m_p, negative_margin=m_n)) == \
        pytest.approx(expected.mean(), abs=ATOL)
    # both terms occur in this batch (where the margins allow), so neither half goes untested
    assert (keras.ops.convert_to_numpy(pull) > 0).any()
    assert (keras.ops.convert_to_numpy(push) > 0).any() == (m_n > 0)


def test_keras_loss_reads_stacked_triples_and_round_trips():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(8, 3, 3)).astype("float32")
    loss = TernaryLoss(positive_margin=0.2, negative_margin=1.5)
    expected = oracle(z[:, 0], z[:, 1], z[:, 2], 0.2, 1.5).mean()
    assert float(loss(np.zeros((8, 1), "float32"), z)) == pytest.approx(expected, abs=ATOL)
    again = TernaryLoss.from_config(loss.get_config())
    assert (again.positive_margin, again.negative_margin) == (0.2, 1.5)


def test_gradients_finite_when_negative_coincides_with_anchor():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(4, 3)).astype("float32")
    x = np.stack([a, a + 0.1, a]).astype("float32")  # every negative sits on its anchor

    value, grad = value_and_grad(lambda t: ternary_loss(t[0], t[1], t[2]), x)
    assert value == pytest.approx(0.01 * 3 + 1.0, abs=ATOL)
    assert np.isfinite(grad).all()
    # the positive is pulled in: gradient on it points towards the anchor
    assert (np.sign(grad[1]) == np.sign(x[1] - x[0])).all()


def test_satisfied_triples_cost_nothing():
    a = np.zeros((2, 3), "float32")
    p = np.zeros((2, 3), "float32")
    n = np.array([[2.0, 0, 0], [0, 0, -1.0]], "float32")
    value, grad = value_and_grad(lambda t: ternary_loss(t[0], t[1], t[2]), np.stack([a, p, n]))
    assert value == 0.0 and not grad.any()


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_margins_are_refused(bad):
    with pytest.raises(InputError, match="negative_margin must be a finite number"):
        TernaryLoss(negative_margin=bad)


def test_training_and_cli_defaults_are_the_loss_defaults():
    import inspect

    from mdsim.cli import build_parser
    from mdsim.metric.ternary import NEGATIVE_MARGIN, POSITIVE_MARGIN
    from mdsim.training.manifold import train_manifold

    params = inspect.signature(train_manifold).parameters
    assert (params["positive_margin"].default, params["negative_margin"].default) == (POSITIVE_MARGIN, NEGATIVE_MARGIN)
    args = build_parser().parse_args(["manifold", "train", "s.h5", "--out", "r"])
    assert (args.positive_margin, args.negative_margin) == (POSITIVE_MARGIN, NEGATIVE_MARGIN)
