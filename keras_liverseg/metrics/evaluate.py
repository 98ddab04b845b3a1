"""Evaluate label volumes the LiTS way: per-case metrics per class, and their summary.

LiTS conventions (Bilic et al. 2023, "The Liver Tumor Segmentation Benchmark (LiTS)"):
labels are 0 background, 1 liver, 2 tumor; the *liver* class is ``label >= 1`` (the organ,
tumors included) and the *tumor* class is ``label == 2``. Each case gets every metric of
:mod:`~keras_liverseg.metrics.overlap` and :mod:`~keras_liverseg.metrics.surface` per class;
the summary gives, per class and metric, the mean and standard deviation over cases
("Dice per case" is the mean Dice) and the pooled "Dice global".

Undefined values (``nan``: distances when exactly one mask is empty, RVD when only the
reference is empty) are left out of the means; each summary reports how many cases it used
(``n``) and how many it left out (``excluded``). Standard deviations are population ones
(``ddof=0``, numpy's default).

NIfTI files are opened by :func:`keras_liverseg.io.open_nifti`. Label volumes must be 3-D (a
trailing singleton 4th axis is dropped); the voxel spacing in mm comes from the header's zooms
(converted if the header says metres or microns); labels are rounded to integers and checked
to lie in {0, 1, 2}. A ground truth with other label values (TotalSegmentator's, where the
liver is 5) is read with its liver and tumor values and remapped to LiTS labels
(:func:`read_ground_truth`, :func:`remap_labels`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from keras_liverseg.io import labels as label_files
from keras_liverseg.io.errors import InputError
from keras_liverseg.io.labels import LABELS
from keras_liverseg.metrics.errors import EvaluationInputError
from keras_liverseg.metrics.overlap import OverlapCounts, dice_global, overlap_counts
from keras_liverseg.metrics.pairing import CasePair
from keras_liverseg.metrics.surface import surface_distances

__all__ = [
    "CLASSES",
    "LABELS",
    "METRICS",
    "CaseResult",
    "ClassResult",
    "ClassSummary",
    "Geometry",
    "LabelVolume",
    "MetricSummary",
    "NotLiTSLabels",
    "check_geometry",
    "class_mask",
    "evaluate_labels",
    "evaluate_pair",
    "iter_evaluate",
    "read_geometry",
    "read_ground_truth",
    "read_labels",
    "remap_labels",
    "resample_labels",
    "same_grid",
    "summarize",
]

CLASSES = ("liver", "tumor")
"""Classes evaluated: ``liver`` is ``label >= 1``, ``tumor`` is ``label == 2``."""

METRICS = ("dice", "jaccard", "voe", "rvd", "assd", "mssd", "hd95", "surface_dice")
"""Metric names in the order of the tables; distances are in mm, the others fractions."""

_TO_MM = {"meter": 1000.0, "micron": 1e-3}

AFFINE_ATOL = 1e-3
"""Affines closer than this (``np.allclose`` absolute tolerance) describe the same grid."""


def class_mask(labels: np.ndarray, name: str) -> np.ndarray:
    """The boolean mask of class ``name`` (``"liver"``: label >= 1, ``"tumor"``: label == 2)."""
    if name == "liver":
        return labels >= 1
    if name == "tumor":
        return labels == 2
    raise ValueError(f"unknown class {name!r}; known classes: {', '.join(CLASSES)}")


# --------------------------------------------------------------------------- reading NIfTI


@dataclass(frozen=True)
class Geometry:
    """The voxel grid of a NIfTI image: 3-D shape, voxel-to-world affine and spacing in mm."""

    shape: tuple[int, int, int]
    affine: np.ndarray
    spacing: tuple[float, float, float]


@dataclass(frozen=True)
class LabelVolume:
    """A label volume (uint8, values in {0, 1, 2}) and its grid."""

    labels: np.ndarray
    geometry: Geometry


def _load(path: Path, role: str):
    try:
        return label_files.open_grid(path)
    except label_files.LabelError as error:
        raise EvaluationInputError(f"{role} {error.path} {error.reason}") from None
    except InputError as error:  # "<path>: no such file", NRRD gets how to convert it
        raise EvaluationInputError(f"{role} {error}") from None


def _geometry(image, shape: tuple[int, ...], path: Path, role: str) -> Geometry:
    # Zooms are float32: take the shortest decimal that is the same float32 (0.8, not
    # 0.800000011920929), so that tolerances such as 2 x 0.8 mm compare as intended.
    spacing = tuple(float(str(np.float32(z))) for z in image.header.get_zooms()[:3])
    unit = image.header.get_xyzt_units()[0]  # "mm" (LiTS) or "unknown" are taken as mm
    if unit in _TO_MM:
        spacing = tuple(s * _TO_MM[unit] for s in spacing)
    if not all(math.isfinite(s) and s > 0 for s in spacing):
        raise EvaluationInputError(f"{role} {path} has an invalid voxel spacing {spacing}")
    return Geometry(shape=shape, affine=np.asarray(image.affine, dtype=np.float64), spacing=spacing)


def read_geometry(path: Path | str, role: str = "image") -> Geometry:
    """Read only the header of the NIfTI file ``path``: its grid (cheap, no voxel data)."""
    image, shape = _load(Path(path), role)
    return _geometry(image, shape, Path(path), role)


def read_labels(path: Path | str, role: str = "image", lits: bool = True) -> LabelVolume:
    """Read a NIfTI label volume: integer labels in {0, 1, 2} as uint8, with its grid (the
    checks of :func:`keras_liverseg.io.labels.read_labels`, in evaluation's words).

    With ``lits=False`` any integer labels are returned, in the file's dtype, for
    :func:`remap_labels` (a multi-label ground truth such as TotalSegmentator's).

    Raises :class:`EvaluationInputError` for a missing or unreadable file, a volume that is not
    3-D (a trailing singleton 4th axis is allowed), non-integer values or (``lits``) labels
    outside {0, 1, 2} (:class:`NotLiTSLabels`).
    """
    path = Path(path)
    try:
        read = label_files.read_labels(path, lits=lits)
    except label_files.LabelValuesError as error:
        raise NotLiTSLabels(f"{role} {error.path} {error.reason}") from None
    except label_files.LabelError as error:
        raise EvaluationInputError(f"{role} {error.path} {error.reason}") from None
    except InputError as error:
        raise EvaluationInputError(f"{role} {error}") from None
    geometry = _geometry(read.image, read.labels.shape, path, role)
    return LabelVolume(labels=read.labels, geometry=geometry)


class NotLiTSLabels(EvaluationInputError):
    """A label volume with values outside LiTS's {0, 1, 2}."""


LITS_LIVER = (1, 2)
"""The ground-truth labels that make up the liver in LiTS (the organ with its tumors)."""
LITS_TUMOR = (2,)
"""The ground-truth label of tumor in LiTS."""


def remap_labels(
    labels: np.ndarray, liver: Sequence[int] = LITS_LIVER, tumor: Sequence[int] = LITS_TUMOR
) -> np.ndarray:
    """A ground truth with its own label values as LiTS labels (uint8 0 / 1 / 2).

    Voxels whose label is in ``tumor`` become 2, the other voxels whose label is in ``liver``
    become 1, everything else 0 (so a tumor label also counts as liver, as LiTS's liver
    includes its tumors). With the defaults a LiTS label volume is unchanged; TotalSegmentator's
    117-class output, where the liver is 5 and there is no tumor class, is
    ``remap_labels(seg, liver=(5,), tumor=())``.
    """
    labels = np.asarray(labels)
    out = np.zeros(labels.shape, np.uint8)
    out[np.isin(labels, list(liver))] = 1
    out[np.isin(labels, list(tumor))] = 2
    return out


def read_ground_truth(
    path: Path | str, liver: Sequence[int] | None = None, tumor: Sequence[int] | None = None
) -> LabelVolume:
    """Read a ground-truth label volume as LiTS labels.

    ``liver`` and ``tumor`` are its label values of the liver and of tumor (see
    :func:`remap_labels`); with neither (``None``) it must hold LiTS labels, and other values
    are an :class:`EvaluationInputError` that points to ``--gt-liver``. ``tumor=None`` with a
    ``liver`` means there is no tumor label.
    """
    if liver is None and tumor is None:
        try:
            return read_labels(path, "ground truth")
        except NotLiTSLabels as error:
            raise NotLiTSLabels(
                f"{error}; for a ground truth with other labels (e.g. TotalSegmentator's, "
                "liver = 5) give its liver label(s) with --gt-liver (and tumor with --gt-tumor)"
            ) from None
    volume = read_labels(path, "ground truth", lits=False)
    labels = remap_labels(volume.labels, liver or LITS_LIVER[:1], tumor or ())
    return LabelVolume(labels=labels, geometry=volume.geometry)


# --------------------------------------------------------------------------- grids


def check_geometry(pred: Geometry, gt: Geometry, pred_path: object, gt_path: object) -> None:
    """Raise :class:`EvaluationInputError` unless ``pred`` lies on the grid of ``gt``."""
    if pred.shape != gt.shape:
        raise EvaluationInputError(
            f"prediction {pred_path} has shape {pred.shape} but ground truth {gt_path} has "
            f"shape {gt.shape} (use --resample to resample the prediction to the ground truth)"
        )
    if not np.allclose(pred.affine, gt.affine, atol=AFFINE_ATOL, rtol=0):
        worst = float(np.max(np.abs(pred.affine - gt.affine)))
        raise EvaluationInputError(
            f"prediction {pred_path} and ground truth {gt_path} have different affines "
            f"(largest difference {worst:.4g}; use --resample to resample the prediction to "
            "the ground truth)"
        )


def same_grid(pred: Geometry, gt: Geometry) -> bool:
    """True if ``pred`` and ``gt`` share shape and affine (within :data:`AFFINE_ATOL`)."""
    return pred.shape == gt.shape and np.allclose(pred.affine, gt.affine, atol=AFFINE_ATOL, rtol=0)


def resample_labels(
    labels: np.ndarray,
    source_affine: np.ndarray,
    target_shape: Sequence[int],
    target_affine: np.ndarray,
) -> np.ndarray:
    """Resample a label volume onto another voxel grid by nearest neighbour.

    Each target voxel ``j`` takes the label at source voxel
    ``inv(source_affine) @ target_affine @ j`` (``scipy.ndimage.affine_transform``, order 0);
    target voxels outside the source volume become background.
    """
    to_source = np.linalg.inv(np.asarray(source_affine, np.float64)) @ np.asarray(
        target_affine, np.float64
    )
    return ndimage.affine_transform(
        np.asarray(labels, dtype=np.uint8),
        to_source,
        output_shape=tuple(int(n) for n in target_shape),
        output=np.uint8,
        order=0,
        mode="constant",
        cval=0,
    )


# --------------------------------------------------------------------------- per case


@dataclass(frozen=True)
class ClassResult:
    """The metrics of one class in one case."""

    counts: OverlapCounts
    metrics: dict[str, float]
    """One value per name of :data:`METRICS`; ``nan`` where undefined."""
    gt_volume_ml: float
    pred_volume_ml: float


@dataclass(frozen=True)
class CaseResult:
    """The metrics of one case, per class."""

    case: str
    classes: dict[str, ClassResult]
    spacing: tuple[float, ...]
    pred: Path | None = None
    gt: Path | None = None
    resampled: bool = False


def evaluate_labels(
    pred: np.ndarray,
    gt: np.ndarray,
    spacing: Sequence[float],
    classes: Sequence[str] = CLASSES,
    tolerance: float = 1.0,
) -> dict[str, ClassResult]:
    """All metrics, per class, of the label volume ``pred`` against the reference ``gt``.

    ``spacing`` is the voxel size in mm along each axis, ``tolerance`` the surface-Dice
    tolerance in mm.
    """
    if pred.shape != gt.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {gt.shape}")
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 mm, got {tolerance}")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    results = {}
    for name in classes:
        a = class_mask(pred, name)
        b = class_mask(gt, name)
        counts = overlap_counts(a, b)
        distances = surface_distances(a, b, spacing)
        metrics = {
            "dice": counts.dice(),
            "jaccard": counts.jaccard(),
            "voe": counts.voe(),
            "rvd": counts.rvd(),
            "assd": distances.assd(),
            "mssd": distances.mssd(),
            "hd95": distances.hd95(),
            "surface_dice": distances.surface_dice(tolerance),
        }
        results[name] = ClassResult(
            counts=counts,
            metrics=metrics,
            gt_volume_ml=counts.gt * voxel_ml,
            pred_volume_ml=counts.pred * voxel_ml,
        )
    return results


def evaluate_pair(
    pair: CasePair,
    classes: Sequence[str] = CLASSES,
    tolerance: float = 1.0,
    resample: bool = False,
    gt_liver: Sequence[int] | None = None,
    gt_tumor: Sequence[int] | None = None,
    visit: Callable[[CasePair, LabelVolume, LabelVolume], None] | None = None,
) -> CaseResult:
    """Read one prediction / ground-truth pair of NIfTI files and evaluate it.

    The spacing comes from the ground truth's header. A prediction on another grid is an
    :class:`EvaluationInputError` unless ``resample`` is true; then it is resampled to the
    ground-truth grid (:func:`resample_labels`). ``gt_liver`` / ``gt_tumor``: the ground
    truth's own label values of liver and tumor (:func:`read_ground_truth`; default LiTS).
    ``visit(pair, pred, gt)``, if given, sees the two label volumes as they are scored (LiTS
    labels, the prediction on the ground truth's grid), e.g. to draw them.
    """
    gt = read_ground_truth(pair.gt, gt_liver, gt_tumor)
    pred = read_labels(pair.pred, "prediction")
    resampled = False
    if not same_grid(pred.geometry, gt.geometry):
        if not resample:
            check_geometry(pred.geometry, gt.geometry, pair.pred, pair.gt)
        labels = resample_labels(
            pred.labels, pred.geometry.affine, gt.geometry.shape, gt.geometry.affine
        )
        pred = LabelVolume(labels=labels, geometry=gt.geometry)
        resampled = True
    if visit is not None:
        visit(pair, pred, gt)
    return CaseResult(
        case=pair.case,
        classes=evaluate_labels(pred.labels, gt.labels, gt.geometry.spacing, classes, tolerance),
        spacing=gt.geometry.spacing,
        pred=pair.pred,
        gt=pair.gt,
        resampled=resampled,
    )


def iter_evaluate(
    pairs: Sequence[CasePair],
    classes: Sequence[str] = CLASSES,
    tolerance: float = 1.0,
    resample: bool = False,
    gt_liver: Sequence[int] | None = None,
    gt_tumor: Sequence[int] | None = None,
    visit: Callable[[CasePair, LabelVolume, LabelVolume], None] | None = None,
) -> Iterator[CaseResult]:
    """Evaluate ``pairs`` one by one, yielding each case's result as soon as it is ready.

    All headers are read first, so that a missing file or a grid mismatch fails before any
    long computation. ``gt_liver``, ``gt_tumor`` and ``visit`` as in :func:`evaluate_pair`.
    """
    for pair in pairs:
        gt = read_geometry(pair.gt, "ground truth")
        pred = read_geometry(pair.pred, "prediction")
        if not resample:
            check_geometry(pred, gt, pair.pred, pair.gt)
    for pair in pairs:
        yield evaluate_pair(pair, classes, tolerance, resample, gt_liver, gt_tumor, visit)


# --------------------------------------------------------------------------- summary


@dataclass(frozen=True)
class MetricSummary:
    """Mean and standard deviation of one metric over the cases where it is defined."""

    mean: float
    std: float
    n: int
    """Cases used."""
    excluded: int
    """Cases left out because the metric is undefined there (``nan``)."""


@dataclass(frozen=True)
class ClassSummary:
    """The summary of one class over all cases."""

    n_cases: int
    dice_per_case: float
    """LiTS "Dice per case": the mean of the per-case Dice scores."""
    dice_global: float
    """LiTS "Dice global": the Dice of all cases pooled into one volume."""
    metrics: dict[str, MetricSummary] = field(default_factory=dict)


def _summary(values: Iterable[float]) -> MetricSummary:
    values = np.asarray(list(values), dtype=np.float64)
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        return MetricSummary(math.nan, math.nan, 0, int(values.size))
    return MetricSummary(
        mean=float(defined.mean()),
        std=float(defined.std()),
        n=int(defined.size),
        excluded=int(values.size - defined.size),
    )


def summarize(
    results: Sequence[CaseResult], classes: Sequence[str] | None = None
) -> dict[str, ClassSummary]:
    """Summarize per-case results per class: mean/std/n/excluded of each metric, Dice per case
    and Dice global (LiTS)."""
    if classes is None:
        classes = list(results[0].classes) if results else []
    summaries = {}
    for name in classes:
        per_case = [r.classes[name] for r in results]
        metrics = {m: _summary(c.metrics[m] for c in per_case) for m in METRICS}
        summaries[name] = ClassSummary(
            n_cases=len(per_case),
            dice_per_case=metrics["dice"].mean,
            dice_global=dice_global(c.counts for c in per_case),
            metrics=metrics,
        )
    return summaries
