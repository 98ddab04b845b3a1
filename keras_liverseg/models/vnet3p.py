"""V-Net3+ (UNet# paper, Table 1): the full-scale skip connection on the V-Net encoder."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_liverseg.layers import ClassificationGuide, FullScaleConcat, upsample, vgg_block
from keras_liverseg.models.common import check_filters, check_num_classes, finish, head, stem
from keras_liverseg.models.registry import register
from keras_liverseg.models.vnet import DEFAULT_INPUT_SHAPE, VNET_FILTERS, vnet_encoder


@register("vnet3p", volumetric=True)
def vnet3p(
    input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
    num_classes: int = 1,
    filters: Sequence[int] = VNET_FILTERS,
    deep_supervision: bool = False,
    classification_guide: bool = False,
    batch_norm: bool = True,
    hu_window: Sequence[float] = (-200.0, 250.0),
    name: str = "vnet3p",
) -> keras.Model:
    """V-Net3+: every decoder node gathers all five scales of the V-Net encoder.

    Huang et al. (2020), Fig. 2, on volumes, in the form the UNet# paper gives its "+++
    scheme" (Sec. 3.4.1): decoder node ``X^i_De`` (i = 3..0) concatenates the finer encoder
    outputs ``X^k_En`` (k < i, max-pooled by ``2^{i-k}``), ``X^i_En`` and the coarser
    decoder outputs ``X^k_De`` (k > i, trilinearly up-sampled; ``X^4_De = X^4_En``), as
    they are, then two 3x3x3 conv-BN-ReLU to ``filters[i]`` channels (the 3D
    :class:`~keras_liverseg.layers.FullScaleConcat` without its per-input convolution,
    as UNet# concatenates its full-scale inputs). The encoder is V-Net's.

    Parameter count (``VNET_FILTERS``, 1 input channel, 1 class): 27,840,337 (paper:
    27.84M, with and without deep supervision). UNet3+'s own decoder (a conv-BN-ReLU per
    input to ``cat`` channels, one fusion conv to ``5 cat``) gives 25.56M with ``cat=16``
    and 28.88M with ``cat=32``: the paper's count is met only by the concatenation above.

    Outputs: ``"mask"`` (3x3x3 head on ``X^0_De``); with ``deep_supervision`` the 3x3x3
    heads ``"ds_i"`` on ``X^i_De`` (i = 1..4) up-sampled trilinearly to the input size;
    with ``classification_guide`` the light CGM ``"cls_mask"`` on ``X^4_En``, whose argmax
    gates the mask at inference (:func:`~keras_liverseg.models.inference_model`).

    Args:
        input_shape: ``(D, H, W, C)``; D, H, W divisible by 16; C = 1.
        num_classes: 1 (sigmoid) or >= 2 (softmax).
        filters: channels of the five levels (``VNET_FILTERS`` or ``WIDE_VNET_FILTERS``).
        deep_supervision: add the four side heads.
        classification_guide: add the CGM.
        batch_norm: BatchNorm after every convolution.
        hu_window: HU window of the input layer.
        name: model name.
    """
    filters = check_filters(filters)
    num_classes = check_num_classes(num_classes)
    depth = len(filters) - 1
    inputs, x = stem(input_shape, hu_window, rank=3)

    # Encoder X^i_En, the V-Net encoder
    encoder = vnet_encoder(x, filters, depth, batch_norm=batch_norm)

    # Decoder X^i_De, bottom-up, each from all five scales
    decoder = {depth: encoder[depth]}
    for i in reversed(range(depth)):
        sources = encoder[: i + 1] + [decoder[k] for k in range(i + 1, depth + 1)]
        steps = [i - k for k in range(depth + 1)]
        cat = FullScaleConcat(steps, name=f"fullscale_{i}")(sources)
        decoder[i] = vgg_block(cat, filters[i], name=f"dec_{i}", batch_norm=batch_norm)

    outputs = {"mask": head(decoder[0], num_classes, name="mask", kernel_size=3)}
    if deep_supervision:
        for i in range(1, depth + 1):
            side = upsample(decoder[i], 2**i, name=f"ds_{i}_up")
            outputs[f"ds_{i}"] = head(side, num_classes, name=f"ds_{i}", kernel_size=3)
    if classification_guide:
        outputs["cls_mask"] = ClassificationGuide("light", name="cls_mask")(encoder[depth])
    return finish(inputs, outputs, name)
