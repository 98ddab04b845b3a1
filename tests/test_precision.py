"""bfloat16 inference: chosen only on a CPU that computes it natively, and close to float32."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from keras_liverseg import models
from keras_liverseg.inference import device, precision
from keras_liverseg.inference.loading import at_input_size, load_model
from keras_liverseg.layers import HUWindow

SMALL = {"input_shape": (32, 32, 3), "filters": (4, 8, 16, 32, 64), "num_classes": 3}


@pytest.fixture
def auto(monkeypatch):
    """``choose_precision("auto")`` as a host would see it: no override, no GPU."""
    monkeypatch.delenv("LIVERSEG_PRECISION", raising=False)
    monkeypatch.setattr(device, "gpu_count", lambda: 0)
    return monkeypatch


@pytest.mark.parametrize("flags, expected", [
    ({"avx2", "avx512f", "amx_bf16", "amx_tile"}, "bfloat16"),
    ({"avx2", "avx512f", "avx512_bf16"}, "bfloat16"),
    ({"avx2", "avx512f"}, "float32"),
    (set(), "float32"),
])
def test_auto_takes_bfloat16_only_on_a_cpu_with_native_bfloat16(auto, flags, expected):
    auto.setattr(precision, "cpu_flags", lambda: flags)
    assert precision.choose_precision("auto") == expected


def test_auto_keeps_float32_with_a_gpu_and_follows_the_environment(auto):
    auto.setattr(precision, "cpu_flags", lambda: {"amx_bf16"})
    auto.setattr(device, "gpu_count", lambda: 1)
    assert precision.choose_precision("auto") == "float32"
    auto.setenv("LIVERSEG_PRECISION", "bfloat16")
    assert precision.choose_precision("auto") == "bfloat16"
    assert precision.choose_precision("float32") == "float32"  # asked for: as asked
    auto.setenv("LIVERSEG_PRECISION", "float16")
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.choose_precision("auto")


def test_a_bfloat16_model_computes_in_bfloat16_and_stays_close_to_float32():
    model = models.inference_model(models.build("unet_sharp", **SMALL))
    half = precision.at_precision(model, "bfloat16")
    assert precision.at_precision(model, "float32") is model
    for layer in half.layers:
        if isinstance(layer, keras.layers.Conv2D) and layer.name != "mask":
            assert layer.dtype_policy.name == "mixed_bfloat16", layer.name
        if isinstance(layer, HUWindow):
            assert layer.dtype_policy.name == "float32"
    x = np.random.default_rng(0).uniform(-300, 400, (2, 32, 32, 3)).astype("float32")
    full, low = np.asarray(model.predict_on_batch(x)), half.predict_on_batch(x)
    assert str(low.dtype) == "float32"  # the probabilities come out in float32
    np.testing.assert_allclose(np.asarray(low), full, atol=0.05)
    assert not np.array_equal(np.asarray(low), full)  # it did compute in bfloat16
    bigger = at_input_size(half, (48, 48))  # the predictor's canvas keeps the precision
    conv = next(layer.name for layer in half.layers if isinstance(layer, keras.layers.Conv2D))
    assert bigger.get_layer(conv).dtype_policy.name == "mixed_bfloat16"
    with pytest.raises(ValueError, match="float32 or bfloat16"):
        precision.at_precision(model, "int8")


def test_bfloat16_up_sampling_stays_in_bfloat16():
    """A plain U-Net's bilinear UpSampling2D (float32 out on TensorFlow) becomes a
    BilinearUpSampling2D of the same name in the bfloat16 twin: nothing there but the
    input's window and the output head computes in float32."""
    from keras_liverseg.layers import BilinearUpSampling2D

    model = models.inference_model(models.build("unet", **SMALL))
    ups = [layer.name for layer in model.layers
           if isinstance(layer, keras.layers.UpSampling2D)]
    assert ups  # the test needs a model with up-sampling layers
    half = precision.at_precision(model, "bfloat16")
    for name in ups:
        layer = half.get_layer(name)
        assert isinstance(layer, BilinearUpSampling2D), name
        assert layer.dtype_policy.name == "mixed_bfloat16"
        assert keras.backend.standardize_dtype(layer.output.dtype) == "bfloat16"
    x = np.random.default_rng(1).uniform(-300, 400, (2, 32, 32, 3)).astype("float32")
    np.testing.assert_allclose(np.asarray(half.predict_on_batch(x)),
                               np.asarray(model.predict_on_batch(x)), atol=0.05)


def test_load_model_reports_its_precision():
    assert load_model("unet_sharp", precision="bfloat16").describe()["precision"] == "bfloat16"
    assert load_model("unet_sharp").describe()["precision"] == "float32"  # conftest's


@pytest.mark.parametrize("name", ["unet_sharp", "unet"])
def test_folding_and_bfloat16_in_one_copy_equal_the_two_copies(name):
    """``at_precision(..., fold=True)`` (what load_model does) builds the same graph as
    folding first and changing the precision after: the same layers, dtype policies and
    outputs to the bit."""
    from keras_liverseg.models.folding import FoldedBatchNorm, fold_batch_norm

    model = models.build(name, **SMALL)
    rng = np.random.default_rng(2)
    for layer in model.layers:  # moving statistics that are not the identity
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.moving_mean.assign(rng.normal(0, 0.1, layer.moving_mean.shape))
            layer.moving_variance.assign(rng.uniform(0.5, 2, layer.moving_variance.shape))
    single = models.inference_model(model, fold=False)
    x = rng.uniform(-300, 400, (2, 32, 32, 3)).astype("float32")
    for chosen in ("float32", "bfloat16"):
        once = precision.at_precision(single, chosen, fold=True)
        # graphs also split their convolutions of concatenations (folding.py)
        folded = fold_batch_norm(single, split_concatenations=True)
        twice = precision.at_precision(folded, chosen)
        assert [type(layer) for layer in once.layers] == [type(layer) for layer in twice.layers]
        assert any(isinstance(layer, FoldedBatchNorm) for layer in once.layers)
        for a, b in zip(once.layers, twice.layers, strict=True):
            assert (a.name, a.dtype_policy.name) == (b.name, b.dtype_policy.name)
        np.testing.assert_array_equal(np.asarray(once.predict_on_batch(x)),
                                      np.asarray(twice.predict_on_batch(x)))
