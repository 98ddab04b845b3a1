"""Training volumes resampled once to a 3D model's voxel spacing (NumPy).

A 3D model (the V-Net family) reads ``(D, H, W)`` patches of voxels of its own spacing:
``pixel_spacing`` in the axial plane and ``slice_spacing`` between slices, stored on its
:class:`~keras_liverseg.layers.HUWindow`. Inference resamples a scan to that spacing before
its sliding window (:mod:`keras_liverseg.inference.volumetric`); training resamples each
volume the same way once, when it is loaded or drawn, so that
:class:`~keras_liverseg.data.patches.PatchSampler` cuts patches without resampling and the
volumes held in memory are small (a 512 x 512 x 500 scan of 0.7 x 0.7 x 1 mm is
120 x 120 x 167 voxels of 3 mm).

The grid keeps the volume's extent, as inference does
(:func:`keras_liverseg.io.slices.voxel_grid`): ``n`` voxels of ``s`` mm become
``round(n * s / t)`` voxels (at least one) of about ``t`` mm; a spacing that is ``None``
keeps the volume's own along its axes. The image is resized linearly with the half-pixel
convention of :func:`keras_liverseg.io.slices.resize_axes` (what inference uses), the
labels take the nearest voxel on the same grid.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_liverseg.data.volumes import Volume, volume_from_arrays
from keras_liverseg.io.slices import nearest_indices, resize_axes, resize_in_plane, voxel_grid

__all__ = ["resample_image", "resample_labels", "to_voxel_spacing"]


def resample_image(image: np.ndarray, grid: Sequence[int]) -> np.ndarray:
    """A canonical ``(X, Y, Z)`` image resized linearly to ``grid``: in-plane a slab at a
    time (:func:`~keras_liverseg.io.slices.resize_in_plane`), then along the slices.
    Integer images come back as int16 (rounded), others as float32."""
    out = resize_axes(resize_in_plane(image, grid[:2]), (int(grid[2]),), axes=(2,))
    if np.issubdtype(image.dtype, np.integer):
        return np.rint(out).astype(np.int16)
    return out


def resample_labels(labels: np.ndarray, grid: Sequence[int]) -> np.ndarray:
    """Canonical ``(X, Y, Z)`` labels on ``grid``: the nearest voxel, on the grid of
    :func:`resample_image`."""
    index = [nearest_indices(n, m) for n, m in zip(labels.shape, grid, strict=True)]
    return np.ascontiguousarray(labels[np.ix_(*index)])


def to_voxel_spacing(
    volume: Volume, pixel_spacing: float | None, slice_spacing: float | None
) -> Volume:
    """``volume`` resampled to ``pixel_spacing`` (rows and columns) and ``slice_spacing``
    (mm); its spacings become the grid's exact ones (``n * s / m``). A volume already on
    that grid is returned as is."""
    shape = tuple(int(n) for n in volume.image.shape)
    spacing = (*volume.spacing, volume.slice_spacing)
    grid = voxel_grid(shape, spacing, pixel_spacing, slice_spacing)
    if grid == shape:
        return volume
    image = resample_image(volume.image, grid)
    labels = resample_labels(volume.labels, grid)
    sizes = [n * float(s) / m for n, s, m in zip(shape, spacing, grid, strict=True)]
    return volume_from_arrays(volume.case_id, image, labels, sizes[:2], sizes[2])
