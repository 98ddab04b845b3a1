"""Reading CT scans and writing label maps with correct geometry.

* :func:`load_scan` reads a NIfTI file or a folder holding one DICOM series into a
  :class:`Scan` (HU volume + RAS+ affine + the source header).
* :func:`to_canonical` / :func:`from_canonical` bring volumes to and from the canonical
  orientation used by the models (see :mod:`keras_liverseg.io.orientation`).
* :func:`write_labels` writes a uint8 label map with the input's exact geometry.
* :mod:`keras_liverseg.io.atomic` writes files via a temporary file and a rename.
* :mod:`keras_liverseg.io.memory` refuses images larger than the memory available.

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
from keras_liverseg.io.memory import available_memory, check_memory
from keras_liverseg.io.nifti import (
    check_nifti_file,
    header_warnings,
    is_nifti_path,
    load_nifti,
    open_nifti,
    unsupported_format,
    write_labels,
)
from keras_liverseg.io.orientation import (
    CANONICAL_AXCODES,
    Reorientation,
    check_affine,
    from_canonical,
    to_canonical,
)
from keras_liverseg.io.scan import (
    Scan,
    find_scans,
    load_scan,
    scan_from_array,
    scan_kind,
    skipped_label_files,
)

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
    "available_memory",
    "check_affine",
    "check_memory",
    "check_nifti_file",
    "dicom_files",
    "find_scans",
    "from_canonical",
    "header_warnings",
    "is_dicom_file",
    "is_nifti_path",
    "load_nifti",
    "open_nifti",
    "load_scan",
    "read_dicom_series",
    "scan_from_array",
    "scan_kind",
    "skipped_label_files",
    "to_canonical",
    "unsupported_format",
    "write_labels",
]
