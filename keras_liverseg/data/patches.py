"""3D training patches for the volumetric models (the V-Net family): foreground-aware
sampling, air padding and augmentation, the 3D counterpart of
:class:`~keras_liverseg.data.sampler.SliceSampler`.

The volumes are canonical ``(X, Y, Z)`` and already on the model's voxel spacing
(:func:`keras_liverseg.data.resample.to_voxel_spacing`, done once when they are loaded or
drawn), so a patch is cut, never resampled. Axes as inference reads them
(:mod:`keras_liverseg.inference.sliding_window`): the model's ``(D, H, W)`` are the
volume's ``(Z, X, Y)``, a patch is ``volume[x, y, z].transpose(2, 0, 1)``; along an axis
shorter than the patch the volume is centred and padded with air (HU) and label 0, as the
sliding window pads it.

Pure NumPy/SciPy and deterministic: patch ``i`` of a sampler with seed ``s`` is the same on
every run, backend and worker, so :mod:`keras_liverseg.data.tfdata` and
:mod:`keras_liverseg.data.pydataset` serve it unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from keras_liverseg.data.sampler import (
    AIR_HU,
    Augmentation,
    augment_intensity,
    check_fractions,
    random_affine,
    task_labels,
)
from keras_liverseg.data.volumes import Volume

__all__ = ["PatchSampler", "augment_patch", "patches_per_pass"]


def augment_patch(x: np.ndarray, y: np.ndarray, aug: Augmentation, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Augment one patch ``x`` (D, H, W, 1) HU and its labels ``y`` (D, H, W) together.

    What :func:`~keras_liverseg.data.sampler.augment` does to a slice, on every slice of
    the patch alike: the flips and 90-degree turns of the ``(H, W)`` plane (off by default:
    the liver's side is a cue), then a small in-plane affine (``affine``: rotation about the
    cranio-caudal axis, isotropic in-plane scale, shift; the same for every slice, so it is
    a 3D affine that leaves ``D`` alone), padded with air and label 0, then the HU contrast,
    offset and noise (:func:`~keras_liverseg.data.sampler.augment_intensity`). A turn of a
    patch that is not square in-plane is a half turn, so the patch keeps its shape.
    ``clahe`` and ``field_of_view`` are slice-model options and ignored here.
    """
    if rng.random() < aug.flip_lr:
        x, y = x[:, :, ::-1], y[:, :, ::-1]
    if rng.random() < aug.flip_ud:
        x, y = x[:, ::-1], y[:, ::-1]
    if rng.random() < aug.rot90:
        turns = int(rng.integers(1, 4))
        if y.shape[1] != y.shape[2]:
            turns = 2
        x, y = np.rot90(x, turns, axes=(1, 2)), np.rot90(y, turns, axes=(1, 2))
    if rng.random() < aug.affine:
        x, y = _slice_affine(x, y, aug, rng)
    x = augment_intensity(np.array(x, dtype=np.float32), aug, rng)
    return x, np.ascontiguousarray(y)


def _slice_affine(x: np.ndarray, y: np.ndarray, aug: Augmentation, rng: np.random.Generator
                  ) -> tuple[np.ndarray, np.ndarray]:
    """One random in-plane affine applied to every ``(H, W)`` slice of a patch."""
    plane, offset = random_affine(y.shape[1], y.shape[2], aug, rng)
    matrix = np.eye(3)
    matrix[1:, 1:] = plane
    offset = np.concatenate([[0.0], offset])
    image = ndimage.affine_transform(np.asarray(x[..., 0], np.float32), matrix, offset,
                                     order=1, mode="constant", cval=AIR_HU)
    labels = ndimage.affine_transform(np.asarray(y), matrix, offset, order=0,
                                      mode="constant", cval=0)
    return image[..., None], labels


def patches_per_pass(volume: Volume, patch_size: Sequence[int]) -> int:
    """Patches of ``patch_size`` (D, H, W) that tile ``volume`` without overlap: the
    volume's share of one pass over the training voxels (an epoch of a 3D run)."""
    depth_first = (volume.image.shape[2], *volume.image.shape[:2])
    return math.prod(-(-int(n) // int(p)) for n, p in zip(depth_first, patch_size, strict=True))


class PatchSampler:
    """Draw training patches ``(D, H, W)`` from a list of :class:`Volume`.

    Each draw picks a case uniformly, then where the patch lies: with probability
    ``tumor_fraction`` centred on a random tumor voxel, with ``liver_fraction`` on a random
    liver voxel (tumor included), otherwise anywhere (a start drawn uniformly along each
    axis); a case without that class falls back to anywhere. A patch centred on a voxel
    is moved, where it can be, to lie inside the volume (the voxel stays in it); along an
    axis shorter than the patch the volume is centred and padded with air
    (:data:`~keras_liverseg.data.sampler.AIR_HU`) and label 0. Then it is augmented
    (:func:`augment_patch`) and its labels mapped to the task (:func:`task_labels`).

    Args:
        volumes: training volumes, canonical and on the model's voxel spacing.
        patch_size: ``(D, H, W)`` of the model's input.
        liver_fraction: share of draws centred on liver.
        tumor_fraction: share of draws centred on tumor.
        augmentation: an :class:`Augmentation`, or ``None`` for none.
        seed: the sampler's seed.
        task: the label mapping of :func:`task_labels`.

    Example:
        >>> sampler = PatchSampler(volumes, (32, 128, 128), augmentation=Augmentation())
        >>> x, y = sampler.batch(range(2))  # (2, 32, 128, 128, 1) HU, (2, 32, 128, 128)
    """

    context_slices = 1  # the one CT channel

    def __init__(
        self,
        volumes: Sequence[Volume],
        patch_size: Sequence[int],
        liver_fraction: float = 0.5,
        tumor_fraction: float = 0.15,
        augmentation: Augmentation | None = None,
        seed: int = 0,
        task: str = "both",
    ):
        if not volumes:
            raise ValueError("PatchSampler needs at least one volume")
        patch_size = tuple(int(v) for v in patch_size)
        if len(patch_size) != 3 or min(patch_size) < 1:
            raise ValueError(f"patch_size must be (D, H, W) positive sizes, got {patch_size}")
        check_fractions(liver_fraction, tumor_fraction)
        task_labels(np.zeros(1, np.uint8), task)  # validates the name
        self.volumes = list(volumes)
        self.input_size = patch_size
        self.liver_fraction = float(liver_fraction)
        self.tumor_fraction = float(tumor_fraction)
        self.augmentation = augmentation
        self.seed = int(seed)
        self.task = task
        self._voxels: dict[tuple[int, str], np.ndarray] = {}

    @property
    def sample_shape(self) -> tuple[int, int, int, int]:
        """``(D, H, W, 1)`` of one patch as the model reads it."""
        return (*self.input_size, 1)

    def sample(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Patch ``index``: ``x`` (D, H, W, 1) float32 HU and ``y`` (D, H, W) uint8 labels."""
        rng = np.random.default_rng([self.seed, int(index)])
        which = int(rng.integers(len(self.volumes)))
        volume = self.volumes[which]
        shape = volume.image.shape  # (X, Y, Z)
        centre = self._pick_centre(which, volume, rng)
        x = np.full(self.sample_shape, AIR_HU, np.float32)
        y = np.zeros(self.input_size, np.uint8)
        source, target = [], []
        # the model's (D, H, W) are the volume's (Z, X, Y)
        for axis, patch in zip((2, 0, 1), self.input_size, strict=True):
            size = shape[axis]
            if size <= patch:  # centred in the patch, as the sliding window pads it
                offset = (patch - size) // 2
                source.append(slice(0, size))
                target.append(slice(offset, offset + size))
                continue
            if centre is None:
                start = int(rng.integers(size - patch + 1))
            else:
                start = int(np.clip(centre[axis] - patch // 2, 0, size - patch))
            source.append(slice(start, start + patch))
            target.append(slice(0, patch))
        cut = (source[1], source[2], source[0])  # back to the volume's (X, Y, Z)
        x[target[0], target[1], target[2], 0] = np.asarray(volume.image[cut]).transpose(2, 0, 1)
        y[target[0], target[1], target[2]] = np.asarray(volume.labels[cut]).transpose(2, 0, 1)
        if self.augmentation is not None:
            x, y = augment_patch(x, y, self.augmentation, rng)
        return x.astype(np.float32), task_labels(y, self.task).astype(np.uint8)

    def batch(self, indices: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Patches ``indices`` stacked: ``(B, D, H, W, 1)`` float32 and ``(B, D, H, W)``
        uint8."""
        pairs = [self.sample(i) for i in indices]
        return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs])

    def _pick_centre(self, which: int, volume: Volume, rng: np.random.Generator
                     ) -> np.ndarray | None:
        """A voxel ``(x, y, z)`` of the drawn class to centre the patch on, or ``None``
        for a patch anywhere."""
        draw = rng.random()
        if draw < self.tumor_fraction and volume.tumor_slices.size:
            kind = "tumor"
        elif draw < self.tumor_fraction + self.liver_fraction and volume.liver_slices.size:
            kind = "liver"
        else:
            return None
        voxels = self._class_voxels(which, volume, kind)
        flat = voxels[int(rng.integers(len(voxels)))]
        return np.array(np.unravel_index(flat, volume.labels.shape))

    def _class_voxels(self, which: int, volume: Volume, kind: str) -> np.ndarray:
        """Flat indices of a volume's liver (labels >= 1) or tumor (2) voxels (cached)."""
        key = (which, kind)
        if key not in self._voxels:
            labels = np.asarray(volume.labels)
            mask = labels == 2 if kind == "tumor" else labels >= 1
            self._voxels[key] = np.flatnonzero(mask)
        return self._voxels[key]
