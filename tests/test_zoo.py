"""zoo.load: untrained, from a path, the default weights and their hash check."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from keras_liverseg import models, zoo
from keras_liverseg.zoo import catalog
from keras_liverseg.zoo.loading import WeightsMismatch

SMALL = {"input_shape": (32, 32, 3), "filters": (4, 8, 16, 32, 64)}


def x_batch():
    return np.random.default_rng(4).uniform(-300, 300, (2, 32, 32, 3)).astype("float32")


def test_every_entry_builds_untrained_with_its_preprocessing():
    for entry in zoo.entries():
        model = zoo.load(entry.name, weights=None, **SMALL)
        pre = models.preprocessing_of(model)
        assert pre.num_classes == entry.config["num_classes"]
        assert pre.input_size == (32, 32)


def test_default_weights_missing_is_a_clear_error():
    missing = [e for e in zoo.entries() if not e.has_default_weights()]
    if not missing:
        pytest.skip("every zoo entry ships weights")
    with pytest.raises(zoo.WeightsNotAvailable, match="weights=None"):
        zoo.load(missing[0].name)


def test_weights_from_a_path(tmp_path):
    trained = zoo.load("unet_sharp", weights=None, **SMALL)
    path = tmp_path / "w.weights.h5"
    trained.save_weights(path)
    loaded = zoo.load("unet_sharp", weights=path, **SMALL)
    np.testing.assert_array_equal(
        loaded.predict(x_batch(), verbose=0)["mask"], trained.predict(x_batch(), verbose=0)["mask"]
    )
    with pytest.raises(FileNotFoundError):
        zoo.load("unet_sharp", weights=tmp_path / "nope.weights.h5", **SMALL)


def test_keras_file_and_fast_variant(tmp_path):
    full = zoo.load("unet_sharp", weights=None, **SMALL)
    path = tmp_path / "m.keras"
    full.save(path)
    fast = zoo.load("unet_sharp_fast", weights=path)
    np.testing.assert_array_equal(
        fast.predict(x_batch(), verbose=0), full.predict(x_batch(), verbose=0)["ds_0_2"]
    )
    assert fast.count_params() < full.count_params() / 4
    # a fast variant trained as the pruned head and saved as such loads as it is
    fast.save(tmp_path / "fast.keras")
    again = zoo.load("unet_sharp_fast", weights=tmp_path / "fast.keras")
    np.testing.assert_array_equal(again.predict(x_batch(), verbose=0),
                                  fast.predict(x_batch(), verbose=0))


def test_default_weights_are_hash_checked(tmp_path, monkeypatch):
    model = zoo.load("unet", weights=None, **SMALL)
    path = tmp_path / "unet.weights.h5"
    model.save_weights(path)
    good = dataclasses.replace(
        zoo.get_entry("unet"),
        config={**zoo.get_entry("unet").config, **SMALL},
        weights_file="unet.weights.h5",
        sha256=zoo.sha256_of(path),
    )
    monkeypatch.setattr(type(good), "weights_path", lambda self: path)
    monkeypatch.setitem(catalog._BY_NAME, "unet", good)
    loaded = zoo.load("unet")
    np.testing.assert_array_equal(
        loaded.predict(x_batch(), verbose=0), model.predict(x_batch(), verbose=0)
    )
    monkeypatch.setitem(catalog._BY_NAME, "unet", dataclasses.replace(good, sha256="0" * 64))
    with pytest.raises(WeightsMismatch, match="SHA-256"):
        zoo.load("unet")


def test_unknown_zoo_name():
    with pytest.raises(ValueError, match="available"):
        zoo.load("nnunet", weights=None)


def test_loaded_keras_file_keeps_safe_mode(tmp_path):
    path = tmp_path / "m.keras"
    zoo.load("unet", weights=None, **SMALL).save(path)
    assert isinstance(zoo.load("unet", weights=path), keras.Model)
    with pytest.raises(ValueError, match="configuration"):
        zoo.load("unet", weights=path, input_shape=(64, 64, 1))


BUNDLED = [e for e in zoo.entries() if e.weights_file is not None]


@pytest.mark.parametrize("entry", BUNDLED, ids=[e.name for e in BUNDLED])
def test_bundled_weights_load_and_match_their_sha256(entry):
    path = entry.weights_path()
    assert path is not None, f"{entry.weights_file} is not installed with the package"
    assert entry.sha256 and zoo.sha256_of(path) == entry.sha256
    assert path.stat().st_size < 25 * 2**20
    model = zoo.load(entry.name)
    x = np.random.default_rng(5).uniform(-300, 300, (1, *model.inputs[0].shape[1:]))
    y = models.inference_model(model).predict(x.astype("float32"), verbose=0)
    assert np.isfinite(y).all()
