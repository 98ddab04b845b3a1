"""The boundary distance weight map of ES-UNet++ (Cui et al., seed 003, Eqs. 9-10).

NumPy / SciPy, for the data pipeline (computed once per label slice, not inside the loss):

- ``D``: distance from each pixel to the nearest pixel on the region-of-interest boundary
  (the ROI pixels with a 4-connected neighbour outside it; the image edge is not a
  boundary), by a Euclidean distance transform.
- Eq. 9: ``A = (w F + 1) exp(-D / (2 sigma^2))``, ``F`` the binary ROI (liver = label >= 1).
- Eq. 10: ``W = (A - min A) / (max A - min A)``.

The paper takes ``w = 0.05`` and ``sigma = 20`` (pixels). Eq. 9 is printed with ``D``, not
``D^2``; we follow the print (``squared_distance=True`` gives the Gaussian ``D^2`` form).
A slice with no boundary (no ROI, or ROI everywhere) has no distance map: its weight map
is all ones, so :class:`~keras_liverseg.losses.WeightedDiceLoss` is a plain Dice there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
from scipy import ndimage

__all__ = ["boundary_weight_map", "boundary_weight_maps", "with_weight_map"]


def _squeeze_channel(labels: np.ndarray, ndim: int) -> np.ndarray:
    if labels.ndim == ndim + 1 and labels.shape[-1] == 1:
        return labels[..., 0]
    if labels.ndim != ndim:
        raise ValueError(
            f"expected a label array of {ndim} axes (+ optional 1-channel), "
            f"got shape {labels.shape}"
        )
    return labels


def boundary_weight_map(
    label: np.ndarray,
    w: float = 0.05,
    sigma: float = 20.0,
    foreground_labels: Iterable[int] = (1, 2),
    sampling: float | Sequence[float] | None = None,
    squared_distance: bool = False,
) -> np.ndarray:
    """Weight map ``W`` of one label slice, ES-UNet++ Eqs. 9-10.

    Args:
        label: integer label slice ``(H, W)`` or ``(H, W, 1)`` (LiTS 0/1/2).
        w: importance of the region of interest (paper: 0.05).
        sigma: distance scale (paper: 20), in pixels (or in ``sampling`` units).
        foreground_labels: label values forming the ROI ``F`` (default: liver incl. tumor).
        sampling: pixel spacing for the distance transform (default: 1 per pixel).
        squared_distance: use ``D^2`` in Eq. 9 (Gaussian fall-off) instead of ``D``.

    Returns:
        float32 ``(H, W)`` in ``[0, 1]``; all ones when the slice has no ROI boundary.
    """
    label = _squeeze_channel(np.asarray(label), 2)
    roi = np.isin(label, tuple(int(v) for v in foreground_labels))
    if not roi.any() or roi.all():
        return np.ones(label.shape, np.float32)
    structure = ndimage.generate_binary_structure(roi.ndim, 1)
    inner = ndimage.binary_erosion(roi, structure=structure, border_value=1)
    boundary = roi & ~inner
    distance = ndimage.distance_transform_edt(~boundary, sampling=sampling)
    if squared_distance:
        distance = distance**2
    a = (w * roi + 1.0) * np.exp(-distance / (2.0 * sigma**2))  # Eq. 9
    low, high = a.min(), a.max()
    if high <= low:
        return np.ones(label.shape, np.float32)
    return ((a - low) / (high - low)).astype(np.float32)  # Eq. 10


def boundary_weight_maps(labels: np.ndarray, **kwargs) -> np.ndarray:
    """:func:`boundary_weight_map` of each slice of ``(N, H, W)`` or ``(N, H, W, 1)``."""
    labels = _squeeze_channel(np.asarray(labels), 3)
    return np.stack([boundary_weight_map(s, **kwargs) for s in labels]).reshape(labels.shape)


def with_weight_map(labels: np.ndarray, weights: np.ndarray | None = None, **kwargs) -> np.ndarray:
    """The target of :class:`~keras_liverseg.losses.WeightedDiceLoss`: ``[label, W]``.

    Args:
        labels: integer label maps ``(N, H, W)`` or ``(N, H, W, 1)``.
        weights: weight maps ``(N, H, W)``; computed with :func:`boundary_weight_maps`
            (``kwargs`` passed on) when ``None``.

    Returns:
        float32 ``(N, H, W, 2)``: channel 0 the labels, channel 1 the weights.
    """
    labels = _squeeze_channel(np.asarray(labels), 3)
    if weights is None:
        weights = boundary_weight_maps(labels, **kwargs)
    weights = _squeeze_channel(np.asarray(weights), 3)
    if weights.shape != labels.shape:
        raise ValueError(f"weights {weights.shape} do not match labels {labels.shape}")
    return np.stack([labels, weights], axis=-1).astype(np.float32)
