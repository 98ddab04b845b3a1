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

import numpy as np
from scipy import ndimage

from keras_liverseg.data.clahe import clahe
from keras_liverseg.data.volumes import Volume
from keras_liverseg.io.slices import resize_labels, slice_stack

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
    contrast = 1.0 + rng.uniform(-aug.hu_scale, aug.hu_scale)
    x = (x - 40.0) * contrast + 40.0 + rng.uniform(-aug.hu_shift, aug.hu_shift)
    if aug.noise_hu > 0:
        x += rng.normal(0.0, rng.uniform(0, aug.noise_hu), x.shape).astype(np.float32)
    return x, np.ascontiguousarray(y)


def _random_affine(x, y, aug: Augmentation, rng):
    height, width = y.shape
    angle = np.deg2rad(rng.uniform(-aug.rotation_deg, aug.rotation_deg))
    scale = rng.uniform(*aug.scale)
    shift = rng.uniform(-aug.shift, aug.shift, 2) * (height, width)
    cos, sin = np.cos(angle) / scale, np.sin(angle) / scale
    matrix = np.array([[cos, -sin], [sin, cos]])
    centre = np.array([(height - 1) / 2, (width - 1) / 2])
    offset = centre - matrix @ (centre + shift)
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


class SliceSampler:
    """Draw training slices from a list of :class:`Volume`.

    Each draw picks a case uniformly, then a slice: with probability ``tumor_fraction`` one
    containing tumor, with ``liver_fraction`` one containing liver, otherwise any slice
    (a case without that class falls back to any slice). The slice and its
    ``context_slices - 1`` neighbours are resized to ``input_size`` and augmented.

    Args:
        volumes: training volumes in canonical orientation.
        input_size: ``(H, W)`` of the model.
        context_slices: channels of the model input (1 or an odd number).
        liver_fraction: share of draws forced onto liver-containing slices.
        tumor_fraction: share of draws forced onto tumor-containing slices.
        augmentation: an :class:`Augmentation`, or ``None`` for none.
        seed: the sampler's seed.
        task: the label mapping of :func:`task_labels`.
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

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Slice ``index``: ``x`` (H, W, C) float32 HU and ``y`` (H, W) uint8 labels."""
        rng = np.random.default_rng([self.seed, int(index)])
        volume = self.volumes[int(rng.integers(len(self.volumes)))]
        k = self._pick_slice(volume, rng)
        x = slice_stack(volume.image, [k], self.context_slices, self.input_size)[0]
        y = resize_labels(volume.labels[:, :, k], self.input_size)
        if self.augmentation is not None:
            x, y = augment(x, y, self.augmentation, rng)
        return x.astype(np.float32), task_labels(y, self.task).astype(np.uint8)

    def batch(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Slices ``indices`` stacked: ``(B, H, W, C)`` float32 and ``(B, H, W)`` uint8."""
        pairs = [self.sample(i) for i in indices]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def _pick_slice(self, volume: Volume, rng: np.random.Generator) -> int:
        draw = rng.random()
        if draw < self.tumor_fraction and volume.tumor_slices.size:
            return int(rng.choice(volume.tumor_slices))
        if draw < self.tumor_fraction + self.liver_fraction and volume.liver_slices.size:
            return int(rng.choice(volume.liver_slices))
        return int(rng.integers(volume.depth))

