"""U-Net (Ronneberger et al. 2015), the baseline every seed paper compares with."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_liverseg.layers import BilinearUpsampling, WeightedPooling2D, upsample, vgg_block
from keras_liverseg.models.common import (
    DEFAULT_FILTERS,
    check_filters,
    check_num_classes,
    finish,
    head,
    stem,
)
from keras_liverseg.models.registry import register


def downsample(x, pooling: str, *, name: str):
    """2x down-sampling: max pooling, or :class:`WeightedPooling2D` (Lei et al. 2022)."""
    if pooling == "max":
        return keras.layers.MaxPooling2D(2, name=name)(x)
    if pooling == "weighted":
        return WeightedPooling2D(2, name=name)(x)
    raise ValueError(f"pooling must be 'max' or 'weighted', got {pooling!r}")


def upsample2(
    x,
    filters: int,
    upsampling: str,
    *,
    name: str,
    transpose_kernel: int = 2,
    bilinear_init: bool = False,
):
    """2x up-sampling: bilinear, or a stride-2 transposed conv to ``filters`` channels.

    ``transpose_kernel`` is 2 in U-Net and 4 in ES-UNet++ (Cui et al., Table 1), which also
    initialises the transposed convolution to bilinear interpolation (``bilinear_init``).
    """
    if upsampling == "bilinear":
        return upsample(x, 2, name=name)
    if upsampling == "transpose":
        initializer = BilinearUpsampling() if bilinear_init else "glorot_uniform"
        return keras.layers.Conv2DTranspose(
            filters, transpose_kernel, strides=2, padding="same",
            kernel_initializer=initializer, name=name,
        )(x)
    raise ValueError(f"upsampling must be 'bilinear' or 'transpose', got {upsampling!r}")


@register("unet")
def unet(
    input_shape: Sequence[int] = (256, 256, 1),
    num_classes: int = 1,
    filters: Sequence[int] = DEFAULT_FILTERS,
    upsampling: str = "bilinear",
    pooling: str = "max",
    batch_norm: bool = True,
    hu_window: Sequence[float] = (-200.0, 250.0),
    name: str = "unet",
) -> keras.Model:
    """U-Net: five ``f^2`` encoder blocks, a mirrored decoder, same-level concatenation.

    Ronneberger, Fischer and Brox (2015), Fig. 1, in the configuration of UNet# Table 1
    (``filters=(32, 64, 128, 256, 512)``, bilinear up-sampling, 3x3 conv-BN-ReLU blocks):
    with 3 input channels and 1 class it has 7,852,545 trainable parameters.

    Args:
        input_shape: ``(H, W, C)``; H, W divisible by 16; C neighbouring slices.
        num_classes: 1 (one sigmoid channel) or >= 2 (softmax).
        filters: channels of the five levels.
        upsampling: ``"bilinear"`` or ``"transpose"`` (2x2 transposed conv).
        pooling: ``"max"`` or ``"weighted"`` (Lei et al. 2022, Table 1).
        batch_norm: BatchNorm after every convolution.
        hu_window: HU window of the input layer.
        name: model name.
    """
    filters = check_filters(filters)
    num_classes = check_num_classes(num_classes)
    inputs, x = stem(input_shape, hu_window)

    # Encoder: X^{i,0}
    encoder = []
    for i, f in enumerate(filters):
        if i:
            x = downsample(x, pooling, name=f"pool_{i}")
        x = vgg_block(x, f, name=f"x_{i}_0", batch_norm=batch_norm)
        encoder.append(x)

    # Decoder: X^{i,4-i} = f^2([X^{i,0}, up(X^{i+1,3-i})])
    for i in reversed(range(len(filters) - 1)):
        j = len(filters) - 1 - i
        up = upsample2(x, filters[i], upsampling, name=f"up_{i + 1}_{j - 1}")
        x = keras.layers.Concatenate(name=f"cat_{i}_{j}")([encoder[i], up])
        x = vgg_block(x, filters[i], name=f"x_{i}_{j}", batch_norm=batch_norm)

    return finish(inputs, {"mask": head(x, num_classes, name="mask")}, name)
