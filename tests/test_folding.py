"""BatchNormalization folded into the convolution before it, and convolutions of
concatenations split into one per part: same outputs, no BN and no such concatenation left."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_liverseg import models
from keras_liverseg.inference.loading import at_input_size, load_model
from keras_liverseg.inference.precision import at_precision
from keras_liverseg.models.folding import (
    ConcatConv2D,
    FoldedBatchNorm,
    _BandedProduct,
    _shifted_interpolation,
    concat_conv_pairs,
    fold_batch_norm,
    foldable_pairs,
)

SMALL = {"input_shape": (32, 32, 3), "filters": (4, 8, 16, 32, 64), "num_classes": 3}


def randomise_batch_norms(model: keras.Model, seed: int = 0) -> None:
    """Moving statistics and affine parameters far from their initial values, so that a
    wrong fold cannot pass for a right one."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.set_weights([rng.uniform(0.5, 2.0, w.shape) if i in (0, 3) else
                               rng.normal(0.0, 0.5, w.shape) for i, w in
                               enumerate(layer.get_weights())])


def x_batch(size=(32, 32), channels=3, count=2):
    rng = np.random.default_rng(1)
    return rng.uniform(-300, 400, (count, *size, channels)).astype("float32")


@pytest.mark.parametrize("name, config", [
    ("unet_sharp", {}), ("unet", {}), ("unet_pp", {"deep_supervision": True}),
    ("unet3p", {"deep_supervision": True, "cat_filters": 8}),
])
def test_folded_inference_model_gives_the_same_probabilities(name, config):
    model = models.build(name, **SMALL, **config)
    randomise_batch_norms(model)
    plain = models.inference_model(model, fold=False)
    folded = models.inference_model(model)
    pairs = foldable_pairs(plain)
    assert pairs, f"{name} has no BatchNormalization to fold"
    assert not any(isinstance(layer, keras.layers.BatchNormalization) and layer.name in pairs
                   for layer in folded.layers)
    assert sum(isinstance(layer, FoldedBatchNorm) for layer in folded.layers) == len(pairs)
    splits = concat_conv_pairs(plain)
    assert sum(isinstance(layer, ConcatConv2D) for layer in folded.layers) == len(splits)
    if name != "unet3p":  # its full-scale skips convolve each part before concatenating
        assert splits, f"{name} has no convolution of a concatenation to split"
    x = x_batch()
    expected = np.asarray(plain.predict_on_batch(x))
    np.testing.assert_allclose(np.asarray(folded.predict_on_batch(x)), expected, atol=1e-4)
    # the predictor rebuilds models for other input sizes from their config
    bigger = at_input_size(folded, (48, 48))
    np.testing.assert_allclose(np.asarray(bigger.predict_on_batch(x_batch((48, 48)))),
                               np.asarray(at_input_size(plain, (48, 48))
                                          .predict_on_batch(x_batch((48, 48)))), atol=1e-4)


def test_a_folded_model_saves_and_loads_in_safe_mode(tmp_path):
    model = models.build("unet_sharp", **SMALL)
    randomise_batch_norms(model, seed=3)
    folded = models.inference_model(model)
    folded.save(tmp_path / "folded.keras")
    again = keras.saving.load_model(tmp_path / "folded.keras", safe_mode=True)
    np.testing.assert_array_equal(np.asarray(again.predict_on_batch(x_batch())),
                                  np.asarray(folded.predict_on_batch(x_batch())))


def test_a_convolution_read_elsewhere_too_is_not_folded():
    inputs = keras.Input((16, 16, 2))
    shared = keras.layers.Conv2D(4, 3, padding="same", name="shared")(inputs)
    normed = keras.layers.BatchNormalization(name="bn_shared")(shared)
    alone = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="alone")(inputs)
    normed_alone = keras.layers.BatchNormalization(name="bn_alone")(alone)
    activated = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="relu")(inputs)
    normed_relu = keras.layers.BatchNormalization(name="bn_relu")(activated)
    outputs = keras.layers.Concatenate()([normed, shared, normed_alone, normed_relu])
    model = keras.Model(inputs, outputs)
    randomise_batch_norms(model)
    assert foldable_pairs(model) == {"bn_alone": "alone"}
    folded = fold_batch_norm(model)
    assert folded.get_layer("alone").use_bias
    x = np.random.default_rng(2).normal(size=(3, 16, 16, 2)).astype("float32")
    np.testing.assert_allclose(np.asarray(folded.predict_on_batch(x)),
                               np.asarray(model.predict_on_batch(x)), atol=1e-5)


def test_the_default_model_is_loaded_folded():
    loaded = load_model("unet_sharp", second_stage_weights=None)
    assert not any(isinstance(layer, keras.layers.BatchNormalization)
                   for layer in loaded.model.layers)
    assert any(isinstance(layer, FoldedBatchNorm) for layer in loaded.model.layers)


def test_a_model_without_batch_norm_is_returned_as_it_is():
    inputs = keras.Input((8, 8, 1))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 1)(inputs))
    assert fold_batch_norm(model) is model


def test_concatenations_are_split_in_both_precisions():
    """``liverseg predict``'s graphs convolve the parts of UNet#'s full-scale concatenations
    (the default model's six), in float32 and in bfloat16 (where each partial sum is
    rounded on its own, so only to bfloat16's precision)."""
    model = models.build("unet_sharp", **SMALL, level=3, deep_supervision=True)
    randomise_batch_norms(model, seed=5)
    plain = models.inference_model(model, fold=False)
    single = at_precision(plain, "float32", fold=True)
    split = [layer for layer in single.layers if isinstance(layer, ConcatConv2D)]
    assert len(split) == len(concat_conv_pairs(plain)) == 6
    assert any(layer.scale_steps and min(layer.scale_steps) < 0 for layer in split)
    assert any(p is not None for layer in split for p in layer._projections)
    assert not any(type(layer).__name__ == "FullScaleConcat" for layer in single.layers)
    x = x_batch(count=3)
    expected = np.asarray(plain.predict_on_batch(x))
    np.testing.assert_allclose(np.asarray(single.predict_on_batch(x)), expected, atol=1e-5)
    halves = at_precision(plain, "bfloat16", fold=True)
    split = [layer for layer in halves.layers if isinstance(layer, ConcatConv2D)]
    assert len(split) == 6 and all(layer.compute_dtype == "bfloat16" for layer in split)
    np.testing.assert_allclose(np.asarray(halves.predict_on_batch(x), "float32"), expected,
                               atol=0.1)


def test_a_concatenation_read_elsewhere_too_is_not_split():
    a, b = keras.Input((8, 8, 2)), keras.Input((8, 8, 3))
    joined = keras.layers.Concatenate(name="joined")([a, b])
    conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")(joined)
    kept = keras.layers.Concatenate(name="kept")([a, b])
    strided = keras.layers.Conv2D(4, 3, padding="same", name="other")(kept)
    outputs = keras.layers.Concatenate(name="out")([conv, strided, kept])
    model = keras.Model([a, b], outputs)
    assert concat_conv_pairs(model) == {"joined": "conv"}
    split = fold_batch_norm(model, split_concatenations=True)
    assert isinstance(split.get_layer("conv"), ConcatConv2D)
    rng = np.random.default_rng(4)
    x = [rng.normal(size=(2, 8, 8, 2)).astype("float32"),
         rng.normal(size=(2, 8, 8, 3)).astype("float32")]
    np.testing.assert_allclose(np.asarray(split.predict_on_batch(x)),
                               np.asarray(model.predict_on_batch(x)), atol=1e-5)


def _concat_conv(project_first: bool, steps, kernel_size=3, filters=6):
    return ConcatConv2D(filters, kernel_size, padding="same", scale_steps=steps,
                        project_first=project_first)


@pytest.mark.parametrize("kernel_size, rows, cols", [(3, 24, 40), (5, 24, 40), (3, 96, 64)])
def test_an_up_sampled_part_is_convolved_before_its_up_sampling(kernel_size, rows, cols):
    """``conv(up(x), W)`` computed as the taps of ``x W`` interpolated: the same numbers,
    borders included, on a map that is not square, for each factor of UNet#'s skips; on
    the larger map the interpolation products go block by block along their bands."""
    rng = np.random.default_rng(7)
    parts = [rng.normal(size=(2, rows // 2 ** i, cols // 2 ** i, channels))
             for i, channels in enumerate((3, 24, 40, 64))]
    parts = [part.astype("float32") for part in parts]
    steps = [0, -1, -2, -3]
    plain, projected = (_concat_conv(flag, steps, kernel_size) for flag in (False, True))
    plain.build([part.shape for part in parts])
    projected.build([part.shape for part in parts])
    weights = [rng.normal(size=w.shape).astype("float32") for w in plain.get_weights()]
    plain.set_weights(weights)
    projected.set_weights(weights)
    chosen = [projection is not None for projection in projected._projections]
    assert chosen[0] is False and chosen[-1] is True  # a same-size part is never projected
    assert not any(projection is not None for projection in plain._projections)
    assert projected.multiply_adds() < plain.multiply_adds()
    expected = np.asarray(plain(parts))
    np.testing.assert_allclose(np.asarray(projected(parts)), expected,
                               atol=2e-5 * np.abs(expected).max())
    banded = [product.index is not None for projection in projected._projections
              if projection is not None for product in projection]
    assert any(banded) == (rows > 24)


@pytest.mark.parametrize("size, factor, taps", [(96, 2, 3), (24, 8, 3), (26, 4, 5), (12, 4, 3),
                                                (13, 2, 3), (3, 8, 3)])
def test_a_banded_interpolation_product_is_the_dense_product(size, factor, taps):
    """Block by block along the band (windows gathered, edges clipped) or, where the band
    is as wide as the input, as one dense product: the same sums as the whole matrix's."""
    matrix = _shifted_interpolation(size, factor, taps)
    product = _BandedProduct.of(matrix, size, taps)
    x = np.random.default_rng(size).normal(size=(2, size, taps * 5)).astype("float32")
    expected = np.einsum("oj,njc->noc", matrix, x.reshape(2, size * taps, 5))
    got = np.asarray(product(x, 5, "float32"))
    assert got.shape == (2, size * factor, 5) and product.size == size * factor
    np.testing.assert_allclose(got, expected, atol=1e-5)
    window = product.blocks.shape[-1] // taps  # the inputs each output multiplies
    if size >= 24:  # a band: a window of the inputs, not all of them
        assert product.index is not None and window < size
    if size == 96:  # blocks of 8 inputs reach one input into each neighbour
        assert window == 10


def test_a_part_is_projected_only_where_it_saves_multiply_adds():
    """Projecting a part onto ``kh kw filters`` channels pays when it has many channels and
    a large factor; a 2x part with fewer channels than the taps' outputs stays as it is."""
    wide = _concat_conv(True, [0, -1], filters=32)
    wide.build([(1, 64, 64, 8), (1, 32, 32, 8)])
    deep = _concat_conv(True, [0, -3], filters=4)
    deep.build([(1, 64, 64, 8), (1, 8, 8, 128)])
    assert wide._projections[1] is None
    assert deep._projections[1] is not None
    assert ConcatConv2D.from_config(deep.get_config()).project_first is True
