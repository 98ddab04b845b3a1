"""Reading CT scans and writing label maps with correct geometry.

* :func:`load_scan` reads a NIfTI file or a folder holding one DICOM series into a
  :class:`Scan` (HU volume + RAS+ affine + the source header).
* :func:`to_canonical` / :func:`from_canonical` bring volumes to and from the canonical
  orientation used by the models (see :mod:`keras_liverseg.io.orientation`).
* :func:`write_labels` writes a uint8 label map with the input's exact geometry.
* :mod:`keras_liverseg.io.atomic` writes files via a temporary file and a rename.

Nothing here imports Keras.
"""

from keras_liverseg.io.atomic import (
    atomic_path,
    atomic_paths,
    atomic_write_bytes,
    atomic_write_text,
)
from keras_liverseg.io.dicom import LPS_TO_RAS, dicom_files, is_dicom_file, read_dicom_series
from keras_liverseg.io.errors import InputError
from keras_liverseg.io.nifti import is_nifti_path, load_nifti, open_nifti, write_labels
from keras_liverseg.io.orientation import (
    CANONICAL_AXCODES,
    Reorientation,
    check_affine,
    from_canonical,
    to_canonical,
)
from keras_liverseg.io.scan import Scan, find_scans, load_scan, scan_from_array, scan_kind

__all__ = [
    "CANONICAL_AXCODES",
    "LPS_TO_RAS",
    "InputError",
    "Reorientation",
    "Scan",
    "atomic_path",
    "atomic_paths",
    "atomic_write_bytes",
    "atomic_write_text",
    "check_affine",
    "dicom_files",
    "find_scans",
    "from_canonical",
    "is_dicom_file",
    "is_nifti_path",
    "load_nifti",
    "open_nifti",
    "load_scan",
    "read_dicom_series",
    "scan_from_array",
    "scan_kind",
    "to_canonical",
    "write_labels",
]
