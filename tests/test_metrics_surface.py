"""Surface metrics (ASSD, MSSD, HD95, surface Dice) against closed forms and medpy."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import ndimage

from keras_liverseg.metrics.surface import (
    assd,
    hausdorff,
    hd95,
    mssd,
    surface_dice,
    surface_distances,
    surface_voxels,
)

SPACING = (0.7, 1.3, 2.5)  # anisotropic, like an axial CT stack


def _box(shape, start, size):
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))] = True
    return mask


def _ellipsoid(shape, spacing, center_mm, radius_mm):
    grids = np.meshgrid(
        *(np.arange(n) * s for n, s in zip(shape, spacing, strict=True)), indexing="ij"
    )
    return sum(((g - c) / radius_mm) ** 2 for g, c in zip(grids, center_mm, strict=True)) <= 1.0


def random_blobs(rng: np.random.Generator, shape=(28, 32, 20), level=0.53) -> np.ndarray:
    return ndimage.gaussian_filter(rng.random(shape), sigma=2.0) > level


def test_surface_of_a_box_is_its_one_voxel_shell():
    box = _box((12, 12, 12), (2, 3, 1), (6, 5, 7))
    shell = surface_voxels(box)
    assert shell.sum() == 6 * 5 * 7 - 4 * 3 * 5
    assert not shell[3:7, 4:7, 2:7].any()  # the interior is not surface
    # Voxels on the array border are surface (the erosion treats the outside as background).
    assert surface_voxels(np.ones((4, 4, 4), bool)).sum() == 4**3 - 2**3


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 2, 4])
def test_offset_cubes_hausdorff_is_offset_times_spacing(axis, k):
    start_b = [3, 3, 3]
    start_b[axis] += k
    a = _box((24, 24, 24), (3, 3, 3), (10, 10, 10))
    b = _box((24, 24, 24), start_b, (10, 10, 10))
    expected = k * SPACING[axis]
    assert mssd(a, b, SPACING) == pytest.approx(expected)
    assert hausdorff(b, a, SPACING) == pytest.approx(expected)
    d = surface_distances(a, b, SPACING)
    # Every surface distance is at most the offset, so the other statistics are bounded too.
    assert 0 < d.assd() < expected
    assert d.hd95() <= expected + 1e-12
    assert d.surface_dice(expected) == 1.0


def _box_shell(start, size):
    """Integer coordinates of the one-voxel shell of a box (closed form, no erosion)."""
    ranges = [np.arange(s, s + n) for s, n in zip(start, size, strict=True)]
    points = np.array(list(itertools.product(*ranges)))
    low, high = np.array(start), np.array(start) + np.array(size) - 1
    on_shell = np.any((points == low) | (points == high), axis=1)
    return points[on_shell]


def _distance_to_box(points, start, size, spacing):
    """Euclidean distance (mm) from outside points to the box of voxels [start, start+size)."""
    low, high = np.array(start), np.array(start) + np.array(size) - 1
    beyond = np.maximum(0, np.maximum(low - points, points - high)) * np.array(spacing)
    return np.sqrt((beyond**2).sum(axis=1))


def test_concentric_boxes_with_equal_physical_gap_closed_form():
    # Inner box inside an outer one, k_i voxels of margin along axis i with k_i * s_i = 2 mm:
    # every inner surface voxel lies exactly 2 mm from the outer surface, and each outer
    # surface voxel lies at its Euclidean distance from the inner box.
    spacing = (1.0, 2.0, 0.5)
    margin = (2, 1, 4)
    gap = 2.0
    inner_start, inner_size = (6, 5, 10), (8, 6, 12)
    outer_start = tuple(s - m for s, m in zip(inner_start, margin, strict=True))
    outer_size = tuple(n + 2 * m for n, m in zip(inner_size, margin, strict=True))
    shape = (24, 16, 36)
    inner = _box(shape, inner_start, inner_size)
    outer = _box(shape, outer_start, outer_size)

    inner_shell = _box_shell(inner_start, inner_size)
    outer_shell = _box_shell(outer_start, outer_size)
    outer_to_inner = _distance_to_box(outer_shell, inner_start, inner_size, spacing)
    pooled = np.concatenate([np.full(len(inner_shell), gap), outer_to_inner])

    d = surface_distances(inner, outer, spacing)
    np.testing.assert_allclose(d.pred_to_gt, gap)
    np.testing.assert_allclose(np.sort(d.gt_to_pred), np.sort(outer_to_inner))
    assert d.mssd() == pytest.approx(gap * math.sqrt(3))
    assert assd(inner, outer, spacing) == pytest.approx(pooled.mean())
    assert hd95(inner, outer, spacing) == pytest.approx(np.percentile(pooled, 95))
    within = np.count_nonzero(pooled <= gap + 1e-9) / pooled.size
    assert surface_dice(inner, outer, spacing, tolerance=gap) == pytest.approx(within)
    assert surface_dice(inner, outer, spacing, tolerance=gap * 0.99) == pytest.approx(
        np.count_nonzero(outer_to_inner < gap * 0.99) / pooled.size
    )


def test_concentric_spheres_assd_is_the_radius_difference():
    spacing = (0.8, 0.8, 1.5)
    shape = (48, 48, 26)
    center = tuple(n * s / 2 for n, s in zip(shape, spacing, strict=True))
    small = _ellipsoid(shape, spacing, center, 10.0)
    large = _ellipsoid(shape, spacing, center, 15.0)
    voxel = max(spacing)
    assert assd(small, large, spacing) == pytest.approx(5.0, abs=voxel)
    assert mssd(small, large, spacing) == pytest.approx(5.0, abs=voxel)
    assert hd95(small, large, spacing) == pytest.approx(5.0, abs=voxel)
    assert surface_dice(small, large, spacing, tolerance=3.0) == 0.0
    assert surface_dice(small, large, spacing, tolerance=5.0 + 2 * voxel) == 1.0


def test_identical_masks_have_zero_distances():
    rng = np.random.default_rng(1)
    a = random_blobs(rng)
    d = surface_distances(a, a.copy(), SPACING)
    assert (d.assd(), d.mssd(), d.hd95(), d.surface_dice(0.0)) == (0.0, 0.0, 0.0, 1.0)


def test_empty_mask_conventions():
    empty = np.zeros((6, 6, 6), dtype=bool)
    some = _box((6, 6, 6), (1, 1, 1), (3, 3, 3))
    both = surface_distances(empty, empty, SPACING)
    assert (both.assd(), both.mssd(), both.hd95(), both.surface_dice(1.0)) == (0, 0, 0, 1)
    for pred, gt in [(empty, some), (some, empty)]:
        one = surface_distances(pred, gt, SPACING)
        assert math.isnan(one.assd()) and math.isnan(one.mssd()) and math.isnan(one.hd95())
        assert one.surface_dice(100.0) == 0.0


def test_cropping_gives_the_same_distances_as_the_whole_volume():
    rng = np.random.default_rng(2)
    for level in (0.53, 0.56):  # blobs touching the border, and smaller ones
        a, b = random_blobs(rng, level=level), random_blobs(rng, level=level)
        cropped = surface_distances(a, b, SPACING, crop=True)
        whole = surface_distances(a, b, SPACING, crop=False)
        np.testing.assert_array_equal(np.sort(cropped.pred_to_gt), np.sort(whole.pred_to_gt))
        np.testing.assert_array_equal(np.sort(cropped.gt_to_pred), np.sort(whole.gt_to_pred))
    # Small far-apart objects in a big volume: only the box around both is transformed.
    a = _box((60, 60, 40), (5, 5, 5), (3, 3, 3))
    b = _box((60, 60, 40), (50, 40, 30), (4, 4, 4))
    assert mssd(a, b, SPACING) == pytest.approx(surface_distances(a, b, SPACING, crop=False).mssd())


def test_spacing_defaults_to_one_and_accepts_a_scalar():
    a = _box((20, 20, 20), (3, 3, 3), (8, 8, 8))
    b = _box((20, 20, 20), (6, 3, 3), (8, 8, 8))
    assert mssd(a, b) == pytest.approx(3.0)
    assert mssd(a, b, 2.0) == pytest.approx(6.0)


@pytest.mark.parametrize("spacing", [(1.0, 1.0), (1.0, 0.0, 1.0), (1.0, -1.0, 1.0), "abc"])
def test_bad_spacing_is_an_error(spacing):
    a = _box((8, 8, 8), (2, 2, 2), (3, 3, 3))
    with pytest.raises(ValueError, match="spacing"):
        assd(a, a, spacing)


def test_bad_inputs_are_errors():
    a = _box((8, 8, 8), (2, 2, 2), (3, 3, 3))
    with pytest.raises(ValueError, match="shape"):
        assd(a, a[:-1])
    with pytest.raises(ValueError, match="tolerance"):
        surface_dice(a, a, tolerance=-1.0)


def test_agrees_with_medpy_on_random_blobs():
    binary = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(0)
    for _ in range(4):
        a, b = random_blobs(rng), random_blobs(rng)
        assert a.any() and b.any()
        assert mssd(a, b, SPACING) == pytest.approx(binary.hd(a, b, SPACING), abs=1e-6)
        assert assd(a, b, SPACING) == pytest.approx(binary.assd(a, b, SPACING), abs=1e-6)
        assert hd95(a, b, SPACING) == pytest.approx(binary.hd95(a, b, SPACING), abs=1e-6)
