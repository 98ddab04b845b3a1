"""Read NIfTI CT volumes and write label maps with the input's exact geometry."""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from keras_liverseg.io.atomic import atomic_path
from keras_liverseg.io.errors import InputError

__all__ = ["NIFTI_SUFFIXES", "is_nifti_path", "label_header", "load_nifti", "open_nifti",
           "write_labels"]

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def is_nifti_path(path: str | os.PathLike) -> bool:
    """True when the file name ends with ``.nii`` or ``.nii.gz`` (case-insensitive)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def open_nifti(path: str | os.PathLike) -> nib.Nifti1Image:
    """Open a NIfTI-1/2 file: its header and a lazy proxy of its data (nothing read yet).

    Raises:
        InputError: a missing path, a folder, or a file nibabel cannot read as NIfTI.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    try:
        image = nib.load(str(path))
    except Exception as error:  # nibabel raises many types for bad files
        raise InputError(f"{path}: not a readable NIfTI file ({_reason(error)})") from None
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise InputError(f"{path}: not a NIfTI file (read as {type(image).__name__})")
    return image


def load_nifti(path: str | os.PathLike) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Read a NIfTI-1/2 file: its data (scaled to real values, file shape kept) and image.

    The data keep their on-disk integer type when the file has no scaling (usual for CT:
    int16 HU), else they are float32; never float64, to keep memory low.

    Raises:
        InputError: missing, unreadable, truncated or non-NIfTI file, complex or RGB data.
    """
    image = open_nifti(path)
    dtype = image.header.get_data_dtype()
    if dtype.names is not None or dtype.kind == "c":
        raise InputError(f"{path}: unsupported voxel type {dtype} (expected a scalar CT image)")
    try:
        data = _read_data(image)
    except MemoryError:
        raise
    except Exception as error:
        raise InputError(
            f"{path}: cannot read the image data, the file is truncated or corrupt "
            f"({_reason(error)})"
        ) from None
    return data, image


def _read_data(image: nib.Nifti1Image) -> np.ndarray:
    """The voxel values with the header's scaling applied, without a float64 copy."""
    proxy = image.dataobj  # nibabel moves the header's scaling into the array proxy
    slope = float(getattr(proxy, "slope", 1.0))
    inter = float(getattr(proxy, "inter", 0.0))
    raw = np.asarray(proxy.get_unscaled())
    if slope == 1.0 and inter == 0.0 and raw.dtype.kind in "iub":
        return raw
    data = np.empty(raw.shape, dtype=np.float32)
    np.multiply(raw, np.float32(slope), out=data, casting="unsafe")
    if inter:
        data += np.float32(inter)
    return data


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def label_header(template: nib.Nifti1Header | None, affine: np.ndarray, shape: tuple[int, ...]):
    """A header for a uint8 label map.

    With a ``template`` (the input's header) every geometry field is kept: dims, zooms,
    units, qform and sform with their codes. Without one, qform and sform are both set to
    ``affine`` with code 1 (scanner); qform is left unset (code 0) when the affine has shear
    that a quaternion cannot hold.
    """
    if template is not None:
        header = template.copy()
    else:
        header = nib.Nifti1Header()
        header.set_data_shape(shape)
        header.set_sform(affine, code=1)
        linear = affine[:3, :3]
        zooms = np.sqrt((linear**2).sum(axis=0))
        orthogonal = np.allclose(linear.T @ linear, np.diag(zooms**2), atol=1e-4 * zooms.max() ** 2)
        header.set_qform(affine if orthogonal else None, code=1 if orthogonal else 0)
        header.set_xyzt_units("mm")
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1.0, 0.0)
    header["cal_min"], header["cal_max"] = 0, 2
    header["glmin"], header["glmax"] = 0, 0
    header.set_intent("label")
    header["descrip"] = b"keras_liverseg: 0 background, 1 liver, 2 tumor"
    return header


def write_labels(
    labels: np.ndarray,
    path: str | os.PathLike,
    affine: np.ndarray,
    header: nib.Nifti1Header | None = None,
) -> Path:
    """Write a uint8 label map as NIfTI atomically (temporary file, then rename).

    Args:
        labels: array of the output shape (the input's shape, including a trailing
            singleton axis if the input had one).
        path: ``.nii`` or ``.nii.gz`` target.
        affine: voxel-to-world affine (used when ``header`` is None, and as the image's
            affine otherwise; it must equal the header's best affine then).
        header: the input's header, to copy its geometry exactly.
    """
    path = Path(path)
    labels = np.asarray(labels, dtype=np.uint8)
    hdr = label_header(header, np.asarray(affine, dtype=np.float64), labels.shape)
    klass = nib.Nifti2Image if isinstance(hdr, nib.Nifti2Header) else nib.Nifti1Image
    image = klass(labels, None, header=hdr)
    with atomic_path(path) as temp:
        nib.save(image, str(temp))
    return path
