"""Linear up-sampling of volumes: the 3D twin of ``UpSampling2D(interpolation="bilinear")``."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_liverseg")
class TrilinearUpSampling3D(keras.layers.Layer):
    """Up-sample ``(batch, D, H, W, C)`` by integer factors with trilinear interpolation.

    Keras' ``UpSampling3D`` only repeats voxels (nearest neighbour); the 3D networks of the
    UNet# paper (V-Net2+, V-Net3+, V-Net#) up-sample as their 2D siblings do, linearly.
    Trilinear interpolation is separable, so the layer interpolates along D, H and W in
    turn. Along an axis of length ``n`` up-sampled by ``s``, output voxel ``o`` reads the
    input at ``t = (o + 0.5) / s - 0.5`` (half-pixel centres, clamped to ``[0, n - 1]``):
    ``y_o = (1 - frac(t)) x_floor(t) + frac(t) x_floor(t)+1``, the rule of TensorFlow's and
    JAX's bilinear resize, so ``size=(1, s, s)`` equals ``UpSampling2D(s, "bilinear")``
    slice by slice.

    Args:
        size: one int for all three axes, or ``(d, h, w)``.
    """

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        size = (size,) * 3 if isinstance(size, int) else tuple(size)
        if len(size) != 3 or not all(int(s) >= 1 for s in size):
            raise ValueError(f"size must be a positive int or three of them, got {size!r}")
        self.size = tuple(int(s) for s in size)

    def call(self, inputs):
        x = inputs
        for axis, factor in zip((1, 2, 3), self.size, strict=True):
            x = _upsample_axis(x, axis, factor)
        return x

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        for axis, factor in zip((1, 2, 3), self.size, strict=True):
            shape[axis] = None if shape[axis] is None else shape[axis] * factor
        return tuple(shape)

    def get_config(self):
        return {**super().get_config(), "size": list(self.size)}


def _upsample_axis(x, axis: int, factor: int):
    """Linear up-sampling of ``x`` along ``axis`` by ``factor`` (edges clamped)."""
    if factor == 1:
        return x

    def part(start, stop):
        index = [slice(None)] * len(x.shape)
        index[axis] = slice(start, stop)
        return x[tuple(index)]

    previous = ops.concatenate([part(0, 1), part(0, -1)], axis=axis)  # x[k - 1], clamped
    following = ops.concatenate([part(1, None), part(-1, None)], axis=axis)  # x[k + 1]
    phases = []
    for phase in range(factor):  # output voxel k * factor + phase
        t = (phase + 0.5) / factor - 0.5
        if t < 0:
            phases.append(x * (1.0 + t) + previous * (-t))
        elif t > 0:
            phases.append(x * (1.0 - t) + following * t)
        else:
            phases.append(x)
    y = ops.stack(phases, axis=axis + 1)
    shape = [-1]
    for i in range(1, len(x.shape)):
        size = x.shape[i] if x.shape[i] is not None else ops.shape(x)[i]
        if i == axis:
            size = size * factor
        shape.append(size)
    return ops.reshape(y, shape)
