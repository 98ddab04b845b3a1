"""CT intensity windowing as the first layer of every model."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_liverseg")
class HUWindow(keras.layers.Layer):
    """Clip Hounsfield units to a window and scale it to ``[0, 1]``.

    ``y = (clip(x, low, high) - low) / (high - low)``

    The layer is element-wise: it reads 2D slices ``(batch, H, W, C)`` and 3D volumes
    ``(batch, D, H, W, C)`` (the V-Net family) alike.

    Every model of the package starts with this layer, so a model takes raw HU slices and
    the window it was trained with travels in its saved config (the seeds use different
    windows: [-200, 250] in Lei et al. 2022, [-250, 250] in mU-Net, [-100, 400] in
    ES-UNet++).

    The layer also carries the in-plane pixel spacing the model reads slices at, so that
    this second preprocessing setting travels in the saved config too: with
    ``pixel_spacing`` (mm), inference and training resample every axial slice to that
    spacing and place it on a canvas of at least the input size (a crop of a scan shows its
    organs at the same size in pixels as the full scan); with ``None`` (older models) each
    slice is resized to the input size whatever its field of view
    (:mod:`keras_liverseg.io.slices`). The layer's output does not depend on it.

    A 3D model (the V-Net family) also carries ``slice_spacing``: inference resamples the
    volume to ``pixel_spacing`` in-plane and ``slice_spacing`` along the axial axis before
    its sliding window reads it (:mod:`keras_liverseg.inference.volumetric`).

    Args:
        window: ``(low, high)`` in HU, ``low < high``.
        pixel_spacing: in-plane spacing (mm) of the slices the model reads, or ``None``.
        slice_spacing: for a 3D model, the spacing (mm) between the axial slices of the
            volumes it reads, or ``None``.
    """

    def __init__(
        self,
        window: tuple[float, float] = (-200.0, 250.0),
        pixel_spacing: float | None = None,
        slice_spacing: float | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        low, high = (float(v) for v in window)
        if not high > low:
            raise ValueError(f"HUWindow needs low < high, got window={window!r}")
        self.window = (low, high)
        self.pixel_spacing = check_pixel_spacing(pixel_spacing)
        self.slice_spacing = check_pixel_spacing(slice_spacing, "slice_spacing")

    def call(self, inputs):
        low, high = self.window
        x = ops.clip(ops.cast(inputs, self.compute_dtype), low, high)
        return (x - low) / (high - low)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = {**super().get_config(), "window": list(self.window),
                  "pixel_spacing": self.pixel_spacing}
        if self.slice_spacing is not None:  # (2D models' configs stay as they were)
            config["slice_spacing"] = self.slice_spacing
        return config


def check_pixel_spacing(value: float | None, name: str = "pixel_spacing") -> float | None:
    """``value`` as a float, or None; a ``ValueError`` (naming ``name``) unless it is a
    finite spacing in (0, 20] mm."""
    if value is None:
        return None
    spacing = float(value)
    if not 0.0 < spacing <= 20.0:
        raise ValueError(f"{name} must be in (0, 20] mm or None, got {value!r}")
    return spacing
