"""Read one DICOM CT series into a HU volume with a NIfTI (RAS+) affine.

Array layout: ``volume[i, j, k]`` is column ``i``, row ``j`` of the k-th slice, slices
sorted by position along the slice normal (``row_cosines x column_cosines``). This is the
layout of ITK, NRRD and dcm2niix. The affine maps ``(i, j, k)`` to RAS+ millimetres: DICOM
patient coordinates are LPS+, so the first two world rows are negated.

Every DICOM file of the folder must be readable: a truncated or corrupt file, or one with a
malformed value, is an :class:`InputError` naming the file (and the element), unless the
caller asks to skip unreadable files. pydicom's own warnings are silenced; what matters
becomes an error or an entry of ``info["warnings"]``.
"""

from __future__ import annotations

import os
import warnings
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.misc import is_dicom

from keras_liverseg.io.errors import InputError, one_line
from keras_liverseg.io.memory import check_memory

__all__ = ["DICOM_SUFFIXES", "LPS_TO_RAS", "dicom_files", "is_dicom_file", "read_dicom_series"]

DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_DICOMDIR_UID = "1.2.840.10008.1.3.10"
_INT16 = np.iinfo(np.int16)
_GEOMETRY = ("Rows", "Columns", "ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing")
_PIXELS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")


class _UnreadableFile(InputError):
    """One file of the series cannot be used; ``path`` names it (for skipping)."""

    def __init__(self, path: Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


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


def _sop_class(ds: pydicom.Dataset) -> str | None:
    uid = ds.get("SOPClassUID") or getattr(ds.get("file_meta"), "MediaStorageSOPClassUID", None)
    return str(uid) if uid else None


def _read_header(path: Path) -> pydicom.Dataset:
    """The data set without its pixel values (they are deferred, not read).

    Raises:
        _UnreadableFile: pydicom cannot parse it, or it ends before its pixel data.
    """
    try:
        ds = pydicom.dcmread(path, defer_size=1024)
    except Exception as error:
        raise _UnreadableFile(
            path, f"not a readable DICOM file ({one_line(error, limit=160)})"
        ) from None
    sop_class = _sop_class(ds)
    if sop_class is None:
        raise _UnreadableFile(path, "incomplete DICOM file (no SOP class: truncated?)")
    if "Image Storage" in pydicom.uid.UID(sop_class).name and not any(k in ds for k in _PIXELS):
        raise _UnreadableFile(path, "incomplete DICOM image (no pixel data: truncated?)")
    return ds


def _is_image(ds: pydicom.Dataset) -> bool:
    if _sop_class(ds) == _DICOMDIR_UID:
        return False
    return all(key in ds for key in _GEOMETRY)


def _numbers(path: Path, ds: pydicom.Dataset, keyword: str, count: int) -> np.ndarray:
    """``count`` numbers of element ``keyword``; a missing or malformed value is an error."""
    value = ds.get(keyword)
    if value is None or value == "":
        raise _UnreadableFile(path, f"DICOM element {keyword} is missing or empty")
    values = value if isinstance(value, Sequence) and not isinstance(value, str) else [value]
    text = "\\".join(str(v) for v in values)
    try:
        numbers = np.array([float(v) for v in values], dtype=np.float64)
    except (TypeError, ValueError):
        raise _UnreadableFile(path, f"malformed DICOM value {keyword} = '{text}'") from None
    if numbers.shape != (count,) or not np.all(np.isfinite(numbers)):
        raise _UnreadableFile(
            path, f"DICOM element {keyword} = '{text}' must hold {count} finite number(s)"
        )
    return numbers


def _optional(path: Path, ds: pydicom.Dataset, keyword: str, default: float) -> float:
    if ds.get(keyword) in (None, ""):
        return default
    return float(_numbers(path, ds, keyword, 1)[0])


@dataclass(frozen=True)
class _Slice:
    """The facts of one slice file that the series needs, checked."""

    path: Path
    ds: pydicom.Dataset
    rows: int
    cols: int
    orientation: np.ndarray
    spacing: np.ndarray
    position: np.ndarray
    slope: float
    intercept: float

    @classmethod
    def parse(cls, path: Path, ds: pydicom.Dataset) -> _Slice:
        frames = _optional(path, ds, "NumberOfFrames", 1.0)
        if frames > 1:
            raise InputError(
                f"{path}: multi-frame (enhanced) DICOM is not supported; convert the series "
                "to NIfTI first (e.g. with dcm2niix)"
            )
        rows, cols = (int(_numbers(path, ds, k, 1)[0]) for k in ("Rows", "Columns"))
        if rows < 1 or cols < 1:
            raise _UnreadableFile(path, f"empty image of {rows} rows and {cols} columns")
        spacing = _numbers(path, ds, "PixelSpacing", 2)
        if spacing.min() <= 0:
            raise _UnreadableFile(path, f"DICOM PixelSpacing {list(spacing)} must be positive")
        return cls(
            path=path,
            ds=ds,
            rows=rows,
            cols=cols,
            orientation=_numbers(path, ds, "ImageOrientationPatient", 6),
            spacing=spacing,
            position=_numbers(path, ds, "ImagePositionPatient", 3),
            slope=_optional(path, ds, "RescaleSlope", 1.0) or 1.0,
            intercept=_optional(path, ds, "RescaleIntercept", 0.0),
        )


def _describe_series(uid: str, datasets: list[pydicom.Dataset]) -> str:
    first = datasets[0]
    parts = [str(first.get("Modality", "?"))]
    if first.get("SeriesNumber") not in (None, ""):
        parts.append(f"#{first.SeriesNumber}")
    if first.get("SeriesDescription"):
        parts.append(repr(str(first.SeriesDescription)))
    return f"{uid} ({' '.join(parts)}, {len(datasets)} files)"


def read_dicom_series(
    folder: str | os.PathLike, *, force: bool = False, skip_unreadable: bool = False
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Read the single DICOM series in ``folder``.

    Args:
        folder: a folder holding the files of one series (other files are ignored).
        force: accept a series whose Modality is not CT (with a warning).
        skip_unreadable: skip files that cannot be read (truncated, corrupt, malformed
            values) instead of failing; they are listed in ``info["skipped_files"]`` and
            in ``info["warnings"]``.

    Returns:
        ``(volume, affine, info)``: ``volume`` in HU (``value * RescaleSlope +
        RescaleIntercept``; int16 when that is exact, else float32), ``affine`` the
        voxel-to-RAS+ affine (gantry tilt is kept as shear), ``info`` a dict with the series
        UID, description, modality, number of slices, ``skipped_files`` and ``warnings``.

    Raises:
        InputError: no DICOM image in the folder, an unreadable file (unless skipped),
            several series (named in the message), a Modality other than CT (unless
            ``force``), inconsistent geometry (orientation, size, duplicate or irregular
            slice positions), multi-frame files, or pixel data that cannot be decoded.
    """
    with warnings.catch_warnings():  # pydicom warns (and logs) about every odd value
        warnings.simplefilter("ignore")
        return _read_series(Path(folder), force, skip_unreadable)


def _read_series(
    folder: Path, force: bool, skip_unreadable: bool
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    files = dicom_files(folder)
    if not files:
        raise InputError(f"{folder}: no DICOM files found")
    skipped: list[_UnreadableFile] = []

    def skip(error: _UnreadableFile) -> None:
        if not skip_unreadable:
            raise error
        skipped.append(error)

    headers: list[tuple[Path, pydicom.Dataset]] = []
    for path in files:
        try:
            headers.append((path, _read_header(path)))
        except _UnreadableFile as error:
            skip(error)
    by_series: dict[str, list[tuple[Path, pydicom.Dataset]]] = defaultdict(list)
    for path, ds in headers:
        if _is_image(ds):
            by_series[str(ds.get("SeriesInstanceUID", "unknown"))].append((path, ds))
    if not by_series:
        raise InputError(
            f"{folder}: the DICOM files hold no image with patient geometry{_after(skipped)}"
        )
    if len(by_series) > 1:
        names = "; ".join(
            _describe_series(uid, [ds for _, ds in items]) for uid, items in by_series.items()
        )
        raise InputError(
            f"{folder} holds {len(by_series)} DICOM series, put each in its own folder: {names}"
        )
    ((uid, items),) = by_series.items()
    warnings_ = _check_modality(folder, items[0][1], force)
    image_class = _sop_class(items[0][1])
    for path, ds in headers:  # a slice of this series that lacks its geometry is broken
        if not _is_image(ds) and _same_series(ds, uid, image_class):
            missing = ", ".join(k for k in _GEOMETRY if k not in ds)
            skip(_UnreadableFile(path, f"DICOM slice without {missing} (truncated?)"))
    slices = []
    for path, ds in items:
        try:
            slices.append(_Slice.parse(path, ds))
        except _UnreadableFile as error:
            skip(error)
    while True:
        if not slices:
            raise InputError(f"{folder}: no readable slice in series {uid}{_after(skipped)}")
        try:
            volume, affine, info = _assemble(folder, uid, slices)
            break
        except _UnreadableFile as error:
            skip(error)
            slices = [s for s in slices if s.path != error.path]
        except InputError as error:
            raise InputError(f"{error}{_after(skipped)}") from None
    info["warnings"] = warnings_ + [f"skipped {e}" for e in skipped] + info["warnings"]
    info["skipped_files"] = [str(e.path) for e in skipped]
    return volume, affine, info


def _same_series(ds: pydicom.Dataset, uid: str, image_class: str | None) -> bool:
    return str(ds.get("SeriesInstanceUID", "")) == uid and _sop_class(ds) == image_class


def _after(skipped: list[_UnreadableFile]) -> str:
    if not skipped:
        return ""
    names = ", ".join(e.path.name for e in skipped[:5])
    more = f" and {len(skipped) - 5} more" if len(skipped) > 5 else ""
    return f" (after skipping {len(skipped)} unreadable file(s): {names}{more})"


def _check_modality(folder: Path, ds: pydicom.Dataset, force: bool) -> list[str]:
    modality = str(ds.get("Modality", "") or "").strip()
    if not modality:
        return ["the DICOM series has no Modality; read as CT"]
    if modality == "CT":
        return []
    if not force:
        raise InputError(
            f"{folder}: DICOM Modality is {modality}, not CT; pass --force to segment it anyway"
        )
    return [f"DICOM Modality is {modality}, not CT: the models expect Hounsfield units"]


def _assemble(folder: Path, uid: str, slices: list[_Slice]):
    first = slices[0]
    warnings_: list[str] = []
    row_cos, col_cos = first.orientation[:3], first.orientation[3:]
    normal = np.cross(row_cos, col_cos)
    if not np.isclose(np.linalg.norm(normal), 1.0, atol=1e-3):
        raise InputError(f"{first.path}: ImageOrientationPatient is not orthonormal")
    for s in slices:
        if not np.allclose(s.orientation, first.orientation, atol=1e-4):
            raise InputError(
                f"{folder}: slices of series {uid} have different orientations "
                f"({first.path.name}, {s.path.name})"
            )
        if (s.rows, s.cols) != (first.rows, first.cols):
            raise InputError(
                f"{folder}: slices of series {uid} have different sizes "
                f"({first.path.name}, {s.path.name})"
            )
        if not np.allclose(s.spacing, first.spacing, rtol=1e-4):
            raise InputError(f"{folder}: slices of series {uid} have different pixel spacings")
    positions = np.array([s.position for s in slices], dtype=np.float64)
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    slices = [slices[i] for i in order]
    positions, distance = positions[order], distance[order]
    if len(slices) > 1:
        steps = np.diff(distance)
        if steps.min() < 1e-3:
            k = int(np.argmin(steps))
            raise InputError(
                f"{folder}: series {uid} has several slices at the same position "
                f"({slices[k].path.name}, {slices[k + 1].path.name}; several acquisitions or "
                "echoes in one series?)"
            )
        median = float(np.median(steps))
        if np.abs(steps - median).max() > max(0.02 * median, 1e-3):
            raise InputError(
                f"{folder}: series {uid} has irregular slice spacing "
                f"({steps.min():.3g} to {steps.max():.3g} mm: missing slices?); resample it "
                "to a regular grid first"
            )
        step = (positions[-1] - positions[0]) / (len(slices) - 1)
        if np.linalg.norm(np.cross(step / np.linalg.norm(step), normal)) > 1e-3:
            warnings_.append("gantry tilt: slices are sheared, kept as shear in the affine")
    else:
        thickness = _optional(first.path, first.ds, "SpacingBetweenSlices", 0.0) or _optional(
            first.path, first.ds, "SliceThickness", 1.0
        )
        step = normal * (abs(thickness) or 1.0)
    lps = np.eye(4)
    lps[:3, 0] = row_cos * first.spacing[1]  # i = column index, moves along the row direction
    lps[:3, 1] = col_cos * first.spacing[0]  # j = row index, moves along the column direction
    lps[:3, 2] = step
    lps[:3, 3] = positions[0]
    affine = LPS_TO_RAS @ lps
    volume = _read_pixels(folder, slices)
    info = {
        "series_instance_uid": uid,
        "series_description": str(first.ds.get("SeriesDescription", "")),
        "modality": str(first.ds.get("Modality", "") or ""),
        "num_slices": len(slices),
        "warnings": warnings_,
    }
    return volume, affine, info


def _read_pixels(folder: Path, slices: list[_Slice]) -> np.ndarray:
    exact_int = all(s.slope == 1.0 and s.intercept == int(s.intercept) for s in slices)
    dtype = np.dtype(np.int16 if exact_int else np.float32)
    rows, cols = slices[0].rows, slices[0].cols
    check_memory((cols, rows, len(slices)), dtype, folder)
    volume = np.empty((cols, rows, len(slices)), dtype=dtype)
    for k, s in enumerate(slices):
        pixels = _decode(s)
        if volume.dtype == np.int16:
            hu = pixels.astype(np.int32) + int(s.intercept)
            if hu.min() < _INT16.min or hu.max() > _INT16.max:
                volume = volume.astype(np.float32)
            volume[:, :, k] = hu.T
        else:
            volume[:, :, k] = (
                pixels.astype(np.float32) * np.float32(s.slope) + np.float32(s.intercept)
            ).T
    return volume


def _decode(s: _Slice) -> np.ndarray:
    """The stored pixel values of one slice, ``(rows, columns)``."""
    ds = None
    try:
        ds = pydicom.dcmread(s.path)
        pixels = ds.pixel_array
    except Exception as error:
        syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
        hint = f" (transfer syntax {syntax.name})" if syntax is not None else ""
        raise _UnreadableFile(
            s.path, f"cannot decode the pixel data{hint}: {one_line(error, limit=160)}"
        ) from None
    if pixels.shape != (s.rows, s.cols):
        raise _UnreadableFile(
            s.path, f"pixel data of shape {pixels.shape}, expected {(s.rows, s.cols)}"
        )
    return pixels
