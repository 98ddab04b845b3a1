"""UNet++ (Zhou et al. 2018/2019): nested, dense skip pathways and deep supervision."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_liverseg.layers import vgg_block
from keras_liverseg.models.common import (
    DEFAULT_FILTERS,
    check_filters,
    check_num_classes,
    finish,
    head,
    stem,
)
from keras_liverseg.models.registry import register
from keras_liverseg.models.unet import downsample, upsample2


@register("unet_pp")
def unet_pp(
    input_shape: Sequence[int] = (256, 256, 1),
    num_classes: int = 1,
    filters: Sequence[int] = DEFAULT_FILTERS,
    deep_supervision: bool = False,
    upsampling: str = "bilinear",
    pooling: str = "max",
    batch_norm: bool = True,
    dense_skips: bool = True,
    encoder_features: bool = False,
    hu_window: Sequence[float] | None = (-200.0, 250.0),
    name: str = "unet_pp",
    **upsampling_options,
) -> keras.Model:
    """UNet++: nodes ``X^{i,j} = f^2([X^{i,0}, ..., X^{i,j-1}, up(X^{i+1,j-1})])``.

    Zhou et al. (2018), "UNet++: A Nested U-Net Architecture", Eq. 1 and Fig. 1. In the
    configuration of UNet# Table 1 (3 input channels, 1 class, bilinear) it has 9,163,329
    trainable parameters.

    Args:
        input_shape: ``(H, W, C)``; H, W divisible by 16.
        num_classes: 1 (sigmoid) or >= 2 (softmax).
        filters: channels of the five levels.
        deep_supervision: add full-size 1x1 heads ``"ds_0_1"`` .. ``"ds_0_3"`` on
            ``X^{0,1..3}`` beside the final ``"mask"`` on ``X^{0,4}``; the model can then be
            pruned with :func:`keras_liverseg.models.prune`.
        upsampling: ``"bilinear"`` or ``"transpose"``.
        pooling: ``"max"`` or ``"weighted"``.
        batch_norm: BatchNorm after every convolution.
        dense_skips: ``False`` removes every skip connection, ``X^{i,j} = f^2(up(X^{i+1,
            j-1}))``: the encoding UNet++ of ES-UNet++ (Cui et al., Sec. 3.2.1).
        encoder_features: also output ``X^{1,0}..X^{4,0}`` as ``"enc_1_0"``..``"enc_4_0"``
            (the features ES-UNet++ supervises with Smooth-L1).
        hu_window: HU window of the input layer; ``None`` for a non-CT input (label maps).
        name: model name.
        **upsampling_options: passed to the up-sampling (``transpose_kernel``,
            ``transpose_halves_channels``, ``bilinear_init``; see ES-UNet++).
    """
    filters = check_filters(filters)
    num_classes = check_num_classes(num_classes)
    depth = len(filters) - 1
    inputs, x = stem(input_shape, hu_window)

    nodes = {}
    # Backbone: X^{i,0}
    for i, f in enumerate(filters):
        if i:
            x = downsample(x, pooling, name=f"pool_{i}")
        nodes[i, 0] = x = vgg_block(x, f, name=f"x_{i}_0", batch_norm=batch_norm)

    # Nested skip pathways, column by column: X^{i,j}
    for j in range(1, depth + 1):
        for i in range(depth - j + 1):
            up_filters = filters[i] if dense_skips else filters[i + 1]
            up = upsample2(nodes[i + 1, j - 1], up_filters, upsampling, name=f"up_{i + 1}_{j - 1}",
                           **upsampling_options)
            if dense_skips:
                same_row = [nodes[i, k] for k in range(j)]
                up = keras.layers.Concatenate(name=f"cat_{i}_{j}")([*same_row, up])
            nodes[i, j] = vgg_block(up, filters[i], name=f"x_{i}_{j}", batch_norm=batch_norm)

    outputs = {"mask": head(nodes[0, depth], num_classes, name="mask")}
    if deep_supervision:
        for j in range(1, depth):
            outputs[f"ds_0_{j}"] = head(nodes[0, j], num_classes, name=f"ds_0_{j}")
    if encoder_features:
        for i in range(1, depth + 1):
            outputs[f"enc_{i}_0"] = keras.layers.Identity(name=f"enc_{i}_0")(nodes[i, 0])
    return finish(inputs, outputs, name)
