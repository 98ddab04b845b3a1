"""Axial slices as the models see them: neighbours as channels, resized in-plane (NumPy).

Inference (:mod:`keras_liverseg.inference.predictor`) and training
(:mod:`keras_liverseg.data.sampler`) both build model inputs with :func:`slice_stack`, so a
model sees slices the same way in both.

Pixel centres are aligned the way ``keras.ops.image.resize(..., "bilinear")`` and
``tf.image.resize`` do it (half-pixel centres, no antialiasing): output pixel ``o`` samples
input coordinate ``(o + 0.5) * n_in / n_out - 0.5``, clamped to the edges. A resize to the
same size is the identity, exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = [
    "context_indices",
    "linear_weights",
    "resize_axes",
    "resize_labels",
    "slice_stack",
]


def linear_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Indices ``i0``, ``i1`` and weight ``w`` so that ``out = in[i0] * (1 - w) + in[i1] * w``."""
    if n_in < 1 or n_out < 1:
        raise ValueError(f"sizes must be positive, got {n_in} -> {n_out}")
    coords = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    coords = np.clip(coords, 0.0, n_in - 1)
    i0 = np.floor(coords).astype(np.intp)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, (coords - i0).astype(np.float32)


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
    index = context_indices(ks, context, volume_c.shape[2])
    stack = volume_c[:, :, index.ravel()].astype(np.float32)  # (X, Y, b * C)
    if nan_fill is not None:
        np.nan_to_num(stack, copy=False, nan=nan_fill, posinf=nan_fill, neginf=nan_fill)
    stack = stack.reshape(volume_c.shape[0], volume_c.shape[1], len(ks), context)
    stack = resize_axes(stack, size, axes=(0, 1))  # (H, W, b, C)
    return np.ascontiguousarray(stack.transpose(2, 0, 1, 3))


def resize_labels(labels: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """Nearest-neighbour resize of ``(H, W)`` labels on the grid of :func:`resize_axes`."""
    rows = _nearest(labels.shape[0], size[0])
    cols = _nearest(labels.shape[1], size[1])
    return labels[np.ix_(rows, cols)]


def _nearest(n_in: int, n_out: int) -> np.ndarray:
    i0, i1, w = linear_weights(n_in, n_out)
    return np.where(w < 0.5, i0, i1)
