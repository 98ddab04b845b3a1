"""Axial training slices from canonical volumes: foreground-aware sampling, 2.5D context,
resizing to the model input and augmentation. (The targets of every model head come from
:func:`keras_liverseg.losses.deep_supervision_targets`.)

Pure NumPy/SciPy and deterministic: sample ``i`` of a sampler with seed ``s`` is the same on
every run, every backend and every worker, which makes runs resumable and lets
``tf.data`` (:mod:`keras_liverseg.data.tfdata`) or a ``keras.utils.PyDataset``
(:mod:`keras_liverseg.data.pydataset`) map indices to batches in parallel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from scipy import ndimage

from keras_liverseg.data.clahe import clahe
from keras_liverseg.data.volumes import Volume
from keras_liverseg.io.slices import (
    place,
    resize_axes,
    resize_labels,
    slice_stack,
    spacing_grid,
)

AIR_HU = -1000.0
TASKS = ("both", "liver", "tumor")


def task_labels(labels: np.ndarray, task: str) -> np.ndarray:
    """Map LiTS labels (0/1/2) to a task's classes.

    ``"both"``: unchanged (background, liver, tumor); ``"liver"``: 1 for liver including
    tumor; ``"tumor"``: 1 for tumor only.
    """
    if task == "both":
        return labels
    if task == "liver":
        return (labels >= 1).astype(labels.dtype)
    if task == "tumor":
        return (labels == 2).astype(labels.dtype)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


@dataclass(frozen=True)
class Augmentation:
    """Random augmentation of a training slice (probabilities and ranges).

    Left-right flips and 90-degree rotations are off by default: the liver's place on the
    patient's right is a cue the network should keep (PHANTOMS.md); turn them on for
    data whose orientation is unreliable.

    Attributes:
        flip_lr: probability of a left-right flip.
        flip_ud: probability of an anterior-posterior flip.
        rot90: probability of a random multiple-of-90-degrees rotation.
        affine: probability of a small affine transform (rotation, scale, shift).
        rotation_deg: maximum rotation of the affine, degrees.
        scale: range of the affine's isotropic scale.
        shift: maximum shift of the affine, as a fraction of the slice size.
        hu_shift: maximum additive HU offset (contrast-phase / calibration variation).
        hu_scale: maximum relative contrast change around 40 HU (soft tissue).
        noise_hu: maximum standard deviation of added Gaussian noise, HU.
        clahe: probability of CLAHE on the [-100, 400] HU window (ES-UNet++; clip 4, 8x8
            tiles; :func:`keras_liverseg.data.clahe.clahe`).
        field_of_view: for a model with a ``pixel_spacing`` only: probability that a slice
            is cut, before resampling, to the box of its volume's liver plus a random margin
            of ``fov_margin_mm`` (a liver-centred crop, as some scans are stored), so the
            model learns the liver against the edge of the field of view as well.
        fov_margin_mm: the range of that margin, mm.
        coarse: for a model with a ``pixel_spacing`` only: probability that a slice is
            read as a coarser reconstruction of the same scan would show it
            (:func:`coarsen_in_plane`: blurred and sampled at a pixel drawn log-uniformly
            from ``coarse_mm``, then resampled to the model's spacing), while its labels
            stay the fine ones. nnU-Net's "simulation of low resolution" augmentation
            (Isensee et al., Nature Methods 2021) in physical units, so a model
            learns the same liver from a 6 mm whole abdomen as from a 0.7 mm scan (issue
            22, "Any field of view").
        coarse_mm: the range of that coarser pixel, mm (a draw not coarser than the slice's
            own pixel changes nothing).
    """

    flip_lr: float = 0.0
    flip_ud: float = 0.0
    rot90: float = 0.0
    affine: float = 0.7
    rotation_deg: float = 12.0
    scale: tuple[float, float] = (0.85, 1.15)
    shift: float = 0.06
    hu_shift: float = 25.0
    hu_scale: float = 0.12
    noise_hu: float = 12.0
    clahe: float = 0.0
    field_of_view: float = 0.2
    fov_margin_mm: tuple[float, float] = (0.0, 40.0)
    coarse: float = 0.0
    coarse_mm: tuple[float, float] = (3.0, 9.0)


def augment(x: np.ndarray, y: np.ndarray, aug: Augmentation, rng: np.random.Generator):
    """Augment one slice ``x`` (H, W, C) HU and its labels ``y`` (H, W) together."""
    if rng.random() < aug.flip_lr:
        x, y = x[:, ::-1], y[:, ::-1]
    if rng.random() < aug.flip_ud:
        x, y = x[::-1], y[::-1]
    if rng.random() < aug.rot90:
        turns = int(rng.integers(1, 4))
        x, y = np.rot90(x, turns, axes=(0, 1)), np.rot90(y, turns, axes=(0, 1))
    if rng.random() < aug.affine:
        x, y = _random_affine(x, y, aug, rng)
    x = np.array(x, dtype=np.float32)
    if rng.random() < aug.clahe:
        for c in range(x.shape[2]):
            x[..., c] = clahe(x[..., c])
    return augment_intensity(x, aug, rng), np.ascontiguousarray(y)


def augment_intensity(x: np.ndarray, aug: Augmentation, rng: np.random.Generator) -> np.ndarray:
    """The HU part of :func:`augment` on a float32 array of any shape: a contrast change
    around 40 HU, an offset and Gaussian noise (``hu_scale``, ``hu_shift``, ``noise_hu``)."""
    contrast = 1.0 + rng.uniform(-aug.hu_scale, aug.hu_scale)
    x = (x - 40.0) * contrast + 40.0 + rng.uniform(-aug.hu_shift, aug.hu_shift)
    if aug.noise_hu > 0:
        x += rng.normal(0.0, rng.uniform(0, aug.noise_hu), x.shape).astype(np.float32)
    return x


def coarsen_in_plane(x: np.ndarray, spacing: Sequence[float], pixel_mm: float) -> np.ndarray:
    """Slices ``x`` (H, W, C) of in-plane ``spacing`` (mm) as a reconstruction at
    ``pixel_mm`` pixels over the same field of view would give them, on the same grid.

    Each axis coarser than ``pixel_mm`` is left alone; the others are blurred by a Gaussian
    of ``0.45 * pixel_mm`` (the phantom scanner's anti-aliasing of its coarse
    reconstruction), sampled at ``pixel_mm`` and interpolated back linearly."""
    out = np.asarray(x, dtype=np.float32)
    for axis in (0, 1):
        step = abs(float(spacing[axis]))
        n = out.shape[axis]
        m = max(2, int(round(n * step / pixel_mm)))
        if m >= n:
            continue
        out = ndimage.gaussian_filter1d(out, 0.45 * pixel_mm / step, axis=axis,
                                        mode="nearest", truncate=2.5)
        out = resize_axes(resize_axes(out, [m], axes=[axis]), [n], axes=[axis])
    return out


def random_affine(height: int, width: int, aug: Augmentation, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """A random in-plane affine of :class:`Augmentation` (rotation about the centre,
    isotropic scale, shift) as the ``(matrix, offset)`` that ``scipy.ndimage
    .affine_transform`` takes, mapping output pixels to input pixels."""
    angle = np.deg2rad(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
    scale = rng.uniform(*aug.scale)
    shift = rng.uniform(-aug.shift, aug.shift, 2) * (height, width)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    matrix = np.array([[cos, -sin], [sin, cos]])
    centre = np.array([(height - 1) / 2, (width - 1) / 2])
    return matrix, centre - matrix @ (centre + shift)


def _random_affine(x, y, aug: Augmentation, rng):
    matrix, offset = random_affine(*y.shape, aug, rng)
    out = np.empty_like(x, dtype=np.float32)
    for c in range(x.shape[2]):
        out[..., c] = ndimage.affine_transform(x[..., c].astype(np.float32), matrix, offset,
                                               order=1, mode="constant", cval=AIR_HU)
    labels = ndimage.affine_transform(y, matrix, offset, order=0, mode="constant", cval=0)
    return out, labels


def one_hot(labels: np.ndarray, classes: int) -> np.ndarray:
    """``(..., classes)`` float32 one-hot of integer labels (values above clipped)."""
    return np.eye(classes, dtype=np.float32)[np.minimum(labels, classes - 1)]


def check_fractions(liver_fraction: float, tumor_fraction: float) -> None:
    """Raise ``ValueError`` unless both sampling shares are >= 0 and sum to at most 1."""
    if min(liver_fraction, tumor_fraction) < 0 or liver_fraction + tumor_fraction > 1:
        raise ValueError("liver_fraction and tumor_fraction must be >= 0 with a sum <= 1, "
                         f"got {liver_fraction!r} and {tumor_fraction!r}")


class Sampler(Protocol):
    """What the epoch loop (:mod:`keras_liverseg.data.tfdata`,
    :mod:`keras_liverseg.data.pydataset`) reads: sample ``i`` of a seed, deterministically.
    :class:`SliceSampler` draws axial slices for 2D models,
    :class:`~keras_liverseg.data.patches.PatchSampler` patches for 3D ones."""

    input_size: tuple[int, ...]

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one model input: ``(H, W, C)`` or ``(D, H, W, C)``."""
        ...

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``index``: float32 HU of :attr:`sample_shape`, uint8 task labels of its
        spatial shape."""
        ...

    def batch(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Samples ``indices`` stacked along a new first axis."""
        ...


class SliceSampler:
    """Draw training slices from a list of :class:`Volume`.

    Each draw picks a case uniformly, then a slice: with probability ``tumor_fraction`` one
    containing tumor, with ``liver_fraction`` one containing liver, otherwise any slice
    (a case without that class falls back to any slice). The slice and its
    ``context_slices - 1`` neighbours are brought to the model's geometry
    (:mod:`keras_liverseg.io.slices`) and augmented: resized to ``input_size``, or, with
    ``pixel_spacing``, resampled to that spacing and cut or padded (with air, centred) to
    ``input_size``: a slice larger than the input gives a window of it, around a pixel of
    the drawn class for a draw forced onto liver or tumor, as nnU-Net samples patches.

    Args:
        volumes: training volumes in canonical orientation.
        input_size: ``(H, W)`` of the model.
        context_slices: channels of the model input (1 or an odd number).
        liver_fraction: share of draws forced onto liver-containing slices.
        tumor_fraction: share of draws forced onto tumor-containing slices.
        augmentation: an :class:`Augmentation`, or ``None`` for none.
        seed: the sampler's seed.
        task: the label mapping of :func:`task_labels`.
        pixel_spacing: the in-plane spacing (mm) the model reads slices at, or ``None``.
    """

    def __init__(
        self,
        volumes: Sequence[Volume],
        input_size: Sequence[int],
        context_slices: int = 1,
        liver_fraction: float = 0.5,
        tumor_fraction: float = 0.15,
        augmentation: Augmentation | None = None,
        seed: int = 0,
        task: str = "both",
        pixel_spacing: float | None = None,
    ):
        if not volumes:
            raise ValueError("SliceSampler needs at least one volume")
        if context_slices < 1 or context_slices % 2 == 0:
            raise ValueError(f"context_slices must be odd, got {context_slices}")
        check_fractions(liver_fraction, tumor_fraction)
        self.volumes = list(volumes)
        self.input_size = tuple(int(v) for v in input_size)
        self.context_slices = int(context_slices)
        self.liver_fraction = float(liver_fraction)
        self.tumor_fraction = float(tumor_fraction)
        self.augmentation = augmentation
        self.seed = int(seed)
        task_labels(np.zeros(1, np.uint8), task)  # validates the name
        self.task = task
        self.pixel_spacing = None if pixel_spacing is None else float(pixel_spacing)
        self._liver_boxes: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}

    @property
    def sample_shape(self) -> tuple[int, int, int]:
        """``(H, W, C)`` of one slice as the model reads it."""
        return (*self.input_size, self.context_slices)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Slice ``index``: ``x`` (H, W, C) float32 HU and ``y`` (H, W) uint8 labels."""
        rng = np.random.default_rng([self.seed, int(index)])
        which = int(rng.integers(len(self.volumes)))
        volume = self.volumes[which]
        k, forced = self._pick_slice(volume, rng)
        if self.pixel_spacing is None:
            x = slice_stack(volume.image, [k], self.context_slices, self.input_size)[0]
            y = resize_labels(volume.labels[:, :, k], self.input_size)
        else:
            x, y = self._at_spacing(which, volume, k, forced, rng)
        if self.augmentation is not None:
            x, y = augment(x, y, self.augmentation, rng)
        return x.astype(np.float32), task_labels(y, self.task).astype(np.uint8)

    def _at_spacing(self, which, volume, k, forced, rng) -> tuple[np.ndarray, np.ndarray]:
        """Slice ``k`` resampled to :attr:`pixel_spacing`, cut or padded to the input."""
        rows, cols = slice(None), slice(None)
        aug = self.augmentation
        if aug is not None and aug.field_of_view > 0 and rng.random() < aug.field_of_view:
            box = self._liver_box(which, volume)
            if box is not None:
                margin = rng.uniform(*aug.fov_margin_mm, 2) / np.asarray(volume.spacing)
                lo = np.maximum(box[0] - np.ceil(margin), 0).astype(int)
                hi = np.minimum(box[1] + np.ceil(margin), volume.image.shape[:2]).astype(int)
                rows, cols = slice(lo[0], hi[0]), slice(lo[1], hi[1])
        image, labels = volume.image[rows, cols], volume.labels[rows, cols, k]
        grid = spacing_grid(image.shape, volume.spacing, self.pixel_spacing)
        if aug is not None and aug.coarse > 0 and rng.random() < aug.coarse:
            pixel_mm = float(np.exp(rng.uniform(*np.log(aug.coarse_mm))))
            x = slice_stack(image, [k], self.context_slices, image.shape[:2])[0]
            x = resize_axes(coarsen_in_plane(x, volume.spacing, pixel_mm), grid, axes=(0, 1))
        else:
            x = slice_stack(image, [k], self.context_slices, grid)[0]
        y = resize_labels(labels, grid)
        if any(g > n for g, n in zip(grid, self.input_size, strict=True)):
            centre = rng.integers(grid)  # a window around one pixel
            if forced:  # a pixel of the drawn class, so that the window holds it
                hits = np.argwhere(y == 2 if forced == "tumor" else y >= 1)
                if len(hits):
                    centre = hits[int(rng.integers(len(hits)))]
            window = []
            for g, n, c in zip(grid, self.input_size, centre, strict=True):
                start = int(np.clip(c - n // 2, 0, max(g - n, 0)))
                window.append(slice(start, start + n))
            window = tuple(window)
            x, y = x[window], y[window]
        x = place(x[None], self.input_size, AIR_HU)[0]
        y = place(y[None], self.input_size, 0)[0]
        return x, y

    def _liver_box(self, which: int, volume: Volume) -> tuple[np.ndarray, np.ndarray] | None:
        """In-plane ``(low, high)`` corners of a volume's liver over all its slices (cached)."""
        if which not in self._liver_boxes:
            box = None
            if volume.liver_slices.size:
                liver = np.asarray(volume.labels[:, :, volume.liver_slices]) >= 1
                r = np.flatnonzero(liver.any(axis=(1, 2)))
                c = np.flatnonzero(liver.any(axis=(0, 2)))
                box = (np.array([r[0], c[0]]), np.array([r[-1] + 1, c[-1] + 1]))
            self._liver_boxes[which] = box
        return self._liver_boxes[which]

    def batch(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Slices ``indices`` stacked: ``(B, H, W, C)`` float32 and ``(B, H, W)`` uint8."""
        pairs = [self.sample(i) for i in indices]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def _pick_slice(self, volume: Volume, rng: np.random.Generator) -> tuple[int, str | None]:
        """A slice index and the class the draw was forced onto (``None``: any slice)."""
        draw = rng.random()
        if draw < self.tumor_fraction and volume.tumor_slices.size:
            return int(rng.choice(volume.tumor_slices)), "tumor"
        if draw < self.tumor_fraction + self.liver_fraction and volume.liver_slices.size:
            return int(rng.choice(volume.liver_slices)), "liver"
        return int(rng.integers(volume.depth)), None

