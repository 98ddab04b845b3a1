"""Liver Dice of a model's predictions on the two real CT examples in ../shared/data.

    python research/unet_sharp/real_examples.py PRED_DIR

PRED_DIR holds ``totalsegmentator_example_seg.nii.gz`` and ``dcmqi_ct_3slice_seg.nii.gz``
written by ``liverseg predict`` (see research/unet_sharp/default_weights.sh). The references: the
TotalSegmentator example's label 5 (liver; a model's output, not a manual label) and the
dcmqi example's binary liver mask (NRRD, LPS). Both are compared on the prediction's grid
after bringing both to the canonical orientation, so the check is also a geometry check.
Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from keras_liverseg.io import to_canonical
from keras_liverseg.metrics import dice

ROOT = Path(__file__).resolve().parents[2]  # the repository root
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT / "tests"))
from geometry import read_nrrd  # noqa: E402  (the tests' NRRD reader)


def liver_dice(pred_path: Path, reference: np.ndarray, reference_affine: np.ndarray) -> dict:
    pred_image = nib.load(pred_path)
    pred, pred_affine, _ = to_canonical(np.asarray(pred_image.dataobj), pred_image.affine)
    ref, ref_affine, _ = to_canonical(reference, reference_affine)
    if pred.shape != ref.shape or not np.allclose(pred_affine, ref_affine, atol=1e-2):
        raise ValueError(f"{pred_path}: prediction and reference grids differ")
    predicted, truth = pred >= 1, ref > 0
    return {"liver_dice": round(dice(predicted, truth), 4),
            "predicted_liver_voxels": int(predicted.sum()), "reference_liver_voxels":
            int(truth.sum()), "predicted_tumor_voxels": int((pred == 2).sum())}


def main(pred_dir: str) -> None:
    pred_dir = Path(pred_dir)
    total = nib.load(SHARED / "totalsegmentator_example" / "example_seg.nii.gz")
    results = {
        "totalsegmentator_example": liver_dice(
            pred_dir / "totalsegmentator_example_seg.nii.gz",
            (np.asarray(total.dataobj) == 5).astype(np.uint8), total.affine),
        "dcmqi_ct_3slice": liver_dice(
            pred_dir / "dcmqi_ct_3slice_seg.nii.gz",
            *read_nrrd(SHARED / "dcmqi_ct_3slice" / "liver_seg.nrrd")),
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main(sys.argv[1])
