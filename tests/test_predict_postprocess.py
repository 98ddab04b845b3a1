"""Post-processing steps, the report's volumes and lesions, the overlay PNG, resizing."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from keras_liverseg.inference import PostprocessOptions, postprocess_labels
from keras_liverseg.inference.overlay import overlay_slices, render_overlay, write_overlay
from keras_liverseg.inference.postprocess import grow_lesions
from keras_liverseg.inference.report import lesions, volume_summary, write_report
from keras_liverseg.io.slices import linear_weights, resize_axes


def _liver_with_extras():
    labels = np.zeros((30, 30, 12), np.uint8)
    labels[5:20, 5:20, 2:10] = 1  # the liver
    labels[12:15, 12:15, 5] = 0  # a hole inside one slice
    labels[8:11, 8:11, 4:7] = 2  # a lesion inside
    labels[16:17, 16:17, 8] = 2  # a one-voxel lesion inside
    labels[25:28, 25:28, 2:4] = 1  # a separate blob (false positive)
    labels[25:27, 2:4, 9:11] = 2  # tumor outside the liver
    return labels


def test_default_steps():
    out = postprocess_labels(_liver_with_extras(), voxel_volume_mm3=1.0)
    assert out.dtype == np.uint8
    assert not out[25:28, 25:28, 2:4].any() and not out[25:27, 2:4, 9:11].any()
    assert (out[12:15, 12:15, 5] == 1).all()  # hole filled as liver
    assert (out[8:11, 8:11, 4:7] == 2).all() and out[16, 16, 8] == 2


def test_min_lesion_size_turns_small_lesions_into_liver():
    options = PostprocessOptions(min_lesion_mm3=5.0)
    out = postprocess_labels(_liver_with_extras(), voxel_volume_mm3=2.0, options=options)
    assert out[16, 16, 8] == 1 and (out[8:11, 8:11, 4:7] == 2).all()


def _liver_with_dark_lesion(liver_hu=100.0, lesion_hu=40.0):
    """A 60x60x30 liver block at ``liver_hu`` holding a ball of radius 8 voxels at
    ``lesion_hu``; the labels mark only the ball's inner radius 4 as tumor (an
    under-segmented lesion). Beside the liver, background at the lesion's HU."""
    shape = (80, 60, 30)
    x, y, z = np.indices(shape)
    ball = (x - 30) ** 2 + (y - 30) ** 2 + (z - 15) ** 2 <= 8**2
    core = (x - 30) ** 2 + (y - 30) ** 2 + (z - 15) ** 2 <= 4**2
    image = np.full(shape, lesion_hu, np.float32)  # x >= 60: background, lesion-like
    image[:60] = liver_hu
    image[ball] = lesion_hu
    labels = np.zeros(shape, np.uint8)
    labels[:60] = 1
    labels[core] = 2
    return image, labels, ball


def test_lesion_growth_recovers_an_under_segmented_lesion():
    image, labels, ball = _liver_with_dark_lesion()
    image += np.random.default_rng(0).normal(0, 5, image.shape).astype(np.float32)
    out = grow_lesions(labels.copy(), image, (1.0, 1.0, 1.0), 10.0)
    tumor = out == 2
    dice = 2 * (tumor & ball).sum() / (tumor.sum() + ball.sum())
    assert (labels == 2).sum() / ball.sum() < 0.2 and dice > 0.9
    assert not tumor[60:].any() and (out[60:] == 0).all()  # only liver becomes tumor
    assert ((out >= 1) == (labels >= 1)).all()  # the organ is unchanged


def test_lesion_growth_is_bounded_by_distance_and_contrast():
    image, labels, ball = _liver_with_dark_lesion()
    near = grow_lesions(labels.copy(), image, (1.0, 1.0, 1.0), 2.0)
    x, y, z = np.indices(labels.shape)
    within = (x - 30) ** 2 + (y - 30) ** 2 + (z - 15) ** 2 <= 6**2  # core radius 4 + 2 mm
    assert (near == 2).sum() > (labels == 2).sum() and not ((near == 2) & ~within).any()
    # with 2 mm voxels along x the same 2 mm is one voxel along x, two along y
    coarse = grow_lesions(labels.copy(), image, (2.0, 1.0, 1.0), 2.0)
    assert coarse[30, 30 + 6, 15] == 2 and coarse[30 + 6, 30, 15] == 1
    faint, faint_labels, _ = _liver_with_dark_lesion(lesion_hu=95.0)  # 5 HU: no growth
    assert np.array_equal(grow_lesions(faint_labels.copy(), faint, (1, 1, 1), 10.0),
                          faint_labels)
    bright, bright_labels, bright_ball = _liver_with_dark_lesion(lesion_hu=160.0)
    grown = grow_lesions(bright_labels.copy(), bright, (1, 1, 1), 10.0) == 2
    assert not (grown & ~bright_ball).any() and grown.sum() > 0.8 * bright_ball.sum()


def test_lesion_growth_in_the_organs_box_equals_growth_in_the_whole_image():
    from keras_liverseg.inference.postprocess import _grow_in_box

    rng = np.random.default_rng(1)
    image, labels, _ = _liver_with_dark_lesion()
    labels[:, :, :8] = 0  # the organ's box ends at the lesion's edge, inside the image
    labels[:20] = 0
    image += rng.normal(0, 15, image.shape).astype(np.float32)
    image[:20] = rng.uniform(-100, 300, image[:20].shape)  # what lies beyond matters
    for spacing in [(1.0, 1.0, 1.0), (0.7, 0.7, 3.0)]:
        whole = labels.copy()
        _grow_in_box(whole, image.copy(), spacing, 10.0, 3.0, 10.0)
        boxed = grow_lesions(labels.copy(), image, spacing, 10.0, smoothing_mm=3.0)
        assert (whole == 2).sum() > (labels == 2).sum() and np.array_equal(boxed, whole)


def test_lesion_growth_in_postprocessing_needs_the_image():
    image, labels, ball = _liver_with_dark_lesion()
    options = PostprocessOptions(lesion_growth_mm=10.0)
    with pytest.raises(ValueError, match="image"):
        postprocess_labels(labels, 1.0, options)
    out = postprocess_labels(labels, 1.0, options, image=image, spacing=(1.0, 1.0, 1.0))
    assert not ((out == 2) & ~ball).any() and (out == 2).sum() > 0.8 * ball.sum()
    assert np.array_equal(postprocess_labels(labels, 1.0, image=image, spacing=(1, 1, 1)),
                          labels)  # off by default


def test_each_step_can_be_switched_off():
    labels = _liver_with_extras()
    assert np.array_equal(postprocess_labels(labels, 1.0, PostprocessOptions.off()), labels)
    no_cc = postprocess_labels(labels, 1.0, PostprocessOptions(largest_component=False))
    assert no_cc[26, 26, 3] == 1 and no_cc[25, 2, 9] == 2 and no_cc[13, 13, 5] == 1
    no_fill = postprocess_labels(labels, 1.0, PostprocessOptions(fill_holes=False))
    assert no_fill[13, 13, 5] == 0 and no_fill[26, 26, 3] == 0


def test_3d_holes_are_filled():
    labels = np.zeros((9, 9, 9), np.uint8)
    labels[1:8, 1:8, 1:8] = 1
    labels[3:6, 3:6, 3:6] = 0
    labels[1:8, 4, 1:8] = 1  # no slice of axis 2 sees a closed hole along axis 2 only
    out = postprocess_labels(labels, 1.0)
    assert (out[1:8, 1:8, 1:8] == 1).all()


def test_a_channel_through_the_liver_is_not_filled():
    # like the IVC or the gallbladder: enclosed on every axial slice, open in 3D
    labels = np.zeros((20, 20, 12), np.uint8)
    labels[3:17, 3:17, 2:10] = 1
    labels[8:11, 8:11, :] = 0
    out = postprocess_labels(labels, 1.0)
    assert (out[8:11, 8:11, :] == 0).all() and np.array_equal(out, labels)


def test_empty_prediction_stays_empty():
    assert not postprocess_labels(np.zeros((5, 5, 5), np.uint8), 1.0).any()


def test_volumes_and_lesions_in_world_coordinates(tmp_path):
    labels = np.zeros((20, 20, 10), np.uint8)
    labels[2:18, 2:18, 1:9] = 1  # 16*16*8 = 2048 voxels
    labels[4:6, 4:6, 2:4] = 2  # 8 voxels
    labels[10:13, 10:13, 5:8] = 2  # 27 voxels
    affine = np.array([[-0.5, 0, 0, 100], [0, 2, 0, -20], [0, 0, 4, 7], [0, 0, 0, 1.0]])
    summary = volume_summary(labels, affine)
    assert summary["voxel_volume_mm3"] == 4.0
    assert summary["liver_volume_ml"] == pytest.approx(2048 * 4 / 1000)
    assert summary["tumor_volume_ml"] == pytest.approx(35 * 4 / 1000)
    assert summary["tumor_burden_percent"] == pytest.approx(100 * 35 / 2048, abs=1e-3)
    found = lesions(labels, affine)
    assert [lesion["voxels"] for lesion in found] == [27, 8]
    assert found[0]["centroid_voxel"] == [11, 11, 6]
    assert found[0]["centroid_mm"] == pytest.approx([100 - 5.5, -20 + 22, 7 + 24])
    assert found[1]["volume_ml"] == pytest.approx(0.032)
    write_report({"lesions": found, "array": np.arange(2), "x": np.float32(1)}, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["array"] == [0, 1]


def test_overlay_png(tmp_path):
    volume = np.full((40, 30, 20), -1000.0)
    labels = np.zeros((40, 30, 20), np.uint8)
    labels[10:30, 5:25, 4:16] = 1
    labels[15:20, 10:15, 8:10] = 2
    volume[labels > 0] = 60
    affine = np.diag([0.7, 0.7, 2.5, 1.0])
    assert overlay_slices(np.asarray(labels), 4) == [6, 8, 11, 13]
    image = render_overlay(volume, labels, affine, max_slices=4, columns=2, tile_size=64)
    assert image.size[0] == 128
    pixels = np.asarray(image)
    assert ((pixels == [0, 220, 0]).all(-1)).any() and ((pixels == [255, 40, 40]).all(-1)).any()
    path = write_overlay(volume, labels, affine, tmp_path / "o.png")
    assert Image.open(path).format == "PNG"
    empty = render_overlay(volume, np.zeros_like(labels), affine)
    assert empty.size[0] > 0


def test_resize_is_exact_identity_and_half_pixel_aligned():
    x = np.random.default_rng(0).random((2, 7, 5, 3)).astype(np.float32)
    assert np.array_equal(resize_axes(x, (7, 5), (1, 2)), x)
    i0, i1, w = linear_weights(2, 4)  # output centres at -0.25, 0.25, 0.75, 1.25 (clamped)
    assert list(i0) == [0, 0, 0, 1] and np.allclose(w, [0, 0.25, 0.75, 0])
    ramp = np.arange(8, dtype=np.float32)
    assert np.allclose(resize_axes(ramp, (4,), (0,)), [0.5, 2.5, 4.5, 6.5])
