"""Segment a canonical volume with a 3D model (the V-Net family): resample, slide, resample back.

1. The volume is resampled (linearly) to the model's voxel spacing: ``pixel_spacing`` in
   the axial plane and ``slice_spacing`` between slices, both stored in the model's
   :class:`~keras_liverseg.layers.HUWindow` (a spacing the model does not set keeps the
   scan's own). The grid keeps the scan's extent: ``n`` voxels of ``s`` mm become
   ``round(n * s / t)`` voxels of about ``t`` mm, with the half-voxel convention of
   :func:`keras_liverseg.io.slices.resize_axes` (:func:`keras_liverseg.io.slices.voxel_grid`).
2. :func:`~keras_liverseg.inference.sliding_window.sliding_window_probabilities` reads it
   window by window (Gaussian-weighted overlapping patches, as nnU-Net).
3. The class probabilities are resampled back to the scan's grid (linearly, as the 2D
   predictor takes its slices' probabilities back), a slab of slices at a time, and the
   labels are their argmax: labels of exactly the scan's shape.

Memory: the resampled volume and its probabilities are on the model's (coarser) grid; the
probabilities on the scan's grid exist only a slab of :data:`SLAB_SLICES` slices at a time,
unless the caller keeps them all.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from keras_liverseg.inference.sliding_window import sliding_window_probabilities
from keras_liverseg.io.slices import SLAB_SLICES, resize_axes, resize_in_plane, voxel_grid

__all__ = ["predict_volumetric"]

NAN_FILL_HU = -1024.0


def predict_volumetric(
    loaded,
    volume_c: np.ndarray,
    spacing: tuple[float, float, float],
    *,
    batch_size: int = 2,
    overlap: float = 0.5,
    keep_probabilities: bool = False,
    tumor_out: np.ndarray | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels (and optionally float16 probabilities) of a canonical volume ``(X, Y, Z)``
    with the 3D model ``loaded`` (a :class:`~keras_liverseg.inference.loading.LoadedModel`
    whose preprocessing is volumetric).

    Args:
        loaded: the model and its preprocessing.
        volume_c: canonical HU, axial slices ``volume_c[:, :, k]``.
        spacing: the volume's voxel sizes (mm) along its three axes.
        batch_size: patches per model call.
        overlap: the windows' smallest overlap, a fraction of the patch.
        keep_probabilities: also return float16 class probabilities on the volume's grid.
        tumor_out: an array of the volume's shape receiving the tumor probability.
        progress: ``progress(done, total)`` over the windows.

    Returns:
        ``(labels, probabilities)`` as :func:`~keras_liverseg.inference.predictor
        .predict_slices` returns them.
    """
    from keras_liverseg.inference.predictor import _flush_subnormal, _labels_of, slice_major

    pre = loaded.preprocessing
    classes = pre.num_classes
    rows, cols, depth = volume_c.shape
    grid = voxel_grid(volume_c.shape, spacing, pre.pixel_spacing, pre.slice_spacing)
    if grid == volume_c.shape:  # already on the model's spacing
        labels = slice_major(volume_c.shape, np.uint8)
        return sliding_window_probabilities(
            loaded.model, volume_c, tuple(pre.input_size), num_classes=classes,
            overlap=overlap, batch_size=batch_size, keep_probabilities=keep_probabilities,
            labels_out=labels, tumor_out=tumor_out, progress=progress)

    resampled = resize_in_plane(volume_c, grid[:2])
    resampled = resize_axes(resampled, (grid[2],), axes=(2,))
    np.nan_to_num(resampled, copy=False, nan=NAN_FILL_HU, posinf=NAN_FILL_HU,
                  neginf=NAN_FILL_HU)
    _, coarse = sliding_window_probabilities(
        loaded.model, resampled, tuple(pre.input_size), num_classes=classes,
        overlap=overlap, batch_size=batch_size, keep_probabilities=True, progress=progress)
    del resampled
    coarse = resize_axes(coarse, (depth,), axes=(2,))  # (x, y, Z, K) on the model's plane

    labels = slice_major(volume_c.shape, np.uint8)
    probabilities = (np.empty((rows, cols, depth, classes), np.float16)
                     if keep_probabilities else None)
    for start in range(0, depth, SLAB_SLICES):
        part = slice(start, min(start + SLAB_SLICES, depth))
        probs = resize_axes(coarse[:, :, part], (rows, cols), axes=(0, 1))
        labels[:, :, part] = _labels_of(probs)
        if probabilities is not None or tumor_out is not None:
            probs = _flush_subnormal(probs)
        if probabilities is not None:
            probabilities[:, :, part] = probs
        if tumor_out is not None:
            tumor_out[:, :, part] = probs[..., 2]
    return labels, probabilities
