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


def _translated(affine: np.ndarray, start) -> np.ndarray:
    """``affine`` of the sub-array that starts at voxel ``start``."""
    out = np.array(affine, dtype=float)
    out[:3, 3] = affine[:3, :3] @ np.asarray(start, float) + affine[:3, 3]
    return out


def crop_to_mask_box(
    volume: np.ndarray, labels: np.ndarray, affine: np.ndarray, mask: np.ndarray,
    margin_mm: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``volume`` and ``labels`` cut to ``mask``'s bounding box widened by ``margin_mm`` on
    every side (a liver-centred scan), with the affine of the cut."""
    sizes = np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))
    box = []
    for axis in range(3):
        hit = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        pad = int(np.ceil(margin_mm / sizes[axis]))
        box.append(slice(max(hit[0] - pad, 0), min(hit[-1] + 1 + pad, mask.shape[axis])))
    box = tuple(box)
    start = [b.start for b in box]
    return volume[box], labels[box], _translated(affine, start)


def in_plane_axes(affine: np.ndarray) -> list[int]:
    """The two array axes closest to the axial plane (the third runs closest to S-I)."""
    import nibabel.orientations as nio

    axial = int(np.flatnonzero(np.abs(nio.io_orientation(affine)[:, 0]) == 2)[0])
    return [a for a in range(3) if a != axial]


def coarsen_in_plane(
    volume: np.ndarray, labels: np.ndarray, affine: np.ndarray, factor: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A copy at ``factor`` times the in-plane pixel spacing: the image averaged over
    ``factor x factor`` blocks of the two axes closest to the axial plane (what a coarser
    reconstruction gives), each label class kept where it covers at least half a block,
    and the matching affine (rows and columns that do not fill a block are dropped)."""
    plane = in_plane_axes(affine)
    keep = [slice(None)] * 3
    for a in plane:
        keep[a] = slice(0, volume.shape[a] // factor * factor)
    volume, labels = volume[tuple(keep)], labels[tuple(keep)]

    def blocks(array):
        shape = []
        for a in range(3):
            shape += [array.shape[a] // factor, factor] if a in plane else [array.shape[a]]
        reshaped = array.reshape(shape)
        mean_axes = tuple(p + 1 + i for i, p in enumerate(sorted(plane)))
        return reshaped.mean(axis=mean_axes)

    image = blocks(volume.astype(np.float32))
    out = np.zeros(image.shape, np.uint8)
    out[blocks((labels >= 1).astype(np.float32)) >= 0.5] = 1
    out[blocks((labels == 2).astype(np.float32)) >= 0.5] = 2
    scaled = np.array(affine, dtype=float)
    for a in plane:
        scaled[:3, a] *= factor
    shift = np.zeros(3)
    shift[plane] = (factor - 1) / 2
    scaled[:3, 3] = affine[:3, :3] @ shift + affine[:3, 3]
    return image, out, scaled
