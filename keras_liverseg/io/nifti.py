"""Read NIfTI CT volumes and write label maps with the input's exact geometry."""

from __future__ import annotations

import contextlib
import gzip
import logging
import math
import os
import re
import zlib
from collections.abc import Iterator
from pathlib import Path

import nibabel as nib
import numpy as np

from keras_liverseg.io.atomic import atomic_path
from keras_liverseg.io.errors import InputError, one_line
from keras_liverseg.io.memory import check_memory, describe_array

__all__ = [
    "NIFTI_SUFFIXES",
    "case_name",
    "check_nifti_file",
    "header_warnings",
    "is_nifti_path",
    "label_header",
    "last_integer",
    "load_nifti",
    "open_nifti",
    "read_unscaled",
    "unsupported_format",
    "write_labels",
]

NIFTI_SUFFIXES = (".nii.gz", ".nii")
_OTHER_FORMATS = {".nrrd": "NRRD", ".nhdr": "NRRD", ".mha": "MetaImage", ".mhd": "MetaImage"}


def is_nifti_path(path: str | os.PathLike) -> bool:
    """True when the file name ends with ``.nii`` or ``.nii.gz`` (case-insensitive)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def case_name(path: str | os.PathLike) -> str:
    """The file name without its ``.nii`` / ``.nii.gz`` suffix."""
    name = Path(path).name
    for suffix in NIFTI_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def last_integer(path: str | os.PathLike) -> int | None:
    """The last run of digits in the file name (suffix excluded), or None if it has none:
    the case number of LiTS names (``segmentation-7.nii`` -> 7)."""
    match = re.search(r"(\d+)(?!.*\d)", case_name(path))
    return int(match.group(1)) if match else None


def unsupported_format(path: str | os.PathLike) -> str | None:
    """For an image format that is not read (NRRD, MetaImage), a one-line message naming
    ``path`` and saying how to convert it to NIfTI; else None."""
    path = Path(path)
    kind = _OTHER_FORMATS.get(path.suffix.lower())
    if kind is None:
        return None
    target = path.with_suffix(".nii.gz").name
    return (
        f"{path}: {kind} is not read; convert it to NIfTI first, e.g. with SimpleITK: "
        f"sitk.WriteImage(sitk.ReadImage('{path.name}'), '{target}')"
    )


def open_nifti(path: str | os.PathLike) -> nib.Nifti1Image:
    """Open a NIfTI-1/2 file: its header and a lazy proxy of its data (nothing read yet).

    Raises:
        InputError: a missing path, a folder, an NRRD or MetaImage file (with how to
            convert it), or a file nibabel cannot read as NIfTI.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    if unsupported_format(path) is not None:
        raise InputError(unsupported_format(path))
    try:
        with _quiet_nibabel():
            image = nib.load(str(path))
    except Exception as error:  # nibabel raises many types for bad files
        reason = one_line(error, limit=160)
        raise InputError(f"{path}: not a readable NIfTI file ({reason})") from None
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise InputError(f"{path}: not a NIfTI file (read as {type(image).__name__})")
    return image


@contextlib.contextmanager
def _quiet_nibabel() -> Iterator[None]:
    """Keep nibabel's header fixes ("setting 0 dims to 1") off stderr; see
    :func:`header_warnings` for the ones that matter."""
    nib_logger = logging.getLogger("nibabel.global")
    nib_logger.addFilter(_reject)
    try:
        yield
    finally:
        nib_logger.removeFilter(_reject)


def _reject(record: logging.LogRecord) -> bool:
    return False


def header_warnings(path: str | os.PathLike, image: nib.Nifti1Image) -> list[str]:
    """Problems of the header on disk that nibabel fixed silently when loading ``image``.

    Today: a zero or non-finite pixel spacing (``pixdim``) in a file without an sform,
    which nibabel reads as 1 mm.
    """
    try:
        with nib.openers.ImageOpener(str(path)) as fileobj:
            raw = type(image.header).from_fileobj(fileobj, check=False)
    except Exception:  # the header was read once already; nothing more to say
        return []
    if int(raw["sform_code"]) > 0:
        return []
    pixdim = np.asarray(raw["pixdim"][1 : 1 + min(3, len(image.shape))], dtype=np.float64)
    bad = [f"{v:g}" for v in pixdim if not np.isfinite(v) or v == 0]
    if not bad:
        return []
    return [f"pixel spacing {', '.join(bad)} in the header; assumed 1 mm"]


def check_nifti_file(path: str | os.PathLike, image: nib.Nifti1Image) -> None:
    """Refuse, before reading its data, a file that is too large, truncated or corrupt.

    The declared data (and their float32 copy, when scaled) must fit in the memory
    available; the file must hold them (a ``.nii.gz`` is decompressed once, streaming, to
    count its bytes and check its CRC: nibabel stops reading before the CRC, so a corrupt
    stream would otherwise be read as wrong voxel values). :func:`load_nifti` makes the
    same checks while it reads the data, in one pass.

    Raises:
        InputError: one line naming the file and the declared dimensions.
    """
    path = Path(path)
    shape, dtype, offset = _declared_data(path, image)
    compressed = _is_gzip(path)
    size = _gzip_size(path) if compressed else path.stat().st_size
    if size < offset + math.prod(shape) * dtype.itemsize:
        raise _truncated(path, shape, dtype, size, compressed)


def _declared_data(path: Path, image: nib.Nifti1Image) -> tuple[tuple[int, ...], np.dtype, int]:
    """The data's shape, dtype and byte offset in the file, once they are known to fit in
    the memory available (see :func:`check_nifti_file`)."""
    shape, dtype = tuple(int(n) for n in image.shape), image.header.get_data_dtype()
    proxy = image.dataobj
    scaled = float(getattr(proxy, "slope", 1.0)) != 1.0 or float(getattr(proxy, "inter", 0.0))
    as_float = scaled or dtype.kind not in "iub"
    check_memory(shape, dtype, path, extra_bytes=math.prod(shape) * 4 if as_float else 0)
    offset = int(getattr(proxy, "offset", image.header.get_data_offset()))
    return shape, dtype, offset


def _is_gzip(path: Path) -> bool:
    return str(path).lower().endswith(".gz")


def _truncated(path: Path, shape, dtype, size: int, compressed: bool) -> InputError:
    held = f"{size} bytes uncompressed" if compressed else f"{size} bytes"
    return InputError(
        f"{path}: file is truncated: header declares {describe_array(shape, dtype)} "
        f"but the file holds {held}"
    )


def _gzip_error(path: Path, error: BaseException) -> InputError:
    return InputError(
        f"{path}: the gzip data are truncated or corrupt ({one_line(error, limit=160)})"
    )


_CHUNK_BYTES = 1 << 24


def _gzip_size(path: Path) -> int:
    """The uncompressed size of a gzip file, reading it through (its CRC is checked)."""
    size = 0
    try:
        with gzip.open(path, "rb") as stream:
            while chunk := stream.read(_CHUNK_BYTES):
                size += len(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise _gzip_error(path, error) from None
    return size


def _read_gzip_unscaled(path: Path, image: nib.Nifti1Image) -> np.ndarray:
    """The unscaled voxel values of a ``.nii.gz``, decompressed once, straight into the
    array (Fortran order, as NIfTI stores them), with the checks of
    :func:`check_nifti_file`: reading on to the end of the stream checks its CRC. Reading
    the file once instead of twice (count, then read) saves a third of the time
    ``liverseg predict`` spends reading a scan (issue 24).

    Raises:
        InputError: too large, truncated or corrupt, as :func:`check_nifti_file`.
    """
    shape, dtype, offset = _declared_data(path, image)
    raw = np.empty(shape[::-1], dtype).T  # a Fortran-ordered array of ``shape``
    target = memoryview(raw.T.reshape(-1).view(np.uint8))
    filled = 0
    try:
        with gzip.open(path, "rb") as stream:
            before = len(stream.read(offset))  # the header and its extensions
            while filled < len(target):
                count = stream.readinto(target[filled : filled + _CHUNK_BYTES])
                if not count:
                    break
                filled += count
            after = 0
            while chunk := stream.read(_CHUNK_BYTES):  # to the end: the CRC is checked
                after += len(chunk)
    except (OSError, EOFError, zlib.error) as error:
        raise _gzip_error(path, error) from None
    if before < offset or filled < len(target):
        raise _truncated(path, shape, dtype, before + filled + after, compressed=True)
    return raw


def read_unscaled(path: str | os.PathLike, image: nib.Nifti1Image) -> np.ndarray:
    """The unscaled voxel values of ``image`` (opened from ``path``), once
    :func:`check_nifti_file`'s checks pass: for a ``.nii.gz`` made while it is read, in one
    pass (:func:`_read_gzip_unscaled`), else before nibabel reads it.

    Raises:
        InputError: too large, truncated or corrupt, as :func:`check_nifti_file`.
    """
    path = Path(path)
    if _is_gzip(path):
        return _read_gzip_unscaled(path, image)
    check_nifti_file(path, image)
    return np.asarray(image.dataobj.get_unscaled())


def load_nifti(path: str | os.PathLike) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Read a NIfTI-1/2 file: its data (scaled to real values, file shape kept) and image.

    The data keep their on-disk integer type when the file has no scaling (usual for CT:
    int16 HU), else they are float32; never float64, to keep memory low.

    Raises:
        InputError: missing, unreadable, truncated or non-NIfTI file, complex or RGB data,
            or data larger than the memory available.
    """
    image = open_nifti(path)
    dtype = image.header.get_data_dtype()
    if dtype.names is not None or dtype.kind == "c":
        raise InputError(f"{path}: unsupported voxel type {dtype} (expected a scalar CT image)")
    path = Path(path)
    try:
        data = _read_data(image, read_unscaled(path, image))
    except InputError:
        raise
    except MemoryError:
        shape, dtype = image.shape, image.header.get_data_dtype()
        raise InputError(
            f"{path}: not enough memory to read {describe_array(shape, dtype)}"
        ) from None
    except Exception as error:
        raise InputError(
            f"{path}: cannot read the image data, the file is truncated or corrupt "
            f"({one_line(error, limit=160)})"
        ) from None
    return data, image


def _read_data(image: nib.Nifti1Image, raw: np.ndarray | None = None) -> np.ndarray:
    """The voxel values with the header's scaling applied, without a float64 copy;
    ``raw``: the unscaled values, when they were read already."""
    proxy = image.dataobj  # nibabel moves the header's scaling into the array proxy
    slope = float(getattr(proxy, "slope", 1.0))
    inter = float(getattr(proxy, "inter", 0.0))
    if raw is None:
        raw = np.asarray(proxy.get_unscaled())
    if slope == 1.0 and inter == 0.0 and raw.dtype.kind in "iub":
        return raw
    data = np.empty(raw.shape, dtype=np.float32)
    np.multiply(raw, np.float32(slope), out=data, casting="unsafe")
    if inter:
        data += np.float32(inter)
    return data


def label_header(template: nib.Nifti1Header | None, affine: np.ndarray, shape: tuple[int, ...]):
    """A header for a uint8 label map.

    With a ``template`` (the input's header) every geometry field is kept: dims, zooms,
    units, qform and sform with their codes, and its flavour (NIfTI-1 or NIfTI-2). Without
    one, qform and sform are both set to ``affine`` with code 1 (scanner); qform is left
    unset (code 0) when the affine has shear that a quaternion cannot hold.
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
    if "glmin" in header.keys():  # NIfTI-1 only
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
