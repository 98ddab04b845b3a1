"""zoo.load: untrained, from a path, released weights (bundled or downloaded) and their
hash check."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from keras_liverseg import models, zoo
from keras_liverseg.models import registry
from keras_liverseg.zoo import download, index

SMALL = {"input_shape": (32, 32, 3), "filters": (4, 8, 16, 32, 64)}


def x_batch():
    return np.random.default_rng(4).uniform(-300, 300, (2, 32, 32, 3)).astype("float32")


def test_every_entry_builds_untrained_with_its_preprocessing():
    for entry in zoo.entries():
        volumetric = registry.architecture(entry.architecture).volumetric
        small = {**SMALL, "input_shape": (16, 32, 32, 1)} if volumetric else SMALL
        model = zoo.load(entry.name, weights=None, **small)
        pre = models.preprocessing_of(model)
        assert pre.num_classes == entry.config["num_classes"]
        assert pre.volumetric == volumetric
        assert pre.input_size == ((16, 32, 32) if volumetric else (32, 32))
        if volumetric:  # the voxel spacing travels with the model
            assert (pre.pixel_spacing, pre.slice_spacing) == (
                entry.config["pixel_spacing"], entry.config["slice_spacing"])


def test_weights_not_released_is_a_clear_error():
    missing = [e for e in zoo.entries() if zoo.default_weights(e.name) is None]
    assert missing, "every zoo entry has released weights: test another way"
    with pytest.raises(zoo.WeightsNotAvailable, match="weights=None"):
        zoo.load(missing[0].name)
    releases = [r.release for r in index.records_for("unet", index.packaged_records())]
    with pytest.raises(zoo.WeightsNotAvailable, match=f"its releases: {releases[0]}"):
        zoo.load("unet", weights="no-such-release")


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


def test_released_weights_download_into_the_cache_and_are_hash_checked(tmp_path, monkeypatch):
    """A release on a mirror (a folder here, read by file://) is downloaded into the cache on
    the first load, built with the record's configuration, and refused on a wrong hash."""
    model = zoo.load("unet", weights=None, **SMALL)
    mirror = tmp_path / "mirror"
    (mirror / "r1").mkdir(parents=True)
    model.save_weights(mirror / "r1" / "unet.weights.h5")
    path = mirror / "r1" / "unet.weights.h5"
    record = zoo.WeightsRecord(
        model="unet", release="r1", path="r1/unet.weights.h5", size=path.stat().st_size,
        sha256=zoo.sha256_of(path), default=True,
        config={"input_shape": [32, 32, 3], "filters": [4, 8, 16, 32, 64]})
    records = [record]
    monkeypatch.setattr(download, "all_records", lambda refresh=False: records)
    monkeypatch.setenv("LIVERSEG_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LIVERSEG_WEIGHTS_URL", str(mirror))
    loaded = zoo.load("unet", progress=False)
    np.testing.assert_array_equal(
        loaded.predict(x_batch(), verbose=0), model.predict(x_batch(), verbose=0)
    )
    assert download.cache_path(record).is_file()
    path.unlink()  # the second load reads the cache
    assert isinstance(zoo.load("unet", weights="r1", progress=False), keras.Model)
    other = mirror / "r1" / "x.weights.h5"  # a file the index gives another hash for
    model.save_weights(other)
    records[0] = dataclasses.replace(record, release="r2", path="r1/x.weights.h5",
                                     size=other.stat().st_size, sha256="0" * 64)
    with pytest.raises(zoo.DownloadError, match="SHA-256"):
        zoo.load("unet", progress=False)
    assert not download.cache_path(records[0]).exists()


def test_unknown_zoo_name():
    with pytest.raises(ValueError, match="available"):
        zoo.load("nnunet", weights=None)


def test_loaded_keras_file_keeps_safe_mode(tmp_path):
    path = tmp_path / "m.keras"
    zoo.load("unet", weights=None, **SMALL).save(path)
    assert isinstance(zoo.load("unet", weights=path), keras.Model)
    with pytest.raises(ValueError, match="configuration"):
        zoo.load("unet", weights=path, input_shape=(64, 64, 1))


PACKAGED = index.packaged_records()


@pytest.mark.parametrize("record", PACKAGED, ids=[f"{r.model}-{r.release}" for r in PACKAGED])
def test_packaged_weights_load_and_match_their_sha256(record):
    """Every weights record the package lists loads: bundled ones from the package, the others
    from the source checkout's releases/ folder (the default mirror of a clone)."""
    if not record.bundled and download.weights_url() is None:
        pytest.skip("not a source checkout: no releases/ folder")
    path = download.resolve(record, progress=False)
    assert zoo.sha256_of(path) == record.sha256 and path.stat().st_size == record.size
    assert path.stat().st_size < 25 * 2**20
    model = zoo.load(record.model, weights=record.release, progress=False)
    assert record.parameters is None or model.count_params() == record.parameters
    x = np.random.default_rng(5).uniform(-300, 300, (1, *model.inputs[0].shape[1:]))
    y = models.inference_model(model).predict(x.astype("float32"), verbose=0)
    assert np.isfinite(y).all()
