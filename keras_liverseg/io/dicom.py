"""Read one DICOM CT series into a HU volume with a NIfTI (RAS+) affine.

Array layout: ``volume[i, j, k]`` is column ``i``, row ``j`` of the k-th slice, slices
sorted by position along the slice normal (``row_cosines x column_cosines``). This is the
layout of ITK, NRRD and dcm2niix. The affine maps ``(i, j, k)`` to RAS+ millimetres: DICOM
patient coordinates are LPS+, so the first two world rows are negated.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.misc import is_dicom

from keras_liverseg.io.errors import InputError

__all__ = ["DICOM_SUFFIXES", "LPS_TO_RAS", "dicom_files", "is_dicom_file", "read_dicom_series"]

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_DICOMDIR_UID = "1.2.840.10008.1.3.10"
_INT16 = np.iinfo(np.int16)


def is_dicom_file(path: str | os.PathLike) -> bool:
    """True for a visible file with a DICOM suffix or the ``DICM`` preamble marker."""
    path = Path(path)
    if path.name.startswith(".") or not path.is_file():
        return False
    if path.suffix.lower() in DICOM_SUFFIXES:
        return True
    try:
        return is_dicom(path)
    except OSError:
        return False


def dicom_files(folder: str | os.PathLike) -> list[Path]:
    """The DICOM files directly inside ``folder`` (not recursive), sorted by name."""
    return sorted(p for p in Path(folder).iterdir() if is_dicom_file(p))


def _read_header(path: Path) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as error:
        raise InputError(f"{path}: not a readable DICOM file ({_reason(error)})") from None


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _is_image(ds: pydicom.Dataset) -> bool:
    if getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None) == _DICOMDIR_UID:
        return False
    return all(
        key in ds
        for key in (
            "Rows",
            "Columns",
            "ImagePositionPatient",
            "ImageOrientationPatient",
            "PixelSpacing",
        )
    )


def _describe_series(uid: str, datasets: list[pydicom.Dataset]) -> str:
    first = datasets[0]
    parts = [str(first.get("Modality", "?"))]
    if first.get("SeriesNumber") is not None:
        parts.append(f"#{first.SeriesNumber}")
    if first.get("SeriesDescription"):
        parts.append(repr(str(first.SeriesDescription)))
    return f"{uid} ({' '.join(parts)}, {len(datasets)} files)"


def read_dicom_series(folder: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read the single DICOM series in ``folder``.

    Returns:
        ``(volume, affine, info)``: ``volume`` in HU (``value * RescaleSlope +
        RescaleIntercept``; int16 when that is exact, else float32), ``affine`` the
        voxel-to-RAS+ affine (gantry tilt is kept as shear), ``info`` a dict with the series
        UID, description, modality, number of slices and a list of ``warnings``.

    Raises:
        InputError: no DICOM image in the folder, several series (named in the message),
            inconsistent geometry (orientation, size, duplicate or irregular slice
            positions), multi-frame files, or pixel data that cannot be decoded.
    """
    folder = Path(folder)
    files = dicom_files(folder)
    if not files:
        raise InputError(f"{folder}: no DICOM files found")
    by_series: dict[str, list[tuple[Path, pydicom.Dataset]]] = defaultdict(list)
    for path in files:
        ds = _read_header(path)
        if _is_image(ds):
            by_series[str(ds.get("SeriesInstanceUID", "unknown"))].append((path, ds))
    if not by_series:
        raise InputError(f"{folder}: the DICOM files hold no image with patient geometry")
    if len(by_series) > 1:
        names = "; ".join(
            _describe_series(uid, [ds for _, ds in items]) for uid, items in by_series.items()
        )
        raise InputError(
            f"{folder} holds {len(by_series)} DICOM series, put each in its own folder: {names}"
        )
    ((uid, items),) = by_series.items()
    return _assemble(folder, uid, items)


def _assemble(folder: Path, uid: str, items: list[tuple[Path, pydicom.Dataset]]):
    first = items[0][1]
    warnings: list[str] = []
    for path, ds in items:
        if int(ds.get("NumberOfFrames", 1) or 1) > 1:
            raise InputError(
                f"{path}: multi-frame (enhanced) DICOM is not supported; convert the series "
                "to NIfTI first (e.g. with dcm2niix)"
            )
    orientation = np.array([float(v) for v in first.ImageOrientationPatient], dtype=np.float64)
    if orientation.shape != (6,):
        raise InputError(f"{items[0][0]}: ImageOrientationPatient must hold 6 numbers")
    row_cos, col_cos = orientation[:3], orientation[3:]
    normal = np.cross(row_cos, col_cos)
    if not np.isclose(np.linalg.norm(normal), 1.0, atol=1e-3):
        raise InputError(f"{items[0][0]}: ImageOrientationPatient is not orthonormal")
    rows, cols = int(first.Rows), int(first.Columns)
    spacing = np.array([float(v) for v in first.PixelSpacing], dtype=np.float64)
    positions = []
    for _, ds in items:
        if not np.allclose([float(v) for v in ds.ImageOrientationPatient], orientation, atol=1e-4):
            raise InputError(f"{folder}: slices of series {uid} have different orientations")
        if (int(ds.Rows), int(ds.Columns)) != (rows, cols):
            raise InputError(f"{folder}: slices of series {uid} have different sizes")
        if not np.allclose([float(v) for v in ds.PixelSpacing], spacing, rtol=1e-4):
            raise InputError(f"{folder}: slices of series {uid} have different pixel spacings")
        positions.append([float(v) for v in ds.ImagePositionPatient])
    positions = np.asarray(positions, dtype=np.float64)
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    items = [items[i] for i in order]
    positions, distance = positions[order], distance[order]
    if len(items) > 1:
        steps = np.diff(distance)
        if steps.min() < 1e-3:
            raise InputError(
                f"{folder}: series {uid} has several slices at the same position "
                "(several acquisitions or echoes in one series?)"
            )
        median = float(np.median(steps))
        if np.abs(steps - median).max() > max(0.02 * median, 1e-3):
            raise InputError(
                f"{folder}: series {uid} has irregular slice spacing "
                f"({steps.min():.3g} to {steps.max():.3g} mm); resample it to a regular grid first"
            )
        step = (positions[-1] - positions[0]) / (len(items) - 1)
        if np.linalg.norm(np.cross(step / np.linalg.norm(step), normal)) > 1e-3:
            warnings.append("gantry tilt: slices are sheared, kept as shear in the affine")
    else:
        thickness = float(first.get("SpacingBetweenSlices") or first.get("SliceThickness") or 1.0)
        step = normal * abs(thickness)
    lps = np.eye(4)
    lps[:3, 0] = row_cos * spacing[1]  # i = column index, moves along the row direction
    lps[:3, 1] = col_cos * spacing[0]  # j = row index, moves along the column direction
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    affine = LPS_TO_RAS @ lps
    volume = _read_pixels(items, rows, cols)
    modality = str(first.get("Modality", ""))
    if modality and modality != "CT":
        warnings.append(f"modality is {modality}, not CT: the models expect Hounsfield units")
    info = {
        "series_instance_uid": uid,
        "series_description": str(first.get("SeriesDescription", "")),
        "modality": modality,
        "num_slices": len(items),
        "warnings": warnings,
    }
    return volume, affine, info


def _rescale(ds: pydicom.Dataset) -> tuple[float, float]:
    return float(ds.get("RescaleSlope", 1.0) or 1.0), float(ds.get("RescaleIntercept", 0.0) or 0.0)


def _read_pixels(items: list[tuple[Path, pydicom.Dataset]], rows: int, cols: int) -> np.ndarray:
    exact_int = all(
        slope == 1.0 and inter == int(inter) for slope, inter in (_rescale(ds) for _, ds in items)
    )
    volume = np.empty((cols, rows, len(items)), dtype=np.int16 if exact_int else np.float32)
    for k, (path, _) in enumerate(items):
        ds = None
        try:
            ds = pydicom.dcmread(path)
            pixels = ds.pixel_array
        except Exception as error:
            syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
            hint = f" (transfer syntax {syntax.name})" if syntax is not None else ""
            raise InputError(
                f"{path}: cannot decode the pixel data{hint}: {_reason(error)}"
            ) from None
        if pixels.shape != (rows, cols):
            raise InputError(f"{path}: pixel data of shape {pixels.shape}, expected {(rows, cols)}")
        slope, inter = _rescale(ds)
        if volume.dtype == np.int16:
            hu = pixels.astype(np.int32) + int(inter)
            if hu.min() < _INT16.min or hu.max() > _INT16.max:
                volume = volume.astype(np.float32)
            volume[:, :, k] = hu.T
        else:
            volume[:, :, k] = (pixels.astype(np.float32) * np.float32(slope) + np.float32(inter)).T
    return volume
