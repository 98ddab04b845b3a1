"""Tiny synthetic CT cases in LiTS layout for tests (fast; not the phantom generator)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def blob_case(seed: int, shape=(64, 64, 12), spacing=(1.5, 1.5, 3.0)):
    """A body of fat with a bright 'liver' ellipsoid and a darker 'tumor' inside it."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    centre = np.array(shape) * rng.uniform(0.4, 0.6, 3)
    radii = np.array(shape) * rng.uniform(0.2, 0.3, 3)
    liver = ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + (
        (z - centre[2]) / radii[2]) ** 2 < 1
    tumor = liver & (((x - centre[0]) ** 2 + (y - centre[1]) ** 2 + (z - centre[2]) ** 2) < (
        radii[:2].min() / 2.5) ** 2)
    image = rng.normal(-90, 15, shape)
    image[liver] = rng.normal(110, 15, liver.sum())
    image[tumor] = rng.normal(45, 15, tumor.sum())
    labels = np.zeros(shape, np.uint8)
    labels[liver], labels[tumor] = 1, 2
    labels[:, :, 0] = 0  # a liver-free slice at each end
    image[:, :, 0] = rng.normal(-90, 15, shape[:2])
    affine = np.diag([*spacing, 1.0])
    return image.astype(np.int16), labels, affine


def write_lits(folder: Path, count: int = 3, shape=(64, 64, 12), first_seed: int = 0) -> Path:
    """Write ``count`` blob cases as volume-i / segmentation-i NIfTI pairs."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image, labels, affine = blob_case(first_seed + i, shape)
        nib.save(nib.Nifti1Image(image, affine), folder / f"volume-{i}.nii.gz")
        nib.save(nib.Nifti1Image(labels, affine), folder / f"segmentation-{i}.nii.gz")
    return folder
