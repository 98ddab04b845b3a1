"""The overlay PNG: contours, the reference's dashed contours, the legend."""

from __future__ import annotations

import numpy as np
import pytest

from keras_liverseg.inference.overlay import (
    GT_LIVER_COLOUR,
    GT_TUMOR_COLOUR,
    LIVER_COLOUR,
    TUMOR_COLOUR,
    legend_entries,
    render_overlay,
)
from keras_liverseg.inference.report import volume_summary

AFFINE = np.diag([0.8, 0.8, 2.5, 1.0])


def _case():
    volume = np.full((48, 40, 16), -1000.0)
    gt = np.zeros(volume.shape, np.uint8)
    gt[8:40, 6:34, 2:14] = 1
    gt[12:18, 10:16, 5:9] = 2
    gt[26:30, 20:24, 6:8] = 2
    pred = np.zeros_like(gt)
    pred[12:36, 10:30, 2:14] = 1  # inside the reference, same slices
    pred[13:19, 11:17, 5:9] = 2
    volume[gt > 0] = 60.0
    return volume, pred, gt


def _has(pixels: np.ndarray, colour) -> np.ndarray:
    return (pixels == colour).all(-1)


def test_the_legend_is_below_the_unchanged_slices():
    volume, pred, _ = _case()
    plain = np.asarray(render_overlay(volume, pred, AFFINE, legend=False, tile_size=96))
    sheet = np.asarray(render_overlay(volume, pred, AFFINE, tile_size=96))
    assert sheet.shape[1] == plain.shape[1] and sheet.shape[0] > plain.shape[0]
    np.testing.assert_array_equal(sheet[: plain.shape[0]], plain)
    legend = sheet[plain.shape[0]:]
    assert _has(legend, LIVER_COLOUR).sum() >= 50 and _has(legend, TUMOR_COLOUR).sum() >= 50
    assert not _has(sheet, GT_TUMOR_COLOUR).any()  # no reference, no reference colours


def test_legend_texts_give_volumes_and_lesions():
    _, pred, gt = _case()
    liver_ml = volume_summary(pred, AFFINE)["liver_volume_ml"]
    texts = [text for _, _, text in legend_entries(pred, AFFINE)]
    assert texts == [f"liver {liver_ml:.1f} mL",
                     f"tumor {volume_summary(pred, AFFINE)['tumor_volume_ml']:.1f} mL, 1 lesion"]
    both = legend_entries(pred, AFFINE, gt)
    assert [text.split(" ", 2)[:2] for _, _, text in both] == [
        ["predicted", "liver"], ["predicted", "tumor"], ["reference", "liver"],
        ["reference", "tumor"]]
    assert both[3][2].endswith("2 lesions") and both[3][:2] == (GT_TUMOR_COLOUR, True)


def test_the_reference_is_drawn_dashed_along_its_own_contours():
    volume, pred, gt = _case()
    sheet = np.asarray(render_overlay(None, pred, AFFINE, gt=gt, legend=False, tile_size=96))
    # the reference drawn as a prediction: its contours, at the same places
    alone = np.asarray(render_overlay(None, gt, AFFINE, legend=False, tile_size=96))
    assert sheet.shape == alone.shape
    reference_liver = _has(sheet, GT_LIVER_COLOUR)
    reference_tumor = _has(sheet, GT_TUMOR_COLOUR)
    assert reference_liver.sum() > 100 and reference_tumor.sum() > 20
    contours = _has(alone, LIVER_COLOUR) | _has(alone, TUMOR_COLOUR)
    captions = np.zeros(contours.shape, bool)
    captions[np.any(_has(alone, (255, 255, 255)), axis=1)] = True  # caption text rows
    assert not (reference_liver & ~contours & ~captions).any()
    assert not (reference_tumor & ~_has(alone, TUMOR_COLOUR)).any()
    # dashed: about half of the reference's liver contour is drawn over the prediction's
    drawn = reference_liver.sum() / (_has(alone, LIVER_COLOUR) & ~captions).sum()
    assert 0.3 < drawn < 0.7
    # the prediction's own contours are still there
    assert _has(sheet, LIVER_COLOUR).any() and _has(sheet, TUMOR_COLOUR).any()
    with pytest.raises(ValueError, match="reference shape"):
        render_overlay(volume, pred, AFFINE, gt=gt[:, :, :4])
