"""Volume-overlap metrics of two binary masks: Dice, Jaccard (IoU), VOE and RVD.

Definitions follow the LiTS benchmark (Bilic et al. 2023, "The Liver Tumor Segmentation
Benchmark (LiTS)", Medical Image Analysis 84, section 3.4), with ``A`` the prediction and
``B`` the reference (ground truth):

- Dice = 2 |A ∩ B| / (|A| + |B|)
- Jaccard (IoU) = |A ∩ B| / |A ∪ B|
- VOE (volumetric overlap error) = 1 - Jaccard
- RVD (relative volume difference) = (|A| - |B|) / |B|, signed: > 0 over-segments,
  < 0 under-segments (the same sign as medpy's ``ravd(result, reference)``).

Empty masks (see also :mod:`keras_liverseg.metrics.surface`):

- both empty: Dice 1, Jaccard 1, VOE 0, RVD 0 (a perfect "nothing there" answer);
- only the prediction empty: Dice 0, Jaccard 0, VOE 1, RVD -1;
- only the reference empty: Dice 0, Jaccard 0, VOE 1, RVD ``nan`` (undefined, division by an
  empty reference). Summaries skip ``nan`` values and report how many cases they left out.

All functions take arrays of any shape and dtype; non-zero means foreground. Both arrays must
have the same shape (the same voxel grid), so voxel counts compare volumes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

__all__ = [
    "OverlapCounts",
    "dice",
    "dice_global",
    "iou",
    "jaccard",
    "overlap_counts",
    "rvd",
    "voe",
]


@dataclass(frozen=True)
class OverlapCounts:
    """Voxel counts of a prediction ``A`` and a reference ``B``: everything overlap metrics need.

    Keeping the counts (rather than only the ratios) lets :func:`dice_global` pool cases the
    way LiTS's "Dice global" does.
    """

    intersection: int
    """``|A ∩ B|``"""
    pred: int
    """``|A|``"""
    gt: int
    """``|B|``"""

    @property
    def union(self) -> int:
        """``|A ∪ B|``"""
        return self.pred + self.gt - self.intersection

    def dice(self) -> float:
        """Dice coefficient; 1 when both masks are empty."""
        total = self.pred + self.gt
        return 1.0 if total == 0 else 2.0 * self.intersection / total

    def jaccard(self) -> float:
        """Jaccard index (IoU); 1 when both masks are empty."""
        union = self.union
        return 1.0 if union == 0 else self.intersection / union

    def voe(self) -> float:
        """Volumetric overlap error, ``1 - Jaccard``; 0 when both masks are empty."""
        return 1.0 - self.jaccard()

    def rvd(self) -> float:
        """Signed relative volume difference; 0 if both empty, ``nan`` if only ``B`` is empty."""
        if self.gt == 0:
            return 0.0 if self.pred == 0 else math.nan
        return (self.pred - self.gt) / self.gt


def _as_bool(mask: np.ndarray) -> np.ndarray:
    array = np.asarray(mask)
    return array if array.dtype == np.bool_ else array != 0


def overlap_counts(pred: np.ndarray, gt: np.ndarray) -> OverlapCounts:
    """Count ``|A ∩ B|``, ``|A|`` and ``|B|`` for a prediction ``pred`` and a reference ``gt``."""
    a = _as_bool(pred)
    b = _as_bool(gt)
    if a.shape != b.shape:
        raise ValueError(f"prediction shape {a.shape} differs from reference shape {b.shape}")
    return OverlapCounts(
        intersection=int(np.count_nonzero(a & b)),
        pred=int(np.count_nonzero(a)),
        gt=int(np.count_nonzero(b)),
    )


def dice(pred: np.ndarray, gt: np.ndarray) -> float:
    """Dice coefficient ``2|A ∩ B| / (|A| + |B|)`` (LiTS "Dice per case" for one case).

    Returns 1.0 when both masks are empty and 0.0 when exactly one is.
    """
    return overlap_counts(pred, gt).dice()


def jaccard(pred: np.ndarray, gt: np.ndarray) -> float:
    """Jaccard index / intersection over union ``|A ∩ B| / |A ∪ B|``; 1.0 if both are empty."""
    return overlap_counts(pred, gt).jaccard()


iou = jaccard
"""Alias of :func:`jaccard`."""


def voe(pred: np.ndarray, gt: np.ndarray) -> float:
    """Volumetric overlap error ``1 - |A ∩ B| / |A ∪ B|`` (LiTS VOE, a fraction, not %)."""
    return overlap_counts(pred, gt).voe()


def rvd(pred: np.ndarray, gt: np.ndarray) -> float:
    """Signed relative volume difference ``(|A| - |B|) / |B|`` (LiTS RVD, a fraction).

    0.0 when both masks are empty; ``nan`` when only the reference is empty.
    """
    return overlap_counts(pred, gt).rvd()


def dice_global(counts: Iterable[OverlapCounts]) -> float:
    """LiTS "Dice global": Dice of all cases pooled as if they were one volume.

    ``2 Σ|A_i ∩ B_i| / Σ(|A_i| + |B_i|)``; 1.0 when every mask of every case is empty and
    ``nan`` for no cases at all.
    """
    counts = list(counts)
    if not counts:
        return math.nan
    intersection = sum(c.intersection for c in counts)
    total = sum(c.pred + c.gt for c in counts)
    return 1.0 if total == 0 else 2.0 * intersection / total
