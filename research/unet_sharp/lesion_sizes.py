"""Which lesion sizes a model finds, and how many of its small lesions are false.

    python research/unet_sharp/lesion_sizes.py PRED_DIR GT_DIR [--bins 0 20 50 100 200 500 1000]

Reads every ``segmentation-N.nii.gz`` of PRED_DIR (as ``liverseg predict`` wrote and
``research/unet_sharp/default_weights.sh`` renamed them, e.g. ``data/val28-pred``) with the
reference of the same name in GT_DIR. Lesions are 26-connected tumor components (as post-processing
counts them), their volumes in mm3 from the files' voxel size. Per size bin it prints:

- reference lesions, and how many are *found*: at least ``--found`` (a tenth) of their
  voxels predicted as tumor;
- predicted lesions, and how many are *false*: at most ``--found`` of their voxels on
  reference tumor.

It chose the default weights' smallest kept lesion (zoo/unet_sharp.md): run it on
predictions made with ``--min-lesion-mm3 0``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from keras_liverseg.inference.postprocess import LESION_CONNECTIVITY, label_components
from keras_liverseg.metrics.evaluate import read_labels


def lesions(mask: np.ndarray, other: np.ndarray, voxel_mm3: float) -> list[tuple[float, float]]:
    """``(volume_mm3, share of its voxels inside other)`` of every component of ``mask``."""
    components, count = label_components(mask, LESION_CONNECTIVITY)
    if count == 0:
        return []
    ids = np.arange(1, count + 1)
    sizes = np.bincount(components.ravel(), minlength=count + 1)[ids]
    inside = np.bincount(components[other].ravel(), minlength=count + 1)[ids]
    return [(float(n) * voxel_mm3, float(k) / float(n)) for n, k in zip(sizes, inside, strict=True)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pred_dir", type=Path)
    parser.add_argument("gt_dir", type=Path)
    parser.add_argument("--bins", type=float, nargs="+",
                        default=[0, 20, 50, 100, 200, 500, 1000])
    parser.add_argument("--found", type=float, default=0.1)
    args = parser.parse_args(argv)
    predicted_files = sorted(args.pred_dir.glob("segmentation-*.nii*"))
    if not predicted_files:
        print(f"Error: no segmentation-*.nii* in {args.pred_dir}", file=sys.stderr)
        return 2
    reference, predicted = [], []
    for path in predicted_files:
        pred = read_labels(path, "prediction")
        truth = read_labels(args.gt_dir / path.name, "reference")
        voxel_mm3 = float(np.prod(truth.geometry.spacing))
        reference += lesions(truth.labels == 2, pred.labels == 2, voxel_mm3)
        predicted += lesions(pred.labels == 2, truth.labels == 2, voxel_mm3)
    edges = [*args.bins, np.inf]
    print(f"{len(predicted_files)} cases; found / false: at least / at most {args.found:.0%} "
          "of a lesion's voxels")
    print("volume (mm3)        reference  found   predicted  false")
    for low, high in zip(edges, edges[1:], strict=False):
        ref = [share for volume, share in reference if low <= volume < high]
        pre = [share for volume, share in predicted if low <= volume < high]
        found = sum(share >= args.found for share in ref)
        false = sum(share <= args.found for share in pre)
        print(f"{low:>7g} - {high:<8g}  {len(ref):>9d}  {found:>5d}   {len(pre):>9d}  {false:>5d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
