"""ES-UNet++ (Cui, Xiao et al., seed 003): UNet++ with encoding-feature supervision.

Two UNet++ of the same shape (the paper's Table 1: 3x3 conv blocks, 2x2 max pooling,
4x4 stride-2 transposed convolutions initialised to bilinear interpolation):

1. :func:`es_unet_pp_encoder`, the *encoding UNet++*: no skip connections, trained as an
   auto-encoder of label maps with deep supervision (Sec. 3.2.1);
2. :func:`es_unet_pp`, the *segmentation UNet++*, whose encoder features ``X^{1..4,0}`` are
   pulled towards the frozen encoder's features of the label by Smooth-L1 (Sec. 3.2.2,
   Eq. 15-16): only the bottleneck (BS) or every level (ES).

At inference only the segmentation UNet++ is kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_liverseg.models.common import DEFAULT_FILTERS
from keras_liverseg.models.registry import register
from keras_liverseg.models.unet_pp import unet_pp

UPSAMPLING = {"upsampling": "transpose", "transpose_kernel": 4, "bilinear_init": True}


@register("es_unet_pp", two_stage=True)  # the encoding UNet++ first
def es_unet_pp(
    input_shape: Sequence[int] = (256, 256, 1),
    num_classes: int = 1,
    filters: Sequence[int] = DEFAULT_FILTERS,
    deep_supervision: bool = True,
    encoder_features: bool = False,
    batch_norm: bool = True,
    hu_window: Sequence[float] = (-100.0, 400.0),
    name: str = "es_unet_pp",
) -> keras.Model:
    """The segmentation UNet++ of ES-UNet++.

    A UNet++ whose up-sampling is a 4x4 stride-2 transposed convolution that halves the
    channels, initialised bilinear (Table 1), on CT windowed to [-100, 400] (Sec. 4.1).
    ``deep_supervision`` gives the heads ``"ds_0_1".."ds_0_3"`` + ``"mask"`` (Eq. 14) and
    makes the model prunable; ``encoder_features`` adds ``"enc_1_0".."enc_4_0"`` for the
    Smooth-L1 feature supervision during training.
    """
    return unet_pp(
        input_shape=input_shape,
        num_classes=num_classes,
        filters=filters,
        deep_supervision=deep_supervision,
        encoder_features=encoder_features,
        batch_norm=batch_norm,
        hu_window=hu_window,
        name=name,
        **UPSAMPLING,
    )


@register("es_unet_pp_encoder")
def es_unet_pp_encoder(
    input_shape: Sequence[int] = (256, 256, 1),
    num_classes: int = 1,
    filters: Sequence[int] = DEFAULT_FILTERS,
    batch_norm: bool = True,
    name: str = "es_unet_pp_encoder",
) -> keras.Model:
    """The encoding UNet++ of ES-UNet++: label map in, label map out, no skips.

    Its input is a label map (``C`` channels: 1 for a binary map, ``num_classes`` for a
    one-hot one), not CT, so it has no HU window. It always has deep supervision (without
    skips the inner nodes train only through their own heads, Sec. 3.2.1) and outputs its
    encoder features ``"enc_1_0".."enc_4_0"``, the targets of the Smooth-L1 supervision.
    The up-sampling keeps the channel count (Table 1, "does not change the number of
    channels because it does not have a skip connection").
    """
    return unet_pp(
        input_shape=input_shape,
        num_classes=num_classes,
        filters=filters,
        deep_supervision=True,
        dense_skips=False,
        encoder_features=True,
        batch_norm=batch_norm,
        hu_window=None,
        name=name,
        **UPSAMPLING,
    )


def encoder_feature_model(model: keras.Model) -> keras.Model:
    """The sub-model of an ES-UNet++ network that outputs its ``X^{1..4,0}`` features.

    Works for both networks (their encoder layers are named ``x_<i>_0_2_relu``), so the
    Smooth-L1 targets and predictions can be computed without the decoder.
    """
    names = [f"x_{i}_0_2_relu" for i in range(1, 5)]
    return keras.Model(model.inputs, [model.get_layer(n).output for n in names],
                       name=f"{model.name}_encoder_features")
