"""Segmentation metrics the LiTS way (Bilic et al. 2023, "The Liver Tumor Segmentation
Benchmark (LiTS)").

- :mod:`~keras_liverseg.metrics.overlap`: Dice, Jaccard (IoU), VOE, RVD, Dice global.
- :mod:`~keras_liverseg.metrics.surface`: ASSD, MSSD (Hausdorff), HD95, surface Dice, in mm.
- :mod:`~keras_liverseg.metrics.evaluate`: per-case and summary evaluation of label volumes
  (liver = label >= 1, tumor = label == 2), NIfTI reading, grid checks.
- :mod:`~keras_liverseg.metrics.pairing`: pairing prediction and ground-truth files.
- :mod:`~keras_liverseg.metrics.report`: text / CSV / JSON tables.
- :mod:`~keras_liverseg.metrics.keras_metrics`: streaming Keras metrics ``ClassDice`` and
  ``ClassIoU`` for ``model.compile``; imported on first use, so the NumPy metrics do not load
  Keras.

Empty masks: both empty gives Dice 1 and distances 0; exactly one empty gives Dice 0 and
distances ``nan`` (undefined), which summaries leave out and count.
"""

from __future__ import annotations

import importlib
from typing import Any

from keras_liverseg.metrics.errors import EvaluationInputError
from keras_liverseg.metrics.evaluate import (
    CLASSES,
    METRICS,
    CaseResult,
    ClassResult,
    ClassSummary,
    MetricSummary,
    class_mask,
    evaluate_labels,
    iter_evaluate,
    read_labels,
    summarize,
)
from keras_liverseg.metrics.overlap import (
    OverlapCounts,
    dice,
    dice_global,
    iou,
    jaccard,
    overlap_counts,
    rvd,
    voe,
)
from keras_liverseg.metrics.pairing import CasePair, find_pairs
from keras_liverseg.metrics.surface import (
    SurfaceDistances,
    assd,
    hausdorff,
    hd95,
    mssd,
    surface_dice,
    surface_distances,
    surface_voxels,
)

_KERAS_NAMES = ("ClassDice", "ClassIoU", "LIVER", "TUMOR", "lits_metrics")


def __getattr__(name: str) -> Any:
    if name in _KERAS_NAMES:
        module = importlib.import_module(f"{__name__}.keras_metrics")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CLASSES",
    "METRICS",
    "CasePair",
    "CaseResult",
    "ClassResult",
    "ClassSummary",
    "EvaluationInputError",
    "MetricSummary",
    "OverlapCounts",
    "SurfaceDistances",
    "assd",
    "class_mask",
    "dice",
    "dice_global",
    "evaluate_labels",
    "find_pairs",
    "hausdorff",
    "hd95",
    "iou",
    "iter_evaluate",
    "jaccard",
    "mssd",
    "overlap_counts",
    "read_labels",
    "rvd",
    "summarize",
    "surface_dice",
    "surface_distances",
    "surface_voxels",
    "voe",
    *_KERAS_NAMES,
]
