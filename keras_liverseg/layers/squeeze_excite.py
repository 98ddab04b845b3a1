"""Squeeze-and-excitation (Hu et al. 2018), used at the bottom of wp_unet."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_liverseg")
class SqueezeExcite(keras.layers.Layer):
    """Channel attention: ``y = x * sigmoid(W2 relu(W1 mean_hw(x)))``.

    Hu, Shen and Sun (2018), "Squeeze-and-Excitation Networks", Eq. 2-4; Lei et al. (2022)
    place it on the bottom encoder output of their weighted-pooling U-Net.

    Args:
        ratio: reduction ratio ``r`` of the bottleneck (``C -> C / r -> C``).
    """

    def __init__(self, ratio: int = 16, **kwargs):
        super().__init__(**kwargs)
        self.ratio = int(ratio)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        hidden = max(1, channels // self.ratio)
        self.squeeze = keras.layers.Dense(hidden, activation="relu", name="squeeze")
        self.excite = keras.layers.Dense(channels, activation="sigmoid", name="excite")
        self.squeeze.build((input_shape[0], channels))
        self.excite.build((input_shape[0], hidden))

    def call(self, inputs):
        s = ops.mean(inputs, axis=(1, 2))
        w = self.excite(self.squeeze(s))
        return inputs * w[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "ratio": self.ratio}
