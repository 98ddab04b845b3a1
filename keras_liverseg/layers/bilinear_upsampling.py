"""Bilinear up-sampling that computes in the layer's own precision (bfloat16, float16).

``UpSampling2D(interpolation="bilinear")`` runs TensorFlow's ``ResizeBilinear``, whose
output is always float32: in a bfloat16 model every up-sampled map is cast to float32 and
back, the maps the full-scale skips of UNet 3+ and UNet# up-sample by 2, 4 and 8 are
written twice in float32, and the concatenation after them runs in float32 too. On a
2-core AMX host (``benchmarks/bench_forward.py --per-op``) the resizes and casts took 55 %
of the default model's bfloat16 op time against 18 % for all its convolutions; and the
resize gradient's float32 stops XLA training under mixed precision (keras-team/keras#20931).
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_liverseg.io.slices import linear_weights


def interpolation_matrix(size: int, factor: int) -> np.ndarray:
    """``(size * factor, size)``: linear up-sampling along one axis as a matrix.

    Output ``o`` reads the input at ``t = (o + 0.5) / factor - 0.5`` (half-pixel centres,
    clamped to ``[0, size - 1]``) with weights ``1 - frac(t)`` and ``frac(t)``: the rule of
    TensorFlow's and JAX's bilinear resize, and of the predictor's slice resizing
    (:func:`keras_liverseg.io.slices.linear_weights`, whose indices and weights these are).
    The weights are multiples of ``1 / (2 factor)``, exact in bfloat16 for factors up to 64.
    """
    low, high, frac = linear_weights(size, size * factor)
    matrix = np.zeros((size * factor, size))
    rows = np.arange(size * factor)
    np.add.at(matrix, (rows, low), 1.0 - frac)
    np.add.at(matrix, (rows, high), frac)
    return matrix


@keras.saving.register_keras_serializable(package="keras_liverseg")
class BilinearUpSampling2D(keras.layers.Layer):
    """``UpSampling2D(size, interpolation="bilinear")`` that stays in its compute dtype.

    In float32 it is ``keras.ops.image.resize`` as ``UpSampling2D`` runs it. In a lower
    precision, bilinear interpolation being separable and linear, it multiplies by the
    interpolation matrices (:func:`interpolation_matrix`) of the two axes in turn, as two
    matrix products in that precision (rows first, as ``(sH, H) @ (H, W C)`` per image,
    then columns as ``(sW, W) @ (W, C)`` per output row), so no map leaves the compute
    dtype and the gradient is matrix products too. Each product rounds once to the compute
    dtype, so the result is within one unit in the last place of the float32 resize's
    rounded result. Needs static spatial sizes; a map of unknown size is resized in
    float32 and cast back.

    Args:
        size: the integer factor of both axes.
    """

    def __init__(self, size: int = 2, **kwargs):
        super().__init__(**kwargs)
        if int(size) < 1:
            raise ValueError(f"size must be a positive int, got {size!r}")
        self.size = int(size)

    def call(self, inputs):
        height, width, channels = inputs.shape[1:]
        factor = self.size
        dtype = self.compute_dtype
        if dtype == "float32" or None in (height, width, channels):
            out = ops.image.resize(ops.cast(inputs, "float32"),
                                   (_times(inputs, 1, factor), _times(inputs, 2, factor)),
                                   interpolation="bilinear")
            return ops.cast(out, dtype)
        rows = ops.convert_to_tensor(interpolation_matrix(height, factor), dtype)
        cols = ops.convert_to_tensor(interpolation_matrix(width, factor), dtype)
        x = ops.matmul(rows, ops.reshape(inputs, (-1, height, width * channels)))
        x = ops.matmul(cols, ops.reshape(x, (-1, width, channels)))
        return ops.reshape(x, (-1, height * factor, width * factor, channels))

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return (batch, None if height is None else height * self.size,
                None if width is None else width * self.size, channels)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


def _times(x, axis: int, factor: int):
    size = x.shape[axis]
    return size * factor if size is not None else ops.shape(x)[axis] * factor
