"""mU-Net (Seo et al. 2020, seed 001): U-Net with object-dependent up-sampling skips."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_liverseg.layers import ObjectDependentUpsample, conv_bn_act, vgg_block
from keras_liverseg.losses import SoftmaxMSELoss
from keras_liverseg.models.common import check_filters, check_num_classes, finish, head, stem
from keras_liverseg.models.registry import register

MU_NET_FILTERS = (64, 128, 256, 512, 1024)
"""Table I of the paper."""


@register("mu_net", loss=SoftmaxMSELoss)  # MSE on the softmax
def mu_net(
    input_shape: Sequence[int] = (256, 256, 1),
    num_classes: int = 3,
    filters: Sequence[int] = MU_NET_FILTERS,
    dropout: float = 0.2,
    batch_norm: bool = True,
    hu_window: Sequence[float] = (-250.0, 250.0),
    name: str = "mu_net",
) -> keras.Model:
    """mU-Net: Seo et al. (2020), Fig. 2-4 and Table I.

    Per encoder stage ``k`` (1-4): ``x_k = f^2(.)`` (3x3 conv, BN, PReLU, dropout), the
    pooled map ``p_k = maxpool(x_k)`` goes on down, and the skip carries the residual of
    :class:`ObjectDependentUpsample`, ``s_k = x_k - PReLU(TConv3x3/2(p_k))``, through one
    more 3x3 conv with the same number of features before it meets the decoder. The
    decoder up-samples with a 2x2 transposed convolution and applies ``f^2``. The paper's
    output is a softmax over background, liver and tumor trained with MSE (``num_classes=3``)
    on CT windowed to [-250, 250]; its dropout keep-probability 0.8 is ``dropout=0.2``.

    The paper reports 4,086,690 parameters (Table VI), far fewer than Table I's 64-1024
    features give; ours is in the README's zoo table.

    Args:
        input_shape: ``(H, W, C)``; H, W divisible by 16.
        num_classes: 1 (sigmoid) or >= 2 (softmax).
        filters: channels of the five stages.
        dropout: dropout rate after every convolution.
        batch_norm: BatchNorm after every convolution.
        hu_window: HU window of the input layer.
        name: model name.
    """
    filters = check_filters(filters)
    num_classes = check_num_classes(num_classes)
    depth = len(filters) - 1
    block = {"batch_norm": batch_norm, "activation": "prelu", "dropout": dropout}
    inputs, x = stem(input_shape, hu_window)

    # Encoder with the object-dependent residual skips
    skips = []
    for k in range(depth):
        stage = vgg_block(x, filters[k], name=f"enc_{k}", **block)
        x = keras.layers.MaxPooling2D(2, name=f"pool_{k + 1}")(stage)
        residual = ObjectDependentUpsample(name=f"odu_{k}")([stage, x])
        skips.append(conv_bn_act(residual, filters[k], name=f"skip_{k}", **block))
    x = vgg_block(x, filters[depth], name=f"enc_{depth}", **block)

    # Decoder
    for k in reversed(range(depth)):
        up = keras.layers.Conv2DTranspose(filters[k], 2, strides=2, name=f"up_{k}")(x)
        x = keras.layers.Concatenate(name=f"cat_{k}")([skips[k], up])
        x = vgg_block(x, filters[k], name=f"dec_{k}", **block)

    return finish(inputs, {"mask": head(x, num_classes, name="mask")}, name)
