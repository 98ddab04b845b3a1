"""Reading label maps: one set of checks for training data, evaluation and scripts.

A label map is a 3-D NIfTI volume (a trailing 4th axis of length 1 is allowed) of integer
labels; LiTS labels are 0 background, 1 liver, 2 tumor. Float files are accepted when every
value is within 1e-3 of an integer (label maps saved as float32); NaN, infinite or
fractional values (probabilities) are not labels.

Errors name the file: :class:`LabelError` carries the ``path`` and the ``reason`` apart, so
a caller can put its own words around them (``ground truth PATH holds ...``, ``case 3:
segmentation-3.nii holds ...``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from keras_liverseg.io.errors import InputError, one_line
from keras_liverseg.io.nifti import _read_data, check_nifti_file, open_nifti, read_unscaled

__all__ = [
    "LABELS",
    "LabelError",
    "LabelMap",
    "LabelValuesError",
    "open_grid",
    "read_labels",
]

LABELS = (0, 1, 2)
"""The LiTS labels: background, liver, tumor."""


class LabelError(InputError):
    """A file that holds no usable label map; ``str()`` is ``"<path> <reason>"``."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path} {reason}")


class LabelValuesError(LabelError):
    """A label map with values outside LiTS's {0, 1, 2}; ``values`` are the first few."""

    def __init__(self, path: str | os.PathLike, values: np.ndarray):
        self.values = values
        shown = ", ".join(f"{v:g}" for v in values[:5].astype(np.float64))
        more = f" and {values.size - 5} more" if values.size > 5 else ""
        super().__init__(path, f"holds labels outside {{0, 1, 2}}: {shown}{more}")


@dataclass(frozen=True)
class LabelMap:
    """A label map read from a file: its 3-D ``labels`` and the NIfTI ``image`` (header,
    affine; its data are not kept)."""

    labels: np.ndarray
    image: nib.Nifti1Image

    @property
    def affine(self) -> np.ndarray:
        return self.image.affine


def open_grid(path: str | os.PathLike) -> tuple[nib.Nifti1Image, tuple[int, int, int]]:
    """Open a NIfTI file without reading its data: the image and its 3-D shape.

    Raises:
        InputError: (from :func:`~keras_liverseg.io.nifti.open_nifti`, ``"<path>: ..."``) a
            missing, NRRD or unreadable file.
        LabelError: a truncated, corrupt or too large file, or a volume that is not 3-D.
    """
    path = Path(path)
    image = open_nifti(path)
    try:  # a truncated, corrupt or too large file fails before its data are read
        check_nifti_file(path, image)
    except InputError as error:
        raise _unreadable(path, error) from None
    return image, _grid_shape(path, image)


def _unreadable(path: Path, error: InputError) -> LabelError:
    return LabelError(path, f"cannot be read ({one_line(error).removeprefix(f'{path}: ')})")


def _grid_shape(path: Path, image: nib.Nifti1Image) -> tuple[int, int, int]:
    """The 3-D shape of a label volume (a trailing 4th axis of length 1 dropped)."""
    shape = tuple(int(n) for n in image.shape)
    if len(shape) == 4 and shape[3] == 1:
        shape = shape[:3]
    if len(shape) != 3:
        raise LabelError(path, f"has shape {shape}; a 3-D label volume is needed")
    return shape


def read_labels(path: str | os.PathLike, lits: bool = True) -> LabelMap:
    """Read a label map: integer labels, with ``lits`` checked to be in {0, 1, 2} (uint8).

    With ``lits=False`` any integer labels are returned, in the file's integer type (or
    rounded floats), for a ground truth with its own labels (TotalSegmentator's liver = 5).

    Raises:
        InputError: a missing or unreadable file (see :func:`open_grid`).
        LabelError: not 3-D, unreadable data, not numbers, NaN or infinite values,
            non-integer values.
        LabelValuesError: (``lits``) labels outside {0, 1, 2}.
    """
    path = Path(path)
    image = open_nifti(path)
    try:  # checked as it is read: a .nii.gz is decompressed once, not twice
        data = _read_data(image, read_unscaled(path, image))
    except InputError as error:
        raise _unreadable(path, error) from None
    except Exception as error:
        raise LabelError(path, f"cannot be read ({one_line(error)})") from None
    data = data.reshape(_grid_shape(path, image))
    if not np.issubdtype(data.dtype, np.integer) and data.dtype != np.bool_:
        if not np.issubdtype(data.dtype, np.floating):
            raise LabelError(path, f"holds {data.dtype} data, not labels")
        if not np.all(np.isfinite(data)):
            raise LabelError(path, "holds NaN or infinite values")
        rounded = np.rint(data)
        off = np.abs(data - rounded) > 1e-3
        if off.any():
            example = float(data[off].flat[0])
            raise LabelError(
                path,
                f"holds non-integer values (e.g. {example:g}); "
                "labels 0, 1, 2 are needed, not probabilities",
            )
        data = rounded
    if not lits:
        return LabelMap(labels=data, image=image)  # no copy of a large volume
    if data.size and (data.min() < LABELS[0] or data.max() > LABELS[-1]):
        raise LabelValuesError(path, np.unique(data[(data < LABELS[0]) | (data > LABELS[-1])]))
    return LabelMap(labels=data.astype(np.uint8, copy=False), image=image)
