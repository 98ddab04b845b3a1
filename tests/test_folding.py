"""BatchNormalization folded into the convolution before it: same outputs, no BN left."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_liverseg import models
from keras_liverseg.inference.loading import at_input_size, load_model
from keras_liverseg.models.folding import FoldedBatchNorm, fold_batch_norm, foldable_pairs

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
