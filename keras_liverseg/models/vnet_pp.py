"""V-Net2+ (UNet# paper, Table 1): UNet++'s nested dense skips on the V-Net encoder."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_liverseg.layers import upsample, vgg_block
from keras_liverseg.models.common import check_filters, check_num_classes, finish, head, stem
from keras_liverseg.models.registry import register
from keras_liverseg.models.vnet import DEFAULT_INPUT_SHAPE, VNET_FILTERS, vnet_encoder


@register("vnet_pp", volumetric=True)
def vnet_pp(
    input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
    num_classes: int = 1,
    filters: Sequence[int] = VNET_FILTERS,
    level: int = 4,
    deep_supervision: bool = False,
    batch_norm: bool = True,
    hu_window: Sequence[float] = (-200.0, 250.0),
    name: str = "vnet_pp",
) -> keras.Model:
    """V-Net2+: nodes ``X^{i,j} = f^2([X^{i,0}, ..., X^{i,j-1}, up2(X^{i+1,j-1})])``.

    Zhou et al. (2018), Eq. 1, on 3D volumes, as the UNet# paper applies the "++ scheme"
    to V-Net (Sec. 3.4.1): the encoder ``X^{i,0}`` is V-Net's
    (:func:`~keras_liverseg.models.vnet.vnet_encoder`), every other node two 3x3x3
    conv-BN-ReLU after trilinear up-sampling and concatenation.

    Parameter count (``VNET_FILTERS``, 1 input channel, 1 class, ``level=4``): 27,370,961
    (paper: 27.37M, with and without deep supervision; the 1x1x1 heads add 17 each). The
    nested nodes add 982,560 to ``vnet``, exactly 3x3x3 UNet++ minus 3x3x3 U-Net at these
    widths: the paper's +0.98M.

    Outputs: ``"mask"`` (1x1x1 head on ``X^{0,level}``); with ``deep_supervision`` also
    ``"ds_0_j"`` on ``X^{0,j}``, ``j < level``, so that
    :func:`~keras_liverseg.models.prune` can cut the trained network.

    Args:
        input_shape: ``(D, H, W, C)``; D, H, W divisible by 16; C = 1.
        num_classes: 1 (sigmoid) or >= 2 (softmax).
        filters: channels of the five levels (``VNET_FILTERS`` or ``WIDE_VNET_FILTERS``).
        level: 1-4, the pruning level the network is built at (``X^{0,level}`` is last).
        deep_supervision: add the full-size heads on ``X^{0,1..level-1}``.
        batch_norm: BatchNorm after every convolution.
        hu_window: HU window of the input layer.
        name: model name.
    """
    filters = check_filters(filters)
    num_classes = check_num_classes(num_classes)
    if level not in (1, 2, 3, 4):
        raise ValueError(f"level must be 1, 2, 3 or 4, got {level!r}")
    inputs, x = stem(input_shape, hu_window, rank=3)

    # Backbone: X^{i,0}, the V-Net encoder
    X = {(i, 0): node for i, node in enumerate(
        vnet_encoder(x, filters, level, batch_norm=batch_norm))}

    # Nested skip pathways, column by column: X^{i,j}
    for j in range(1, level + 1):
        for i in range(level - j + 1):
            up = upsample(X[i + 1, j - 1], 2, name=f"up_{i + 1}_{j - 1}")
            cat = keras.layers.Concatenate(name=f"cat_{i}_{j}")(
                [*(X[i, k] for k in range(j)), up])
            X[i, j] = vgg_block(cat, filters[i], name=f"x_{i}_{j}", batch_norm=batch_norm)

    outputs = {"mask": head(X[0, level], num_classes, name="mask")}
    if deep_supervision:
        for j in range(1, level):
            outputs[f"ds_0_{j}"] = head(X[0, j], num_classes, name=f"ds_0_{j}")
    return finish(inputs, outputs, name)
