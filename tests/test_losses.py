"""keras_liverseg.losses against values computed independently in NumPy.

The references below are written from the papers' equations, not from our code: Dice from
UNet# Eq. 4 / ES-UNet++ Eqs. 8 and 11, the weight map from ES-UNet++ Eqs. 9-10 with a
brute-force boundary distance, focal loss from Lin et al. 2017, the Lovasz losses from the
definition of the Lovasz extension (Berman et al. 2018, Eq. 8) with an explicit Jaccard
set function, Smooth-L1 from ES-UNet++ Eq. 16.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from jax_subprocess import jax_env

from keras_liverseg import losses

RNG = np.random.default_rng(7)
LABELS = RNG.integers(0, 3, (2, 6, 6))
LABELS[1] = 0  # an image without tumor and liver on one side only
LABELS[1, :3, :2] = 1
SOFTMAX = RNG.dirichlet([2.0, 2.0, 2.0], (2, 6, 6)).astype("float32")
SIGMOID = RNG.uniform(0.05, 0.95, (2, 6, 6, 1)).astype("float32")


def value(loss, y_true, y_pred, **kwargs) -> float:
    return float(keras.ops.convert_to_numpy(loss(y_true, y_pred, **kwargs)))


# ---------------------------------------------------------------- NumPy references


def np_targets(labels, channels, foreground=(1, 2)):
    if channels == 1:
        return np.isin(labels, foreground).astype(np.float64)[..., None]
    return np.eye(channels)[np.minimum(labels, channels - 1)]


def np_dice_loss(y, p, weight=None, smooth=1.0, per_image=True, background=False):
    w = np.ones(y.shape[:-1]) if weight is None else weight
    w = w[..., None]
    axes = (1, 2) if per_image else (0, 1, 2)
    scores = (2 * (w * y * p).sum(axes) + smooth) / ((w * y).sum(axes) + (w * p).sum(axes) + smooth)
    scores = scores.reshape(-1, y.shape[-1])
    if y.shape[-1] > 1 and not background:
        scores = scores[:, 1:]
    return float(np.mean(1 - scores.mean(-1)))


def np_focal(y, p, alpha=0.25, gamma=2.0):
    if y.shape[-1] == 1:  # Lin et al. Eq. 5, alpha on the positives
        pos = -alpha * y * (1 - p) ** gamma * np.log(p)
        neg = -(1 - alpha) * (1 - y) * p**gamma * np.log(1 - p)
        return float(np.mean(pos + neg))
    return float(np.mean(np.sum(-alpha * y * (1 - p) ** gamma * np.log(p), axis=-1)))


def np_crossentropy(y, p):
    if y.shape[-1] == 1:
        return float(np.mean(-(y * np.log(p) + (1 - y) * np.log(1 - p))))
    return float(np.mean(np.sum(-y * np.log(p), axis=-1)))


def jaccard_set_loss(mistakes: set, gt: set) -> float:
    """Berman et al. Eq. 5: Delta_J(M) = |M| / |gt U M| (0 for the empty set)."""
    union = gt | mistakes
    return len(mistakes) / len(union) if union else 0.0


def np_lovasz_extension(errors, gt) -> float:
    """Berman et al. Eq. 8 from the definition: sum_i e_(i) (Delta(top i) - Delta(top i-1))."""
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    positives = {i for i, g in enumerate(gt) if g}
    total, previous, chosen = 0.0, 0.0, set()
    for i in order:
        chosen.add(i)
        current = jaccard_set_loss(chosen, positives)
        total += errors[i] * (current - previous)
        previous = current
    return total


def np_lovasz_hinge(y, p, per_image=True):
    logits = np.log(p) - np.log(1 - p)
    errors = np.maximum(1 - logits * (2 * y - 1), 0)
    if not per_image:
        return np_lovasz_extension(errors.ravel(), y.ravel())
    return float(
        np.mean([np_lovasz_extension(e.ravel(), t.ravel()) for e, t in zip(errors, y, strict=True)])
    )


def np_lovasz_softmax(y, p, per_image=True, only_present=True):
    def one(yy, pp):
        yy, pp = yy.reshape(-1, yy.shape[-1]), pp.reshape(-1, pp.shape[-1])
        values = [
            np_lovasz_extension(np.abs(yy[:, c] - pp[:, c]), yy[:, c])
            for c in range(yy.shape[-1])
            if yy[:, c].any() or not only_present
        ]
        return np.mean(values)

    if not per_image:
        return float(one(y, p))
    return float(np.mean([one(yy, pp) for yy, pp in zip(y, p, strict=True)]))


def np_boundary_weight_map(label, w=0.05, sigma=20.0, squared=False):
    """ES-UNet++ Eqs. 9-10 with D by brute force over the boundary pixels."""
    roi = label >= 1
    h, width = roi.shape
    boundary = []
    for r in range(h):
        for c in range(width):
            if not roi[r, c]:
                continue
            neighbours = [(r - 1, c), (r + 1, c), (r, c - 1), (r, c + 1)]
            if any(0 <= a < h and 0 <= b < width and not roi[a, b] for a, b in neighbours):
                boundary.append((r, c))
    d = np.array(
        [[min(np.hypot(r - a, c - b) for a, b in boundary) for c in range(width)] for r in range(h)]
    )
    a = (w * roi + 1) * np.exp(-(d**2 if squared else d) / (2 * sigma**2))
    return (a - a.min()) / (a.max() - a.min())


# ---------------------------------------------------------------- values


@pytest.mark.parametrize("pred", ["sigmoid", "softmax"])
@pytest.mark.parametrize("per_image", [True, False])
def test_soft_dice_matches_numpy(pred, per_image):
    p = SIGMOID if pred == "sigmoid" else SOFTMAX
    y = np_targets(LABELS, p.shape[-1])
    expected = np_dice_loss(y, p.astype(np.float64), per_image=per_image)
    got = value(losses.SoftDiceLoss(per_image=per_image), LABELS, p)
    assert got == pytest.approx(expected, rel=1e-5)


def test_soft_dice_by_hand_and_options():
    # y = [1, 0, 1, 0], p = [.9, .1, .8, .3]: (2 * 1.7 + 1) / (2 + 2.1 + 1) = 4.4 / 5.1
    p = np.array([0.9, 0.1, 0.8, 0.3], np.float32).reshape(1, 2, 2, 1)
    labels = np.array([[[1, 0], [2, 0]]])
    assert value(losses.SoftDiceLoss(), labels, p) == pytest.approx(1 - 4.4 / 5.1, rel=1e-6)
    y = np_targets(LABELS, 3)
    with_bg = np_dice_loss(y, SOFTMAX.astype(np.float64), background=True, smooth=0.5)
    got = value(losses.SoftDiceLoss(include_background=True, smooth=0.5), LABELS, SOFTMAX)
    assert got == pytest.approx(with_bg, rel=1e-5)


def test_label_shapes_one_hot_and_foreground_labels_agree():
    dice = losses.SoftDiceLoss()
    base = value(dice, LABELS, SOFTMAX)
    assert value(dice, LABELS[..., None], SOFTMAX) == pytest.approx(base, rel=1e-6)
    assert value(dice, np.eye(3)[LABELS], SOFTMAX) == pytest.approx(base, rel=1e-6)
    # a (background, liver) softmax: tumor counts as liver
    two = np.stack([SOFTMAX[..., 0], 1 - SOFTMAX[..., 0]], -1)
    assert value(dice, LABELS, two) == pytest.approx(value(dice, LABELS >= 1, two), rel=1e-6)
    # one sigmoid channel with a tumor-only target
    tumor = losses.SoftDiceLoss(foreground_labels=(2,))
    assert value(tumor, LABELS, SIGMOID) == pytest.approx(
        value(losses.SoftDiceLoss(), LABELS == 2, SIGMOID), rel=1e-6
    )


def test_boundary_weight_map_matches_equations():
    label = np.zeros((14, 12), np.uint8)
    label[3:11, 2:9] = 1
    label[5:8, 4:6] = 2
    label[10, 9] = 1  # a notch: diagonal neighbour only
    for squared in (False, True):
        expected = np_boundary_weight_map(label, sigma=2.0, squared=squared)
        got = losses.boundary_weight_map(label, sigma=2.0, squared_distance=squared)
        np.testing.assert_allclose(got, expected, atol=1e-6)
    edge = np.zeros((10, 9), np.uint8)
    edge[:6, 3:] = 2  # touching the image edge, which is no liver boundary
    np.testing.assert_allclose(
        losses.boundary_weight_map(edge, sigma=3.0),
        np_boundary_weight_map(edge, sigma=3.0),
        atol=1e-6,
    )
    paper = losses.boundary_weight_map(label[..., None])  # w = 0.05, sigma = 20
    np.testing.assert_allclose(paper, np_boundary_weight_map(label), atol=1e-6)
    assert paper.min() == 0 and paper.max() == 1 and paper.dtype == np.float32
    assert (losses.boundary_weight_map(np.zeros((5, 5))) == 1).all()  # no boundary
    batch = losses.with_weight_map(np.stack([label, np.zeros_like(label)]))
    assert batch.shape == (2, 14, 12, 2)
    np.testing.assert_array_equal(batch[0, ..., 0], label)
    np.testing.assert_allclose(batch[0, ..., 1], paper)


@pytest.mark.parametrize("pred", ["sigmoid", "softmax"])
def test_weighted_dice_matches_eq_11(pred):
    p = SIGMOID if pred == "sigmoid" else SOFTMAX
    weights = RNG.uniform(0, 1, LABELS.shape)
    y = np_targets(LABELS, p.shape[-1])
    expected = np_dice_loss(y, p.astype(np.float64), weight=weights)
    target = losses.with_weight_map(LABELS, weights)
    assert value(losses.WeightedDiceLoss(), target, p) == pytest.approx(expected, rel=1e-5)
    ones = losses.with_weight_map(LABELS, np.ones(LABELS.shape))
    assert value(losses.WeightedDiceLoss(), ones, p) == pytest.approx(
        value(losses.SoftDiceLoss(), LABELS, p), rel=1e-6
    )
    with pytest.raises(ValueError, match="with_weight_map"):
        losses.WeightedDiceLoss()(LABELS, p)


@pytest.mark.parametrize("pred", ["sigmoid", "softmax"])
def test_focal_matches_lin_et_al(pred):
    p = SIGMOID if pred == "sigmoid" else SOFTMAX
    y = np_targets(LABELS, p.shape[-1])
    expected = np_focal(y, p.astype(np.float64))
    assert value(losses.FocalLoss(), LABELS, p) == pytest.approx(expected, rel=1e-5)
    gamma0 = np_focal(y, p.astype(np.float64), alpha=0.5, gamma=0.0)
    assert value(losses.FocalLoss(alpha=0.5, gamma=0.0), LABELS, p) == pytest.approx(
        gamma0, rel=1e-5
    )


def test_lovasz_hinge_by_hand():
    # scores s = [2, -1, 0.5], y = [1, 1, 0]: errors [-1, 2, 1.5] -> sorted [2, 1.5, -1],
    # Jaccard gradient [1/2, 1/6, 1/3] -> 2/2 + 1.5/6 = 1.25
    p = (1 / (1 + np.exp(-np.array([2.0, -1.0, 0.5])))).astype(np.float32).reshape(1, 1, 3, 1)
    got = value(losses.LovaszHingeLoss(), np.array([[[1, 2, 0]]]), p)
    assert got == pytest.approx(1.25, abs=1e-5)


@pytest.mark.parametrize("per_image", [True, False])
def test_lovasz_hinge_matches_definition(per_image):
    y = np_targets(LABELS, 1)
    expected = np_lovasz_hinge(y, SIGMOID.astype(np.float64), per_image)
    got = value(losses.LovaszHingeLoss(per_image=per_image), LABELS, SIGMOID)
    assert got == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="LovaszSoftmaxLoss"):
        losses.LovaszHingeLoss()(LABELS, SOFTMAX)


@pytest.mark.parametrize("per_image", [True, False])
@pytest.mark.parametrize("only_present", [True, False])
def test_lovasz_softmax_matches_definition(per_image, only_present):
    y = np_targets(LABELS, 3)
    expected = np_lovasz_softmax(y, SOFTMAX.astype(np.float64), per_image, only_present)
    loss = losses.LovaszSoftmaxLoss(per_image=per_image, only_present=only_present)
    assert value(loss, LABELS, SOFTMAX) == pytest.approx(expected, rel=1e-5)


def test_lovasz_softmax_of_hard_predictions_is_the_jaccard_loss():
    pred = RNG.integers(0, 3, LABELS.shape)
    expected = []
    for c in range(3):
        inter = ((pred == c) & (LABELS == c)).sum()
        union = ((pred == c) | (LABELS == c)).sum()
        expected.append(1 - inter / union)
    got = value(losses.LovaszSoftmaxLoss(per_image=False), LABELS, np.eye(3)[pred])
    assert got == pytest.approx(np.mean(expected), rel=1e-6)


@pytest.mark.parametrize("pred", ["sigmoid", "softmax"])
def test_mixed_and_seg_losses_are_their_terms(pred):
    p = SIGMOID if pred == "sigmoid" else SOFTMAX
    p64 = p.astype(np.float64)
    y = np_targets(LABELS, p.shape[-1])
    lovasz = np_lovasz_hinge(y, p64) if pred == "sigmoid" else np_lovasz_softmax(y, p64)
    mixed = 0.5 * np_focal(y, p64) + np_dice_loss(y, p64) + 0.5 * lovasz
    assert value(losses.MixedLoss(), LABELS, p) == pytest.approx(mixed, rel=1e-5)
    seg = np_dice_loss(y, p64) + np_crossentropy(y, p64)
    assert value(losses.SegLoss(), LABELS, p) == pytest.approx(seg, rel=1e-5)
    assert value(losses.CrossEntropyLoss(), LABELS, p) == pytest.approx(
        np_crossentropy(y, p64), rel=1e-5
    )


def test_regression_losses():
    x = RNG.normal(0, 2, (2, 3, 3, 4)).astype(np.float32)
    t = RNG.normal(0, 2, (2, 3, 3, 4)).astype(np.float32)
    d = np.abs(x.astype(np.float64) - t)
    for beta in (1.0, 0.5):  # ES-UNet++ Eq. 16
        expected = np.where(d < beta, 0.5 * d**2, beta * (d - 0.5 * beta)).mean()
        assert value(losses.SmoothL1Loss(beta), t, x) == pytest.approx(expected, rel=1e-5)
    for p in (SIGMOID, SOFTMAX):
        expected = np.mean((p - np_targets(LABELS, p.shape[-1])) ** 2)
        assert value(losses.SoftmaxMSELoss(), LABELS, p) == pytest.approx(expected, rel=1e-5)


def test_sample_weight_is_per_sample():
    dice = losses.SoftDiceLoss()
    per = [value(dice, LABELS[i : i + 1], SOFTMAX[i : i + 1]) for i in range(2)]
    weighted = value(dice, LABELS, SOFTMAX, sample_weight=np.array([1.0, 0.0]))
    assert weighted == pytest.approx(per[0] / 2, rel=1e-6)


# ---------------------------------------------------------------- properties

ALL_LOSSES = {
    "dice": losses.SoftDiceLoss,
    "focal": losses.FocalLoss,
    "lovasz_softmax": losses.LovaszSoftmaxLoss,
    "crossentropy": losses.CrossEntropyLoss,
    "mixed": losses.MixedLoss,
    "seg": losses.SegLoss,
    "mse": losses.SoftmaxMSELoss,
}


def _cases():
    """(name, loss, y_true, probabilities of a perfect prediction, noisy prediction)."""
    for pred in ("sigmoid", "softmax"):
        channels = 1 if pred == "sigmoid" else 3
        perfect = np_targets(LABELS, channels).astype(np.float32)
        noisy = SIGMOID if pred == "sigmoid" else SOFTMAX
        for name, cls in ALL_LOSSES.items():
            yield f"{name}-{pred}", cls(), LABELS, perfect, noisy
        weights = losses.with_weight_map(LABELS, RNG.uniform(0, 1, LABELS.shape))
        yield f"weighted_dice-{pred}", losses.WeightedDiceLoss(), weights, perfect, noisy
    perfect1 = np_targets(LABELS, 1).astype(np.float32)
    yield "lovasz_hinge-sigmoid", losses.LovaszHingeLoss(), LABELS, perfect1, SIGMOID


CASES = list(_cases())
IDS = [case[0] for case in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_perfect_prediction_gives_zero(case):
    _, loss, y_true, perfect, _ = case
    assert abs(value(loss, y_true, perfect)) < 1e-5


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_gradient_is_finite_even_at_hard_probabilities(case):
    _, loss, y_true, perfect, noisy = case
    wrong = 1.0 - perfect if perfect.shape[-1] == 1 else np.roll(perfect, 1, axis=-1)
    for probs in (noisy, wrong, perfect):
        var = tf.Variable(probs)
        with tf.GradientTape() as tape:
            out = loss(y_true, var)
        grad = tape.gradient(out, var).numpy()
        assert np.isfinite(out.numpy()) and np.isfinite(grad).all()
    var = tf.Variable(noisy)
    with tf.GradientTape() as tape:
        out = loss(y_true, var)
    assert np.abs(tape.gradient(out, var).numpy()).sum() > 0


@pytest.mark.parametrize("case", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_mixed_precision_predictions(case, dtype):
    _, loss, y_true, perfect, noisy = case
    for probs in (noisy, perfect):
        low = tf.cast(tf.constant(probs), dtype)
        got = value(loss, y_true, low)
        assert np.isfinite(got)
        reference = value(loss, y_true, tf.cast(low, "float32").numpy())
        assert got == pytest.approx(reference, rel=1e-5, abs=1e-6)


@pytest.mark.parametrize("channels", [1, 3])
def test_traced_with_unknown_shapes_and_xla(channels):
    p = SIGMOID if channels == 1 else SOFTMAX
    for loss, y_true in (
        (losses.MixedLoss(), LABELS[..., None]),
        (losses.WeightedDiceLoss(), losses.with_weight_map(LABELS)),
    ):
        y_true = y_true.astype(np.float32)
        signature = [
            tf.TensorSpec([None] * 4, tf.float32),
            tf.TensorSpec([None, None, None, channels], tf.float32),
        ]
        traced = tf.function(loss.__call__, input_signature=signature)
        xla = tf.function(loss.__call__, jit_compile=True)
        expected = value(loss, y_true, p)
        assert float(traced(y_true, p)) == pytest.approx(expected, rel=1e-6)
        assert float(xla(y_true, p)) == pytest.approx(expected, rel=1e-5)


CONFIGURED = [
    losses.SoftDiceLoss(smooth=0.5, include_background=True, per_image=False, name="d"),
    losses.WeightedDiceLoss(smooth=0.0, foreground_labels=(2,)),
    losses.FocalLoss(alpha=None, gamma=1.5, foreground_labels=[2]),
    losses.LovaszHingeLoss(per_image=False, foreground_labels=(1,)),
    losses.LovaszSoftmaxLoss(per_image=False, only_present=False),
    losses.CrossEntropyLoss(foreground_labels=(2,)),
    losses.MixedLoss(focal_weight=1.0, lovasz_weight=0.0, alpha=0.5, gamma=1.0, per_image=False),
    losses.SegLoss(dice_weight=0.3, ce_weight=0.7, smooth=2.0),
    losses.SmoothL1Loss(beta=0.5, reduction="sum"),
    losses.SoftmaxMSELoss(foreground_labels=(1,)),
]


@pytest.mark.parametrize("loss", CONFIGURED, ids=lambda loss: type(loss).__name__)
def test_config_round_trip(loss):
    name = keras.saving.get_registered_name(type(loss))
    assert name == f"keras_liverseg>{type(loss).__name__}"
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert type(restored) is type(loss)
    assert restored.get_config() == loss.get_config()
    if isinstance(loss, losses.SmoothL1Loss):
        args = (RNG.normal(size=(2, 3, 4)), RNG.normal(size=(2, 3, 4)))
    elif isinstance(loss, losses.WeightedDiceLoss):
        args = (losses.with_weight_map(LABELS), SIGMOID)
    elif isinstance(loss, losses.LovaszHingeLoss | losses.CrossEntropyLoss):
        args = (LABELS, SIGMOID)
    else:
        args = (LABELS, SOFTMAX)
    assert value(restored, *args) == pytest.approx(value(loss, *args), rel=1e-6)


# ---------------------------------------------------------------- deep supervision


def _multi_head_model():
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="enc_1_0")(inputs)
    outputs = {
        "mask": keras.layers.Conv2D(3, 1, activation="softmax", name="mask")(x),
        "ds_0_1": keras.layers.Conv2D(3, 1, activation="softmax", name="ds_0_1")(x),
        "de_1_1": keras.layers.Conv2D(3, 1, activation="softmax", name="de_1_1")(
            keras.layers.MaxPooling2D(2)(x)
        ),
        "cls_mask": keras.layers.Dense(2, activation="softmax", name="cls_mask")(
            keras.layers.GlobalAveragePooling2D()(x)
        ),
        "enc_1_0": x,
    }
    return keras.Model(inputs, outputs)


def test_deep_supervision_losses_weights_and_fit():
    model = _multi_head_model()
    mixed = losses.MixedLoss()
    loss, weights = losses.deep_supervision_losses(model, mixed)
    assert set(loss) == {"mask", "ds_0_1", "de_1_1", "cls_mask"}
    assert weights == {"mask": 1 / 3, "ds_0_1": 1 / 3, "de_1_1": 1 / 3, "cls_mask": 1.0}
    assert isinstance(loss["cls_mask"], keras.losses.CategoricalCrossentropy)
    assert value(loss["cls_mask"], [[0.0, 1.0]], [[0.2, 0.8]]) == pytest.approx(-np.log(0.8))
    smooth_l1 = losses.SmoothL1Loss()
    loss, weights = losses.deep_supervision_losses(
        model,
        mixed,
        weights={"mask": 2.0},
        cls_loss=None,
        feature_loss=smooth_l1,
        feature_weight=0.5,
    )
    assert weights == {"mask": 2.0, "ds_0_1": 1 / 3, "de_1_1": 1 / 3, "enc_1_0": 0.5}
    with pytest.raises(ValueError, match="no loss"):
        losses.deep_supervision_losses(model, mixed, weights={"cls_mask": 1.0}, cls_loss=None)
    with pytest.raises(ValueError, match="none of"):
        losses.deep_supervision_losses(["mask", "aux"], mixed)

    labels = np.zeros((2, 8, 8), np.int64)
    labels[0, 2:6, 2:6] = 1
    labels[0, 3, 3] = 2
    targets = losses.deep_supervision_targets(model, labels)
    assert set(targets) == {"mask", "ds_0_1", "de_1_1", "cls_mask"}
    assert targets["de_1_1"].shape == (2, 4, 4) and targets["de_1_1"][0, 1, 1] == 2
    np.testing.assert_array_equal(targets["cls_mask"], [[0, 1], [1, 0]])

    loss, weights = losses.deep_supervision_losses(model, mixed)
    model.compile(loss=loss, loss_weights=weights)
    x = RNG.normal(size=(2, 8, 8, 1)).astype(np.float32)
    total = model.evaluate(x, targets, verbose=0, return_dict=True)["loss"]
    pred = model.predict(x, verbose=0)
    cce = keras.losses.CategoricalCrossentropy()
    expected = sum(
        weights[k] * value(mixed, targets[k], pred[k]) for k in ("mask", "ds_0_1", "de_1_1")
    ) + value(cce, targets["cls_mask"], pred["cls_mask"])
    assert total == pytest.approx(expected, rel=1e-4)


@pytest.mark.filterwarnings("ignore:Skipping variable loading")
def test_model_compiled_with_a_loss_saves_and_loads(tmp_path):
    inputs = keras.Input((4, 4, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(3, 1, activation="softmax")(inputs))
    model.compile(loss=losses.MixedLoss(gamma=1.0))
    model.save(tmp_path / "m.keras")
    restored = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(restored.loss, losses.MixedLoss) and restored.loss.gamma == 1.0


# ---------------------------------------------------------------- JAX backend

JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax, keras, numpy as np
    from keras_liverseg import losses
    assert keras.backend.backend() == "jax"
    data = np.load(sys.argv[1])
    out = {}
    for name, pred in (("sigmoid", data["sigmoid"]), ("softmax", data["softmax"])):
        loss = losses.MixedLoss()
        # under jit, as Keras trains on JAX
        val, grad = jax.jit(jax.value_and_grad(lambda p: loss(data["labels"], p)))(pred)
        out[name] = float(val)
        out[name + "_grad_finite"] = bool(np.isfinite(np.asarray(grad)).all())
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_mixed_loss_on_jax_matches_tensorflow(tmp_path):
    pytest.importorskip("jax")
    np.savez(tmp_path / "data.npz", labels=LABELS, sigmoid=SIGMOID, softmax=SOFTMAX)
    env = jax_env()
    run = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "data.npz")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    jax_values = json.loads(run.stdout.strip().splitlines()[-1])
    assert jax_values["sigmoid_grad_finite"] and jax_values["softmax_grad_finite"]
    for name, pred in (("sigmoid", SIGMOID), ("softmax", SOFTMAX)):
        assert jax_values[name] == pytest.approx(value(losses.MixedLoss(), LABELS, pred), rel=1e-5)
