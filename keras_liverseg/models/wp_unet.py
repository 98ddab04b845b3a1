"""Weighted-pooling U-Net with a weighted full-scale skip (Lei et al. 2022, seed 000)."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_liverseg.layers import (
    FullScaleConcat,
    SqueezeExcite,
    WeightedPooling2D,
    conv_bn_act,
    vgg_block,
)
from keras_liverseg.models.common import check_filters, check_num_classes, finish, head, stem
from keras_liverseg.models.registry import register
from keras_liverseg.models.unet3p import UNET3P_FILTERS

POOL_WINDOWS = (2, 2, 4, 8)
"""Windows of the four encoder down-samplings (Lei et al. 2022, Sec. "The proposed network")."""


@register("wp_unet")
def wp_unet(
    input_shape: Sequence[int] = (256, 256, 1),
    num_classes: int = 1,
    filters: Sequence[int] = UNET3P_FILTERS,
    cat_filters: int = 64,
    pool_windows: Sequence[int] = POOL_WINDOWS,
    se_ratio: int = 16,
    batch_norm: bool = True,
    hu_window: Sequence[float] = (-200.0, 250.0),
    name: str = "wp_unet",
) -> keras.Model:
    """The network of Lei et al. (2022), Fig. 3: weighted pooling everywhere it down-samples.

    - Encoder: two depthwise-separable conv-BN-ReLU per level; the four down-samplings are
      :class:`WeightedPooling2D` with windows 2, 2, 4, 8, each of stride 2 ("same" padding,
      so the 4x4 and 8x8 windows overlap): every stage halves the resolution.
    - Squeeze-and-excitation on the bottom encoder output.
    - Decoder: UNet3+-shaped full-scale skips (:class:`FullScaleConcat`) where every
      down-sizing of an encoder output is weighted pooling with window = stride = 2, 4 or 8,
      and every up-sizing is bilinear interpolation followed by a 1x1 convolution; then a
      separable conv-BN-ReLU block.

    The paper reports 18,618,935 parameters but gives too little to reproduce that count;
    ours is in the README's zoo table.

    Args:
        input_shape: ``(H, W, C)``; H, W divisible by 16.
        num_classes: 1 (sigmoid) or >= 2 (softmax).
        filters: encoder channels of the five levels.
        cat_filters: channels of every rescaled input of a decoder node.
        pool_windows: the four encoder pooling windows (even).
        se_ratio: reduction ratio of the squeeze-and-excitation block.
        batch_norm: BatchNorm after every convolution.
        hu_window: HU window of the input layer.
        name: model name.
    """
    filters = check_filters(filters)
    num_classes = check_num_classes(num_classes)
    if len(pool_windows) != len(filters) - 1:
        raise ValueError(f"pool_windows needs {len(filters) - 1} windows, got {pool_windows!r}")
    depth = len(filters) - 1
    inputs, x = stem(input_shape, hu_window)

    # Encoder: separable f^2 blocks, weighted pooling between them
    encoder = []
    for i, f in enumerate(filters):
        if i:
            window = pool_windows[i - 1]
            x = WeightedPooling2D(window, strides=2, padding="same", name=f"wpool_{i}")(x)
        x = vgg_block(x, f, name=f"enc_{i}", batch_norm=batch_norm, separable=True)
        encoder.append(x)
    encoder[depth] = SqueezeExcite(se_ratio, name="se")(encoder[depth])

    # Decoder: weighted full-scale skips
    decoder = {depth: encoder[depth]}
    for i in reversed(range(depth)):
        sources = encoder[: i + 1] + [decoder[k] for k in range(i + 1, depth + 1)]
        steps = [i - k for k in range(depth + 1)]
        cat = FullScaleConcat(steps, cat_filters, "weighted", batch_norm, kernel_size=1,
                              name=f"fullscale_{i}")(sources)
        decoder[i] = conv_bn_act(cat, cat_filters * (depth + 1), name=f"dec_{i}",
                                 batch_norm=batch_norm, separable=True)

    return finish(inputs, {"mask": head(decoder[0], num_classes, name="mask")}, name)
