"""Weighted pooling (Lei et al. 2022, seed 000)."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keras_liverseg")
class WeightedPooling2D(keras.layers.DepthwiseConv2D):
    """Pooling with a learnable window per channel.

    Lei et al. (2022), "Weighted pooling": for a window of ``k x k`` positions ``p_i`` the
    pooled value is ``p = sum_i w_i p_i`` with weights ``w_i`` learned for each channel.
    That is a depthwise convolution with an even ``k x k`` kernel, a stride, and no bias.
    The window starts at ``1 / k^2`` everywhere, so an untrained layer is average pooling.

    Args:
        pool_size: even window size ``k`` (int or pair of equal even ints).
        strides: stride, defaults to ``pool_size`` (non-overlapping windows).
        padding: ``"valid"`` or ``"same"``.
    """

    def __init__(self, pool_size=2, strides=None, padding: str = "valid", **kwargs):
        size = _even_pair(pool_size, "pool_size")
        stride = size if strides is None else _pair(strides)
        for name in ("kernel_size", "strides", "use_bias", "depthwise_initializer"):
            kwargs.pop(name, None)
        super().__init__(
            kernel_size=size,
            strides=stride,
            padding=padding,
            use_bias=False,
            depthwise_initializer=keras.initializers.Constant(1.0 / (size[0] * size[1])),
            **kwargs,
        )
        self.pool_size = size

    def get_config(self):
        config = super().get_config()
        for name in ("kernel_size", "use_bias", "depthwise_initializer", "bias_initializer",
                     "bias_regularizer", "bias_constraint", "depth_multiplier"):
            config.pop(name, None)
        config["pool_size"] = list(self.pool_size)
        return config


def _pair(value) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    value = tuple(int(v) for v in value)
    if len(value) != 2:
        raise ValueError(f"expected an int or a pair of ints, got {value!r}")
    return value


def _even_pair(value, name: str) -> tuple[int, int]:
    pair = _pair(value)
    if any(v < 2 or v % 2 for v in pair):
        raise ValueError(
            f"WeightedPooling2D needs an even {name} (2, 4, 8, ...) as in Lei et al. 2022, "
            f"got {value!r}"
        )
    return pair
