"""The canonical voxel orientation used for inference and training.

Canonical orientation (``CANONICAL_AXCODES = ("P", "L", "S")``):

* axis 0 (image rows) runs from anterior to posterior,
* axis 1 (image columns) runs from the patient's right to the patient's left,
* axis 2 runs from inferior to superior, so ``volume[:, :, k]`` is the k-th axial slice
  counted from the feet.

So ``plt.imshow(volume[:, :, k])`` shows a slice the way radiology viewers (and the DICOM
pixel grid of an axial series) do: anterior at the top, the patient's right on the left of
the image. Getting there only permutes and flips axes (``nibabel.orientations``), so it is
exact, never resamples, and is undone exactly by :func:`from_canonical`. Oblique scans are
brought to the closest canonical axes; their voxel grid is kept.

Training code must use :func:`to_canonical` too, so that models see slices the same way at
training and at inference time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from nibabel import orientations as nio
from nibabel.affines import voxel_sizes

from keras_liverseg.io.errors import InputError

__all__ = [
    "CANONICAL_AXCODES",
    "Reorientation",
    "canonical_spacing",
    "check_affine",
    "from_canonical",
    "to_canonical",
]

CANONICAL_AXCODES: tuple[str, str, str] = ("P", "L", "S")


@dataclass(frozen=True)
class Reorientation:
    """How a volume was brought to canonical orientation, to undo it later.

    Attributes:
        transform: ``(3, 2)`` nibabel orientation transform from the original voxel axes
            to the canonical ones.
        original_shape: spatial shape of the original volume.
        original_affine: voxel-to-world (RAS+, mm) affine of the original volume.
        canonical_affine: voxel-to-world affine of the canonical volume (same world).
    """

    transform: np.ndarray
    original_shape: tuple[int, int, int]
    original_affine: np.ndarray
    canonical_affine: np.ndarray

    @property
    def original_axcodes(self) -> tuple[str, str, str]:
        """Axis codes of the original volume, e.g. ``("L", "P", "S")``."""
        return tuple(nio.aff2axcodes(self.original_affine))

    @property
    def canonical_shape(self) -> tuple[int, int, int]:
        """Spatial shape of the canonical volume."""
        return tuple(self.original_shape[int(axis)] for axis in np.argsort(self.transform[:, 0]))

    @property
    def is_identity(self) -> bool:
        """True when the volume already is in canonical orientation."""
        return bool(
            np.array_equal(self.transform[:, 0], [0, 1, 2]) and np.all(self.transform[:, 1] == 1)
        )


def check_affine(affine: np.ndarray) -> np.ndarray:
    """Return ``affine`` as a float64 ``(4, 4)`` array; raise :class:`InputError` if unusable.

    Unusable: wrong shape, non-finite values, or a singular (non-invertible) 3x3 part.
    """
    affine = np.asarray(affine, dtype=np.float64)
    if affine.shape != (4, 4):
        raise InputError(f"the affine must be a 4x4 matrix, got shape {affine.shape}")
    if not np.all(np.isfinite(affine)):
        raise InputError("the affine holds NaN or infinite values")
    linear = affine[:3, :3]
    singular = np.linalg.svd(linear, compute_uv=False)
    if singular.min() <= 1e-6 * max(singular.max(), 1e-12):
        raise InputError("the affine is not invertible (zero or degenerate voxel size)")
    return affine


def _transform(affine: np.ndarray) -> np.ndarray:
    current = nio.io_orientation(affine)
    if np.any(np.isnan(current)):
        raise InputError("the affine is not invertible (an axis has no direction)")
    return nio.ornt_transform(current, nio.axcodes2ornt(CANONICAL_AXCODES))


def to_canonical(
    volume: np.ndarray, affine: np.ndarray
) -> tuple[np.ndarray, np.ndarray, Reorientation]:
    """Bring a volume to the canonical orientation (see module docstring).

    Args:
        volume: array whose first three axes are spatial (extra trailing axes, e.g.
            channels, are carried along).
        affine: ``(4, 4)`` voxel-to-world (RAS+, mm) affine of ``volume``.

    Returns:
        ``(canonical_volume, canonical_affine, reorientation)``. ``canonical_volume`` is a
        view of ``volume`` (no copy); ``reorientation`` undoes it with
        :func:`from_canonical`.
    """
    affine = check_affine(affine)
    volume = np.asanyarray(volume)
    if volume.ndim < 3:
        raise InputError(f"expected a 3D volume, got shape {volume.shape}")
    shape = tuple(int(v) for v in volume.shape[:3])
    transform = _transform(affine)
    canonical_affine = affine @ nio.inv_ornt_aff(transform, shape)
    reorientation = Reorientation(transform, shape, affine, canonical_affine)
    return nio.apply_orientation(volume, transform), canonical_affine, reorientation


def canonical_spacing(affine: np.ndarray) -> tuple[float, float, float]:
    """Voxel sizes (mm) along the canonical axes of a volume with ``affine`` (what
    ``voxel_sizes`` of :func:`to_canonical`'s affine gives, without the volume)."""
    affine = check_affine(affine)
    sizes = voxel_sizes(affine)
    out = np.empty(3)
    out[_transform(affine)[:, 0].astype(int)] = sizes
    return tuple(float(v) for v in out)


def from_canonical(volume: np.ndarray, reorientation: Reorientation) -> np.ndarray:
    """Undo :func:`to_canonical`: a canonical-grid array back on the original voxel grid.

    Works on any array whose first three axes are the canonical spatial axes (labels,
    probabilities with a trailing class axis, ...). Returns a view when possible.
    """
    volume = np.asanyarray(volume)
    if tuple(volume.shape[:3]) != reorientation.canonical_shape:
        raise ValueError(
            f"expected a canonical array of spatial shape {reorientation.canonical_shape}, "
            f"got {volume.shape[:3]}"
        )
    back = nio.ornt_transform(
        nio.axcodes2ornt(CANONICAL_AXCODES), nio.io_orientation(reorientation.original_affine)
    )
    return nio.apply_orientation(volume, back)
