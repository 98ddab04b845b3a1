"""`predict_volume` and `liverseg predict` with a 3D model: resampled to its voxel spacing,
read by the sliding window, probabilities resampled back to the scan's grid."""

from __future__ import annotations

import json

import keras
import nibabel as nib
import numpy as np
import pytest
from cli_checks import assert_user_error
from click.testing import CliRunner
from scipy import ndimage

from keras_liverseg import models
from keras_liverseg.inference import predict_volume
from keras_liverseg.io.slices import voxel_grid
from keras_liverseg.layers import HUWindow

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])


def oracle_3d(patch=(16, 32, 32), pixel_spacing=None, slice_spacing=None) -> keras.Model:
    """A 3D model whose output is a fixed function of each voxel: background below 100 HU,
    liver from 100 HU, tumor from 300 HU (each transition 2 HU wide)."""
    inputs = keras.Input((*patch, 1), name="ct")
    liver = HUWindow((99.0, 101.0), pixel_spacing=pixel_spacing, slice_spacing=slice_spacing,
                     name="hu_window")(inputs)
    tumor = HUWindow((299.0, 301.0), name="tumor_window")(inputs)
    x = keras.layers.Concatenate()([liver, tumor])
    mask = keras.layers.Conv3D(3, 1, name="mask")
    outputs = mask(x)
    kernel = np.zeros((1, 1, 1, 2, 3), np.float32)
    kernel[0, 0, 0, 0] = [-1.0, 1.0, 0.0]
    kernel[0, 0, 0, 1] = [0.0, -1.0, 1.0]
    mask.set_weights([kernel, np.array([1.0, 0.0, 0.0], np.float32)])
    return keras.Model(inputs, outputs, name="oracle3d")


def scan(shape=(45, 38, 23)):
    """A box of liver (150 HU) holding a tumor (400 HU) in air; sizes no multiple of 16."""
    truth = np.zeros(shape, np.uint8)
    truth[8:36, 6:30, 4:19] = 1
    truth[16:26, 12:22, 8:14] = 2
    volume = np.choose(truth, [-1000.0, 150.0, 400.0]).astype(np.float32)
    return volume, truth


def assert_within_a_voxel_of_the_truth(labels, truth):
    """Resampling there and back blurs each boundary by up to a voxel, and moves nothing:
    every voxel deeper than one voxel inside a region keeps its label, and no label
    reaches more than one voxel outside its region."""
    for label in (0, 1, 2):
        region = truth == label
        inside = ndimage.binary_erosion(region, iterations=1, border_value=1)
        np.testing.assert_array_equal(labels[inside], label)
        assert not ((labels == label) & ~ndimage.binary_dilation(region)).any()


def test_on_the_scans_own_spacing_the_labels_are_the_oracles_exactly():
    volume, truth = scan()
    seg = predict_volume(oracle_3d(), volume, AFFINE, postprocess=False)
    assert seg.labels.shape == volume.shape
    np.testing.assert_array_equal(seg.labels, truth)
    assert seg.report["slices_read"] == {"read": 23, "total": 23, "survey_step": 1}
    assert seg.report["model"]["volumetric"] is True
    assert seg.report["options"]["batch_size"] == 1  # one patch per call unless told


@pytest.mark.parametrize("pixel_spacing, slice_spacing", [(1.6, 3.0), (0.4, 1.25), (0.8, 5.0)])
def test_resampled_to_the_models_spacing_and_back_onto_the_scans_grid(pixel_spacing,
                                                                      slice_spacing):
    volume, truth = scan()
    model = oracle_3d(pixel_spacing=pixel_spacing, slice_spacing=slice_spacing)
    seg = predict_volume(model, volume, AFFINE, postprocess=False, return_probabilities=True)
    assert seg.labels.shape == volume.shape
    np.testing.assert_allclose(seg.affine, AFFINE)
    assert_within_a_voxel_of_the_truth(seg.labels, truth)
    np.testing.assert_allclose(seg.probabilities.sum(-1), 1.0, atol=2e-2)
    assert voxel_grid(volume.shape, (0.8, 0.8, 2.5), 1.6, 3.0) == (22, 19, 19)


def test_a_real_v_net_segments_a_volume_smaller_than_its_patch():
    model = models.build("vnet", input_shape=(16, 32, 32, 1), num_classes=3,
                         filters=(2, 4, 8, 16, 32), slice_spacing=2.5, pixel_spacing=0.8)
    volume, _ = scan((20, 25, 9))
    seg = predict_volume(model, volume, AFFINE, return_probabilities=True)
    assert seg.labels.shape == (20, 25, 9) and seg.probabilities.shape == (20, 25, 9, 3)
    assert set(np.unique(seg.labels)) <= {0, 1, 2}


def test_tta_is_refused_for_a_3d_model():
    volume, _ = scan()
    with pytest.raises(ValueError, match="3D model"):
        predict_volume(oracle_3d(), volume, AFFINE, tta=True)


def test_slice_spacing_is_for_3d_architectures_only():
    with pytest.raises(ValueError, match="3D architectures"):
        models.build("unet", input_shape=(32, 32, 1), filters=(2, 4, 8, 16, 32),
                      slice_spacing=2.0)
    model = models.build("vnet", input_shape=(16, 32, 32, 1), filters=(2, 4, 8, 16, 32),
                         slice_spacing=2.0)
    assert models.preprocessing_of(model).slice_spacing == 2.0
    assert models.preprocessing_of(model).input_size == (16, 32, 32)


def _save(path, volume):
    nib.save(nib.Nifti1Image(volume, AFFINE), str(path))
    return path


def _predict(*args):
    from keras_liverseg.cli.predict import predict

    return CliRunner().invoke(predict, [str(a) for a in args])


@pytest.fixture(scope="module")
def oracle_3d_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("oracle3d") / "oracle3d.keras"
    oracle_3d(pixel_spacing=1.6, slice_spacing=3.0).save(path)
    return path


def test_cli_predicts_with_a_3d_model_file(tmp_path, oracle_3d_file):
    volume, truth = scan()
    source = _save(tmp_path / "ct.nii.gz", volume)
    out = tmp_path / "seg.nii.gz"
    result = _predict(source, "-o", out, "--weights", oracle_3d_file, "--report",
                      tmp_path / "r.json", "--quiet")
    assert result.exit_code == 0, result.output
    written = nib.load(str(out))
    assert written.shape == volume.shape
    np.testing.assert_allclose(written.affine, AFFINE)
    assert_within_a_voxel_of_the_truth(np.asarray(written.dataobj), truth)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["model"]["slice_spacing"] == 3.0
    assert report["options"]["batch_size"] == 1


def test_cli_tta_with_a_3d_model_is_one_line(tmp_path, oracle_3d_file):
    volume, _ = scan()
    source = _save(tmp_path / "ct.nii.gz", volume)
    out = tmp_path / "seg.nii.gz"
    result = _predict(source, "-o", out, "--weights", oracle_3d_file, "--tta")
    assert_user_error(result, "3D model")
    assert not out.exists()
