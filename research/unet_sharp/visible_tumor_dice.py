"""Tumor Dice per case counting only the lesions the CT shows (issue 22's phantom report).

    python research/unet_sharp/visible_tumor_dice.py PRED_DIR DATA_DIR
        [--min-contrast-hu 10] [--min-lesion-mm3 500]

DATA_DIR holds phantoms in LiTS layout (``liverseg sample-data``), PRED_DIR the predictions
``segmentation-N.nii.gz`` of ``research/unet_sharp/default_weights.sh evaluate``. A reference
lesion (26-connected tumor component) counts when its median HU in the written CT differs from
the liver's by at least ``--min-contrast-hu`` and it holds at least ``--min-lesion-mm3``, as
``lesion_contrast.py`` measures them; the others are left out of the reference (a prediction
on them is not counted against the model either: their voxels are ignored). A case without a
visible lesion scores 1 when nothing over 0 voxels is predicted as tumor outside the
ignored lesions, else 0, as ``liverseg evaluate`` scores empty references. Prints one line
per case (liver Dice, visible-only tumor Dice, predicted lesions over 0.5 ml) and the means.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lesion_contrast import case_lesions  # noqa: E402  (this folder's script)

from keras_liverseg.inference.postprocess import LESION_CONNECTIVITY, label_components  # noqa: E402
from keras_liverseg.metrics import dice  # noqa: E402


def visible_mask(volume, labels, voxel_mm3, min_contrast_hu, min_lesion_mm3) -> tuple:
    """``(visible lesions mask, invisible lesions mask)`` of a case's reference."""
    liver_hu, _, _ = case_lesions(volume, labels, voxel_mm3)
    components, count = label_components(labels == 2, LESION_CONNECTIVITY)
    visible = np.zeros(labels.shape, bool)
    for number in range(1, count + 1):
        mask = components == number
        contrast = float(np.median(volume[mask])) - liver_hu
        if abs(contrast) >= min_contrast_hu and mask.sum() * voxel_mm3 >= min_lesion_mm3:
            visible |= mask
    return visible, (labels == 2) & ~visible


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pred_dir", type=Path)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--min-contrast-hu", type=float, default=10.0)
    parser.add_argument("--min-lesion-mm3", type=float, default=500.0)
    args = parser.parse_args(argv)
    livers, tumors = [], []
    for pred_path in sorted(args.pred_dir.glob("segmentation-*.nii.gz"),
                            key=lambda p: int(p.name.split("-")[1].split(".")[0])):
        ref_image = nib.load(args.data_dir / pred_path.name)
        labels = np.asarray(ref_image.dataobj)
        volume = np.asarray(nib.load(args.data_dir / pred_path.name.replace(
            "segmentation", "volume")).dataobj, np.float32)
        pred = np.asarray(nib.load(pred_path).dataobj)
        voxel_mm3 = float(np.prod(ref_image.header.get_zooms()[:3]))
        visible, ignored = visible_mask(volume, labels, voxel_mm3, args.min_contrast_hu,
                                        args.min_lesion_mm3)
        predicted = (pred == 2) & ~ignored
        tumor = dice(predicted, visible) if visible.any() else float(not predicted.any())
        liver = dice(pred >= 1, labels >= 1)
        components, count = label_components(pred == 2, LESION_CONNECTIVITY)
        sizes = np.bincount(components.ravel(), minlength=count + 1)[1:] * voxel_mm3 / 1000
        livers.append(liver)
        tumors.append(tumor)
        print(f"{pred_path.name}: liver {liver:.3f}, visible tumor {tumor:.3f} "
              f"({int(visible.any())} visible / {int(ignored.any())} hidden lesion sets), "
              f"predicted lesions over 0.5 ml: {[round(float(s), 1) for s in sizes if s > 0.5]}")
    print(f"mean: liver {np.mean(livers):.4f}, visible tumor {np.mean(tumors):.4f} "
          f"({len(livers)} cases)")


if __name__ == "__main__":
    main()
