"""What a run's model reads, axial slices (2D) or patches (3D): the one place where training
branches on it.

- 2D models read axial slices drawn by :class:`~keras_liverseg.data.sampler.SliceSampler`,
  which brings each slice to the model's geometry as it draws it; the volumes stay as they
  are read (phantoms are resized in-plane once when drawn). An epoch is one pass over the
  training slices.
- 3D models (:attr:`Preprocessing.volumetric <keras_liverseg.models.inference.
  Preprocessing>`; :attr:`TrainConfig.volumetric <keras_liverseg.training.config.
  TrainConfig.volumetric>` before the model exists) read ``(D, H, W)`` patches drawn by
  :class:`~keras_liverseg.data.patches.PatchSampler` from volumes resampled once, when they
  are loaded or drawn, to the model's voxel spacing
  (:func:`~keras_liverseg.data.resample.to_voxel_spacing`). An epoch is one pass over the
  training voxels: each volume counts the patches that tile it without overlap
  (:func:`~keras_liverseg.data.patches.patches_per_pass`), so ``ceil(patches /
  batch_size)`` steps; a 3 mm phantom is one patch of the zoo's 32 x 128 x 128, a
  LiTS scan of 0.7 x 0.7 x 1 mm and 500 slices about six.
"""

from __future__ import annotations

from collections.abc import Sequence

from keras_liverseg.data.patches import PatchSampler, patches_per_pass
from keras_liverseg.data.resample import to_voxel_spacing
from keras_liverseg.data.sampler import Augmentation, Sampler, SliceSampler
from keras_liverseg.data.volumes import Volume
from keras_liverseg.models.inference import Preprocessing
from keras_liverseg.training.config import TrainConfig

__all__ = ["make_sampler", "on_model_grid", "phantom_geometry", "samples_per_pass"]


def phantom_geometry(config: TrainConfig) -> dict:
    """The geometry keyword arguments of :func:`~keras_liverseg.data.datasets
    .draw_phantoms` for the run's model: a 3D model's voxel spacing, or a 2D model's
    input size and in-plane spacing."""
    if config.volumetric:
        return {"pixel_spacing": config.model_pixel_spacing(),
                "slice_spacing": config.model_slice_spacing()}
    shape = config.input_shape()
    return {"input_size": None if shape is None else shape[:2],
            "pixel_spacing": config.model_pixel_spacing()}


def on_model_grid(config: TrainConfig, volumes: Sequence[Volume]) -> list[Volume]:
    """Volumes read from a dataset as the run's sampler reads them: resampled to a 3D
    model's voxel spacing, unchanged for a 2D model (its sampler resamples each slice)."""
    if not config.volumetric:
        return list(volumes)
    pixel, between = config.model_pixel_spacing(), config.model_slice_spacing()
    return [to_voxel_spacing(volume, pixel, between) for volume in volumes]


def samples_per_pass(config: TrainConfig, volumes: Sequence[Volume]) -> tuple[int, str]:
    """The samples of one pass over the training volumes (an epoch unless
    ``steps_per_epoch`` is given) and how the run's log says it."""
    if not config.volumetric:
        slices = sum(volume.depth for volume in volumes)
        return slices, f"{slices} training slices"
    shape = config.input_shape()
    if shape is None or len(shape) != 4:
        raise ValueError(f"{config.model}: a 3D zoo entry must give input_shape (D, H, W, C), "
                         f"got {shape}")
    patch = tuple(int(n) for n in shape[:3])
    count = sum(patches_per_pass(volume, patch) for volume in volumes)
    size = "x".join(str(n) for n in patch)
    return count, f"{count} training patches of {size} voxels in one pass"


def make_sampler(config: TrainConfig, pre: Preprocessing, volumes: Sequence[Volume]) -> Sampler:
    """The run's sampler over the training ``volumes`` for a model of preprocessing
    ``pre``: patches of its input for a 3D model, slices for a 2D one (with the default
    :class:`~keras_liverseg.data.sampler.Augmentation` if ``config.augment``)."""
    if config.coarse and pre.pixel_spacing is None:
        raise ValueError("coarse needs a model that reads slices at a pixel spacing; "
                         f"{config.model} resizes them to its input (give --pixel-spacing MM)")
    augmentation = (Augmentation(clahe=config.clahe, coarse=config.coarse)
                    if config.augment else None)
    if pre.volumetric:
        return PatchSampler(volumes, pre.input_size, config.liver_fraction,
                            config.tumor_fraction, augmentation, config.seed, config.task)
    return SliceSampler(volumes, pre.input_size, pre.context_slices, config.liver_fraction,
                        config.tumor_fraction, augmentation, config.seed, config.task,
                        pixel_spacing=pre.pixel_spacing)
