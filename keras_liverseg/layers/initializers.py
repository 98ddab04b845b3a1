"""Weight initialisers."""

from __future__ import annotations

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="keras_liverseg")
class BilinearUpsampling(keras.initializers.Initializer):
    """Initialise a ``Conv2DTranspose`` kernel to bilinear interpolation.

    The kernel ``(k, k, out, in)`` gets the separable bilinear filter
    ``w(u, v) = (1 - |u - c| / f)(1 - |v - c| / f)``, ``f = ceil(k / 2)``,
    ``c = (2f - 1 - f % 2) / (2f)`` (Long, Shelhamer and Darrell 2015, FCN) on the
    "diagonal" channel pairs ``i -> i`` for ``i < min(in, out)`` and zero elsewhere, as
    ES-UNet++ (Cui et al., Table 1) initialises its 4x4 stride-2 up-sampling.
    """

    def __call__(self, shape, dtype=None):
        kh, kw, out_channels, in_channels = shape
        kernel = np.zeros(shape, dtype="float32")
        window = np.outer(_bilinear_1d(kh), _bilinear_1d(kw)).astype("float32")
        for c in range(min(in_channels, out_channels)):
            kernel[:, :, c, c] = window
        return keras.ops.convert_to_tensor(kernel, dtype=dtype or "float32")

    def get_config(self):
        return {}


def _bilinear_1d(size: int) -> np.ndarray:
    factor = (size + 1) // 2
    centre = factor - 1 if size % 2 == 1 else factor - 0.5
    return 1 - np.abs(np.arange(size) - centre) / factor
