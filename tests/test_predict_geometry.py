"""predict_volume puts every voxel's label back at its world position.

An oracle model (a fixed per-pixel function of HU, see conftest.py) labels a phantom whose
liver and tumor are spheres defined in world millimetres, so the expected label of any
output voxel is known from its world coordinate alone, whatever the file's orientation.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from geometry import rotation

import keras_liverseg
from keras_liverseg.inference import PostprocessOptions, predict_volume
from keras_liverseg.io import LPS_TO_RAS, to_canonical

LIVER = (np.array([8.0, -6.0, 4.0]), 9.0)  # centre (RAS mm), radius
TUMOR = (np.array([11.0, -4.0, 5.0]), 3.5)


def _world(shape, affine):
    index = np.stack(np.meshgrid(*[np.arange(n) for n in shape], indexing="ij"), -1)
    return index @ affine[:3, :3].T + affine[:3, 3]


def _expected(world):
    """0/1/2 labels of the phantom at world points (RAS mm)."""
    labels = (np.linalg.norm(world - LIVER[0], axis=-1) <= LIVER[1]).astype(np.uint8)
    labels[np.linalg.norm(world - TUMOR[0], axis=-1) <= TUMOR[1]] = 2
    return labels


def _phantom(shape, affine):
    labels = _expected(_world(shape, affine))
    return np.choose(labels, [-1000, 200, 400]).astype(np.int16), labels


def _affine(linear, shape, centre=(8.0, -6.0, 4.0)):
    """An affine with this 3x3 part whose grid centre lies at ``centre``."""
    affine = np.eye(4)
    affine[:3, :3] = linear
    affine[:3, 3] = np.asarray(centre) - linear @ ((np.asarray(shape) - 1) / 2)
    return affine


CASES = {
    "RAS": (np.diag([0.9, 0.9, 1.5]), (28, 24, 16)),
    "LPS": (np.diag([-0.9, -0.9, 1.5]), (28, 24, 16)),
    "LAI_anisotropic": (np.diag([-0.6, 1.1, -2.0]), (36, 20, 12)),
    "oblique_ASL": (
        rotation(20, 2) @ rotation(-12, 0) @ np.array([[0, 0, -1.8], [0.8, 0, 0], [0, 0.7, 0]]),
        (12, 30, 34),
    ),
}


def _save(tmp_path, name, volume, affine):
    image = nib.Nifti1Image(volume, affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=2)
    path = tmp_path / f"{name}.nii.gz"
    nib.save(image, str(path))
    return path


def _canonical_inplane(shape, affine):
    return to_canonical(np.zeros(shape, np.int8), affine)[0].shape[:2]


@pytest.mark.parametrize("case", list(CASES))
def test_nifti_round_trip_is_voxel_exact_when_resize_is_identity(tmp_path, oracle_model, case):
    linear, shape = CASES[case]
    affine = _affine(linear, shape)
    volume, expected = _phantom(shape, affine)
    assert (expected == 2).sum() > 10 and (expected == 1).sum() > 100
    path = _save(tmp_path, case, volume, affine)
    model = oracle_model(input_size=_canonical_inplane(shape, affine))
    seg = predict_volume(model, path, batch_size=5)
    assert seg.labels.dtype == np.uint8 and seg.labels.shape == shape
    assert np.array_equal(seg.labels, expected)
    seg.save(tmp_path / "out.nii.gz")
    written, original = nib.load(str(tmp_path / "out.nii.gz")), nib.load(str(path))
    assert written.shape == original.shape
    assert np.allclose(written.affine, original.affine)
    assert np.allclose(written.header.get_qform(), original.header.get_qform())
    assert written.header.get_zooms() == original.header.get_zooms()
    assert int(written.header["qform_code"]) == 1 and int(written.header["sform_code"]) == 2
    assert np.array_equal(np.asarray(written.dataobj), expected)


def _centroid_mm(mask, affine):
    return affine[:3, :3] @ np.argwhere(mask).mean(axis=0) + affine[:3, 3]


@pytest.mark.parametrize("case", ["LPS", "oblique_ASL"])
def test_resized_prediction_lands_at_the_same_world_position(oracle_model, case):
    """Model grid 32x32 != slice grid: the liver's world centroid must not move."""
    linear, shape = CASES[case]
    affine = _affine(linear, shape)
    volume, expected = _phantom(shape, affine)
    seg = predict_volume(oracle_model(input_size=(32, 32)), volume, affine)
    spacing = np.sqrt((linear**2).sum(axis=0))
    for mask, truth in ((seg.liver_mask, expected >= 1), (seg.tumor_mask, expected == 2)):
        shift = _centroid_mm(mask, affine) - _centroid_mm(truth, affine)
        assert np.linalg.norm(shift) < 0.25 * spacing.min(), shift
    # a sharp HU step resampled twice and thresholded near its top shrinks a little
    overlap = (seg.liver_mask & (expected >= 1)).sum()
    assert 2 * overlap / (seg.liver_mask.sum() + (expected >= 1).sum()) > 0.8


@pytest.mark.parametrize(
    "orientation",
    [(1, 0, 0, 0, 1, 0), (-1, 0, 0, 0, 1, 0), (0.9848, 0.1736, 0, -0.1736, 0.9848, 0)],
    ids=["axial", "axial_flipped_rows", "axial_rotated_10deg"],
)
def test_dicom_series_round_trip(tmp_path, oracle_model, write_dicom_series, orientation):
    """Labels written for a DICOM series sit where the DICOM tags put the phantom."""
    rows, cols, n, spacing, step = 26, 30, 12, (0.9, 0.8), 1.5
    row_cos, col_cos = np.array(orientation[:3], float), np.array(orientation[3:], float)
    row_cos, col_cos = row_cos / np.linalg.norm(row_cos), col_cos / np.linalg.norm(col_cos)
    normal = np.cross(row_cos, col_cos)
    centre_lps = (LPS_TO_RAS @ [*LIVER[0], 1])[:3]
    origin = (
        centre_lps - (cols - 1) / 2 * spacing[1] * row_cos - (rows - 1) / 2 * spacing[0] * col_cos
    )
    origin -= (n - 1) / 2 * step * normal
    slices, positions = [], []
    for k in range(n):
        position = origin + k * step * normal
        r, c = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        lps = position + c[..., None] * spacing[1] * row_cos + r[..., None] * spacing[0] * col_cos
        ras = lps * [-1, -1, 1]
        slices.append(np.choose(_expected(ras), [-1000, 200, 400]) + 1024)
        positions.append(position)
    folder = tmp_path / "series"
    write_dicom_series(folder, slices, positions, orientation=orientation, pixel_spacing=spacing)
    scan = keras_liverseg.io.load_scan(folder)
    model = oracle_model(input_size=_canonical_inplane(scan.volume.shape, scan.affine))
    seg = predict_volume(model, folder)
    seg.save(tmp_path / "out.nii.gz")
    written = nib.load(str(tmp_path / "out.nii.gz"))
    labels = np.asarray(written.dataobj)
    expected = _expected(_world(written.shape, written.affine))
    assert (expected == 2).sum() > 10
    assert np.array_equal(labels, expected)
    assert int(written.header["qform_code"]) == 1 and int(written.header["sform_code"]) == 1


def test_context_slices_are_ordered_inferior_to_superior(oracle_model):
    """A 2.5D oracle reading channel 0 sees the slice below (edge slices replicated)."""
    shape = (16, 20, 10)
    affine = np.diag([-1.0, 1.0, -2.0, 1.0])  # L, A, I: array axis 2 runs downwards
    volume = np.full(shape, -1000, np.int16)
    volume[4:10, 5:15, 3:6] = 200  # slices 3..5 of the array, i.e. world z -6..-10 mm
    volume[:, :, 9] = 200  # the most inferior slice: replicated as its own neighbour
    model = oracle_model(input_size=(20, 16), context_slices=3, channel=0, tumor_hu=None)
    seg = predict_volume(model, volume, affine, postprocess=False)
    expected = np.zeros(shape, np.uint8)
    expected[4:10, 5:15, 2:5] = 1  # one slice superior = one array index lower
    expected[:, :, 8:10] = 1
    assert np.array_equal(seg.labels, expected)


def test_tta_reads_a_second_larger_size_with_the_same_weights(oracle_model):
    """TTA's second reader is the model rebuilt for a 7/6 larger input with equal weights;
    on a linear ramp (whose resizes are exact) both readers agree, so TTA changes nothing
    away from the clamped edges."""
    from keras_liverseg.inference.loading import LoadedModel
    from keras_liverseg.inference.predictor import predict_slices, tta_input_size
    from keras_liverseg.models import Preprocessing

    assert tta_input_size((192, 192)) == (224, 224)
    assert tta_input_size((256, 96)) == (304, 112)
    model = oracle_model(input_size=(24, 18), liver_hu=0.0, tumor_hu=None)
    loaded = LoadedModel(model, Preprocessing((-1.0, 1.0), (24, 18), 1, 3,
                                              ("background", "liver", "tumor")), "oracle")
    assert tta_input_size((24, 18)) == (32, 32)
    twin = loaded.at_input_size((32, 32))
    assert twin.input_shape == (None, 32, 32, 1) and loaded.at_input_size((32, 32)) is twin
    assert loaded.at_input_size((24, 18)) is model
    for a, b in zip(model.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    rows, cols = np.meshgrid(np.arange(48.0), np.arange(36.0), indexing="ij")
    volume = np.repeat((0.02 * rows - 0.03 * cols)[..., None], 3, axis=2).astype(np.float32)
    _, plain = predict_slices(loaded, volume, keep_probabilities=True)
    _, both = predict_slices(loaded, volume, tta=True, keep_probabilities=True)
    inner = (slice(4, -4), slice(4, -4))
    np.testing.assert_allclose(both[inner].astype(np.float32), plain[inner].astype(np.float32),
                               atol=2e-3)
    assert list(loaded._resized) == [(32, 32)]  # the prediction used that twin


def test_tta_twin_of_a_model_that_cannot_resize_is_a_load_error():
    import keras

    from keras_liverseg.inference.loading import ModelLoadError, at_input_size

    inputs = keras.Input((8, 8, 1))
    flat = keras.layers.Dense(64)(keras.layers.Flatten()(inputs))
    outputs = keras.layers.Reshape((8, 8, 1))(flat)
    with pytest.raises(ModelLoadError, match="cannot read 10x10 slices"):
        at_input_size(keras.Model(inputs, outputs), (10, 10))


def test_tta_keeps_labels_in_place(oracle_model):
    linear, shape = CASES["LAI_anisotropic"]
    affine = _affine(linear, shape)
    volume, expected = _phantom(shape, affine)
    model = oracle_model(input_size=_canonical_inplane(shape, affine))
    seg = predict_volume(model, volume, affine, tta=True)
    # the oracle's step edges, read on a half-pixel-shifted grid, may move by one voxel
    assert np.mean(seg.labels == expected) > 0.97
    assert abs(int((seg.labels > 0).sum()) - int((expected > 0).sum())) < 0.1 * (expected > 0).sum()
    assert seg.report["options"]["tta"] is True
    assert seg.report["options"]["batch_size"] == 4  # a 2D model's default: 4 slices a call


def test_probabilities_and_4d_input(oracle_model):
    linear, shape = CASES["RAS"]
    affine = _affine(linear, shape)
    volume, expected = _phantom(shape, affine)
    model = oracle_model(input_size=_canonical_inplane(shape, affine))
    seg = predict_volume(
        model,
        volume[..., None],
        affine,
        return_probabilities=True,
        postprocess=PostprocessOptions.off(),
    )
    assert seg.labels.shape == (*shape, 1)
    assert seg.probabilities.shape == (*shape, 3) and seg.probabilities.dtype == np.float16
    assert np.array_equal(np.argmax(seg.probabilities, -1), expected)
    assert np.allclose(seg.probabilities.sum(-1), 1.0, atol=1e-2)


def test_single_sigmoid_channel_model(oracle_model):
    linear, shape = CASES["RAS"]
    affine = _affine(linear, shape)
    volume, expected = _phantom(shape, affine)
    model = oracle_model(input_size=_canonical_inplane(shape, affine), num_classes=1)
    seg = predict_volume(model, volume, affine)
    assert np.array_equal(seg.labels, (expected >= 1).astype(np.uint8))
    assert seg.report["model"]["classes"] == ["liver"]


@pytest.mark.filterwarnings("ignore:.*constant")
def test_progress_is_reported_per_batch(oracle_model):
    volume = np.full((8, 8, 7), -1000, np.int16)
    calls = []
    predict_volume(
        oracle_model(input_size=(8, 8)),
        volume,
        batch_size=3,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert calls == [(3, 7), (6, 7), (7, 7)]


def test_constant_and_nan_volumes_warn_but_segment(oracle_model):
    with pytest.warns(UserWarning, match="constant"):
        seg = predict_volume(oracle_model(input_size=(8, 8)), np.zeros((8, 8, 3)))
    assert seg.labels.shape == (8, 8, 3) and seg.report["warnings"]
    with pytest.warns(UserWarning, match="NaN"):
        seg = predict_volume(oracle_model(input_size=(8, 8)), np.full((8, 8, 3), np.nan))
    assert not seg.labels.any()


def test_top_level_api_and_saving(tmp_path, oracle_model):
    assert keras_liverseg.predict_volume is predict_volume
    assert keras_liverseg.Segmentation is keras_liverseg.inference.Segmentation
    volume, expected = _phantom((16, 16, 6), np.diag([-1.0, -1.0, 2.0, 1.0]))
    seg = keras_liverseg.predict_volume(oracle_model(input_size=(16, 16)), volume)
    seg.save(tmp_path / "seg.nii.gz")
    seg.save_report(tmp_path / "seg.json")
    assert nib.load(str(tmp_path / "seg.nii.gz")).shape == (16, 16, 6)
    assert "liver_volume_ml" in (tmp_path / "seg.json").read_text()


def test_cascade_resegments_the_first_stage_liver_region(oracle_model):
    """Stage 1 finds the liver (and a stray blob); stage 2 re-reads only the liver's box."""
    from keras_liverseg.data.roi import LiverROI
    from keras_liverseg.inference import LoadedModel
    from keras_liverseg.inference.loading import as_loaded

    volume = np.full((16, 16, 6), -1000, np.int16)
    volume[3:13, 2:12, 1:5] = 160  # liver for both stages
    volume[5:8, 5:8, 2:4] = 250  # liver for stage 1 (tumor > 300), tumor for stage 2 (> 200)
    volume[14:16, 14:16, 0:2] = 160  # a small second component: outside the liver's box
    first = as_loaded(oracle_model(input_size=(16, 16), liver_hu=100.0, tumor_hu=300.0))
    second = as_loaded(oracle_model(input_size=(10, 10), liver_hu=100.0, tumor_hu=200.0))
    second.liver_roi = LiverROI(margin=0.0, slices=0)  # the box is exactly 10x10x4
    first.second_stage = second
    assert isinstance(first, LoadedModel)
    calls = []
    seg = predict_volume(first, volume, batch_size=4, postprocess=False,
                         progress=lambda done, total: calls.append((done, total)))
    expected = np.zeros(volume.shape, np.uint8)
    expected[3:13, 2:12, 1:5] = 1
    expected[5:8, 5:8, 2:4] = 2
    np.testing.assert_array_equal(seg.labels, expected)
    assert calls[-1] == (6 + 4, 6 + 4)  # the second stage's slices follow the first's
    assert seg.report["model"]["second_stage"]["liver_roi"] == {"margin": 0.0, "slices": 0}
    assert "predict_second_stage" in seg.report["timing_s"]
    alone = predict_volume(as_loaded(oracle_model(input_size=(16, 16))), volume,
                           postprocess=False)
    assert alone.labels[15, 15, 0] == 1 and not (alone.labels == 2).any()

    # averaged stages (one-hot oracles): the stage with the larger share wins where they
    # disagree (the 250 HU block), and the region outside the box stays background
    for share, block in ((0.6, 2), (0.4, 1)):
        first.second_stage_share = share
        seg = predict_volume(first, volume, postprocess=False, return_probabilities=True)
        expected[5:8, 5:8, 2:4] = block
        np.testing.assert_array_equal(seg.labels, expected)
        np.testing.assert_allclose(seg.probabilities[6, 6, 3].astype(float),
                                   [0.0, 1 - share, share], atol=1e-3)
        assert seg.report["model"]["second_stage"]["share"] == share
    first.second_stage_share = 1.5
    with pytest.raises(ValueError, match="second_stage_share"):
        predict_volume(first, volume)


def test_liver_roi_box_frames_the_mask():
    from keras_liverseg.data.roi import LiverROI

    liver = np.zeros((40, 30, 12), bool)
    liver[10:30, 5:15, 3:7] = True
    assert LiverROI(margin=0.1, slices=2).box(liver) == (slice(8, 32), slice(4, 16),
                                                         slice(1, 9))
    assert LiverROI(margin=1.0, slices=9).box(liver) == (slice(0, 40), slice(0, 25),
                                                         slice(0, 12))  # clipped
    assert LiverROI().box(np.zeros((4, 4, 4), bool)) is None
    with pytest.raises(ValueError, match=">= 0"):
        LiverROI(margin=-0.1)
