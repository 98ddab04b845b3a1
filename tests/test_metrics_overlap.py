"""Overlap metrics (Dice, Jaccard, VOE, RVD, Dice global) against closed forms and medpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from keras_liverseg.metrics import overlap
from keras_liverseg.metrics.overlap import (
    OverlapCounts,
    dice,
    dice_global,
    iou,
    jaccard,
    overlap_counts,
    rvd,
    voe,
)


def _cube(shape, start, size):
    mask = np.zeros(shape, dtype=bool)
    mask[tuple(slice(s, s + n) for s, n in zip(start, size, strict=True))] = True
    return mask


def random_blobs(rng: np.random.Generator, shape=(28, 32, 20), level=0.53) -> np.ndarray:
    """Smooth random blobs: several irregular objects, some touching the array border."""
    return ndimage.gaussian_filter(rng.random(shape), sigma=2.0) > level


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 3, 5])
def test_offset_cubes_closed_form(axis, k):
    n = 12
    start_b = [4, 4, 4]
    start_b[axis] += k
    a = _cube((30, 30, 30), (4, 4, 4), (n, n, n))
    b = _cube((30, 30, 30), start_b, (n, n, n))
    # |A ∩ B| = (n - k) n^2, |A| = |B| = n^3, |A ∪ B| = (n + k) n^2.
    assert dice(a, b) == pytest.approx((n - k) / n)
    assert jaccard(a, b) == pytest.approx((n - k) / (n + k))
    assert voe(a, b) == pytest.approx(2 * k / (n + k))
    assert rvd(a, b) == 0.0


def test_nested_boxes_closed_form_and_rvd_sign():
    small = _cube((20, 20, 20), (5, 5, 5), (6, 8, 4))  # 192 voxels
    big = _cube((20, 20, 20), (3, 3, 3), (10, 12, 8))  # 960 voxels
    assert dice(small, big) == pytest.approx(2 * 192 / (192 + 960))
    assert jaccard(small, big) == pytest.approx(192 / 960)
    assert iou(small, big) == jaccard(small, big)
    # Under-segmentation is negative, over-segmentation positive.
    assert rvd(small, big) == pytest.approx((192 - 960) / 960)
    assert rvd(big, small) == pytest.approx((960 - 192) / 192)


def test_non_boolean_inputs_use_non_zero_as_foreground():
    labels = np.array([[0, 1, 2], [2, 0, 0]])
    assert dice(labels, labels > 0) == 1.0
    counts = overlap_counts(labels, np.array([[1, 0, 1], [0, 0, 7]]))
    assert counts == OverlapCounts(intersection=1, pred=3, gt=3)
    assert counts.union == 5


def test_empty_mask_conventions():
    empty = np.zeros((5, 5, 5), dtype=bool)
    full = np.ones((5, 5, 5), dtype=bool)
    assert (dice(empty, empty), jaccard(empty, empty), voe(empty, empty), rvd(empty, empty)) == (
        1.0,
        1.0,
        0.0,
        0.0,
    )
    assert (dice(empty, full), jaccard(empty, full), voe(empty, full), rvd(empty, full)) == (
        0.0,
        0.0,
        1.0,
        -1.0,
    )
    assert (dice(full, empty), jaccard(full, empty), voe(full, empty)) == (0.0, 0.0, 1.0)
    assert math.isnan(rvd(full, empty))


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        dice(np.zeros((3, 3)), np.zeros((3, 4)))


def test_dice_global_pools_voxels_not_scores():
    # Case 1: perfect on a tiny object; case 2: half overlap on a big one.
    c1 = OverlapCounts(intersection=10, pred=10, gt=10)
    c2 = OverlapCounts(intersection=500, pred=1000, gt=1000)
    assert dice_global([c1, c2]) == pytest.approx(2 * 510 / 2020)
    mean_per_case = (c1.dice() + c2.dice()) / 2
    assert mean_per_case == pytest.approx(0.75)
    assert dice_global([c1, c2]) != pytest.approx(mean_per_case)


def test_dice_global_equals_dice_of_concatenated_volumes():
    rng = np.random.default_rng(3)
    preds = [random_blobs(rng) for _ in range(3)]
    gts = [random_blobs(rng) for _ in range(3)]
    pooled = dice(np.concatenate(preds), np.concatenate(gts))
    assert dice_global(overlap_counts(p, g) for p, g in zip(preds, gts, strict=True)) == (
        pytest.approx(pooled)
    )


def test_dice_global_edge_cases():
    assert math.isnan(dice_global([]))
    assert dice_global([OverlapCounts(0, 0, 0)] * 3) == 1.0


def test_agrees_with_medpy_on_random_blobs():
    binary = pytest.importorskip("medpy.metric.binary")
    rng = np.random.default_rng(0)
    for _ in range(5):
        a, b = random_blobs(rng), random_blobs(rng)
        assert a.any() and b.any()
        assert dice(a, b) == pytest.approx(binary.dc(a, b), abs=1e-6)
        assert jaccard(a, b) == pytest.approx(binary.jc(a, b), abs=1e-6)
        assert rvd(a, b) == pytest.approx(binary.ravd(a, b), abs=1e-6)
        assert voe(a, b) == pytest.approx(1 - binary.jc(a, b), abs=1e-6)


def test_module_exports_match_functions():
    for name in overlap.__all__:
        assert hasattr(overlap, name)
