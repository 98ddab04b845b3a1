"""CT intensity windowing as the first layer of every model."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_liverseg")
class HUWindow(keras.layers.Layer):
    """Clip Hounsfield units to a window and scale it to ``[0, 1]``.

    ``y = (clip(x, low, high) - low) / (high - low)``

    Every model of the package starts with this layer, so a model takes raw HU slices and
    the window it was trained with travels in its saved config (the seeds use different
    windows: [-200, 250] in Lei et al. 2022, [-250, 250] in mU-Net, [-100, 400] in
    ES-UNet++).

    Args:
        window: ``(low, high)`` in HU, ``low < high``.
    """

    def __init__(self, window: tuple[float, float] = (-200.0, 250.0), **kwargs):
        super().__init__(**kwargs)
        low, high = (float(v) for v in window)
        if not high > low:
            raise ValueError(f"HUWindow needs low < high, got window={window!r}")
        self.window = (low, high)

    def call(self, inputs):
        low, high = self.window
        x = ops.clip(ops.cast(inputs, self.compute_dtype), low, high)
        return (x - low) / (high - low)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "window": list(self.window)}
