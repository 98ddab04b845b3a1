"""scripts/train_on_gpu.py, which trained the default weights v3: its data match the sampler's."""

from __future__ import annotations

import json
import sys
from multiprocessing.dummy import Pool as ThreadPool
from pathlib import Path

import h5py
import numpy as np
import pytest
from repo_scripts import load_script

from keras_liverseg.data.phantom import case_seed, generate_case
from keras_liverseg.data.sampler import Augmentation, SliceSampler
from keras_liverseg.data.volumes import crop_to_liver, volume_from_arrays
from keras_liverseg.io import to_canonical
from keras_liverseg.io.slices import resize_labels, slice_stack


@pytest.fixture(scope="module")
def script():
    yield load_script("train_on_gpu")  # registered: its pools pickle its functions by name
    sys.modules.pop("train_on_gpu", None)


@pytest.mark.parametrize("model", ["unet_sharp", "unet_sharp_roi"])
def test_a_drawn_phantom_is_what_the_sampler_would_cut_from_the_full_size_one(script, model):
    roi = script.MODELS[model]
    size = script.INPUT_SIZE
    case_id, image, labels = script.draw_case((3, 6, roi, size))
    assert case_id == "volume-3" and image.dtype == np.int16 and labels.dtype == np.uint8
    full = generate_case(case_seed(script.SEED, 3), (512, 512, 6))
    volume, _, _ = to_canonical(full.volume, full.affine)
    truth, _, _ = to_canonical(full.labels, full.affine)
    if roi is not None:  # what liverseg train --liver-roi feeds the sampler
        cut = crop_to_liver(volume_from_arrays("volume-3", volume, truth.astype(np.uint8)), roi)
        assert cut.image.shape[0] < volume.shape[0]
        volume, truth = cut.image, cut.labels
    assert image.shape == (*size, volume.shape[2])
    assert (labels >= 1).any()
    # the sampler resizes the full-size slices with their neighbours; the script once
    expected = slice_stack(volume, [1, 4], 3, size)
    np.testing.assert_allclose(slice_stack(image, [1, 4], 3, size), expected, atol=0.5)
    for k in (1, 4):
        np.testing.assert_array_equal(labels[:, :, k], resize_labels(truth[:, :, k], size))


def test_batches_serve_the_sampler_stream_in_order(script, monkeypatch):
    rng = np.random.default_rng(0)
    image = rng.integers(-200, 300, (16, 16, 5)).astype(np.int16)
    labels = np.zeros((16, 16, 5), np.uint8)
    labels[4:12, 4:12, 1:4] = 1
    labels[6:9, 6:9, 2] = 2
    sampler = SliceSampler([volume_from_arrays("volume-0", image, labels)], (16, 16), 3,
                           0.4, 0.4, Augmentation(), seed=5)
    monkeypatch.setattr(script, "_SAMPLER", sampler)
    with ThreadPool(2) as pool:
        served = list(script.Batches(pool, batch_size=3, depth=4).take(5))
    assert len(served) == 5
    for i, (x, y) in enumerate(served):
        want_x, want_y = sampler.batch(range(3 * i, 3 * i + 3))
        assert x.dtype == np.float32 and x.shape == (3, 16, 16, 3)
        np.testing.assert_allclose(x, want_x, rtol=2e-3, atol=0.25)  # float16 in transit
        np.testing.assert_array_equal(y, want_y)


@pytest.mark.slow
def test_a_tiny_run_writes_clean_weights_the_zoo_model_loads(script, tmp_path):
    from keras_liverseg import zoo

    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["volume-2"], "validation": ["volume-0", "volume-1"]}))
    out = tmp_path / "run"
    init = Path(zoo.get_entry("unet_sharp").weights_path())
    code = script.main(["--split", str(split), "--out", str(out), "--init", str(init),
                        "--base", "3", "--extra", "1", "--depth", "6", "6", "--val-cases", "1",
                        "--steps", "2", "--chunk", "1", "--batch-size", "2", "--workers", "1",
                        "--validate-seconds", "1e9"])
    assert code == 0
    history = json.loads((out / "history.json").read_text())
    assert [row["chunk"] for row in history] == [2]  # validated once, at the end
    assert 0 <= history[-1]["dice_per_case_liver"] <= 1
    with h5py.File(out / "best.weights.h5") as saved:
        assert "optimizer" not in saved  # saved through the uncompiled twin
    model = zoo.load("unet_sharp", weights=out / "best.weights.h5")
    assert model.count_params() == 636_041
    assert "drew 3 phantoms" in (out / "log.txt").read_text()  # volume-1 stays out


@pytest.mark.slow
def test_a_run_at_another_input_size_saves_a_model_that_predicts_at_that_size(script, tmp_path):
    import keras

    from keras_liverseg import zoo
    from keras_liverseg.inference.loading import load_model

    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["volume-0"], "validation": ["volume-1"]}))
    out = tmp_path / "run"
    init = Path(zoo.get_entry("unet_sharp").weights_path())
    try:
        code = script.main(["--split", str(split), "--out", str(out), "--init", str(init),
                            "--base", "2", "--extra", "0", "--depth", "5", "5",
                            "--val-cases", "1", "--steps", "1", "--chunk", "1",
                            "--batch-size", "2", "--workers", "1", "--input-size", "96",
                            "--mixed-precision"])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert code == 0
    assert "rebuilt for 96x96 slices" in (out / "log.txt").read_text()
    loaded = load_model("unet_sharp", weights=out / "best.keras")  # what predict reads
    assert tuple(loaded.preprocessing.input_size) == (96, 96)
    saved = zoo.load("unet_sharp", weights=out / "best.keras")
    assert saved.input_shape == (None, 96, 96, 3) and saved.count_params() == 636_041
    # trained in bfloat16, saved to compute in float32
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    # the weights file holds the same weights, for the entry's own input size too
    at_entry_size = zoo.load("unet_sharp", weights=out / "best.weights.h5")
    for want, got in zip(at_entry_size.get_weights(), saved.get_weights(), strict=True):
        np.testing.assert_array_equal(want, got)


def test_input_size_must_be_a_multiple_of_16(script, tmp_path, capsys):
    with pytest.raises(SystemExit) as stopped:
        script.main(["--split", "s.json", "--out", str(tmp_path / "run"), "--init", "w",
                     "--input-size", "200"])
    assert stopped.value.code == 2
    assert "--input-size must be a positive multiple of 16" in capsys.readouterr().err
