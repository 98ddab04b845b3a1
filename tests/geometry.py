"""Geometry helpers shared by the I/O and prediction tests."""

from __future__ import annotations

import numpy as np

NIFTI_GEOMETRY_FIELDS = (
    "dim", "pixdim", "qform_code", "sform_code", "quatern_b", "quatern_c", "quatern_d",
    "qoffset_x", "qoffset_y", "qoffset_z", "srow_x", "srow_y", "srow_z",
)
"""The NIfTI header fields that place an image in the world."""


def nifti_geometry(header, extra: tuple[str, ...] = ()) -> dict:
    """The header's geometry fields (plus ``extra``) as plain lists, for comparisons."""
    return {key: np.asarray(header[key]).tolist() for key in (*NIFTI_GEOMETRY_FIELDS, *extra)}


def rotation(degrees: float, axis: int) -> np.ndarray:
    """A 3x3 rotation by ``degrees`` about voxel axis ``axis``."""
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    i, j = [a for a in range(3) if a != axis]
    r = np.eye(3)
    r[i, i], r[i, j], r[j, i], r[j, j] = c, -s, s, c
    return r
