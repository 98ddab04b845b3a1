"""V-Net as the UNet# paper (Qian et al., seed 004) measures it: the 3D baseline of Table 1.

The paper's four 3D networks share one encoder, the V-Net of Milletari, Navab and Ahmadi
(2016), and differ in their skip connections and decoder as the 2D ones do: plain
(``vnet``), ++ (``vnet_pp``), 3+ (``vnet3p``) and # (``vnet_sharp``). This module holds
that encoder (:func:`vnet_encoder`) and the plain network.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_liverseg.layers import conv_bn_act, upsample, vgg_block
from keras_liverseg.models.common import check_filters, check_num_classes, finish, head, stem
from keras_liverseg.models.registry import register

VNET_FILTERS = (16, 32, 64, 128, 256)
"""The feature list of V-Net in the UNet# paper (Sec. 3.4.1)."""

WIDE_VNET_FILTERS = (18, 36, 72, 144, 288)
"""Wide V-Net (WV-Net), the paper's "slightly expanded" feature list."""

STAGE_CONVS = (1, 1, 2, 3, 2)
"""5x5x5 convolutions in the encoder stages ``A^{0,0} .. A^{4,0}``: one in the input stage,
then 1, 2, 3, 2 after each down-sampling, as in the public V-Net code (whose comment says
it follows Milletari's prototxt, "not the intent" of the paper's figure: 1, 2, 3, 3, 3)."""

DEFAULT_INPUT_SHAPE = (64, 128, 128, 1)


def vnet_encoder(x, filters: Sequence[int], depth: int = 4, *, batch_norm: bool = True) -> list:
    """The V-Net encoder ``A^{0,0} .. A^{depth,0}`` (Milletari et al. 2016, Fig. 2).

    Stage ``I``: for ``I > 0`` a 2x2x2 stride-2 convolution halves the volume and sets
    ``filters[I]`` channels (conv -> BN -> PReLU); then ``STAGE_CONVS[I]`` convolutions
    5x5x5 (conv -> BN -> PReLU); the stage's input is added (residual learning) and a PReLU
    follows. Stage 0 adds the windowed CT itself, broadcast over its channels (Milletari's
    "input repeated 16 times").

    Args:
        x: the windowed input ``(batch, D, H, W, C)``, ``C`` 1 or ``filters[0]``.
        filters: channels of the five stages.
        depth: the last stage built (a pruned network stops early).
        batch_norm: BatchNorm after every convolution.

    Returns:
        ``[A^{0,0}, ..., A^{depth,0}]``.
    """
    if x.shape[-1] not in (1, filters[0]):
        raise ValueError(
            f"input_shape: the V-Net input stage adds the input to its {filters[0]} "
            f"channels, so it needs 1 (or {filters[0]}) channels, got {x.shape[-1]}"
        )
    nodes = []
    for I in range(depth + 1):
        name = f"x_{I}_0"
        if I:
            x = conv_bn_act(x, filters[I], kernel_size=2, strides=2, activation="prelu",
                            batch_norm=batch_norm, name=f"down_{I}")
        y = x
        for k in range(1, STAGE_CONVS[I] + 1):
            y = conv_bn_act(y, filters[I], kernel_size=5, activation="prelu",
                            batch_norm=batch_norm, name=f"{name}_{k}")
        y = keras.layers.Add(name=f"{name}_residual")([y, x])
        x = keras.layers.PReLU(shared_axes=[1, 2, 3], name=f"{name}_prelu")(y)
        nodes.append(x)
    return nodes


@register("vnet", volumetric=True)
def vnet(
    input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
    num_classes: int = 1,
    filters: Sequence[int] = VNET_FILTERS,
    batch_norm: bool = True,
    hu_window: Sequence[float] = (-200.0, 250.0),
    name: str = "vnet",
) -> keras.Model:
    """V-Net: the V-Net encoder and a U-Net decoder, the "V-Net" of UNet# Table 1.

    - Encoder ``A^{I,0}``: :func:`vnet_encoder` (5x5x5 residual stages, 2x2x2 stride-2
      down-convolutions, PReLU; Milletari et al. 2016).
    - Decoder ``A^{I,4-I} = f^2([A^{I,0}, up2(A^{I+1,3-I})])``: trilinear up-sampling,
      concatenation, two 3x3x3 conv-BN-ReLU, as in the 2D U-Net of the same table.
    - ``"mask"``: 1x1x1 head on ``A^{0,4}``.

    Parameter count (1 input channel, 1 class): 26,388,385 with ``VNET_FILTERS`` and
    33,396,373 with ``WIDE_VNET_FILTERS`` (paper: 26.39M and 33.40M). Milletari's own
    network at these widths is far larger (45.6M in the public code, its decoder has
    5x5x5 stages of 256..32 channels), and a 3x3x3 U-Net far smaller (5.9M): the paper's
    counts, and the +0.98M of its V-Net2+ (see ``vnet_pp``), are met only by this V-Net
    encoder under a 3x3x3 U-Net decoder, and by no other stage-conv count (searched 0..3).

    Args:
        input_shape: ``(D, H, W, C)``, D, H, W divisible by 16; C = 1 (a CT volume).
        num_classes: 1 (sigmoid) or >= 2 (softmax).
        filters: channels of the five levels: ``VNET_FILTERS`` (V-Net) or
            ``WIDE_VNET_FILTERS`` (WV-Net).
        batch_norm: BatchNorm after every convolution.
        hu_window: HU window of the input layer.
        name: model name.

    Example::

        model = keras_liverseg.models.build("vnet", input_shape=(32, 64, 64, 1))
        probabilities = model.predict(ct_hu[None, ..., None])  # (1, 32, 64, 64, 1)
    """
    filters = check_filters(filters)
    num_classes = check_num_classes(num_classes)
    inputs, x = stem(input_shape, hu_window, rank=3)

    # Encoder: A^{I,0}
    A = dict(enumerate(vnet_encoder(x, filters, batch_norm=batch_norm)))
    A = {(I, 0): node for I, node in A.items()}

    # Decoder: A^{I,4-I} = f^2([A^{I,0}, up2(A^{I+1,3-I})])
    depth = len(filters) - 1
    for I in reversed(range(depth)):
        J = depth - I
        up = upsample(A[I + 1, J - 1], 2, name=f"up_{I + 1}_{J - 1}")
        cat = keras.layers.Concatenate(name=f"cat_{I}_{J}")([A[I, 0], up])
        A[I, J] = vgg_block(cat, filters[I], name=f"x_{I}_{J}", batch_norm=batch_norm)

    return finish(inputs, {"mask": head(A[0, depth], num_classes, name="mask")}, name)
