"""Tumor Dice per case of saved predictions after lesion growth of several distances.

    python scripts/lesion_growth_sweep.py PRED_DIR GT_DIR VOLUME_DIR [--growth-mm 0 5 10 20]

Reads every ``segmentation-N.nii.gz`` of PRED_DIR (as ``liverseg predict`` wrote and
``scripts/default_weights.sh`` renamed them, e.g. ``data/val28-pred``), the reference of the
same name in GT_DIR and the CT ``volume-N.nii*`` in VOLUME_DIR, grows the predicted lesions
with :func:`keras_liverseg.inference.postprocess.grow_lesions` for each distance (0: as
predicted) and prints tumor Dice per case for each, then the means. Liver Dice does not
change (growth turns liver into tumor only).

Make the predictions with growth off (``--lesion-growth-mm 0``) and the rest of the
post-processing as it will be used: growth is the last post-processing step. It chose the
default weights' growth distance (zoo/unet_sharp.md) on both sets of validation phantoms.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from keras_liverseg.inference.postprocess import grow_lesions
from keras_liverseg.metrics import dice
from keras_liverseg.metrics.evaluate import read_labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pred_dir", type=Path)
    parser.add_argument("gt_dir", type=Path)
    parser.add_argument("volume_dir", type=Path)
    parser.add_argument("--growth-mm", type=float, nargs="+", default=[0, 5, 10, 20])
    args = parser.parse_args(argv)
    predicted_files = sorted(args.pred_dir.glob("segmentation-*.nii*"))
    if not predicted_files:
        print(f"Error: no segmentation-*.nii* in {args.pred_dir}", file=sys.stderr)
        return 2
    scores = {distance: [] for distance in args.growth_mm}
    print("case " + " ".join(f"{distance:>7g}" for distance in args.growth_mm) + "  (mm)")
    for path in predicted_files:
        number = path.name.split(".")[0].removeprefix("segmentation-")
        volumes = sorted(args.volume_dir.glob(f"volume-{number}.nii*"))
        if not volumes:
            print(f"Error: no volume-{number}.nii* in {args.volume_dir}", file=sys.stderr)
            return 2
        pred = read_labels(path, "prediction")
        truth = read_labels(args.gt_dir / path.name, "reference")
        image = np.asarray(nib.load(volumes[0]).dataobj, dtype=np.float32)
        row = []
        for distance in args.growth_mm:
            labels = grow_lesions(pred.labels.astype(np.uint8), image,
                                  pred.geometry.spacing, distance)
            row.append(float(dice(labels == 2, truth.labels == 2)))
            scores[distance].append(row[-1])
        print(f"{number:>4} " + " ".join(f"{value:7.3f}" for value in row), flush=True)
    print("mean " + " ".join(f"{np.mean(scores[d]):7.4f}" for d in args.growth_mm))
    return 0


if __name__ == "__main__":
    sys.exit(main())
