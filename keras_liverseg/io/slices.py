"""Axial slices as the models see them: neighbours as channels, resized in-plane (NumPy).

Inference (:mod:`keras_liverseg.inference.predictor`) and training
(:mod:`keras_liverseg.data.sampler`) both build model inputs with :func:`slice_stack`, so a
model sees slices the same way in both.

Pixel centres are aligned the way ``keras.ops.image.resize(..., "bilinear")`` and
``tf.image.resize`` do it (half-pixel centres, no antialiasing): output pixel ``o`` samples
input coordinate ``(o + 0.5) * n_in / n_out - 0.5``, clamped to the edges. A resize to the
same size is the identity, exactly.

Two ways to fit a slice to a model (the model's ``pixel_spacing``, stored on its
:class:`~keras_liverseg.layers.HUWindow`, says which):

* ``pixel_spacing=None``: the slice is resized to the input size, whatever it covers (a
  crop to the liver shows the liver two to three times larger than a full scan does);
* ``pixel_spacing=s``: the slice is resampled to ``s`` mm pixels (:func:`spacing_grid`)
  and placed at the centre of a canvas of at least the input size, each side rounded up to
  a multiple of 16 (:func:`canvas_size`, :func:`place`), padded with air: organs have
  the same size in pixels on any field of view and any pixel spacing, as in nnU-Net and
  TotalSegmentator, which resample to a fixed spacing before they read a scan.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

__all__ = [
    "canvas_size",
    "context_indices",
    "linear_matrix",
    "linear_weights",
    "nearest_indices",
    "place",
    "resize_axes",
    "resize_in_plane",
    "resize_labels",
    "slice_stack",
    "spacing_grid",
    "unplace",
    "voxel_grid",
]

SLAB_SLICES = 32
"""Slices :func:`resize_in_plane` resizes at once (a memory-mapped scan is read a slab at a
time, and the float32 copy of the whole scan is never made)."""


def linear_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices ``i0``, ``i1`` and weight ``w`` so that ``out = in[i0] * (1 - w) + in[i1] * w``."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"sizes must be positive, got {n_in} -> {n_out}")
    coords = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    coords = np.clip(coords, 0.0, n_in - 1)
    i0 = np.floor(coords).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (coords - i0).astype(np.float32)


@functools.lru_cache(maxsize=32)
def linear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """The ``(n_out, n_in)`` float32 matrix of :func:`linear_weights`: ``matrix @ x``
    resizes the first axis of ``x`` linearly (read-only; cached by size)."""
    i0, i1, w = linear_weights(n_in, n_out)
    matrix = np.zeros((n_out, n_in), np.float32)
    rows = np.arange(n_out)
    np.add.at(matrix, (rows, i0), 1.0 - w)
    np.add.at(matrix, (rows, i1), w)
    matrix.setflags(write=False)
    return matrix


def _resize_axis(array: np.ndarray, axis: int, size: int) -> np.ndarray:
    n_in = array.shape[axis]
    if n_in == size:
        return array
    i0, i1, w = linear_weights(n_in, size)
    shape = [1] * array.ndim
    shape[axis] = size
    w = w.reshape(shape)
    a = np.take(array, i0, axis=axis)
    b = np.take(array, i1, axis=axis)
    return a + (b - a) * w


def resize_axes(array: np.ndarray, size: Sequence[int], axes: Sequence[int]) -> np.ndarray:
    """Linearly resize ``array`` along ``axes`` to ``size`` (float32 result).

    Args:
        array: any array; other axes (batch, channels) are left alone.
        size: new length of each axis in ``axes``.
        axes: the axes to resize, e.g. ``(1, 2)`` for ``(batch, H, W, channels)``.
    """
    out = np.asarray(array, dtype=np.float32)
    for axis, n in zip(axes, size, strict=True):
        out = _resize_axis(out, axis % out.ndim, int(n))
    return out


def resize_in_plane(volume: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """``volume`` (X, Y, Z, ...) resized linearly to ``size`` in its first two axes, a slab
    of :data:`SLAB_SLICES` slices at a time, as float32."""
    size = tuple(int(n) for n in size)
    out = np.empty((*size, *volume.shape[2:]), np.float32)
    for start in range(0, volume.shape[2], SLAB_SLICES):
        part = slice(start, start + SLAB_SLICES)
        out[:, :, part] = resize_axes(volume[:, :, part], size, axes=(0, 1))
    return out


def context_indices(k: np.ndarray | int, context: int, depth: int) -> np.ndarray:
    """Slice indices of the ``context`` neighbours centred on ``k`` (edge slices repeated)."""
    offsets = np.arange(context) - context // 2
    return np.clip(np.asarray(k)[..., None] + offsets, 0, depth - 1)


def slice_stack(
    volume_c: np.ndarray,
    ks: Sequence[int] | np.ndarray,
    context: int,
    size: Sequence[int],
    nan_fill: float | None = None,
) -> np.ndarray:
    """``(len(ks), H, W, context)`` float32 model input for axial slices ``ks``.

    Args:
        volume_c: canonical volume, axial slices ``volume_c[:, :, k]``.
        ks: the slices to segment.
        context: neighbouring slices per input (channels ordered inferior to superior).
        size: ``(H, W)`` of the model input.
        nan_fill: replace NaN and infinities by this HU value (``None`` leaves them).
    """
    ks = np.asarray(ks)
    index = context_indices(ks, context, volume_c.shape[2])  # (b, C)
    # neighbouring inputs share slices: read and resize each slice once (b + C - 1 of a
    # run of b, instead of b C)
    unique, inverse = np.unique(index, return_inverse=True)
    slices = volume_c[:, :, unique].astype(np.float32)  # (X, Y, u)
    if (nan_fill is not None and volume_c.dtype.kind not in "biu"
            and not np.isfinite(slices).all()):
        np.nan_to_num(slices, copy=False, nan=nan_fill, posinf=nan_fill, neginf=nan_fill)
    slices = resize_axes(slices, size, axes=(0, 1))  # (H, W, u)
    stack = slices[:, :, inverse.ravel()].reshape(*slices.shape[:2], len(ks), context)
    return np.ascontiguousarray(stack.transpose(2, 0, 1, 3))


def resize_labels(labels: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize of ``(H, W)`` labels on the grid of :func:`resize_axes`."""
    rows = nearest_indices(labels.shape[0], size[0])
    cols = nearest_indices(labels.shape[1], size[1])
    return labels[np.ix_(rows, cols)]


def nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    """The input index nearest to each of ``n_out`` output samples on the grid of
    :func:`resize_axes` (a nearest-neighbour resize of labels)."""
    i0, i1, w = linear_weights(int(n_in), int(n_out))
    return np.where(w < 0.5, i0, i1)


def spacing_grid(
    shape: Sequence[int], voxel: Sequence[float], pixel_spacing: float
) -> tuple[int, int]:
    """Rows and columns of an ``shape`` (rows, columns) slice with ``voxel`` (mm) pixels
    once resampled to ``pixel_spacing`` mm (at least one pixel each)."""
    if pixel_spacing <= 0:
        raise ValueError(f"pixel_spacing must be > 0, got {pixel_spacing}")
    return tuple(max(1, int(round(int(n) * abs(float(v)) / pixel_spacing)))
                 for n, v in zip(shape[:2], voxel[:2], strict=True))


def voxel_grid(
    shape: Sequence[int],
    spacing: Sequence[float],
    pixel_spacing: float | None,
    slice_spacing: float | None,
) -> tuple[int, int, int]:
    """The ``(X, Y, Z)`` shape of a canonical volume of voxel sizes ``spacing`` (mm) once
    resampled to ``pixel_spacing`` in-plane and ``slice_spacing`` between slices, keeping
    its extent: ``n`` voxels of ``s`` mm become ``round(n * s / t)`` voxels (at least one);
    a spacing that is ``None`` keeps the volume's own along its axes (a 3D model's grid)."""
    targets = (pixel_spacing, pixel_spacing, slice_spacing)
    return tuple(
        int(n) if t is None else max(1, int(round(int(n) * abs(float(s)) / float(t))))
        for n, s, t in zip(shape, spacing, targets, strict=True)
    )


def canvas_size(
    grid: Sequence[int], input_size: Sequence[int], multiple: int = 16
) -> tuple[int, int]:
    """The canvas a ``grid`` slice is read on: at least ``input_size``, each side rounded up
    to a multiple of ``multiple`` (the models' four 2x poolings)."""
    return tuple(max(int(i), -(-int(g) // multiple) * multiple)
                 for g, i in zip(grid, input_size, strict=True))


def _offsets(grid: Sequence[int], canvas: Sequence[int]) -> tuple[int, int]:
    return tuple((int(c) - int(g)) // 2 for g, c in zip(grid, canvas, strict=True))


def place(stack: np.ndarray, canvas: Sequence[int], fill: float) -> np.ndarray:
    """``(b, H, W, C)`` canvas holding ``stack`` ``(b, h, w, C)`` at its centre, ``fill``
    around it (undone by :func:`unplace`)."""
    b, h, w = stack.shape[:3]
    if (h, w) == tuple(canvas):
        return stack
    out = np.full((b, *canvas, *stack.shape[3:]), fill, dtype=stack.dtype)
    r, c = _offsets((h, w), canvas)
    out[:, r : r + h, c : c + w] = stack
    return out


def unplace(stack: np.ndarray, grid: Sequence[int]) -> np.ndarray:
    """The ``grid`` (h, w) centre of a ``(b, H, W, ...)`` canvas: the inverse of
    :func:`place`."""
    r, c = _offsets(grid, stack.shape[1:3])
    return stack[:, r : r + int(grid[0]), c : c + int(grid[1])]
