"""The convolution blocks the architectures share.

Notation of MODELS.md: ``f(x)`` = Conv2D 3x3 (with bias) -> BatchNorm -> activation, and
``f^2`` = two of them, the "VGG block" of U-Net, UNet++ and UNet#. These are plain functions
that wire standard Keras layers, so models built with them need no custom objects.
"""

from __future__ import annotations

import keras


def conv_bn_act(
    x,
    filters: int,
    *,
    name: str,
    kernel_size: int = 3,
    batch_norm: bool = True,
    activation: str = "relu",
    separable: bool = False,
    dropout: float = 0.0,
):
    """``f(x)``: one convolution, optional BatchNorm, activation, optional dropout.

    Args:
        x: input tensor.
        filters: output channels.
        name: prefix for the layers' names.
        kernel_size: square kernel size.
        batch_norm: insert BatchNormalization after the convolution.
        activation: a Keras activation name, or ``"prelu"`` for a learnable PReLU.
        separable: depthwise-separable convolution (Lei et al. 2022) instead of a full one.
        dropout: dropout rate after the activation (0 disables it).
    """
    conv = keras.layers.SeparableConv2D if separable else keras.layers.Conv2D
    x = conv(filters, kernel_size, padding="same", name=f"{name}_conv")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    if activation == "prelu":
        x = keras.layers.PReLU(shared_axes=[1, 2], name=f"{name}_prelu")(x)
    else:
        x = keras.layers.Activation(activation, name=f"{name}_{activation}")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return x


def vgg_block(x, filters: int, *, name: str, middle_filters: int | None = None, **kwargs):
    """``f^2``: two :func:`conv_bn_act` in a row (``middle_filters`` after the first)."""
    x = conv_bn_act(x, middle_filters or filters, name=f"{name}_1", **kwargs)
    return conv_bn_act(x, filters, name=f"{name}_2", **kwargs)


def upsample(x, factor: int, *, name: str, interpolation: str = "bilinear"):
    """Upsample by an integer ``factor`` (bilinear by default); identity for 1."""
    if factor == 1:
        return x
    return upsampling_layer(factor, name=name, interpolation=interpolation)(x)


def upsampling_layer(
    factor: int,
    *,
    name: str,
    interpolation: str = "bilinear",
    compute_dtype: str | None = None,
) -> keras.layers.UpSampling2D:
    """An ``UpSampling2D`` that also trains under mixed precision with XLA on TensorFlow.

    There the gradient of TensorFlow's bilinear resize comes back in float32 while the
    layers around it compute in bfloat16/float16, and XLA refuses the graph ("Seen floating
    point types of different precisions"; keras-team/keras#20931, which ``model.fit`` hits
    by default on a GPU). The workaround its maintainers give: run that one layer in
    float32 (its input and output are cast). Other backends and float32 models get a
    plain layer. ``compute_dtype``: the dtype the surrounding layers compute in (default:
    the global policy's).
    """
    compute_dtype = compute_dtype or keras.mixed_precision.global_policy().compute_dtype
    dtype = None
    if (interpolation == "bilinear" and compute_dtype != "float32"
            and keras.backend.backend() == "tensorflow"):
        dtype = "float32"
    return keras.layers.UpSampling2D(factor, interpolation=interpolation, name=name, dtype=dtype)
