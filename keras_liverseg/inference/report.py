"""The JSON report of a segmentation: volumes, lesions, model, versions, timing.

Volumes are in millilitres (1 mL = 1000 mm^3). ``liver_volume_ml`` is the whole organ,
parenchyma and tumor (label >= 1); ``tumor_burden_percent`` is tumor / whole organ * 100.
Lesions are 26-connected tumor components, largest first, with their centroid in world
millimetres of the output file (NIfTI RAS+: x grows towards the patient's Right, y towards
Anterior, z towards Superior) and the mean and max tumor probability of their voxels.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from keras_liverseg.inference.postprocess import (
    LESION_CONNECTIVITY,
    PostprocessOptions,
    bounding_box,
    component_sizes,
    label_components,
    lesion_probabilities,
)
from keras_liverseg.io.atomic import atomic_write_text
from keras_liverseg.io.orientation import CANONICAL_AXCODES

__all__ = [
    "LABELS",
    "REPORT_VERSION",
    "ReportFacts",
    "describe_input",
    "lesions",
    "report_json",
    "scan_report",
    "versions",
    "volume_summary",
    "write_report",
]

REPORT_VERSION = 1
LABELS = {0: "background", 1: "liver", 2: "tumor"}


@dataclass(frozen=True)
class ReportFacts:
    """What the caller of the predictor knows about the run and puts in each scan's report
    (the ``liverseg predict`` command: where the outputs go, its own options, the time it
    took to read the scan and to load the model).

    Attributes:
        output: the segmentation file.
        overlay: the overlay PNG, or ``None``.
        options: more options to list beside the predictor's (``fast``, ``device``, ...).
        load_s: seconds the caller took to read the scan (it then passed the
            :class:`~keras_liverseg.io.Scan`), counted in ``timing_s`` ``load`` and ``total``.
        model_load_s: seconds it took to load the model (``timing_s`` ``model_load``).
    """

    output: str | os.PathLike | None = None
    overlay: str | os.PathLike | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    load_s: float | None = None
    model_load_s: float | None = None


def describe_input(scan: Any, reorientation: Any) -> dict[str, Any]:
    """The report's ``input``: the scan's source, shape, spacing, orientation and affine."""
    return {
        "path": scan.source,
        "kind": scan.kind,
        "shape": list(scan.shape),
        "spacing_mm": [round(v, 6) for v in scan.spacing],
        "orientation": "".join(reorientation.original_axcodes),
        "canonical_orientation": "".join(CANONICAL_AXCODES),
        "affine": [[round(float(v), 6) for v in row] for row in scan.affine],
        **scan.info,
    }


def scan_report(
    scan: Any,
    reorientation: Any,
    labels: np.ndarray,
    *,
    model: dict[str, Any],
    batch_size: int,
    tta: bool,
    postprocess: PostprocessOptions,
    timing: dict[str, float],
    started: float,
    facts: ReportFacts | None = None,
    tumor_prob: np.ndarray | None = None,
    slices_read: dict[str, int] | None = None,
    crf: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The whole report of one segmented scan.

    Args:
        scan: the :class:`~keras_liverseg.io.Scan` segmented.
        reorientation: its reorientation to the canonical orientation.
        labels: the final labels, on the scan's grid.
        model: :meth:`~keras_liverseg.inference.LoadedModel.describe` of the model.
        batch_size, tta, postprocess: the predictor's options.
        timing: seconds of the steps so far (``load``, ``predict``, ...); this adds
            ``report`` (the volumes and lesions measured here) and ``total``.
        started: ``time.perf_counter()`` when the work on this scan started.
        facts: the caller's :class:`ReportFacts`, if any: they add ``output`` and
            ``overlay``, and their options and times. (The scan's warnings are in
            ``warnings``, a DICOM series' skipped files in ``input.skipped_files``.)
        tumor_prob: the model's tumor probability of each voxel on the scan's grid
            (before the argmax), for each lesion's ``mean_tumor_prob`` and
            ``max_tumor_prob``; ``None`` when the model has no tumor class.
        slices_read: the first stage's axial slices read (``read``, of ``total``; with
            ``survey_step`` 1 every slice, else only the liver's run,
            :mod:`keras_liverseg.inference.slice_range`).
        crf: the fully connected CRF's options
            (:class:`~keras_liverseg.inference.crf.CRFOptions`) when it refined the
            probabilities, else None (the report's ``options.crf``).
    """
    tick = time.perf_counter()
    found = lesions(labels, scan.affine, tumor_prob)
    summary = volume_summary(labels, scan.affine)
    timing = dict(timing)
    timing["report"] = time.perf_counter() - tick
    timing["total"] = time.perf_counter() - started
    options = {"batch_size": batch_size, "tta": tta,
               "postprocess": dataclasses.asdict(postprocess), "crf": crf}
    if slices_read is not None:
        options["all_slices"] = slices_read["survey_step"] == 1
    if facts is not None:
        options.update(facts.options)
        if facts.load_s is not None:  # the caller read the scan before this started
            timing["load"] = facts.load_s
            timing["total"] += facts.load_s
        if facts.model_load_s is not None:
            timing["model_load"] = facts.model_load_s
    report = {
        "report_version": REPORT_VERSION,
        "input": describe_input(scan, reorientation),
        "labels": {str(k): v for k, v in LABELS.items()},
        **summary,
        "lesion_count": len(found),
        "lesions": found,
        "model": model,
        "options": options,
        "versions": versions(),
        "timing_s": {key: round(value, 3) for key, value in timing.items()},
        "warnings": list(scan.warnings),
    }
    if slices_read is not None:
        report["slices_read"] = dict(slices_read)
    if facts is not None:
        report["output"] = None if facts.output is None else str(facts.output)
        report["overlay"] = None if facts.overlay is None else str(facts.overlay)
    return report


def versions() -> dict[str, str | None]:
    """Versions of Python, keras_liverseg, Keras, its backend and the I/O libraries."""
    from keras_liverseg import __version__

    found: dict[str, str | None] = {"python": platform.python_version()}
    found["keras_liverseg"] = __version__
    for package in ("keras", "tensorflow", "jax", "numpy", "scipy", "nibabel", "pydicom",
                    "onnxruntime"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = None
    # the backend that ran, if one did: a prediction from cached ONNX graphs starts none
    keras = sys.modules.get("keras")
    found["keras_backend"] = keras.backend.backend() if keras is not None else None
    return found


def _ml(voxels: int | float, voxel_mm3: float) -> float:
    return round(float(voxels) * voxel_mm3 / 1000.0, 4)


def volume_summary(labels: np.ndarray, affine: np.ndarray) -> dict[str, Any]:
    """Liver, parenchyma and tumor volumes (mL) and the tumor burden (% of the liver)."""
    labels = np.asarray(labels)
    voxel_mm3 = float(abs(np.linalg.det(np.asarray(affine, dtype=np.float64)[:3, :3])))
    liver = int(np.count_nonzero(labels))
    tumor = int(np.count_nonzero(labels == 2))
    return {
        "voxel_volume_mm3": round(voxel_mm3, 6),
        "liver_volume_ml": _ml(liver, voxel_mm3),
        "liver_parenchyma_volume_ml": _ml(liver - tumor, voxel_mm3),
        "tumor_volume_ml": _ml(tumor, voxel_mm3),
        "tumor_burden_percent": round(100.0 * tumor / liver, 4) if liver else 0.0,
    }


def lesions(
    labels: np.ndarray, affine: np.ndarray, tumor_prob: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """One entry per tumor lesion (26-connected component of label 2), largest first.

    Each entry: ``id`` (1-based, by decreasing size), ``voxels``, ``volume_ml``,
    ``centroid_voxel`` (array indices), ``centroid_mm`` (world RAS+ mm), and
    ``mean_tumor_prob`` and ``max_tumor_prob``: the mean and max of ``tumor_prob`` (the
    model's tumor probability on the labels' grid) over the lesion's voxels, rounded to 3
    decimals (``None`` without ``tumor_prob``).
    """
    labels = np.asarray(labels)
    affine = np.asarray(affine, dtype=np.float64)
    tumor = labels == 2
    box = bounding_box(tumor)
    if box is None:
        return []
    tumor = tumor[box]
    components, count = label_components(tumor, LESION_CONNECTIVITY)
    sizes = component_sizes(components, count)[1:]
    centres = _centroids(components, count, sizes) + [s.start for s in box]
    means = peaks = [None] * count
    if tumor_prob is not None:
        if tuple(tumor_prob.shape[:3]) != tuple(labels.shape[:3]):
            raise ValueError(f"tumor_prob shape {tumor_prob.shape} differs from labels "
                             f"{labels.shape}")
        means, peaks = (
            [round(float(v), 3) for v in values]
            for values in lesion_probabilities(components, count,
                                               tumor_prob.reshape(labels.shape)[box])
        )
    voxel_mm3 = float(abs(np.linalg.det(affine[:3, :3])))
    entries = []
    for rank, i in enumerate(np.argsort(-sizes, kind="stable"), start=1):
        centre = centres[i]
        world = affine[:3, :3] @ centre[:3] + affine[:3, 3]
        entries.append(
            {
                "id": rank,
                "voxels": int(sizes[i]),
                "volume_ml": _ml(sizes[i], voxel_mm3),
                "centroid_voxel": [round(float(v), 3) for v in centre[:3]],
                "centroid_mm": [round(float(v), 3) for v in world],
                "mean_tumor_prob": means[i],
                "max_tumor_prob": peaks[i],
            }
        )
    return entries


def report_json(report: dict[str, Any]) -> str:
    """``report`` as indented JSON text (NumPy scalars and arrays, paths and tuples allowed)."""
    return json.dumps(report, indent=2, default=_jsonable) + "\n"


def _centroids(components: np.ndarray, count: int, sizes: np.ndarray) -> np.ndarray:
    """Mean voxel index of labels ``1..count``, ``(count, ndim)``, slab by slab (SciPy's
    ``center_of_mass`` makes float64 copies of the whole image)."""
    sums = np.zeros((count + 1, components.ndim))
    step = max(1, (1 << 20) // max(1, components[0].size))
    for start in range(0, components.shape[0], step):
        slab = components[start : start + step]
        where = np.nonzero(slab)
        ids = slab[where]
        for axis, coords in enumerate(where):
            offset = start if axis == 0 else 0
            sums[:, axis] += np.bincount(ids, weights=coords + offset, minlength=count + 1)
    return sums[1:] / np.maximum(sizes, 1)[:, None]


def write_report(report: dict[str, Any], path: str | os.PathLike) -> Path:
    """Write ``report`` as indented JSON, atomically."""
    return atomic_write_text(path, report_json(report))


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
