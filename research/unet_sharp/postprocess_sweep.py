"""Liver and tumor Dice per case of raw predictions under several post-processing settings.

    python research/unet_sharp/postprocess_sweep.py RAW_DIR GT_DIR VOLUME_DIR [--min-lesion-mm3 500]
        [--growth-mm 0 5 10 20] [--fill slices 3d]

Reads every ``segmentation-N.nii.gz`` of RAW_DIR: predictions made with ``liverseg predict
--no-postprocess`` (e.g. ``PREDICT_ARGS=--no-postprocess TAG=-raw bash
research/unet_sharp/default_weights.sh validate``), the reference of the same name in GT_DIR
and the CT ``volume-N.nii*`` in VOLUME_DIR. For every combination of

- ``fill``: ``3d`` (the package's hole filling), ``slices`` (each axial slice's holes
  first, then 3D: the package's rule until 2026-11-30, kept here to compare) or ``none``;
- ``min_lesion_mm3``: the smallest kept lesion;
- ``growth_mm``: how far :func:`keras_liverseg.inference.postprocess.grow_lesions` grows
  the lesions;

it runs :func:`~keras_liverseg.inference.postprocess.postprocess_labels` (largest component,
hole filling, tumor inside the liver, the lesion filter, growth) and prints liver / tumor
Dice per case, then the means. It chose the default weights' lesion growth and the 3D-only
hole filling on both sets of validation phantoms (zoo/unet_sharp.md).
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage

from keras_liverseg.inference.postprocess import PostprocessOptions, postprocess_labels
from keras_liverseg.metrics import dice
from keras_liverseg.metrics.evaluate import read_labels

FILLS = ("3d", "slices", "none")


def fill_slices(labels: np.ndarray) -> np.ndarray:
    """Background enclosed by liver-or-tumor on an axial slice becomes liver (a copy)."""
    out = labels.copy()
    for k in range(out.shape[2]):
        organ = out[:, :, k] > 0
        if organ.any():
            out[:, :, k][ndimage.binary_fill_holes(organ) & ~organ] = 1
    return out


def postprocess(labels, image, spacing, fill: str, min_lesion_mm3: float, growth_mm: float):
    """``labels`` post-processed under one setting."""
    options = PostprocessOptions(fill_holes=fill != "none", min_lesion_mm3=min_lesion_mm3,
                                 lesion_growth_mm=growth_mm)
    voxel_mm3 = float(np.prod(spacing))
    if fill == "slices":  # the largest component first, as the package did, then slices
        labels = postprocess_labels(labels, voxel_mm3, PostprocessOptions(True, False, True))
        labels = fill_slices(labels)
    return postprocess_labels(labels, voxel_mm3, options, image=image, spacing=spacing)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw_dir", type=Path)
    parser.add_argument("gt_dir", type=Path)
    parser.add_argument("volume_dir", type=Path)
    parser.add_argument("--fill", nargs="+", choices=FILLS, default=["3d"])
    parser.add_argument("--min-lesion-mm3", type=float, nargs="+", default=[500.0])
    parser.add_argument("--growth-mm", type=float, nargs="+", default=[0, 5, 10, 20])
    args = parser.parse_args(argv)
    raw_files = sorted(args.raw_dir.glob("segmentation-*.nii*"))
    if not raw_files:
        print(f"Error: no segmentation-*.nii* in {args.raw_dir}", file=sys.stderr)
        return 2
    settings = list(itertools.product(args.fill, args.min_lesion_mm3, args.growth_mm))
    scores = {setting: [] for setting in settings}
    for number, setting in enumerate(settings):
        print(f"setting {number}: fill {setting[0]}, min_lesion_mm3 {setting[1]:g}, "
              f"growth_mm {setting[2]:g}")
    print("case  " + " ".join(f"{f'setting {n}':>13}" for n in range(len(settings))))
    for path in raw_files:
        number = path.name.split(".")[0].removeprefix("segmentation-")
        volumes = sorted(args.volume_dir.glob(f"volume-{number}.nii*"))
        if not volumes:
            print(f"Error: no volume-{number}.nii* in {args.volume_dir}", file=sys.stderr)
            return 2
        raw = read_labels(path, "prediction")
        truth = read_labels(args.gt_dir / path.name, "reference").labels
        image = np.asarray(nib.load(volumes[0]).dataobj, dtype=np.float32)
        cells = []
        for setting in settings:
            labels = postprocess(raw.labels.astype(np.uint8), image, raw.geometry.spacing,
                                 *setting)
            pair = (float(dice(labels >= 1, truth >= 1)), float(dice(labels == 2, truth == 2)))
            scores[setting].append(pair)
            cells.append(f"{pair[0]:.4f}/{pair[1]:.3f}")
        print(f"{number:>4}  " + " ".join(f"{cell:>13}" for cell in cells), flush=True)
    means = [np.mean(scores[setting], axis=0) for setting in settings]
    print("mean  " + " ".join(f"{f'{m[0]:.4f}/{m[1]:.4f}':>13}" for m in means))
    return 0


if __name__ == "__main__":
    sys.exit(main())
