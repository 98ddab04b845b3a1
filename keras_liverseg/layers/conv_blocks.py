"""The convolution blocks the architectures share.

Notation of MODELS.md: ``f(x)`` = Conv2D 3x3 (with bias) -> BatchNorm -> activation, and
``f^2`` = two of them, the "VGG block" of U-Net, UNet++ and UNet#. These are plain functions
that wire standard Keras layers, so models built with them need no custom objects (except
:class:`TrilinearUpSampling3D`, the linear up-sampling of volumes, and
:class:`BilinearUpSampling2D`, bilinear up-sampling in bfloat16 or float16).

Every function follows its input's rank: a 4D tensor ``(batch, H, W, C)`` gets 2D layers,
a 5D volume ``(batch, D, H, W, C)`` their 3D twins (Conv3D 3x3x3, trilinear up-sampling),
so the 3D networks (V-Net and its ++ / 3+ / # variants) share these blocks.
"""

from __future__ import annotations

import keras

from keras_liverseg.layers.bilinear_upsampling import BilinearUpSampling2D
from keras_liverseg.layers.trilinear_upsampling import TrilinearUpSampling3D


def spatial_rank(x) -> int:
    """2 for ``(batch, H, W, C)``, 3 for ``(batch, D, H, W, C)``; a ``ValueError`` else."""
    rank = len(x.shape) - 2
    if rank not in (2, 3):
        raise ValueError(f"expected a 4D or 5D channels-last tensor, got shape {x.shape}")
    return rank


def conv_class(rank: int):
    """``Conv2D`` or ``Conv3D``."""
    return {2: keras.layers.Conv2D, 3: keras.layers.Conv3D}[rank]


def max_pooling_class(rank: int):
    """``MaxPooling2D`` or ``MaxPooling3D``."""
    return {2: keras.layers.MaxPooling2D, 3: keras.layers.MaxPooling3D}[rank]


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
    strides: int = 1,
):
    """``f(x)``: one convolution, optional BatchNorm, activation, optional dropout.

    Args:
        x: input tensor.
        filters: output channels.
        name: prefix for the layers' names.
        kernel_size: square (cubic, for a volume) kernel size.
        batch_norm: insert BatchNormalization after the convolution.
        activation: a Keras activation name, or ``"prelu"`` for a learnable PReLU.
        separable: depthwise-separable convolution (Lei et al. 2022) instead of a full one.
        dropout: dropout rate after the activation (0 disables it).
        strides: the convolution's stride (V-Net's 2x2x2 stride-2 down-sampling).
    """
    rank = spatial_rank(x)
    if separable and rank != 2:
        raise ValueError("separable convolutions are 2D only")
    conv = keras.layers.SeparableConv2D if separable else conv_class(rank)
    x = conv(filters, kernel_size, strides=strides, padding="same", name=f"{name}_conv")(x)
    if batch_norm:
        x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    if activation == "prelu":
        x = keras.layers.PReLU(shared_axes=list(range(1, rank + 1)), name=f"{name}_prelu")(x)
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
    """Upsample by an integer ``factor`` (bilinear by default, trilinear for a volume);
    identity for 1."""
    if factor == 1:
        return x
    rank = spatial_rank(x)
    return upsampling_layer(factor, name=name, interpolation=interpolation, rank=rank)(x)


def upsampling_layer(
    factor: int,
    *,
    name: str,
    interpolation: str = "bilinear",
    dtype=None,
    rank: int = 2,
) -> keras.layers.Layer:
    """The up-sampling layer of the blocks: ``UpSampling2D`` in float32, and
    :class:`BilinearUpSampling2D` for bilinear up-sampling in a lower precision.

    ``dtype``: the new layer's dtype policy (default: the global policy), so a layer nested
    in another computes as its parent does. ``UpSampling2D``'s bilinear resize always
    answers in float32 on TensorFlow: in a bfloat16 / float16 model its maps would be cast
    to float32 and back, and its float32 gradient stops XLA under mixed precision
    (keras-team/keras#20931, which ``model.fit`` hits by default on a GPU);
    :class:`BilinearUpSampling2D` stays in the compute dtype (the same interpolation).

    ``rank=3`` gives the volume's twin: :class:`TrilinearUpSampling3D` for ``"bilinear"``
    (element-wise ops only, so none of the above applies), ``UpSampling3D`` for
    ``"nearest"``.
    """
    if rank == 3:
        if interpolation == "bilinear":
            return TrilinearUpSampling3D(factor, name=name, dtype=dtype)
        if interpolation == "nearest":
            return keras.layers.UpSampling3D(factor, name=name, dtype=dtype)
        raise ValueError(f"3D up-sampling is 'bilinear' (trilinear) or 'nearest', got "
                         f"{interpolation!r}")
    policy = keras.dtype_policies.get(dtype) if dtype is not None else (
        keras.mixed_precision.global_policy())
    if interpolation == "bilinear" and policy.compute_dtype != "float32":
        return BilinearUpSampling2D(factor, name=name, dtype=policy)
    return keras.layers.UpSampling2D(factor, interpolation=interpolation, name=name,
                                     dtype=dtype)
