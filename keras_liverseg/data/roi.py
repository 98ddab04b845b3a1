"""The liver's region of interest: what the second stage of a liver cascade sees.

A cascade segments a scan twice. The first model reads whole axial slices and finds the
liver; the second reads only the liver's box, resized to the same input size, so the liver's
edge and small lesions cover two to three times more pixels. ES-UNet++ (Cui et al., seed
003, Sec. 4.1) crops to the liver this way before segmenting tumors; nnU-Net's cascade does
the same at a coarser scale.

Training crops with the labels' liver (:func:`keras_liverseg.data.volumes.crop_to_liver`),
inference with the first stage's liver (:mod:`keras_liverseg.inference.predictor`); both
use :meth:`LiverROI.box`, so the second stage sees at inference the framing it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LiverROI:
    """How a liver mask becomes the box a second-stage model reads.

    Attributes:
        margin: widen the liver's in-plane bounding box by this share of its size on every
            side (room for a first stage that misses part of the liver's edge).
        slices: add this many axial slices above and below the liver's slices.
    """

    margin: float = 0.1
    slices: int = 2

    def __post_init__(self):
        if self.margin < 0 or self.slices < 0:
            raise ValueError(f"margin and slices must be >= 0, got {self.margin}, {self.slices}")

    def box(self, liver: np.ndarray) -> tuple[slice, slice, slice] | None:
        """The ROI of a 3D liver mask (axial slices ``liver[:, :, k]``), or None if empty.

        In plane: the liver's bounding box over all slices, widened by ``margin`` of its
        extent; along the slices: the liver's first to last slice, widened by ``slices``.
        Clipped to the array.
        """
        liver = np.asarray(liver, dtype=bool)
        if liver.ndim != 3:
            raise ValueError(f"liver mask must be 3D, got shape {liver.shape}")
        box = []
        for axis in range(3):
            other = tuple(a for a in range(3) if a != axis)
            hit = np.flatnonzero(liver.any(axis=other))
            if hit.size == 0:
                return None
            pad = self.slices if axis == 2 else int(np.ceil(self.margin * (hit[-1] - hit[0] + 1)))
            box.append(slice(max(int(hit[0]) - pad, 0),
                             min(int(hit[-1]) + 1 + pad, liver.shape[axis])))
        return box[0], box[1], box[2]
