"""A CT scan in memory, loaded from a NIfTI file, a DICOM series folder or an array.

Also finds the scans in a folder for batch processing (:func:`find_scans`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nibabel as nib
import numpy as np

from keras_liverseg.io.dicom import dicom_files, is_dicom_file, read_dicom_series
from keras_liverseg.io.errors import InputError
from keras_liverseg.io.nifti import (
    case_name,
    header_warnings,
    is_nifti_path,
    last_integer,
    load_nifti,
    unsupported_format,
)
from keras_liverseg.io.orientation import check_affine, to_canonical

__all__ = [
    "Scan",
    "find_scans",
    "load_scan",
    "scan_from_array",
    "scan_kind",
    "skipped_label_files",
]

LABEL_MAX = 5
"""Integer volumes whose values all lie in ``0..LABEL_MAX`` are taken for label maps."""

BODY_WIDTH_MM = (150.0, 700.0)
"""Plausible left-right widths of an adult body; one outside, at the header's pixel
spacing, says the spacing does not match the content (:func:`body_width_warnings`)."""
MIN_JUDGED_PIXELS = 64
"""Slices smaller than this on a side are too small for :func:`body_width_warnings`."""
BODY_HU = -500.0
"""Voxels above this are body (soft tissue, bone), below it air, lung or padding."""

LABEL_FOLDERS = ("labelsTr", "labelsTs")
"""Folders of label maps in the Medical Segmentation Decathlon layout."""


@dataclass
class Scan:
    """A CT volume and its geometry.

    Attributes:
        volume: 3D array of HU (int16 or float32), spatial axes only.
        affine: ``(4, 4)`` voxel-to-world affine, NIfTI convention (RAS+, mm).
        shape: shape of the source image; differs from ``volume.shape`` only by trailing
            singleton axes (a 4D NIfTI with one volume). Outputs are written in this shape.
        header: the source NIfTI header (None for DICOM or arrays); outputs copy its
            geometry fields (qform, sform, codes, zooms, units) unchanged.
        source: where the scan came from (a path, or ``"<array>"``).
        kind: ``"nifti"``, ``"dicom"`` or ``"array"``.
        info: extra facts (DICOM series UID, ``skipped_files``, ...).
        warnings: problems that do not stop segmentation (constant or all-NaN volume, ...).
    """

    volume: np.ndarray
    affine: np.ndarray
    shape: tuple[int, ...]
    header: nib.Nifti1Header | None = None
    source: str = "<array>"
    kind: str = "array"
    info: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size along the three array axes, in mm."""
        return tuple(float(v) for v in nib.affines.voxel_sizes(self.affine))

    @property
    def voxel_volume_mm3(self) -> float:
        """Volume of one voxel in mm^3."""
        return float(abs(np.linalg.det(self.affine[:3, :3])))

    @property
    def name(self) -> str:
        """A short name for messages and output files: the file name without suffix."""
        return case_name(self.source)


def _spatial(data: np.ndarray, source: str) -> np.ndarray:
    """Drop trailing singleton axes beyond the third; reject 2D and true 4D+ images."""
    if data.ndim < 3:
        raise InputError(f"{source}: a {data.ndim}D image of shape {data.shape}; expected a 3D CT")
    if data.ndim > 3:
        if any(int(v) != 1 for v in data.shape[3:]):
            raise InputError(
                f"{source}: a {data.ndim}D image of shape {data.shape}; expected a 3D CT "
                "(a 4th axis of length 1 is fine)"
            )
        data = data.reshape(data.shape[:3])
    if min(data.shape) < 1:
        raise InputError(f"{source}: empty image of shape {data.shape}")
    return data


def _finite_range(volume: np.ndarray) -> tuple[float, float, int]:
    """``(min, max, non-finite count)`` over the finite voxels, slab by slab (low memory)."""
    lo, hi, bad = np.inf, -np.inf, 0
    step = max(1, (1 << 22) // max(1, volume.shape[0] * volume.shape[1]))
    for start in range(0, volume.shape[2], step):
        slab = volume[:, :, start : start + step]
        if slab.dtype.kind == "f":
            finite = np.isfinite(slab)
            bad += int(slab.size - np.count_nonzero(finite))
            if not finite.any():
                continue
            slab = slab[finite]
        lo, hi = min(lo, float(slab.min())), max(hi, float(slab.max()))
    return lo, hi, bad


def _whole_numbers(volume: np.ndarray) -> bool:
    if volume.dtype.kind in "iub":
        return True
    finite = volume[np.isfinite(volume)]
    return bool(np.array_equal(finite, np.rint(finite)))


def _content_warnings(volume: np.ndarray, source: str = "array", force: bool = False) -> list[str]:
    """What looks wrong in the voxel values of a CT.

    Raises:
        InputError: the volume looks like a label map (whole numbers in ``0..LABEL_MAX``),
            unless ``force`` (then it is a warning).
    """
    lo, hi, bad = _finite_range(volume)
    if bad == volume.size:
        return ["the volume is all NaN/infinite: the segmentation will be meaningless"]
    warnings = []
    if bad:
        warnings.append(f"{bad} NaN/infinite voxels, read as -1024 HU (air)")
    if lo == hi:
        warnings.append(f"the volume is constant ({lo:g}): the segmentation will be meaningless")
    elif 0 <= lo and hi <= LABEL_MAX and _whole_numbers(volume):
        message = f"looks like a label map (values {lo:g}..{hi:g} only), not a CT in HU"
        if not force:
            raise InputError(f"{source}: {message}; pass --force to segment it anyway")
        warnings.append(message)
    elif lo >= 0:
        warnings.append(
            f"intensities {lo:g}..{hi:g} ({volume.dtype}) do not look like Hounsfield units "
            "(nothing below 0; air is about -1000 HU)"
        )
    elif hi < 0:
        warnings.append(f"intensities {lo:g}..{hi:g} do not look like CT Hounsfield units")
    return warnings


def body_width_warnings(volume: np.ndarray, affine: np.ndarray, slices: int = 5) -> list[str]:
    """A warning when the body's left-right width, at the header's pixel spacing, is not
    that of an adult (:data:`BODY_WIDTH_MM`): a header whose spacing does not match the
    content would make a model that reads slices at a physical spacing see organs at the
    wrong size. Measured on ``slices`` axial slices spread over the scan (body: above
    :data:`BODY_HU`); too narrow only counts where air shows on both sides (a scan cropped
    to the liver is narrow because it is cropped). Slices smaller than
    :data:`MIN_JUDGED_PIXELS` on a side are not judged (thumbnails and toy volumes; the
    coarsest real matrices are 64 x 64).
    """
    volume_c, affine_c, _ = to_canonical(volume, affine)
    if min(volume_c.shape[:2]) < MIN_JUDGED_PIXELS:
        return []
    column_mm = float(np.linalg.norm(affine_c[:3, 1]))  # canonical columns run right-left
    widest, framed = 0.0, False
    depth = volume_c.shape[2]
    for k in np.unique(np.linspace(0, depth - 1, min(slices, depth)).round().astype(int)):
        body = np.asarray(volume_c[:, :, k], dtype=np.float32) > BODY_HU  # NaN is not body
        cols = np.flatnonzero(body.sum(axis=0) >= 3)  # ignore lone noisy pixels
        if cols.size == 0:
            continue
        width = (cols[-1] - cols[0] + 1) * column_mm
        if width > widest:
            widest, framed = width, bool(cols[0] > 0 and cols[-1] < body.shape[1] - 1)
    if widest == 0.0:
        return []
    low, high = BODY_WIDTH_MM
    if widest > high or (framed and widest < low):
        return [f"the body is {widest:.0f} mm wide at the header's pixel spacing "
                f"({column_mm:g} mm); an adult's is {low:.0f}-{high:.0f} mm: check the "
                "spacing in the header, the segmentation may be wrong"]
    return []


def _volume_warnings(volume: np.ndarray, affine: np.ndarray, source: str, force: bool) -> list:
    """What looks wrong in a scan's voxel values and in its size at the header's spacing."""
    return _content_warnings(volume, source, force) + body_width_warnings(volume, affine)


def scan_from_array(
    volume: np.ndarray, affine: np.ndarray | None = None, *, force: bool = False
) -> Scan:
    """Wrap an array (HU) and its affine (identity, i.e. 1 mm RAS voxels, when None).

    Raises:
        InputError: not a real-valued array, not 3D, an unusable affine, or values that
            look like a label map rather than HU (unless ``force``).
    """
    volume = np.asanyarray(volume)
    if volume.dtype.kind not in "iuf" and volume.dtype != bool:
        raise InputError(f"unsupported array type {volume.dtype}; expected real HU values")
    shape = tuple(int(v) for v in volume.shape)
    spatial = _spatial(volume, "array")
    affine = check_affine(np.eye(4) if affine is None else affine)
    if spatial.dtype.kind not in "if" or spatial.dtype.itemsize > 4:
        spatial = spatial.astype(np.float32)
    return Scan(spatial, affine, shape,
                warnings=_volume_warnings(spatial, affine, "array", force))


def scan_kind(path: str | os.PathLike) -> str:
    """What ``path`` is: ``"nifti"``, ``"dicom"`` (a series folder) or ``"batch"`` (a folder
    of scans).

    Raises:
        InputError: missing path, a file that is not NIfTI (NRRD: with how to convert it), a
            single DICOM file, an empty folder, or a folder mixing DICOM files and NIfTI files.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_file():
        if is_nifti_path(path):
            return "nifti"
        reason = unsupported_format(path)
        if reason is not None:
            raise InputError(reason)
        if is_dicom_file(path):
            raise InputError(f"{path} is a DICOM file: pass the folder holding its series")
        raise InputError(
            f"{path}: not a NIfTI file (.nii, .nii.gz) or a folder holding a DICOM series"
        )
    if not path.is_dir():
        raise InputError(f"{path}: not a file or folder")
    has_dicom = bool(dicom_files(path))
    has_nifti = any(is_nifti_path(p) and p.is_file() for p in path.iterdir())
    if has_dicom and has_nifti:
        raise InputError(
            f"{path} holds both DICOM files and NIfTI files; put them in separate folders"
        )
    if has_dicom:
        return "dicom"
    if has_nifti or any(p.is_dir() and dicom_files(p) for p in path.iterdir()):
        return "batch"
    if not any(path.iterdir()):
        raise InputError(f"{path}: empty folder")
    if (path / "imagesTr").is_dir():
        raise InputError(
            f"{path}: a dataset in Medical Segmentation Decathlon layout; pass its imagesTr folder"
        )
    raise InputError(f"{path}: no NIfTI file (.nii, .nii.gz) or DICOM series found in the folder")


def _candidates(folder: Path) -> list[Path]:
    return sorted(
        (
            p
            for p in folder.iterdir()
            if not p.name.startswith(".")
            and ((p.is_file() and is_nifti_path(p)) or (p.is_dir() and dicom_files(p)))
        ),
        key=lambda p: p.name,
    )


def skipped_label_files(folder: str | os.PathLike) -> list[Path]:
    """The NIfTI files of a batch folder that its layout says are label maps, not CT.

    * everything in a folder named ``labelsTr`` or ``labelsTs`` (Medical Segmentation
      Decathlon layout, as in :mod:`keras_liverseg.data.datasets`);
    * a file whose name holds ``seg`` (LiTS ``segmentation-N``, or an earlier output such
      as ``volume-N_seg``) when another scan of the folder, without ``seg``, ends in the
      same number (the pairing rule of :mod:`keras_liverseg.metrics.pairing`).

    :func:`find_scans` leaves these out; sorted by name.
    """
    folder = Path(folder)
    niftis = [p for p in _candidates(folder) if p.is_file()]
    if folder.name in LABEL_FOLDERS:
        return niftis
    numbers = {last_integer(p) for p in niftis if "seg" not in p.name.lower()} - {None}
    return [p for p in niftis if "seg" in p.name.lower() and last_integer(p) in numbers]


def find_scans(folder: str | os.PathLike) -> list[Path]:
    """The scans of a batch folder: its ``.nii``/``.nii.gz`` files and its sub-folders that
    hold DICOM files (one level deep), sorted by name, without the label maps of
    :func:`skipped_label_files`.

    Raises:
        InputError: the folder holds label maps only.
    """
    folder = Path(folder)
    labels = set(skipped_label_files(folder))
    found = [p for p in _candidates(folder) if p not in labels]
    if labels and not found:
        raise InputError(
            f"{folder} holds only label maps ({len(labels)} file(s), e.g. "
            f"{min(labels).name}), no CT scan"
        )
    return found


def load_scan(
    path: str | os.PathLike, *, force: bool = False, skip_unreadable: bool = False
) -> Scan:
    """Load a NIfTI file or a folder holding one DICOM series.

    Args:
        path: a ``.nii``/``.nii.gz`` file or a folder holding one DICOM series.
        force: segment inputs that look wrong anyway (a DICOM Modality other than CT, a
            volume that looks like a label map); they become warnings.
        skip_unreadable: skip DICOM files that cannot be read, listed in
            ``info["skipped_files"]`` and in the warnings.

    Raises:
        InputError: anything that makes the input unusable, with a one-line reason.
    """
    path = Path(path)
    kind = scan_kind(path)
    if kind == "batch":
        raise InputError(f"{path} is a folder of several scans, not one scan")
    if kind == "nifti":
        data, image = load_nifti(path)
        shape = tuple(int(v) for v in data.shape)
        volume = _spatial(data, str(path))
        try:
            affine = check_affine(image.affine)
        except InputError as error:
            raise InputError(f"{path}: {error}") from None
        return Scan(
            volume,
            affine,
            shape,
            header=image.header,
            source=str(path),
            kind="nifti",
            warnings=header_warnings(path, image)
            + _volume_warnings(volume, affine, str(path), force),
        )
    volume, affine, info = read_dicom_series(path, force=force, skip_unreadable=skip_unreadable)
    try:
        affine = check_affine(affine)
    except InputError as error:
        raise InputError(f"{path}: {error}") from None
    warnings = list(info.pop("warnings", [])) + _volume_warnings(volume, affine, str(path), force)
    return Scan(
        volume,
        affine,
        tuple(volume.shape),
        source=str(path),
        kind="dicom",
        info=info,
        warnings=warnings,
    )
