"""`liverseg train` with a 3D model (the V-Net family): volumes resampled once to the model's
voxel spacing, the patch sampler, 3D deep-supervision targets, sliding-window validation,
and a tiny run end to end (run folder, resume, safe-mode loading, prediction)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from synthetic import write_lits

from keras_liverseg.cli.main import cli
from keras_liverseg.data.patches import PatchSampler, augment_patch, patches_per_pass
from keras_liverseg.data.resample import to_voxel_spacing
from keras_liverseg.data.sampler import AIR_HU, Augmentation, SliceSampler
from keras_liverseg.data.volumes import Volume, volume_from_arrays
from keras_liverseg.layers import HUWindow
from keras_liverseg.losses import deep_supervision_targets, pooled_labels
from keras_liverseg.training.config import TrainConfig

TINY3D = {"input_shape": [16, 32, 32, 1], "filters": [2, 4, 8, 16, 32],
          "pixel_spacing": 8.0, "slice_spacing": 8.0}


def box_volume(shape=(60, 50, 40), case_id="box") -> Volume:
    """Air with a box of liver (150 HU) in one corner and a small tumor (400 HU) in the
    opposite corner of the liver, 2 mm voxels in-plane, 3 mm slices."""
    labels = np.zeros(shape, np.uint8)
    labels[5:25, 5:20, 3:15] = 1
    labels[20:24, 16:20, 11:14] = 2
    image = np.choose(labels, [-1000, 150, 400]).astype(np.int16)
    return volume_from_arrays(case_id, image, labels, (2.0, 2.0), 3.0)


# --- the patch sampler ------------------------------------------------------------------------

def test_patches_have_the_models_shape_and_are_the_same_for_the_same_index():
    volume = box_volume()
    sampler = PatchSampler([volume], (16, 32, 32), augmentation=Augmentation(), seed=3)
    x, y = sampler.batch(range(4))
    assert x.shape == (4, 16, 32, 32, 1) and x.dtype == np.float32
    assert y.shape == (4, 16, 32, 32) and y.dtype == np.uint8
    assert sampler.sample_shape == (16, 32, 32, 1)
    again = PatchSampler([volume], (16, 32, 32), augmentation=Augmentation(), seed=3)
    for i in (0, 3, 1000):
        a, b = sampler.sample(i), again.sample(i)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    other = PatchSampler([volume], (16, 32, 32), augmentation=Augmentation(), seed=4)
    assert not np.array_equal(sampler.sample(0)[0], other.sample(0)[0])


def test_a_patch_is_the_volume_cut_in_the_models_axis_order():
    """The model's (D, H, W) are the volume's (Z, X, Y), as the sliding window reads them."""
    rng = np.random.default_rng(0)
    image = rng.integers(-500, 500, (40, 36, 20)).astype(np.int16)
    labels = np.zeros(image.shape, np.uint8)
    volume = volume_from_arrays("v", image, labels)
    sampler = PatchSampler([volume], (8, 16, 16), liver_fraction=0, tumor_fraction=0)
    for i in range(5):
        x, _ = sampler.sample(i)
        patch = x[..., 0].transpose(1, 2, 0)  # back to (X, Y, Z)
        hits = [(a, b, c) for a in range(40 - 15) for b in range(36 - 15) for c in range(20 - 7)
                if image[a, b, c] == patch[0, 0, 0]]
        assert any(np.array_equal(image[a:a + 16, b:b + 16, c:c + 8], patch)
                   for a, b, c in hits)


def test_a_volume_smaller_than_the_patch_is_centred_and_padded_with_air():
    labels = np.ones((10, 12, 4), np.uint8)
    image = np.full(labels.shape, 150, np.int16)
    volume = volume_from_arrays("small", image, labels)
    x, y = PatchSampler([volume], (8, 16, 16)).sample(0)
    # centred along every axis: offsets (16 - 10) // 2, (16 - 12) // 2 and (8 - 4) // 2
    inside = np.zeros((8, 16, 16), bool)
    inside[2:6, 3:13, 2:14] = True
    np.testing.assert_array_equal(y == 1, inside)
    np.testing.assert_array_equal(x[..., 0][inside], 150.0)
    np.testing.assert_array_equal(x[..., 0][~inside], AIR_HU)


def test_foreground_fractions_are_roughly_honoured():
    """The tumor fills 0.02 % of the volume: uniform patches rarely hold it, a tumor draw
    always does."""
    labels = np.zeros((96, 96, 64), np.uint8)
    labels[60:90, 60:90, 40:60] = 1
    labels[85:88, 85:88, 55:57] = 2
    volume = volume_from_arrays("v", np.choose(labels, [-100, 150, 400]).astype(np.int16),
                                labels)
    draws = 300

    def shares(liver_fraction, tumor_fraction):
        sampler = PatchSampler([volume], (8, 16, 16), liver_fraction, tumor_fraction)
        ys = [sampler.sample(i)[1] for i in range(draws)]
        return (np.mean([(y == 2).any() for y in ys]), np.mean([(y >= 1).any() for y in ys]))

    tumor, liver = shares(0.4, 0.3)
    assert 0.22 <= tumor <= 0.42  # 0.3 forced, plus the few liver draws that reach it
    assert liver >= 0.62  # every forced draw holds liver
    tumor, liver = shares(0.0, 0.0)
    assert tumor < 0.03 and liver < 0.25


def test_labels_follow_the_task():
    volume = box_volume()
    both = PatchSampler([volume], (8, 32, 32), 0.5, 0.5, task="both")
    liver = PatchSampler([volume], (8, 32, 32), 0.5, 0.5, task="liver")
    tumor = PatchSampler([volume], (8, 32, 32), 0.5, 0.5, task="tumor")
    for i in range(6):
        y = both.sample(i)[1]
        np.testing.assert_array_equal(liver.sample(i)[1], (y >= 1).astype(np.uint8))
        np.testing.assert_array_equal(tumor.sample(i)[1], (y == 2).astype(np.uint8))
    with pytest.raises(ValueError, match="task"):
        PatchSampler([volume], (8, 32, 32), task="kidney")
    with pytest.raises(ValueError, match="liver_fraction"):
        PatchSampler([volume], (8, 32, 32), 0.8, 0.4)


def test_the_affine_is_in_plane_and_the_same_for_every_slice():
    """A patch whose slices are all alike stays so: the transform leaves D alone."""
    plane = np.full((32, 32), -100.0, np.float32)
    plane[8:20, 10:26] = 150.0
    x = np.repeat(plane[None, :, :, None], 8, axis=0)
    y = np.repeat((plane > 0).astype(np.uint8)[None], 8, axis=0)
    aug = Augmentation(affine=1.0, rotation_deg=20.0, hu_shift=0.0, hu_scale=0.0, noise_hu=0.0)
    xa, ya = augment_patch(x, y, aug, np.random.default_rng(1))
    assert xa.shape == x.shape and ya.shape == y.shape
    assert not np.array_equal(ya, y)  # it moved
    for k in range(1, 8):
        np.testing.assert_array_equal(xa[k], xa[0])
        np.testing.assert_array_equal(ya[k], ya[0])
    assert set(np.unique(ya)) <= {0, 1}
    # what comes in from outside the patch is air
    shifted = Augmentation(affine=1.0, rotation_deg=0.0, scale=(0.5, 0.5), shift=0.0,
                           hu_shift=0.0, hu_scale=0.0, noise_hu=0.0)
    xs, ys = augment_patch(x, y, shifted, np.random.default_rng(0))
    assert xs[0, 0, 0, 0] == AIR_HU and ys[0, 0, 0] == 0
    # HU augmentation only: the labels stay, the intensities change
    hu_only = Augmentation(affine=0.0)
    xh, yh = augment_patch(x, y, hu_only, np.random.default_rng(2))
    np.testing.assert_array_equal(yh, y)
    assert not np.allclose(xh, x)


def test_the_slice_sampler_tells_its_sample_shape():
    sampler = SliceSampler([box_volume()], (32, 32), 3)
    assert sampler.sample_shape == (32, 32, 3)
    assert sampler.batch(range(2))[0].shape == (2, *sampler.sample_shape)


# --- resampling, one pass, the config ---------------------------------------------------------

def test_volumes_are_resampled_once_to_the_models_voxel_spacing():
    volume = box_volume()  # 60 x 50 x 40 of 2 x 2 x 3 mm
    coarse = to_voxel_spacing(volume, 4.0, 6.0)
    assert coarse.image.shape == coarse.labels.shape == (30, 25, 20)
    assert coarse.spacing == (4.0, 4.0) and coarse.slice_spacing == 6.0
    assert coarse.image.dtype == np.int16 and coarse.labels.dtype == np.uint8
    assert set(np.unique(coarse.labels)) == {0, 1, 2}
    # the liver keeps its extent in mm: 20 x 15 x 12 voxels of 2 x 2 x 3 mm
    liver = np.argwhere(coarse.labels >= 1)
    np.testing.assert_array_equal(liver.max(0) - liver.min(0) + 1, (10, 8, 6))
    assert to_voxel_spacing(volume, 2.0, 3.0) is volume  # already there
    assert to_voxel_spacing(volume, None, None) is volume
    assert patches_per_pass(coarse, (16, 16, 16)) == 2 * 2 * 2  # Z 20, X 30, Y 25


def test_the_config_knows_a_3d_model_and_keeps_its_depth_for_input_size():
    config = TrainConfig(None, "o", model="vnet_sharp", phantoms=2, input_size=64)
    assert config.volumetric and not TrainConfig(None, "o", phantoms=2).volumetric
    assert config.model_overrides()["input_shape"] == (32, 64, 64, 1)
    assert (config.model_pixel_spacing(), config.model_slice_spacing()) == (3.0, 3.0)
    assert TrainConfig(None, "o", phantoms=2, input_size=64).model_overrides()[
        "input_shape"] == (64, 64, 3)


def test_a_3d_run_takes_two_patches_per_batch_unless_told():
    assert TrainConfig(None, "o", model="vnet", phantoms=2).batch_size == 2
    assert TrainConfig(None, "o", phantoms=2).batch_size == 8
    assert TrainConfig(None, "o", model="vnet", phantoms=2, batch_size=5).batch_size == 5
    stored = TrainConfig(None, "o", model="vnet", phantoms=2).to_dict()
    assert TrainConfig.from_dict(stored).batch_size == 2


def test_dataset_and_phantom_volumes_of_a_3d_run_are_on_its_voxel_spacing(tmp_path):
    from keras_liverseg.data.datasets import find_cases, phantom_cases
    from keras_liverseg.training.inputs import samples_per_pass
    from keras_liverseg.training.run import _volumes

    data = write_lits(tmp_path / "data", count=2, shape=(48, 48, 10))  # 1.5 x 1.5 x 3 mm
    config = TrainConfig(str(data), str(tmp_path / "run"), model="vnet", model_config=TINY3D)
    train, val = _volumes(config, find_cases(data)[:1], find_cases(data)[1:],
                          tmp_path / "cache", print)
    for volume in (*train, *val):
        assert volume.image.shape == (9, 9, 4)  # 72 x 72 x 30 mm in 8 mm voxels
        assert volume.spacing == (8.0, 8.0) and volume.slice_spacing == 7.5
    assert samples_per_pass(config, train) == (1, "1 training patches of 16x32x32 voxels "
                                                   "in one pass")
    config = TrainConfig(None, str(tmp_path / "run"), model="vnet", model_config=TINY3D,
                         phantoms=2, phantom_size=(48, 48, 12))
    train, val = _volumes(config, phantom_cases(2)[:1], phantom_cases(2)[1:], tmp_path, print)
    for volume in (*train, *val):  # n voxels of s mm became round(n * s / 8) voxels
        sizes = (*volume.spacing, volume.slice_spacing)
        for size, count in zip(sizes, volume.image.shape, strict=True):
            assert abs(size - 8.0) <= 4.0 / count + 1e-9


# --- deep supervision targets -----------------------------------------------------------------

def test_3d_decoder_heads_get_labels_max_pooled_along_d_h_and_w():
    labels = np.zeros((2, 8, 8, 8), np.uint8)
    labels[0, 5, 2, 7] = 2  # one tumor voxel
    labels[1, 0:4, 0:4, 0:4] = 1
    pooled = pooled_labels(labels, 4)
    assert pooled.shape == (2, 2, 2, 2)
    expected = np.zeros((2, 2, 2, 2), np.uint8)
    expected[0, 1, 0, 1] = 2
    expected[1, 0, 0, 0] = 1
    np.testing.assert_array_equal(pooled, expected)
    np.testing.assert_array_equal(pooled_labels(labels[..., None], 4)[..., 0], expected)
    targets = deep_supervision_targets(["mask", "ds_0_1", "de_1_3", "de_3_1", "cls_mask"],
                                       labels)
    assert targets["mask"].shape == targets["ds_0_1"].shape == (2, 8, 8, 8)
    assert targets["de_1_3"].shape == (2, 4, 4, 4) and targets["de_3_1"].shape == (2, 1, 1, 1)
    np.testing.assert_array_equal(targets["de_3_1"].ravel(), [2, 1])
    np.testing.assert_array_equal(targets["cls_mask"], [[0, 1], [0, 1]])
    # slices stay 2D: (N, H, W) and (N, H, W, 1) pool along H and W only
    slices = np.zeros((3, 8, 8), np.uint8)
    slices[:, 6, 6] = 1
    assert pooled_labels(slices, 2).shape == (3, 4, 4)
    assert pooled_labels(slices[..., None], 2).shape == (3, 4, 4, 1)
    with pytest.raises(ValueError, match="not divisible"):
        pooled_labels(np.zeros((1, 6, 8, 8), np.uint8), 4)


# --- validation -------------------------------------------------------------------------------

def oracle_3d(patch=(8, 16, 16)) -> keras.Model:
    """A 3D model that calls liver from 100 HU and tumor from 300 HU, voxel by voxel."""
    inputs = keras.Input((*patch, 1), name="ct")
    liver = HUWindow((99.0, 101.0), pixel_spacing=2.0, slice_spacing=3.0,
                     name="hu_window")(inputs)
    tumor = HUWindow((299.0, 301.0), name="tumor_window")(inputs)
    mask = keras.layers.Conv3D(3, 1, name="mask")
    outputs = mask(keras.layers.Concatenate()([liver, tumor]))
    kernel = np.zeros((1, 1, 1, 2, 3), np.float32)
    kernel[0, 0, 0, 0] = [-1.0, 1.0, 0.0]
    kernel[0, 0, 0, 1] = [0.0, -1.0, 1.0]
    mask.set_weights([kernel, np.array([1.0, 0.0, 0.0], np.float32)])
    return keras.Model(inputs, outputs, name="oracle3d")


def test_a_3d_model_is_validated_window_by_window_with_the_2d_score_names():
    from keras_liverseg.training.validation import validate

    scores = validate(oracle_3d(), [box_volume(), box_volume(case_id="again")], "both")
    assert scores["dice_per_case_liver"] == pytest.approx(1.0)
    assert scores["dice_per_case_tumor"] == pytest.approx(1.0)
    assert scores["cases_liver"] == scores["cases_tumor"] == 2
    assert scores["dice_per_case"] == pytest.approx(1.0)
    liver = validate(oracle_3d(), [box_volume()], "liver")
    assert set(liver) == {"dice_per_case_liver", "cases_liver", "false_positive_cases_liver",
                          "dice_per_case"}


# --- a tiny run end to end --------------------------------------------------------------------

def history(run: Path) -> list[dict]:
    with (run / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
def test_a_tiny_3d_run_writes_the_run_folder_resumes_and_predicts(tmp_path):
    from keras_liverseg.inference import predict_volume
    from keras_liverseg.phantom import case_seed, generate_case

    run = tmp_path / "run"
    model_config = {**TINY3D, "level": 2, "decoder_heads": True}
    args = ["train", "--phantoms", "2", "--phantom-size", "48", "48", "12",
            "--model", "vnet_sharp", "--model-config", json.dumps(model_config),
            "--steps-per-epoch", "2", "--batch-size", "2", "-o", str(run)]
    result = CliRunner().invoke(cli, [*args, "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "drew 2 phantoms" in result.output and "training patches of 16x32x32" in result.output
    for name in ("config.json", "split.json", "state.json", "model.keras", "model_card.json",
                 "model_card.md", "history.csv", "checkpoints/best.weights.h5",
                 "checkpoints/last.weights.h5", "checkpoints/last.optimizer.npz"):
        assert (run / name).is_file(), name
    card = json.loads((run / "model_card.json").read_text())
    assert card["architecture"] == "vnet_sharp"
    assert card["preprocessing"]["volumetric"] is True
    assert card["preprocessing"]["input_size"] == [16, 32, 32]
    assert card["preprocessing"]["slice_spacing"] == 8.0
    assert 0 <= card["validation"]["dice_per_case_liver"] <= 1

    result = CliRunner().invoke(cli, [*args, "--epochs", "2", "--resume"])
    assert result.exit_code == 0, result.output
    assert "resuming after epoch 1" in result.output
    rows = history(run)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert all(np.isfinite(float(r["loss"])) for r in rows)
    assert json.loads((run / "state.json").read_text())["steps"] == 4

    model = keras.saving.load_model(run / "model.keras", safe_mode=True)
    assert {"mask", "ds_0_1", "de_1_1", "de_2_0"} <= set(model.output_names)
    case = generate_case(case_seed(0, 7), (40, 40, 10))
    seg = predict_volume(model, case.volume, affine=case.affine, postprocess=False)
    assert seg.labels.shape == case.volume.shape
