"""U-Net with improved skip connections (Di, Ma, Lian and Wang, seed 002)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_liverseg.layers import conv_bn_act, vgg_block
from keras_liverseg.models.common import (
    DEFAULT_FILTERS,
    check_filters,
    check_num_classes,
    finish,
    head,
    stem,
)
from keras_liverseg.models.registry import register

VARIANTS = ("skip", "skip+concat")


@register("isc_unet")
def isc_unet(
    input_shape: Sequence[int] = (256, 256, 1),
    num_classes: int = 1,
    filters: Sequence[int] = DEFAULT_FILTERS,
    variant: str = "skip+concat",
    dropout: float = 0.1,
    batch_norm: bool = True,
    hu_window: Sequence[float] = (-200.0, 250.0),
    name: str = "isc_unet",
) -> keras.Model:
    """The improved-skip U-Net of Di et al., Fig. 2 and Table 2.

    - ``variant="skip"`` ("Ours2"): each encoder block's skip connection leaves after its
      **first** convolution instead of its second; 7,765,409 trainable parameters with
      ``filters=(32, ..., 512)``, 1 input channel and 1 class.
    - ``variant="skip+concat"`` ("Ours1"): additionally the two convolution results of the
      bottom (5th) block are concatenated, doubling its channels, before up-sampling;
      8,289,697 parameters in that configuration.

    Up-sampling is a 2x2 stride-2 transposed convolution; dropout follows every convolution
    (the paper does not give its rate). The paper's baseline U-Net (7,759,521 parameters) is
    ``unet(upsampling="transpose", batch_norm=False)``.

    Args:
        input_shape: ``(H, W, C)``; H, W divisible by 16.
        num_classes: 1 (sigmoid) or >= 2 (softmax).
        filters: channels of the five levels.
        variant: ``"skip"`` or ``"skip+concat"``.
        dropout: dropout rate after every convolution.
        batch_norm: BatchNorm after every convolution.
        hu_window: HU window of the input layer.
        name: model name.
    """
    filters = check_filters(filters)
    num_classes = check_num_classes(num_classes)
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    depth = len(filters) - 1
    block = {"batch_norm": batch_norm, "dropout": dropout}
    inputs, x = stem(input_shape, hu_window)

    # Encoder: the skip leaves after the first conv of each block
    skips = []
    for i in range(depth):
        first = conv_bn_act(x, filters[i], name=f"enc_{i}_1", **block)
        second = conv_bn_act(first, filters[i], name=f"enc_{i}_2", **block)
        skips.append(first)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{i + 1}")(second)
    first = conv_bn_act(x, filters[depth], name=f"enc_{depth}_1", **block)
    x = conv_bn_act(first, filters[depth], name=f"enc_{depth}_2", **block)
    if variant == "skip+concat":
        x = keras.layers.Concatenate(name=f"cat_{depth}")([first, x])

    # Decoder
    for i in reversed(range(depth)):
        up = keras.layers.Conv2DTranspose(filters[i], 2, strides=2, name=f"up_{i}")(x)
        x = keras.layers.Concatenate(name=f"cat_{i}")([skips[i], up])
        x = vgg_block(x, filters[i], name=f"dec_{i}", **block)

    return finish(inputs, {"mask": head(x, num_classes, name="mask")}, name)
