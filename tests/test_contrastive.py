"""NT-Xent against a brute-force float64 loop, the LOEV pairing rule on hand-built batches,
the self-supervised heads, and the transfer of a pretrained backbone."""

import math

import numpy as np
import pytest

from mdsim.errors import InputError
from mdsim.metric.contrastive import LOEVLoss, NTXentLoss, loev_loss, nt_xent
from tests.test_metric import value_and_grad


def brute_nt_xent(z1, z2, t, hard=None):
    """The definition, one view at a time, in float64."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    n = len(z1)
    h = None if hard is None else hard / np.linalg.norm(hard, axis=2, keepdims=True)
    total = 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        terms = [math.exp(z[i] @ z[j] / t) for j in range(2 * n) if j != i]
        if h is not None:
            terms += [math.exp(z[i] @ e / t) for e in h[i % n]]
        total += -(z[i] @ z[pos] / t - math.log(sum(terms)))
    return total / (2 * n)


@pytest.mark.parametrize("t", [0.1, 0.5, 1.0])
def test_nt_xent_matches_the_definition(rng, t):
    z1, z2 = rng.normal(size=(2, 7, 5)).astype(np.float32)
    assert float(nt_xent(z1, z2, temperature=t)) == pytest.approx(brute_nt_xent(z1, z2, t), rel=1e-4)


def test_nt_xent_with_hard_negatives_matches_the_definition(rng):
    z1, z2 = rng.normal(size=(2, 6, 4)).astype(np.float32)
    hard = rng.normal(size=(6, 3, 4)).astype(np.float32)
    got = float(nt_xent(z1, z2, temperature=0.2, hard_negatives=hard))
    assert got == pytest.approx(brute_nt_xent(z1, z2, 0.2, hard), rel=1e-4)
    # a hard negative adds to the denominator: the loss can only grow
    assert got > float(nt_xent(z1, z2, temperature=0.2))


def test_nt_xent_is_low_when_views_agree_and_high_when_they_do_not(rng):
    z = rng.normal(size=(16, 8)).astype(np.float32)
    aligned = float(nt_xent(z, z + 0.01 * rng.normal(size=z.shape).astype(np.float32)))
    shuffled = float(nt_xent(z, z[rng.permutation(16)]))
    assert aligned < 0.5 < math.log(31) - 0.5 < shuffled


def test_nt_xent_gradients_are_finite_even_for_identical_views(rng):
    x = np.repeat(rng.normal(size=(1, 4, 6)), 2, axis=0).astype(np.float32)
    value, grad = value_and_grad(lambda v: nt_xent(v[0], v[1]), x)
    assert np.isfinite(value) and np.isfinite(grad).all() and np.abs(grad).sum() > 0


def test_nt_xent_refuses_a_bad_temperature(rng):
    z = rng.normal(size=(3, 2)).astype(np.float32)
    for bad in (0.0, -1.0, float("inf")):
        with pytest.raises(InputError, match="temperature"):
            nt_xent(z, z, temperature=bad)


def test_keras_losses_wrap_the_functions(rng):
    z1, z2 = rng.normal(size=(2, 5, 4)).astype(np.float32)
    got = float(NTXentLoss(temperature=0.3)(np.zeros((10, 1)), np.concatenate([z1, z2])))
    assert got == pytest.approx(float(nt_xent(z1, z2, temperature=0.3)), rel=1e-5)
    views = rng.normal(size=(4, 5, 6)).astype(np.float32)
    subspaces = [("invariant", 0, 2), ("pitch", 2, 4), ("tempo", 4, 6)]
    loss = LOEVLoss(subspaces=subspaces, variant_weight=0.5)
    stats = loss.statistics()
    total = float(loss(np.zeros((20, 1)), views.reshape(20, 6)))
    want, parts = loev_loss(views, subspaces, variant_weight=0.5)
    assert total == pytest.approx(float(want), rel=1e-5)
    assert [s.name for s in stats] == ["invariant_nt_xent", "pitch_nt_xent", "tempo_nt_xent"]
    assert [float(s.result()) for s in stats] == pytest.approx([float(p) for p in parts], rel=1e-5)


def _hand_built(rng, n=8):
    """Views a, b, b_pitch, b_tempo of n tracks, 2 dimensions per subspace, where every
    subspace holds a random code per track, and the pitch subspace also a code per pitch
    shift, which only b differs from a in (b_pitch has a's shift, as the rule says)."""
    track = rng.normal(size=(n, 2))
    shift_a, shift_b = rng.normal(size=(2, n, 2)) * 3
    views = np.zeros((4, n, 6), np.float32)
    for v, shift in enumerate((shift_a, shift_b, shift_a, shift_b)):  # a, b, b_pitch, b_tempo
        views[v, :, 0:2] = track                 # invariant: the track alone
        views[v, :, 2:4] = track + shift         # pitch: the track and its shift
        views[v, :, 4:6] = track                 # tempo: nothing moves it here
    return views


def test_loev_pairing_rule_on_a_hand_built_batch(rng):
    """The pitch subspace's positive for a is b_pitch (same shift), and b (another shift) is a
    negative of it: swapping the roles of b and b_pitch must cost more."""
    views = _hand_built(rng)
    subspaces = [("invariant", 0, 2), ("pitch", 2, 4), ("tempo", 4, 6)]
    _, parts = loev_loss(views, subspaces, temperature=0.5)
    swapped = views[[0, 2, 1, 3]]  # b <-> b_pitch
    _, parts_swapped = loev_loss(swapped, subspaces, temperature=0.5)
    assert float(parts[1]) < float(parts_swapped[1]) - 1.0
    # the rule by hand: the pitch subspace's NT-Xent of (a, b_pitch) with b and b_tempo as hard negatives
    a, b, bp, bt = (views[v, :, 2:4] for v in range(4))
    want = brute_nt_xent(a, bp, 0.5, np.stack([b, bt], axis=1))
    assert float(parts[1]) == pytest.approx(want, rel=1e-4)
    # invariant subspace: (a, b) alone, no hard negatives
    assert float(parts[0]) == pytest.approx(brute_nt_xent(views[0, :, :2], views[1, :, :2], 0.5), rel=1e-4)
    # tempo subspace: b_tempo is its positive; b and b_pitch, identical to it there, are its hard negatives
    want = brute_nt_xent(views[0, :, 4:], views[3, :, 4:], 0.5, np.stack([views[1, :, 4:], views[2, :, 4:]], 1))
    assert float(parts[2]) == pytest.approx(want, rel=1e-4)


def test_track_contrast_matches_the_definition(rng):
    from mdsim.metric.contrastive import track_contrast

    a, p = rng.normal(size=(2, 5, 4)).astype(np.float32)
    neg = rng.normal(size=(5, 3, 4)).astype(np.float32)
    unit = lambda x: x / np.linalg.norm(x, axis=-1, keepdims=True)  # noqa: E731
    want = 0.0
    for i in range(5):
        pos = unit(a[i]) @ unit(p[i]) / 0.2
        for u in (unit(a[i]), unit(p[i])):           # each of the pair as the anchor
            terms = [math.exp(pos)] + [math.exp(u @ unit(e) / 0.2) for e in neg[i]]
            want += -(pos - math.log(sum(terms)))
    got = float(track_contrast(a, p, neg, temperature=0.2))
    assert got == pytest.approx(want / 10, rel=1e-4)
    # other items take no part: changing item 0 leaves item 1's loss alone
    b = a.copy()
    b[0] += 5.0
    diff = float(track_contrast(b, p, neg, temperature=0.2)) - got
    a1 = float(track_contrast(a[1:], p[1:], neg[1:], temperature=0.2))
    b1 = float(track_contrast(b[1:], p[1:], neg[1:], temperature=0.2))
    assert a1 == pytest.approx(b1) and diff != 0.0


def test_loev_track_negatives_on_the_hand_built_batch(rng):
    views = _hand_built(rng)
    subspaces = [("invariant", 0, 2), ("pitch", 2, 4), ("tempo", 4, 6)]
    _, parts = loev_loss(views, subspaces, temperature=0.5, variant_negatives="track")
    _, swapped = loev_loss(views[[0, 2, 1, 3]], subspaces, temperature=0.5, variant_negatives="track")
    assert float(parts[1]) < float(swapped[1]) - 1.0
    with pytest.raises(InputError, match="variant_negatives"):
        loev_loss(views, subspaces, variant_negatives="some")


def test_loev_loss_checks_its_layout(rng):
    views = rng.normal(size=(3, 4, 4)).astype(np.float32)
    with pytest.raises(InputError, match="invariant"):
        loev_loss(views, [("pitch", 0, 2), ("invariant", 2, 4)])
    with pytest.raises(InputError, match="4 views"):
        loev_loss(views, [("invariant", 0, 2), ("pitch", 2, 3), ("tempo", 3, 4)])
    ok, parts = loev_loss(views, [("invariant", 0, 2), ("pitch", 2, 4)])   # 3 views: a, b, b_pitch
    simclr, _ = loev_loss(views[:2], [("invariant", 0, 4)])
    assert np.isfinite(float(ok)) and len(parts) == 2 and np.isfinite(float(simclr))


def test_views_follow_the_pairing_rule(rng):
    from mdsim.training.pretrain import PretrainConfig, draw_views

    config = PretrainConfig(variants=("pitch", "tempo", "eq"), pitch_octaves=False)
    for _ in range(200):
        a, b, bp, bt, be = draw_views(config, rng)
        assert a.semitones != b.semitones and a.eq != b.eq
        assert max(a.rate, b.rate) / min(a.rate, b.rate) >= config.min_stretch_ratio - 1e-9
        assert (bp.semitones, bp.rate, bp.eq) == (a.semitones, b.rate, b.eq)
        assert (bt.semitones, bt.rate, bt.eq) == (b.semitones, a.rate, b.eq)
        assert (be.semitones, be.rate, be.eq) == (b.semitones, b.rate, a.eq)
        lo, hi = config.pitch_range
        assert lo <= a.semitones <= hi and lo <= b.semitones <= hi
    # with octaves, the rule holds for pitch classes, and registers move independently
    config = config.replace(pitch_octaves=True)
    moved = 0
    for _ in range(200):
        a, b, bp, bt, be = draw_views(config, rng)
        assert a.semitones % 12 != b.semitones % 12 and bp.semitones % 12 == a.semitones % 12
        assert bt.semitones % 12 == be.semitones % 12 == b.semitones % 12
        assert all(-12 <= v.semitones <= 12 for v in (a, b, bp, bt, be))
        moved += bp.semitones != a.semitones
    assert 40 < moved < 160


def test_pretrain_config_validation():
    from mdsim.training.pretrain import PretrainConfig

    assert PretrainConfig(objective="simclr").subspaces == ("invariant",)
    for bad, match in (({"objective": "byol"}, "objective"), ({"variants": ("key",)}, "variant"),
                       ({"variants": ()}, "at least one variant"), ({"batch_size": 1}, "batch_size"),
                       ({"stretch_range": (1.0, 1.05)}, "min_stretch_ratio"), ({"temperature": 0}, "temperature")):
        with pytest.raises(InputError, match=match):
            PretrainConfig(**bad)


def test_model_config_heads():
    from mdsim.model import ModelConfig

    assert ModelConfig(head="loev", dimensions=("invariant", "pitch")).sizes == (192, 192)
    with pytest.raises(InputError, match="unknown subspace"):
        ModelConfig(head="loev", dimensions=("invariant", "genre"))
    with pytest.raises(InputError, match="first subspace"):
        ModelConfig(head="loev++", dimensions=("pitch", "invariant"))
    with pytest.raises(InputError, match="unknown dimension"):
        ModelConfig(dimensions=("invariant",))
    with pytest.raises(InputError, match="unknown head"):
        ModelConfig(head="byol")


@pytest.mark.parametrize("head", ["loev", "loev++"])
def test_self_supervised_heads_build_save_and_feed_a_csn(tmp_path, rng, head):
    """A loev(++) model embeds into named subspaces, reloads, and a CSN built after it takes
    its branches, trunk and representation layers (those of the invariant branch for loev++)."""
    import mdsim
    from mdsim.config import FeatureConfig
    from mdsim.model import ModelConfig, build_model, save_model
    from mdsim.model.saving import initialize_from

    tiny = dict(width=0.125, embedding_size=24)
    config = ModelConfig(head=head, dimensions=("invariant", "pitch", "tempo"), **tiny)
    model = build_model(config, feature_config=FeatureConfig())
    x = {k: rng.normal(size=(2, *s)).astype(np.float32) for k, s in config.input_shapes.items()}
    out = np.asarray(model(x))
    assert out.shape == (2, 24)
    path = save_model(model, tmp_path / "pre.keras")
    loaded = mdsim.load_model(path)
    assert loaded.dimensions == ("invariant", "pitch", "tempo")
    np.testing.assert_allclose(np.asarray(loaded.keras_model(x)), out, rtol=1e-4, atol=1e-5)
    names = [layer.name for layer in model.layers]
    assert ("pitch_trunk_block6_reduce_1x1_conv" in names) == (head == "loev++")

    csn = build_model(ModelConfig(**tiny), feature_config=FeatureConfig())
    before = csn.get_layer("trunk_block6_reduce_1x1_conv").get_weights()[0].copy()
    transfer = initialize_from(csn, path)
    after = csn.get_layer("trunk_block6_reduce_1x1_conv").get_weights()[0]
    np.testing.assert_array_equal(after, model.get_layer("trunk_block6_reduce_1x1_conv").get_weights()[0])
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(csn.get_layer("head_dense").get_weights()[0],
                                  model.get_layer("head_dense").get_weights()[0])
    assert "mel_standardize" in transfer.copied and not transfer.kept
    # a model sharing no layer with the backbone takes nothing
    import keras

    from mdsim.errors import ModelError
    from mdsim.model.head import SubspaceHead

    i = keras.Input((3,), name="x")
    unrelated = keras.Model(i, SubspaceHead(ModelConfig().to_dict())(keras.layers.Dense(384, name="other")(i)))
    with pytest.raises(ModelError, match="no layer matches"):
        initialize_from(unrelated, path)


def test_pretrain_on_a_folder_of_audio_resumes_and_says_what_is_wrong(tmp_path, audio_dir, capsys):
    """A folder is prepped into the run first; the run resumes; bad input gets one clear line."""
    import mdsim
    from mdsim.cli import main as cli

    run = tmp_path / "pre"
    common = ["--width", "0.125", "--embedding-size", "24", "--batch-size", "4", "--steps-per-epoch", "1",
              "--validation-fraction", "0.25", "--prep-workers", "1", "--eager", "--quiet"]
    assert cli(["pretrain", str(audio_dir), "--out", str(run), "--epochs", "1", *common]) == 0
    assert (run / "features.h5").exists() and (run / "pretrain.toml").exists()
    header = (run / "log.csv").read_text().splitlines()[0].split(",")
    assert {"loss", "invariant_nt_xent", "pitch_nt_xent", "tempo_nt_xent", "val_loss"} <= set(header)
    assert cli(["pretrain", str(audio_dir), "--resume", str(run), "--epochs", "2", "--quiet"]) == 0
    assert len((run / "log.csv").read_text().strip().splitlines()) == 3
    model = mdsim.load_model(run / "best.keras")
    assert model.dimensions == ("invariant", "pitch", "tempo") and model.config.head == "loev++"
    capsys.readouterr()
    assert cli(["pretrain", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere" in err[0] and "no such store, folder or manifest" in err[0]
    assert cli(["pretrain", str(run / "features.h5"), "--out", str(run)]) != 0
    assert "--resume" in capsys.readouterr().err
