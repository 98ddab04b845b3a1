"""Models that read slices at a physical pixel spacing (issue 22, "any field of view"):
the spacing travels in the model, inference resamples and centres slices on a canvas, the
sampler trains on the same geometry, and a header whose spacing does not fit its content
is reported."""

from __future__ import annotations

import dataclasses
import json

import keras
import numpy as np
import pytest

from keras_liverseg import models, predict_volume
from keras_liverseg.data.sampler import Augmentation, SliceSampler, coarsen_in_plane
from keras_liverseg.data.volumes import volume_from_arrays
from keras_liverseg.inference.loading import as_loaded
from keras_liverseg.inference.predictor import readings, to_slice_grid
from keras_liverseg.inference.preprocessing import Preprocessing
from keras_liverseg.io.orientation import canonical_spacing, to_canonical
from keras_liverseg.io.scan import body_width_warnings, scan_from_array
from keras_liverseg.io.slices import canvas_size, place, resize_axes, spacing_grid, unplace
from keras_liverseg.layers import HUWindow

TINY = {"input_shape": (32, 32, 3), "num_classes": 3, "filters": (2, 4, 4, 4, 4), "level": 3,
        "deep_supervision": True}


def test_grid_canvas_and_placing():
    assert spacing_grid((512, 400), (0.8, 0.8), 2.0) == (205, 160)
    assert spacing_grid((3, 3), (0.1, 0.1), 5.0) == (1, 1)
    assert canvas_size((205, 160), (192, 192)) == (208, 192)
    assert canvas_size((50, 70), (192, 192)) == (192, 192)
    stack = np.arange(2 * 5 * 3, dtype=np.float32).reshape(2, 5, 3, 1)
    canvas = place(stack, (8, 8), -1024.0)
    assert canvas.shape == (2, 8, 8, 1)
    assert (canvas == -1024.0).sum() == 2 * (64 - 15)
    np.testing.assert_array_equal(unplace(canvas, (5, 3)), stack)
    with pytest.raises(ValueError):
        spacing_grid((4, 4), (1, 1), 0.0)


# up, down, mixed, columns only, rows only
@pytest.mark.parametrize("size", [(512, 400), (30, 41), (22, 64), (50, 90), (77, 41)])
def test_probabilities_go_back_to_the_slice_grid_by_the_half_pixel_rule(size):
    rng = np.random.default_rng(0)
    canvas = rng.random((3, 64, 48, 3), dtype=np.float32)
    back = to_slice_grid(canvas, (50, 41), size)
    assert back.shape == (3, *size, 3) and back.dtype == np.float32
    np.testing.assert_allclose(back, resize_axes(unplace(canvas, (50, 41)), size, (1, 2)),
                               atol=1e-5)
    same = to_slice_grid(canvas, (50, 41), (50, 41))
    np.testing.assert_array_equal(same, unplace(canvas, (50, 41)))


def test_canonical_spacing_matches_the_canonical_affine():
    affine = np.array([[0, 0, -3.0, 10], [-0.7, 0, 0, 5], [0, 0.9, 0, -2], [0, 0, 0, 1]])
    _, affine_c, _ = to_canonical(np.zeros((4, 5, 6)), affine)
    expected = np.sqrt((affine_c[:3, :3] ** 2).sum(axis=0))
    np.testing.assert_allclose(canonical_spacing(affine), expected)


def test_the_spacing_travels_in_the_model(tmp_path):
    model = models.build("unet_sharp", pixel_spacing=2.5, **TINY)
    assert models.preprocessing_of(model).pixel_spacing == 2.5
    assert models.preprocessing_of(model).to_dict()["pixel_spacing"] == 2.5
    facts = models.preprocessing_of(model)  # as the ONNX cache keeps it, read back
    assert Preprocessing.from_dict(json.loads(json.dumps(facts.to_dict()))) == facts
    path = tmp_path / "m.keras"
    model.save(path)
    again = keras.saving.load_model(path, safe_mode=True)
    assert models.preprocessing_of(again).pixel_spacing == 2.5
    assert models.preprocessing_of(models.build("unet_sharp", **TINY)).pixel_spacing is None
    assert HUWindow.from_config(HUWindow((-1, 1)).get_config()).pixel_spacing is None
    with pytest.raises(ValueError, match="pixel_spacing"):
        HUWindow((-1, 1), pixel_spacing=-2)


def _spy(oracle_model, spacing):
    """An oracle with ``spacing`` on its HU window, wrapped for prediction."""
    model = oracle_model(input_size=(32, 32))
    model.get_layer("hu_window").pixel_spacing = spacing
    return as_loaded(model)


def test_readings_resample_to_the_spacing_and_grow_the_canvas(oracle_model):
    loaded = _spy(oracle_model, 2.0)
    small = readings(loaded, (40, 30), (1.0, 1.0))[0]
    assert (small.grid, small.canvas) == ((20, 15), (32, 32))
    large = readings(loaded, (100, 60), (0.9, 1.0))[0]
    assert (large.grid, large.canvas) == ((45, 30), (48, 32))
    assert large.model.inputs[0].shape[1:3] == (48, 32)
    both = readings(loaded, (40, 30), (1.0, 1.0), tta=True)
    assert len(both) == 2 and both[1].grid == (23, 18)
    with pytest.raises(ValueError, match="voxel_spacing"):
        readings(loaded, (40, 30), None)
    plain = readings(_spy(oracle_model, None), (100, 60), (0.9, 1.0))[0]
    assert (plain.grid, plain.canvas) == ((32, 32), (32, 32))


def _disc_volume(n: int, voxel: float, radius_mm: float = 30.0) -> tuple[np.ndarray, np.ndarray]:
    """A 'liver' disc (150 HU, label 1) of ``radius_mm`` in a body, ``n x n x 3`` voxels."""
    c = (np.arange(n) - (n - 1) / 2) * voxel
    r = np.hypot(*np.meshgrid(c, c, indexing="ij"))
    image = np.where(r < 3 * radius_mm, 40.0, -1000.0)
    image[r < radius_mm] = 150.0
    labels = (r < radius_mm).astype(np.uint8)
    return (np.repeat(image[..., None], 3, axis=2).astype(np.int16),
            np.repeat(labels[..., None], 3, axis=2))


@pytest.mark.parametrize("voxel", [0.5, 1.5])
def test_predict_with_a_spacing_keeps_the_geometry(oracle_model, voxel):
    image, labels = _disc_volume(int(200 / voxel), voxel)
    affine = np.diag([voxel, voxel, 2.0, 1.0])
    seg = predict_volume(_spy(oracle_model, 2.0), image, affine, postprocess=False)
    assert seg.labels.shape == image.shape
    overlap = np.logical_and(seg.labels >= 1, labels >= 1).sum()
    assert 2 * overlap / ((seg.labels >= 1).sum() + (labels >= 1).sum()) > 0.95


def test_the_sampler_shows_organs_at_their_physical_size():
    """The same 30 mm disc, on a 120 mm field of view at 0.5 mm voxels and on a 240 mm one
    at 1.5 mm, covers the same pixels of a model that reads 2 mm slices (resized to the
    input instead, the crop's disc is twice as wide)."""
    areas, plain = [], []
    for voxel, n in ((0.5, 240), (1.5, 160)):
        image, labels = _disc_volume(n, voxel)
        volume = volume_from_arrays("disc", image, labels, (voxel, voxel))
        for spacing, out in ((2.0, areas), (None, plain)):
            sampler = SliceSampler([volume], (64, 64), 3, liver_fraction=1.0, tumor_fraction=0,
                                   seed=0, pixel_spacing=spacing)
            x, y = sampler.sample(0)
            assert x.shape == (64, 64, 3) and y.shape == (64, 64)
            out.append(int((y == 1).sum()))
    expected = np.pi * (30 / 2.0) ** 2
    assert areas[0] == pytest.approx(expected, rel=0.1)
    assert areas[1] == pytest.approx(expected, rel=0.1)
    assert plain[0] > 3 * plain[1]  # resized to the input: the size follows the field of view


def test_the_sampler_windows_a_large_slice_around_the_drawn_class():
    image, labels = _disc_volume(300, 2.0, radius_mm=20.0)
    labels = np.roll(labels, 110, axis=0)  # the disc far from the centre
    volume = volume_from_arrays("far", np.roll(image, 110, axis=0), labels, (2.0, 2.0))
    sampler = SliceSampler([volume], (64, 64), 1, liver_fraction=1.0, tumor_fraction=0,
                           seed=1, pixel_spacing=2.0)
    hits = [int((sampler.sample(i)[1] == 1).sum()) for i in range(8)]
    assert min(hits) > 0  # every liver draw keeps liver in its 64 x 64 window


def test_the_window_holds_a_pixel_of_the_drawn_class_on_any_shape():
    """An L-shaped liver: a row of one arm and a column of the other would frame neither."""
    labels = np.zeros((300, 300, 3), np.uint8)
    labels[:, 5:8] = 1  # a thin vertical arm along the left edge
    labels[290:293, :] = 1  # and a thin horizontal one along the bottom
    image = np.where(labels > 0, 150, 40).astype(np.int16)
    volume = volume_from_arrays("L", image, labels, (2.0, 2.0))
    sampler = SliceSampler([volume], (64, 64), 1, liver_fraction=1.0, tumor_fraction=0,
                           seed=3, pixel_spacing=2.0)
    assert all((sampler.sample(i)[1] == 1).any() for i in range(40))


def test_field_of_view_crops_pad_with_air():
    image, labels = _disc_volume(200, 1.0)
    volume = volume_from_arrays("disc", image, labels, (1.0, 1.0))
    aug = dataclasses.replace(Augmentation(), affine=0.0, hu_shift=0.0, hu_scale=0.0,
                              noise_hu=0.0, field_of_view=1.0, fov_margin_mm=(0.0, 0.0))
    sampler = SliceSampler([volume], (64, 64), 1, 1.0, 0.0, aug, seed=0, pixel_spacing=2.0)
    x, y = sampler.sample(0)
    assert (y == 1).sum() == pytest.approx(np.pi * 15**2, rel=0.1)
    # the crop is the disc's box: outside it, air the canvas was padded with
    assert x[0, 0, 0] < -900 and x[32, 32, 0] > 100
    assert (x[:, :, 0] == -1000.0).sum() > 64 * 64 - 32 * 32


def _stripes(n: int, voxel: float, period_mm: float) -> np.ndarray:
    """Bars of ``period_mm`` along the rows (100 / -100 HU), ``n x n x 3`` voxels."""
    rows = np.arange(n) * voxel
    bars = np.where((rows // (period_mm / 2)) % 2 == 0, 100.0, -100.0)
    return np.broadcast_to(bars[:, None, None], (n, n, 3)).astype(np.float32)


def test_coarsening_blurs_what_the_coarser_pixel_cannot_show_and_keeps_the_rest():
    x = _stripes(120, 1.0, 6.0)  # 6 mm bars at 1 mm pixels
    for pixel_mm, fades in ((9.0, True), (3.0, False)):
        out = coarsen_in_plane(x, (1.0, 1.0), pixel_mm)
        assert out.shape == x.shape and out.dtype == np.float32
        contrast = np.ptp(out[20:100, 60, 0])
        # 9 mm pixels cannot show 6 mm bars; 3 mm pixels keep most of their contrast
        assert (contrast < 40) if fades else (contrast > 100), (pixel_mm, contrast)
        # along the columns nothing varies, so nothing changes there
        np.testing.assert_allclose(out[:, 0], out[:, -1], atol=1e-4)
    flat = np.full((50, 40, 3), 55.0, np.float32)
    np.testing.assert_allclose(coarsen_in_plane(flat, (0.8, 0.8), 6.0), 55.0, atol=1e-3)
    # a pixel no coarser than the slice's own changes nothing
    assert np.array_equal(coarsen_in_plane(x, (1.0, 1.0), 1.0), x)
    coarse_rows = coarsen_in_plane(x, (6.0, 1.0), 4.0)  # rows already at 6 mm: kept
    assert np.array_equal(coarse_rows, x)


def test_the_sampler_reads_a_slice_coarse_with_its_fine_labels():
    image, labels = _disc_volume(100, 1.0, radius_mm=20.0)
    image = image + _stripes(100, 1.0, 4.0).astype(np.int16)  # fine texture to lose
    volume = volume_from_arrays("disc", image, labels, (1.0, 1.0))
    plain = dataclasses.replace(Augmentation(), affine=0.0, hu_shift=0.0, hu_scale=0.0,
                                noise_hu=0.0)
    samples = {}
    for coarse in (0.0, 1.0):
        aug = dataclasses.replace(plain, coarse=coarse, coarse_mm=(6.0, 8.0))
        sampler = SliceSampler([volume], (64, 64), 3, 1.0, 0.0, aug, seed=2, pixel_spacing=2.0)
        samples[coarse] = sampler.sample(0)
    (x0, y0), (x1, y1) = samples[0.0], samples[1.0]
    assert np.array_equal(y0, y1)  # the labels stay the fine ones
    inside = (slice(20, 44), slice(20, 44), 1)  # the disc's textured middle
    assert np.ptp(x1[inside]) < 0.5 * np.ptp(x0[inside])
    assert abs(x1[inside].mean() - x0[inside].mean()) < 15  # blurred, not shifted
    # off by default, and then the sampler draws as before (no random number spent)
    assert Augmentation().coarse == 0.0
    default = SliceSampler([volume], (64, 64), 3, 1.0, 0.0, plain, seed=2, pixel_spacing=2.0)
    assert np.array_equal(default.sample(0)[0], x0)


def test_body_width_outside_an_adult_range_warns():
    image, _ = _disc_volume(200, 1.0)  # a 180 mm wide "body" on 200 mm
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    assert body_width_warnings(image, affine) == []
    wide = np.diag([4.0, 4.0, 2.0, 1.0])
    assert "720 mm wide" in body_width_warnings(image, wide)[0]
    narrow = np.diag([0.5, 0.5, 2.0, 1.0])
    assert "90 mm wide" in body_width_warnings(image, narrow)[0]
    cropped = image[60:140, 60:140]  # body to the edges: narrow because it is cropped
    assert body_width_warnings(cropped, narrow) == []
    assert body_width_warnings(image[::4, ::4], narrow) == []  # 50 x 50: not judged
    assert any("mm wide" in w for w in scan_from_array(image, wide).warnings)
