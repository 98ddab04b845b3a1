"""Sliding-window inference of a volumetric model (the V-Net family) over a CT volume.

A 3D model reads patches of ``(D, H, W)`` voxels, far fewer than a scan holds, so the
scan is read as nnU-Net reads it (Isensee et al. 2021, ``compute_steps_for_sliding_window``
and ``compute_gaussian``; MONAI's ``sliding_window_inference`` does the same): windows of
the patch size overlapping by at least ``overlap`` of a patch along each axis
(:func:`patch_starts`), each window's class probabilities weighted by a Gaussian centred
on the patch (:func:`gaussian_importance`: a voxel near a patch's border, where the model
sees little context, counts less), the weighted sums divided by the summed weights.

Axes. The volume is canonical ``(X, Y, Z)``, axial slices ``volume[:, :, k]`` (as for
:func:`~keras_liverseg.inference.predictor.predict_slices`). The model's ``(D, H, W)``
axes are the volume's ``(Z, X, Y)``: a patch is ``volume[x, y, z].transpose(2, 0, 1)``,
so that ``D`` runs along the slices and each ``(H, W)`` plane is an axial slice as the 2D
models see it (rows X, columns Y). ``patch`` is always given in the model's order
``(D, H, W)``.

Padding. Along an axis shorter than the patch, the volume is centred in one window and
padded with ``pad_hu`` (air) on both sides, the extra voxel after it (nnU-Net's
``pad_nd_image`` and :func:`keras_liverseg.io.slices.place` centre it too); the padding
is never written to the outputs. NaN and infinite HU are read as ``pad_hu``. No padded
copy of the volume is made: each patch is cut from the volume into a ``pad_hu`` canvas.

Memory. The windows are walked in order of their start along ``D`` (the slices). Every
window still to come starts at or after the current start, so the slices before it are
final: they are normalised, turned into labels (and float16 probabilities on request)
and handed out, and the accumulators keep only the ``min(patch_D, Z)`` slices that the
current windows touch (a slab). The accumulators' peak, :func:`accumulator_bytes`, is
``4 * min(patch_D, Z) * X * Y * (K + 1)`` bytes (the K weighted class sums and the
summed weights, float32): 201 + 67 MB for a 512 x 512 scan of any length with a patch 64
deep and 3 classes, instead of 1.9 + 0.6 GB for 600 slices held whole. On top of it: a
batch of patches in and out (``batch_size * D * H * W * (K + 1)`` float32) and the
outputs (uint8 labels, optionally float16 probabilities and/or tumor probability).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from keras_liverseg.inference.predictor import (
    _flush_subnormal,
    _labels_of,
    _predict_batch,
    slice_major,
)

__all__ = [
    "PAD_HU",
    "accumulator_bytes",
    "gaussian_importance",
    "patch_starts",
    "sliding_window_probabilities",
]

PAD_HU = -1024.0
"""Air: what the volume is padded with where it is smaller than the patch."""

TRUNCATE = 4.0
"""The Gaussian is cut off ``TRUNCATE`` sigmas from its centre, as ``scipy.ndimage``'s
``gaussian_filter`` (which nnU-Net uses) cuts its kernel."""

Progress = Callable[[int, int], None]


def patch_starts(size: int, patch: int, overlap: float = 0.5) -> list[int]:
    """Start positions of the windows of ``patch`` voxels that cover ``[0, size)`` along
    one axis, neighbours overlapping by at least ``overlap`` of a patch.

    As nnU-Net's ``compute_steps_for_sliding_window``: the first window starts at 0, the
    last at ``size - patch``, and the fewest windows whose step is at most the target step
    ``patch * (1 - overlap)`` are spread evenly between them (starts rounded to the
    nearest voxel, halves to even as ``np.round``). Unlike nnU-Net, the target step is
    rounded down to whole voxels first, so that the rounded steps never exceed it and the
    overlap is at least the requested one (nnU-Net's own starts whenever the target step
    is whole, e.g. ``overlap=0.5`` and an even patch), up to ``patch - 1`` voxels: a step
    is at least one voxel.

    Args:
        size: the axis' length in voxels.
        patch: the window's length along it.
        overlap: the smallest overlap of neighbouring windows, a fraction of ``patch``
            in ``[0, 1)`` (nnU-Net's ``tile_step_size`` is ``1 - overlap``).

    Returns:
        Sorted, distinct starts; ``[0]`` when ``size <= patch`` (a shorter axis is padded
        to the patch).

    Example:
        >>> patch_starts(110, 64, 0.5)
        [0, 23, 46]
    """
    size, patch = int(size), int(patch)
    if size < 1 or patch < 1:
        raise ValueError(f"size and patch must be >= 1, got {size} and {patch}")
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    if size <= patch:
        return [0]
    span = size - patch
    step = max(1, math.floor(patch * (1.0 - overlap) + 1e-9))
    gaps = -(-span // step)  # windows - 1
    return [round(Fraction(i * span, gaps)) for i in range(gaps + 1)]


def gaussian_importance(patch: Sequence[int], sigma_scale: float = 1.0 / 8) -> np.ndarray:
    """nnU-Net's importance map (``compute_gaussian``): a Gaussian over the patch.

    ``sigma = patch * sigma_scale`` along each axis, centred on the patch, cut off
    :data:`TRUNCATE` sigmas from the centre, scaled to a maximum of 1, its zeros (beyond
    the cut-off) set to its smallest non-zero value so that every voxel of a window counts
    a little. nnU-Net filters a single voxel at index ``patch // 2``, half a voxel off the
    centre for an even patch; this map is centred at ``(patch - 1) / 2``, so that it is
    symmetric (mirror a patch, and its weights mirror).

    Args:
        patch: the window's shape (any number of axes), in voxels.
        sigma_scale: sigma as a fraction of the patch along each axis.

    Returns:
        float32 array of shape ``patch``.
    """
    patch = tuple(int(n) for n in patch)
    if not patch or min(patch) < 1:
        raise ValueError(f"patch must be positive sizes, got {patch}")
    if sigma_scale <= 0:
        raise ValueError(f"sigma_scale must be > 0, got {sigma_scale}")
    weights = np.ones((), np.float64)
    for n in patch:
        sigma = n * sigma_scale
        radius = int(TRUNCATE * sigma + 0.5)  # scipy.ndimage's kernel radius
        offset = np.arange(n) - (n - 1) / 2.0
        axis = np.exp(-0.5 * (offset / sigma) ** 2)
        axis[np.abs(offset) > radius] = 0.0
        weights = np.multiply.outer(weights, axis)
    weights = (weights / weights.max()).astype(np.float32)
    zero = weights == 0
    if zero.any():
        weights[zero] = weights[~zero].min()
    return weights


def accumulator_bytes(shape: Sequence[int], patch: Sequence[int], num_classes: int) -> int:
    """Bytes of the accumulators that :func:`sliding_window_probabilities` holds for a
    canonical ``shape`` ``(X, Y, Z)`` volume and a ``patch`` ``(D, H, W)``: float32 class
    sums and weights over a slab of ``min(patch_D, Z)`` slices, whatever ``Z`` is."""
    x, y, z = (int(n) for n in shape)
    return 4 * min(int(patch[0]), z) * x * y * (int(num_classes) + 1)


@dataclass(frozen=True)
class _Axis:
    """The windows along one volume axis: where each lies in the volume and in its patch."""

    size: int
    patch: int
    starts: tuple[int, ...]  # in volume coordinates (negative before a centred volume)

    @classmethod
    def of(cls, size: int, patch: int, overlap: float) -> _Axis:
        offset = max(0, patch - size) // 2  # a short axis is centred in its window
        starts = tuple(s - offset for s in patch_starts(size, patch, overlap))
        return cls(size, patch, starts)

    def span(self, start: int) -> tuple[slice, slice]:
        """``(volume, patch)`` slices of the part of the window at ``start`` in the volume."""
        lo, hi = max(0, start), min(self.size, start + self.patch)
        return slice(lo, hi), slice(lo - start, hi - start)


class _Slab:
    """Weighted class sums and weights over the slices ``[base, base + depth)``, in the
    model's order ``(D, X, Y, K)``; :meth:`flush` hands out the slices before a new base."""

    def __init__(self, depth: int, rows: int, cols: int, num_classes: int,
                 emit: Callable[[int, np.ndarray], None]):
        self.sums = np.zeros((depth, rows, cols, num_classes), np.float32)
        self.weights = np.zeros((depth, rows, cols), np.float32)
        self.base = 0
        self.emit = emit

    def add(self, z: slice, x: slice, y: slice, probs: np.ndarray, weights: np.ndarray):
        """Accumulate a window's ``probs`` (its part in the volume), weighted by ``weights``."""
        if z.start < self.base or z.stop > self.base + len(self.weights):
            raise AssertionError(f"window {z} outside the slab at {self.base}")
        z = slice(z.start - self.base, z.stop - self.base)
        self.sums[z, x, y] += probs * weights[..., None]
        self.weights[z, x, y] += weights

    def flush(self, stop: int) -> None:
        """Normalise and emit the slices ``[base, stop)``; the slab then starts at ``stop``."""
        n = stop - self.base
        if n <= 0:
            return
        probs = self.sums[:n]
        probs /= self.weights[:n, ..., None]
        self.emit(self.base, probs)
        keep = len(self.weights) - n
        if keep > 0:  # the slices still open move to the front
            self.sums[:keep] = self.sums[n:]
            self.weights[:keep] = self.weights[n:]
        self.sums[keep:] = 0.0
        self.weights[keep:] = 0.0
        self.base = stop


def _model_patch(model: Any) -> tuple[int, int, int]:
    shape = getattr(model, "input_shape", None)
    if isinstance(shape, list):
        shape = shape[0]
    if shape is None or len(shape) != 5 or any(n is None for n in shape[1:4]):
        raise ValueError(f"pass patch (D, H, W): the model's input shape {shape} "
                         "does not give a fixed 3D patch")
    return tuple(int(n) for n in shape[1:4])


def sliding_window_probabilities(
    model: Any,
    volume: np.ndarray,
    patch: Sequence[int] | None = None,
    *,
    num_classes: int,
    overlap: float = 0.5,
    batch_size: int = 2,
    sigma_scale: float = 1.0 / 8,
    pad_hu: float = PAD_HU,
    keep_probabilities: bool = False,
    labels_out: np.ndarray | None = None,
    probabilities_out: np.ndarray | None = None,
    tumor_out: np.ndarray | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Segment a canonical volume with a 3D model, window by window (see the module).

    Args:
        model: anything with ``predict_on_batch`` mapping ``(batch, D, H, W, 1)`` raw HU
            to ``(batch, D, H, W, num_classes)`` probabilities (softmax; one sigmoid
            channel for ``num_classes=1``), e.g. a ``models.build("vnet", ...)``.
        volume: canonical ``(X, Y, Z)`` HU, axial slices ``volume[:, :, k]``, on the
            model's voxel spacing (this function does not resample).
        patch: the model's input ``(D, H, W)`` = (slices, rows, columns); None reads it
            from ``model.input_shape``.
        num_classes: K, the model's output channels.
        overlap: the smallest overlap of neighbouring windows, a fraction of the patch
            (:func:`patch_starts`); nnU-Net's default 0.5.
        batch_size: windows per model call; the last batch is padded to it, so that the
            model always sees one input shape.
        sigma_scale: the Gaussian's sigma as a fraction of the patch
            (:func:`gaussian_importance`).
        pad_hu: HU of the padding where the volume is smaller than the patch, and of
            NaN / infinite voxels.
        keep_probabilities: also return float16 probabilities of every class.
        labels_out: uint8 array of the volume's shape receiving the labels (default: a
            new :func:`~keras_liverseg.inference.predictor.slice_major` one).
        probabilities_out: float16 array ``volume.shape + (K,)`` receiving the
            probabilities (implies ``keep_probabilities``).
        tumor_out: array of the volume's shape (a view will do) receiving the tumor
            probability (class 2) without keeping the other classes.
        progress: called as ``progress(windows_done, windows_total)`` after every batch.

    Returns:
        ``(labels, probabilities)``: uint8 argmax labels (> 0.5 for one class) of the
        volume's shape, and the float16 probabilities or None.

    Example:
        >>> model = models.build("vnet", input_shape=(16, 32, 32, 1), num_classes=3,
        ...                      filters=(2, 4, 8, 16, 32))
        >>> labels, _ = sliding_window_probabilities(model, ct, num_classes=3)
    """
    volume = np.asarray(volume)
    if volume.ndim != 3:
        raise ValueError(f"volume must be (X, Y, Z), got shape {volume.shape}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    patch = _model_patch(model) if patch is None else tuple(int(n) for n in patch)
    if len(patch) != 3 or min(patch) < 1:
        raise ValueError(f"patch must be (D, H, W) positive sizes, got {patch}")
    if tumor_out is not None and num_classes < 3:
        raise ValueError(f"tumor_out needs a tumor class (2), the model has {num_classes}")
    rows, cols, depth = volume.shape
    expected = {"labels_out": (rows, cols, depth), "tumor_out": (rows, cols, depth),
                "probabilities_out": (rows, cols, depth, num_classes)}
    outputs = {"labels_out": labels_out, "tumor_out": tumor_out,
               "probabilities_out": probabilities_out}
    for name, array in outputs.items():
        if array is not None and array.shape != expected[name]:
            raise ValueError(f"{name} must have shape {expected[name]}, got {array.shape}")

    labels = slice_major(volume.shape, np.uint8) if labels_out is None else labels_out
    probabilities = probabilities_out
    if probabilities is None and keep_probabilities:
        probabilities = np.empty((rows, cols, depth, num_classes), np.float16)

    def emit(z0: int, probs: np.ndarray) -> None:  # probs: (n, X, Y, K), normalised
        where = slice(z0, z0 + len(probs))
        labels[:, :, where] = _labels_of(probs).transpose(1, 2, 0)
        if probabilities is not None or tumor_out is not None:
            probs = _flush_subnormal(probs)
        if probabilities is not None:
            probabilities[:, :, where] = probs.transpose(1, 2, 0, 3)
        if tumor_out is not None:
            tumor_out[:, :, where] = probs[..., 2].transpose(1, 2, 0)

    # the model's (D, H, W) are the volume's (Z, X, Y)
    d_axis, h_axis, w_axis = (_Axis.of(n, p, overlap)
                              for n, p in zip((depth, rows, cols), patch, strict=True))
    windows = [(z, x, y) for z in d_axis.starts for x in h_axis.starts for y in w_axis.starts]
    importance = gaussian_importance(patch, sigma_scale)
    slab = _Slab(min(patch[0], depth), rows, cols, num_classes, emit)

    for first in range(0, len(windows), batch_size):
        chunk = windows[first : first + batch_size]
        spans = [(d_axis.span(z), h_axis.span(x), w_axis.span(y)) for z, x, y in chunk]
        batch = np.full((len(chunk), *patch, 1), pad_hu, np.float32)
        for b, ((vz, pz), (vx, px), (vy, py)) in enumerate(spans):
            batch[b, pz, px, py, 0] = volume[vx, vy, vz].transpose(2, 0, 1)
        np.nan_to_num(batch, copy=False, nan=pad_hu, posinf=pad_hu, neginf=pad_hu)
        out = _predict_batch(model, batch, batch_size)
        if out.shape != (len(chunk), *patch, num_classes):
            raise ValueError(f"the model returned {out.shape[1:]} for a {patch} patch; "
                             f"expected {(*patch, num_classes)}")
        for probs, ((vz, pz), (vx, px), (vy, py)) in zip(out, spans, strict=True):
            slab.flush(vz.start)  # no window to come reaches the slices before it
            slab.add(vz, vx, vy, probs[pz, px, py], importance[pz, px, py])
        if progress is not None:
            progress(first + len(chunk), len(windows))
    slab.flush(depth)
    return labels, probabilities
