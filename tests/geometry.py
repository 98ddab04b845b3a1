"""Geometry helpers shared by the I/O and prediction tests."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np

from keras_liverseg.io import LPS_TO_RAS

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


_NRRD_TYPES = {"short": "<i2", "unsigned char": "u1", "uchar": "u1", "int": "<i4"}


def read_nrrd(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A small reader for the NRRD masks of ../shared/data (LPS space, raw or gzip): the
    array in (i, j, k) order and its RAS affine."""
    head, _, body = Path(path).read_bytes().partition(b"\n\n")
    fields = dict(line.split(": ", 1) for line in head.decode().splitlines()[1:]
                  if ": " in line and not line.startswith("#"))
    if fields["space"] != "left-posterior-superior":
        raise ValueError(f"{path}: unexpected NRRD space {fields['space']}")
    sizes = [int(v) for v in fields["sizes"].split()]
    data = gzip.decompress(body) if fields["encoding"] == "gzip" else body
    array = np.frombuffer(data, _NRRD_TYPES[fields["type"]]).reshape(sizes[::-1])
    directions = [[float(v) for v in group.split(",")]
                  for group in re.findall(r"\(([^)]*)\)", fields["space directions"])]
    lps = np.eye(4)
    lps[:3, :3] = np.array(directions).T
    lps[:3, 3] = [float(v) for v in fields["space origin"].strip("()").split(",")]
    return array.transpose(2, 1, 0), LPS_TO_RAS @ lps
