"""Each custom layer against its paper's equation, by hand, on tiny tensors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_liverseg.layers import (
    BilinearUpsampling,
    BilinearUpSampling2D,
    ClassificationGate,
    ClassificationGuide,
    FullScaleConcat,
    HUWindow,
    ObjectDependentUpsample,
    SqueezeExcite,
    WeightedPooling2D,
)
from keras_liverseg.layers.bilinear_upsampling import interpolation_matrix

RNG = np.random.default_rng(0)


def roundtrip(layer):
    """Rebuild a layer from its config through Keras' serialisation."""
    config = keras.saving.serialize_keras_object(layer)
    return keras.saving.deserialize_keras_object(config)


# --- HUWindow -------------------------------------------------------------------------------


def test_hu_window_clips_and_scales():
    x = np.array([[-1000.0, -200.0, 25.0, 250.0, 3000.0]], dtype="float32")
    y = keras.ops.convert_to_numpy(HUWindow((-200, 250))(x))
    np.testing.assert_allclose(y, [[0.0, 0.0, 0.5, 1.0, 1.0]], atol=1e-6)
    assert roundtrip(HUWindow((-100, 400))).window == (-100.0, 400.0)
    with pytest.raises(ValueError, match="low < high"):
        HUWindow((10, 10))


# --- WeightedPooling2D: p = sum_i w_i p_i ---------------------------------------------------


def test_weighted_pooling_starts_as_average_pooling():
    x = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
    y = keras.ops.convert_to_numpy(WeightedPooling2D(2)(x))
    expected = x.reshape(2, 4, 2, 4, 2, 3).mean(axis=(2, 4))
    np.testing.assert_allclose(y, expected, atol=1e-6)


def test_weighted_pooling_is_a_learned_weighted_sum_per_channel():
    layer = WeightedPooling2D(2)
    x = RNG.normal(size=(1, 4, 4, 2)).astype("float32")
    layer.build(x.shape)
    w = RNG.normal(size=(2, 2, 2, 1)).astype("float32")  # (kh, kw, channels, multiplier)
    layer.set_weights([w])
    y = keras.ops.convert_to_numpy(layer(x))
    for c in range(2):
        for i in range(2):
            for j in range(2):
                window = x[0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2, c]
                assert y[0, i, j, c] == pytest.approx(
                    float((window * w[:, :, c, 0]).sum()), abs=1e-5
                )
    assert len(layer.trainable_weights) == 1  # no bias


def test_weighted_pooling_windows_and_errors():
    x = np.ones((1, 16, 16, 4), dtype="float32")
    assert WeightedPooling2D(8, strides=2, padding="same")(x).shape == (1, 8, 8, 4)
    assert WeightedPooling2D(4)(x).shape == (1, 4, 4, 4)
    for odd in (3, (2, 3), 1):
        with pytest.raises(ValueError, match="even"):
            WeightedPooling2D(odd)
    clone = roundtrip(WeightedPooling2D(4, strides=2, padding="same"))
    assert clone.pool_size == (4, 4) and clone.strides == (2, 2) and clone.padding == "same"


# --- ObjectDependentUpsample: s = x - PReLU(TConv(pool(x))) ---------------------------------


@pytest.mark.parametrize("size", [6, 7])
def test_object_dependent_upsample_equation(size):
    x = RNG.normal(size=(1, size, size, 2)).astype("float32")
    pooled = x[:, : size // 2 * 2, : size // 2 * 2].reshape(1, size // 2, 2, size // 2, 2, 2)
    pooled = pooled.max(axis=(2, 4))
    layer = ObjectDependentUpsample()
    layer.build([x.shape, pooled.shape])
    # zero kernel, bias (1, -2), PReLU slope 0.25: r = (1, -0.5) where the map exists
    layer.transpose.set_weights(
        [np.zeros((3, 3, 2, 2), "float32"), np.array([1.0, -2.0], "float32")]
    )
    layer.prelu.set_weights([np.full((1, 1, 2), 0.25, "float32")])
    s = keras.ops.convert_to_numpy(layer([x, pooled]))
    assert s.shape == x.shape
    covered = size // 2 * 2
    r = np.zeros_like(x)
    r[:, :covered, :covered] = [1.0, -0.5]  # the odd row/column is zero-padded
    np.testing.assert_allclose(s, x - r, atol=1e-6)


# --- FullScaleConcat ------------------------------------------------------------------------


def test_full_scale_concat_rescales_each_input():
    fine = RNG.normal(size=(1, 8, 8, 1)).astype("float32")
    same = RNG.normal(size=(1, 4, 4, 2)).astype("float32")
    coarse = np.full((1, 2, 2, 3), 7.0, "float32")
    layer = FullScaleConcat([1, 0, -1])
    y = keras.ops.convert_to_numpy(layer([fine, same, coarse]))
    assert y.shape == (1, 4, 4, 6)
    np.testing.assert_allclose(y[..., :1], fine.reshape(1, 4, 2, 4, 2, 1).max(axis=(2, 4)))
    np.testing.assert_allclose(y[..., 1:3], same)
    np.testing.assert_allclose(y[..., 3:], 7.0, atol=1e-5)  # bilinear of a constant

    weighted = FullScaleConcat([2], downsampling="weighted")
    y = keras.ops.convert_to_numpy(weighted([fine]))
    np.testing.assert_allclose(y, fine.reshape(1, 2, 4, 2, 4, 1).mean(axis=(2, 4)), atol=1e-6)


def test_full_scale_concat_with_convolutions_and_config():
    layer = FullScaleConcat([1, 0, -2], filters=5, downsampling="weighted", kernel_size=1)
    y = layer(
        [
            np.ones((2, 16, 16, 3), "float32"),
            np.ones((2, 8, 8, 4), "float32"),
            np.ones((2, 2, 2, 6), "float32"),
        ]
    )
    assert y.shape == (2, 8, 8, 15)
    assert np.all(keras.ops.convert_to_numpy(y) >= 0)  # ReLU
    clone = roundtrip(layer)
    assert (clone.scale_steps, clone.filters, clone.downsampling, clone.kernel_size) == (
        [1, 0, -2],
        5,
        "weighted",
        1,
    )
    with pytest.raises(ValueError):
        FullScaleConcat([0], downsampling="average")


def test_full_scale_concat_nested_layers_compute_as_it_does():
    """A bfloat16 FullScaleConcat pools, up-samples, convolves and concatenates in bfloat16
    (its nested layers used to take the global float32 policy)."""
    layer = FullScaleConcat([1, 0, -3], filters=4, dtype="mixed_bfloat16")
    y = layer([np.ones((1, 16, 16, 2), "float32"), np.ones((1, 8, 8, 2), "float32"),
               np.ones((1, 1, 1, 2), "float32")])
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16" and y.shape == (1, 8, 8, 12)
    nested = [layer.concat, *(r for r in layer.resizers if r is not None),
              *(sub for block in layer.convs for sub in block)]
    assert {sub.dtype_policy.name for sub in nested} == {"mixed_bfloat16"}
    assert isinstance(layer.resizers[2], BilinearUpSampling2D)


# --- BilinearUpSampling2D -------------------------------------------------------------------


@pytest.mark.parametrize("size, factor", [(5, 2), (3, 4), (4, 8), (1, 2)])
def test_interpolation_matrix_is_the_half_pixel_rule(size, factor):
    matrix = interpolation_matrix(size, factor)
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0)  # weights of each output sum to 1
    x = RNG.normal(size=size)
    expected = np.interp((np.arange(size * factor) + 0.5) / factor - 0.5, np.arange(size), x)
    np.testing.assert_allclose(matrix @ x, expected, atol=1e-12)  # np.interp clamps too


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_bilinear_upsampling_matches_upsampling2d(factor):
    x = RNG.normal(size=(2, 6, 5, 3)).astype("float32")
    expected = keras.ops.convert_to_numpy(
        keras.layers.UpSampling2D(factor, interpolation="bilinear")(x))
    same = BilinearUpSampling2D(factor)(x)  # float32: the same resize
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(same), expected)
    low = BilinearUpSampling2D(factor, dtype="mixed_bfloat16")(x)
    assert keras.backend.standardize_dtype(low.dtype) == "bfloat16"
    assert low.shape == (2, 6 * factor, 5 * factor, 3)
    low = keras.ops.convert_to_numpy(keras.ops.cast(low, "float32"))
    # two products, each rounded to bfloat16 (8 significant bits): within 2 ** -7 relative,
    # where a wrong interpolation would be off by a sizeable share of the inputs' spread
    np.testing.assert_allclose(low, expected, rtol=2**-7, atol=2**-7 * np.abs(x).max())
    assert np.abs(low - expected).max() > 0  # it did compute in bfloat16
    clone = roundtrip(BilinearUpSampling2D(factor, dtype="mixed_bfloat16", name="up"))
    assert (clone.size, clone.name, clone.dtype_policy.name) == (factor, "up", "mixed_bfloat16")
    with pytest.raises(ValueError, match="positive"):
        BilinearUpSampling2D(0)


# --- ClassificationGuide and its gate -------------------------------------------------------


@pytest.mark.parametrize("kind", ["full", "light"])
def test_classification_guide_is_trainable(kind):
    layer = ClassificationGuide(kind)
    features = tf.constant(RNG.normal(size=(4, 8, 8, 6)).astype("float32"))
    labels = tf.constant([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    with tf.GradientTape() as tape:
        probs = layer(features, training=True)
        loss = keras.losses.binary_crossentropy(labels, probs)
    grads = tape.gradient(loss, layer.trainable_weights)
    assert probs.shape == (4, 2)
    np.testing.assert_allclose(tf.reduce_sum(probs, -1).numpy(), 1.0, atol=1e-6)
    assert all(g is not None and np.any(g.numpy() != 0) for g in grads)
    dense = [w for w in layer.trainable_weights if "kernel" in w.path]
    assert len(dense) == (2 if kind == "full" else 1)
    assert roundtrip(layer).kind == kind


def test_classification_gate_multiplies_by_argmax():
    mask = np.full((2, 2, 2, 1), 0.8, "float32")
    cls = np.array([[0.9, 0.1], [0.2, 0.8]], "float32")
    gated = keras.ops.convert_to_numpy(ClassificationGate()([mask, cls]))
    np.testing.assert_allclose(gated[0], 0.0)
    np.testing.assert_allclose(gated[1], 0.8)

    softmax = np.tile(np.array([0.2, 0.5, 0.3], "float32"), (2, 2, 2, 1))
    gated = keras.ops.convert_to_numpy(ClassificationGate()([softmax, cls]))
    np.testing.assert_allclose(gated[0], np.tile([1.0, 0.0, 0.0], (2, 2, 1)), atol=1e-6)
    np.testing.assert_allclose(gated[1], softmax[1], atol=1e-6)


# --- SqueezeExcite: y = x * sigmoid(W2 relu(W1 mean(x))) ------------------------------------


def test_squeeze_excite_equation():
    x = RNG.normal(size=(1, 4, 4, 8)).astype("float32")
    layer = SqueezeExcite(ratio=4)
    layer.build(x.shape)
    w1, b1, w2, b2 = (
        RNG.normal(size=w.shape).astype("float32")
        for w in (layer.squeeze.kernel, layer.squeeze.bias, layer.excite.kernel, layer.excite.bias)
    )
    layer.squeeze.set_weights([w1, b1])
    layer.excite.set_weights([w2, b2])
    s = x.mean(axis=(1, 2))
    gate = 1 / (1 + np.exp(-(np.maximum(s @ w1 + b1, 0) @ w2 + b2)))
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(layer(x)), x * gate[:, None, None], rtol=1e-5, atol=1e-6
    )


# --- BilinearUpsampling initialiser ---------------------------------------------------------


def test_bilinear_transposed_conv_interpolates():
    layer = keras.layers.Conv2DTranspose(
        1, 4, strides=2, padding="same", use_bias=False, kernel_initializer=BilinearUpsampling()
    )
    ramp = np.arange(8, dtype="float32")[None, :, None, None] * np.ones((1, 8, 8, 1), "float32")
    y = keras.ops.convert_to_numpy(layer(ramp))[0, 2:-2, 2:-2, 0]
    # interior of a linear ramp stays linear, with half the step
    np.testing.assert_allclose(np.diff(y, axis=0), 0.5, atol=1e-5)
