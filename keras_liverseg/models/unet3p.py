"""UNet 3+ (Huang et al. 2020): full-scale skip connections, the baseline of seed 000."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_liverseg.layers import ClassificationGuide, FullScaleConcat, conv_bn_act, upsample
from keras_liverseg.models.common import check_filters, check_num_classes, finish, head, stem
from keras_liverseg.models.registry import register
from keras_liverseg.models.unet import downsample

UNET3P_FILTERS = (64, 128, 256, 512, 1024)


@register("unet3p")
def unet3p(
    input_shape: Sequence[int] = (256, 256, 1),
    num_classes: int = 1,
    filters: Sequence[int] = UNET3P_FILTERS,
    cat_filters: int = 64,
    deep_supervision: bool = False,
    classification_guide: bool = False,
    batch_norm: bool = True,
    hu_window: Sequence[float] = (-200.0, 250.0),
    name: str = "unet3p",
) -> keras.Model:
    """UNet 3+: every decoder node gathers all five scales.

    Huang et al. (2020), "UNet 3+: A Full-Scale Connected UNet", Eq. 1 and Fig. 2. Decoder
    node ``X^i_De`` (i = 3..0) concatenates the finer encoder outputs ``X^k_En`` (k < i,
    max-pooled by ``2^{i-k}``), ``X^i_En``, and the coarser decoder outputs ``X^k_De``
    (k > i, bilinear up-sampled; ``X^4_De = X^4_En``), each through one conv-BN-ReLU to
    ``cat_filters`` channels, then one conv-BN-ReLU to ``5 * cat_filters``.

    Outputs: ``"mask"`` on ``X^0_De``; with ``deep_supervision`` the 3x3 heads ``"ds_i"`` on
    ``X^i_De`` (i = 1..4) up-sampled bilinearly to the input size (Sec. 2.2); with
    ``classification_guide`` the CGM ``"cls_mask"`` on ``X^4_En`` (Sec. 2.3: dropout, 1x1
    conv to 2, global max pooling, softmax), whose argmax gates the mask at inference.

    Args:
        input_shape: ``(H, W, C)``; H, W divisible by 16.
        num_classes: 1 (sigmoid) or >= 2 (softmax).
        filters: encoder channels of the five levels (paper: 64..1024).
        cat_filters: channels of every rescaled input (paper: 64).
        deep_supervision: add the four side heads.
        classification_guide: add the CGM.
        batch_norm: BatchNorm after every convolution.
        hu_window: HU window of the input layer.
        name: model name.
    """
    filters = check_filters(filters)
    num_classes = check_num_classes(num_classes)
    depth = len(filters) - 1
    inputs, x = stem(input_shape, hu_window)

    # Encoder X^i_En
    encoder = []
    for i, f in enumerate(filters):
        if i:
            x = downsample(x, "max", name=f"pool_{i}")
        x = conv_bn_act(x, f, name=f"enc_{i}_1", batch_norm=batch_norm)
        encoder.append(conv_bn_act(x, f, name=f"enc_{i}_2", batch_norm=batch_norm))

    # Decoder X^i_De, bottom-up, each from all five scales
    decoder = {depth: encoder[depth]}
    for i in reversed(range(depth)):
        sources = encoder[: i + 1] + [decoder[k] for k in range(i + 1, depth + 1)]
        steps = [i - k for k in range(depth + 1)]
        cat = FullScaleConcat(steps, cat_filters, "max", batch_norm, name=f"fullscale_{i}")(
            sources
        )
        decoder[i] = conv_bn_act(cat, cat_filters * (depth + 1), name=f"dec_{i}",
                                 batch_norm=batch_norm)

    outputs = {"mask": head(decoder[0], num_classes, name="mask", kernel_size=3)}
    if deep_supervision:
        for i in range(1, depth + 1):
            side = upsample(decoder[i], 2**i, name=f"ds_{i}_up")
            outputs[f"ds_{i}"] = head(side, num_classes, name=f"ds_{i}", kernel_size=3)
    if classification_guide:
        outputs["cls_mask"] = ClassificationGuide("light", name="cls_mask")(encoder[depth])
    return finish(inputs, outputs, name)
