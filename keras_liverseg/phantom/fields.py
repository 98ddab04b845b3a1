"""Numeric primitives for implicit organ shapes: signed-distance-like fields and smooth noise.

Every field is a float32 array in millimetres, negative inside the shape, roughly a signed
distance near the surface (exact for spheres and capsules, a good approximation for
ellipsoids). Coordinates are broadcastable arrays ``X (nx,1,1)``, ``Y (1,ny,1)``,
``Z (1,1,nz)`` in the patient frame (see :mod:`keras_liverseg.phantom.canvas`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

__all__ = [
    "capsule",
    "ellipsoid",
    "intersect",
    "lattice_noise",
    "occupancy",
    "rotation",
    "smooth_union",
    "spline",
    "subtract",
    "superellipsoid",
    "union",
]

F32 = np.float32


def occupancy(sdf: np.ndarray, width: float) -> np.ndarray:
    """Fraction of a voxel of size ``width`` (mm) inside the surface ``sdf == 0``."""
    occ = np.multiply(sdf, F32(-1.0 / width), dtype=F32)
    occ += F32(0.5)
    np.clip(occ, 0.0, 1.0, out=occ)
    return occ


def rotation(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0) -> np.ndarray:
    """3x3 rotation: ``roll`` about x, then ``pitch`` about y, then ``yaw`` about z (radians)."""
    cx, sx = np.cos(roll), np.sin(roll)
    cy, sy = np.cos(pitch), np.sin(pitch)
    cz, sz = np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def _local(X, Y, Z, center: Sequence[float], rot: np.ndarray | None):
    dx, dy, dz = X - F32(center[0]), Y - F32(center[1]), Z - F32(center[2])
    if rot is None:
        return dx, dy, dz
    r = rot.astype(F32)
    # local = R^T (p - c)
    return (
        r[0, 0] * dx + r[1, 0] * dy + r[2, 0] * dz,
        r[0, 1] * dx + r[1, 1] * dy + r[2, 1] * dz,
        r[0, 2] * dx + r[1, 2] * dy + r[2, 2] * dz,
    )


def ellipsoid(X, Y, Z, center, semi, rot: np.ndarray | None = None) -> np.ndarray:
    """Approximate signed distance to an ellipsoid with semi-axes ``semi`` (mm)."""
    lx, ly, lz = _local(X, Y, Z, center, rot)
    a, b, c = (F32(s) for s in semi)
    qx, qy, qz = lx / a, ly / b, lz / c
    k0 = np.sqrt(qx * qx + qy * qy + qz * qz, dtype=F32)
    k1 = np.sqrt((qx / a) ** 2 + (qy / b) ** 2 + (qz / c) ** 2, dtype=F32)
    k1 += F32(1e-6)
    return (k0 * (k0 - F32(1.0)) / k1).astype(F32, copy=False)


def superellipsoid(X, Y, Z, center, semi, exponent: float, rot=None) -> np.ndarray:
    """Ellipse in x-y, flatter ends in z (``|r|^e + |z/c|^e = 1``); approximate distance."""
    lx, ly, lz = _local(X, Y, Z, center, rot)
    a, b, c = (F32(s) for s in semi)
    e = F32(exponent)
    rho = np.sqrt((lx / a) ** 2 + (ly / b) ** 2)
    q = (rho**e + np.abs(lz / c) ** e) ** (F32(1) / e)
    return ((q - F32(1)) * F32(min(semi))).astype(F32, copy=False)


def capsule(X, Y, Z, a, b, ra: float, rb: float) -> np.ndarray:
    """Signed distance to a cone-capped segment from ``a`` (radius ``ra``) to ``b`` (``rb``)."""
    a = np.asarray(a, dtype=F32)
    ab = np.asarray(b, dtype=F32) - a
    denom = F32(max(float(ab @ ab), 1e-6))
    px, py, pz = X - a[0], Y - a[1], Z - a[2]
    h = (px * ab[0] + py * ab[1] + pz * ab[2]) / denom
    np.clip(h, 0.0, 1.0, out=h)
    dx, dy, dz = px - h * ab[0], py - h * ab[1], pz - h * ab[2]
    dist = np.sqrt(dx * dx + dy * dy + dz * dz, dtype=F32)
    return (dist - (F32(ra) + h * F32(rb - ra))).astype(F32, copy=False)


def spline(points, n: int = 8) -> np.ndarray:
    """Catmull-Rom curve through ``points`` with ``n`` samples per span (mm, (k, 3))."""
    p = np.asarray(points, dtype=np.float64)
    if len(p) < 3:
        return p
    ext = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    t = np.linspace(0, 1, n, endpoint=False)[:, None]
    out = []
    for i in range(1, len(ext) - 2):
        p0, p1, p2, p3 = ext[i - 1], ext[i], ext[i + 1], ext[i + 2]
        out.append(
            0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                   + (-p0 + 3 * p1 - 3 * p2 + p3) * t**3)
        )
    out.append(p[-1:])
    return np.vstack(out)


def union(*fields: np.ndarray) -> np.ndarray:
    """Set union of shapes (pointwise minimum)."""
    out = fields[0]
    for f in fields[1:]:
        out = np.minimum(out, f)
    return out


def intersect(*fields: np.ndarray) -> np.ndarray:
    """Set intersection of shapes (pointwise maximum)."""
    out = fields[0]
    for f in fields[1:]:
        out = np.maximum(out, f)
    return out


def subtract(a: np.ndarray, b: np.ndarray, gap: float = 0.0) -> np.ndarray:
    """``a`` minus ``b`` grown by ``gap`` mm."""
    return np.maximum(a, F32(gap) - b)


def smooth_union(a: np.ndarray, b: np.ndarray, k: float) -> np.ndarray:
    """Union with a fillet of about ``k`` mm (polynomial smooth minimum)."""
    k = F32(k)
    h = np.clip(F32(0.5) + F32(0.5) * (b - a) / k, 0.0, 1.0)
    return (b + (a - b) * h - k * h * (F32(1.0) - h)).astype(F32, copy=False)


def lattice_noise(
    rng: np.random.Generator,
    shape: Sequence[int],
    spacing: Sequence[float],
    scale: float,
    order: int = 1,
) -> np.ndarray:
    """Smooth random field of unit standard deviation with features about ``scale`` mm.

    Random values on a lattice with cells of ``scale`` mm are interpolated (``order``) onto
    a grid of ``shape`` voxels of ``spacing`` mm, so the cost is one zoom of the output.
    """
    shape = tuple(int(s) for s in shape)
    lattice = tuple(
        max(2, int(np.ceil(n * h / scale)) + 2) for n, h in zip(shape, spacing, strict=True)
    )
    values = rng.standard_normal(lattice).astype(F32)
    if order == 1:
        values = ndimage.gaussian_filter(values, 0.5, mode="wrap")
        values /= max(float(values.std()), 1e-6)
    # map output voxel i to lattice coordinate (i + 0.5) * h / scale + offset
    offset = [rng.uniform(0.0, 1.0) for _ in shape]
    axes = [
        (np.arange(n, dtype=F32) + 0.5) * F32(h / scale) + F32(o)
        for n, h, o in zip(shape, spacing, offset, strict=False)
    ]
    out = _separable_interp(values, axes) if order == 1 else ndimage.map_coordinates(
        values, np.meshgrid(*axes, indexing="ij"), order=order, mode="nearest"
    )
    if order == 1:  # linear interpolation lowers the variance by about 0.865 per axis
        out *= F32(0.865 ** -len(shape))
    return out.astype(F32, copy=False)


def _separable_interp(values: np.ndarray, axes: list[np.ndarray]) -> np.ndarray:
    """Linear interpolation of ``values`` at the grid ``axes``, one axis at a time."""
    out = values
    for axis, coords in enumerate(axes):
        n = out.shape[axis]
        i0 = np.clip(np.floor(coords).astype(np.intp), 0, n - 2)
        w = np.clip(coords - i0, 0.0, 1.0).astype(F32)
        a = np.take(out, i0, axis=axis)
        b = np.take(out, i0 + 1, axis=axis)
        shape = [1] * out.ndim
        shape[axis] = -1
        w = w.reshape(shape)
        out = a + (b - a) * w
    return out
