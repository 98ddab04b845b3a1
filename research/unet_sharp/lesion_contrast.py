"""How visible the reference lesions of a dataset are, and what that caps tumor Dice at.

    python research/unet_sharp/lesion_contrast.py DATA_DIR [--min-contrast-hu 5]
        [--min-lesion-mm3 0]

Reads every case of DATA_DIR (LiTS layout, as ``liverseg sample-data`` writes it, or MSD;
real cases work too) as training reads it (``keras_liverseg.data``: checked labels, canonical
orientation). For each case it prints the voxel size (the header's), the median HU of the
liver (label 1), its noise (robust standard deviation, 1.4826 times the median absolute
deviation, which texture and vessels raise a little) and every lesion (26-connected tumor
component, as post-processing counts them): its volume and its median HU minus the
liver's, both measured in the written CT, i.e. after the scanner's blur, partial volume and
noise.

A lesion counts as *invisible* when its contrast is under ``--min-contrast-hu`` or its
volume under ``--min-lesion-mm3``. The last column is the case's tumor Dice if every visible
lesion were segmented exactly and every invisible one missed (1 for a tumor-free case, as
``liverseg evaluate`` scores an empty prediction of an empty reference); their mean is a
ceiling on tumor Dice per case for any model that cannot see those lesions.

With ``--input-size N`` it also scores a perfect model that reads slices at N x N: the
reference's one-hot labels, smoothed against aliasing (Gaussian, sigma 0.3 x (zoom factor
- 1) voxels) and resized in-plane to N x N, then resized back
linearly and arg-maxed, as ``liverseg predict`` treats a model's probabilities. Its liver and
tumor Dice per case show what the input size alone costs.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from scipy import ndimage

from keras_liverseg.data.datasets import DatasetError, find_cases
from keras_liverseg.data.volumes import load_volume
from keras_liverseg.inference.postprocess import LESION_CONNECTIVITY, label_components
from keras_liverseg.io import InputError, open_nifti
from keras_liverseg.io.slices import resize_axes
from keras_liverseg.metrics.overlap import dice


def case_lesions(volume: np.ndarray, labels: np.ndarray, voxel_mm3: float):
    """``(liver median HU, liver noise HU, [(volume mm3, median HU - liver median), ...])``."""
    liver = labels == 1
    liver_hu = noise = float("nan")
    if liver.any():
        values = volume[liver]
        liver_hu = float(np.median(values))
        noise = 1.4826 * float(np.median(np.abs(values - liver_hu)))
    components, _ = label_components(labels == 2, LESION_CONNECTIVITY)
    found = []
    for number, box in enumerate(ndimage.find_objects(components), start=1):
        if box is None:
            continue
        mask = components[box] == number
        found.append((float(mask.sum()) * voxel_mm3,
                      float(np.median(volume[box][mask])) - liver_hu))
    return liver_hu, noise, sorted(found, reverse=True)


def dice_ceiling(lesions, min_contrast_hu: float, min_lesion_mm3: float) -> float:
    """Tumor Dice when exactly the visible lesions are found (1 without lesions)."""
    total = sum(volume for volume, _ in lesions)
    if total == 0:
        return 1.0
    visible = sum(volume for volume, contrast in lesions
                  if abs(contrast) >= min_contrast_hu and volume >= min_lesion_mm3)
    return 2 * visible / (visible + total)


def resolution_dice(labels: np.ndarray, size: int) -> tuple[float, float]:
    """Liver and tumor Dice of the reference read at ``size`` x ``size`` and back."""
    rows, cols = labels.shape[:2]
    one_hot = np.stack([labels == k for k in range(3)], axis=-1).astype(np.float32)
    sigma = [0.3 * max(rows / size - 1, 0), 0.3 * max(cols / size - 1, 0), 0, 0]
    if any(sigma):
        one_hot = ndimage.gaussian_filter(one_hot, sigma)
    small = resize_axes(one_hot, (size, size), axes=(0, 1))
    back = resize_axes(small, (rows, cols), axes=(0, 1)).argmax(axis=-1)
    return dice(back > 0, labels > 0), dice(back == 2, labels == 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--min-contrast-hu", type=float, default=5.0)
    parser.add_argument("--min-lesion-mm3", type=float, default=0.0)
    parser.add_argument("--show", type=int, default=6, help="lesions listed per case")
    parser.add_argument("--input-size", type=int, default=None,
                        help="also score a perfect model reading N x N slices")
    args = parser.parse_args(argv)
    try:
        return _report(args)
    except (DatasetError, InputError) as error:
        print(f"Error: {error}", file=sys.stderr)
        return 2


def _report(args: argparse.Namespace) -> int:
    cases = find_cases(args.data_dir)
    ceilings, perfect = [], []
    print(f"invisible: |contrast| < {args.min_contrast_hu:g} HU or volume < "
          f"{args.min_lesion_mm3:g} mm3")
    print("case  spacing (mm)          liver HU  noise  lesions (ml, HU from liver)  ceiling")
    for case in cases:
        spacing = tuple(float(s) for s in open_nifti(case.image).header.get_zooms()[:3])
        read = load_volume(case)
        volume, labels = np.asarray(read.image, dtype=np.float32), read.labels
        liver_hu, noise, lesions = case_lesions(volume, labels, float(np.prod(spacing)))
        ceiling = dice_ceiling(lesions, args.min_contrast_hu, args.min_lesion_mm3)
        ceilings.append(ceiling)
        shown = ", ".join(f"{v / 1000:.2f} {c:+.0f}" for v, c in lesions[: args.show])
        more = f" (+{len(lesions) - args.show})" if len(lesions) > args.show else ""
        sp = "x".join(f"{s:.2f}" for s in spacing)
        at_size = ""
        if args.input_size:
            perfect.append(resolution_dice(labels, args.input_size))
            at_size = "  at {}: {:.4f} / {:.3f}".format(args.input_size, *perfect[-1])
        number = case.case_id.removeprefix("volume-")
        print(f"{number:>4s}  {sp:<20s}  {liver_hu:>8.0f}  {noise:>5.0f}  "
              f"{shown or 'none'}{more}  {ceiling:.3f}{at_size}")
    print(f"{len(cases)} cases; tumor Dice per case ceiling {np.mean(ceilings):.3f}")
    if perfect:
        liver, tumor = np.mean(perfect, axis=0)
        print(f"a perfect model at {args.input_size}x{args.input_size}: liver {liver:.4f}, "
              f"tumor {tumor:.3f} Dice per case")
    return 0


if __name__ == "__main__":
    sys.exit(main())
