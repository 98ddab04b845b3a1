"""V-Net# (UNet# paper, Table 1): UNet#'s node matrix on the V-Net encoder."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_liverseg.layers import ClassificationGuide, FullScaleConcat, vgg_block
from keras_liverseg.losses import MixedLoss
from keras_liverseg.models.common import check_filters, check_num_classes, finish, head, stem
from keras_liverseg.models.registry import register
from keras_liverseg.models.unet_sharp import full_scale_sources
from keras_liverseg.models.vnet import DEFAULT_INPUT_SHAPE, VNET_FILTERS, vnet_encoder


# 0.5 focal + Dice + 0.5 Lovasz, as UNet#
@register("vnet_sharp", loss=MixedLoss, volumetric=True)
def vnet_sharp(
    input_shape: Sequence[int] = DEFAULT_INPUT_SHAPE,
    num_classes: int = 1,
    filters: Sequence[int] = VNET_FILTERS,
    level: int = 4,
    deep_supervision: bool = False,
    decoder_heads: bool = False,
    classification_guide: bool = False,
    full_scale_from_bottleneck: bool = False,
    batch_norm: bool = True,
    cgm_dropout: float = 0.5,
    hu_window: Sequence[float] = (-200.0, 250.0),
    name: str = "vnet_sharp",
) -> keras.Model:
    """V-Net#: the node matrix ``A^{I,J}`` of Qian et al., Eq. 1, on volumes.

    - ``J = 0``: the V-Net encoder (:func:`~keras_liverseg.models.vnet.vnet_encoder`).
    - ``J = 1``: ``A^{I,1} = f^2([A^{I,0}, up2(A^{I+1,0})])``.
    - ``J > 1``: ``A^{I,J} = f^2([A^{I,0..J-1}, up2(A^{I+1,J-1}),
      up_{2^{i-I}}(A^{i,j}) for i + j = I + J, i >= I + 2])``: dense skips from the same
      row plus full-scale skips from deeper nodes, concatenated without an extra conv.

    ``f`` is a 3x3x3 conv-BN-ReLU, ``up`` trilinear; everything else is ``unet_sharp``.

    Parameter count (``VNET_FILTERS``, 1 input channel, 1 class, L4, 4 heads): 27,785,732,
    or 28,559,876 with ``full_scale_from_bottleneck``; paper: 28.37M, between the two.
    The construction that gives V-Net, WV-Net, V-Net2+ and V-Net3+ to the paper's last
    digit (V-Net encoder, 3x3x3 ``f^2`` nodes) leaves 0.58M of V-Net# unexplained with
    the 2D rule (bottleneck left out, which reproduces UNet#'s 9.71M), and no projection
    ``f`` of the full-scale inputs (Eq. 1's ``f(u(.))``: 1x1x1 or 3x3x3, to 16 channels,
    the row's or the source's) comes nearer than 28.12M / 28.67M. The default follows
    ``unet_sharp`` (-2.1% against the paper); ``full_scale_from_bottleneck`` is +0.7%.

    Outputs, as ``unet_sharp`` (see :mod:`keras_liverseg.models.common`):

    - ``"mask"``: 1x1x1 head on ``A^{0,level}``.
    - ``deep_supervision``: ``"ds_0_j"``, 1x1x1 heads on ``A^{0,j}``, ``j < level`` (the
      paper's ``L_In``; :func:`~keras_liverseg.models.prune` cuts to them).
    - ``decoder_heads``: ``"de_i_j"``, 3x3x3 heads on the anti-diagonal ``i + j = level``,
      ``i >= 1``, at their node's size (``2^i`` times smaller along D, H and W; the paper's
      ``L_De``, compared with the ground truth max-pooled by ``2^i``).
    - ``classification_guide``: ``"cls_<head>"``, ``(batch, 2)`` probabilities that the
      volume contains the organ: the full CGM on rows 3-4, the light one elsewhere.

    Args:
        input_shape: ``(D, H, W, C)``; D, H, W divisible by 16; C = 1.
        num_classes: 1 (sigmoid) or >= 2 (softmax).
        filters: channels of the five rows (``VNET_FILTERS`` or ``WIDE_VNET_FILTERS``).
        level: 1-4, the pruning level the network is built at (``A^{0,level}`` is last).
        deep_supervision: add the ``L_In`` heads.
        decoder_heads: add the ``L_De`` heads.
        classification_guide: add a CGM to every head.
        full_scale_from_bottleneck: keep ``A^{4,0}`` among the full-scale inputs of
            ``A^{2,2}, A^{1,3}, A^{0,4}`` as the paper's text says.
        batch_norm: BatchNorm after every convolution.
        cgm_dropout: dropout rate inside the CGMs.
        hu_window: HU window of the input layer.
        name: model name.
    """
    filters = check_filters(filters)
    num_classes = check_num_classes(num_classes)
    if level not in (1, 2, 3, 4):
        raise ValueError(f"level must be 1, 2, 3 or 4, got {level!r}")
    inputs, x = stem(input_shape, hu_window, rank=3)

    # Encoder column, J = 0: the V-Net encoder.
    A = {(I, 0): node for I, node in enumerate(
        vnet_encoder(x, filters, level, batch_norm=batch_norm))}

    # Columns J = 1..level, top to bottom of each column (Eq. 1, second and third cases).
    for J in range(1, level + 1):
        for I in range(level - J + 1):
            same_row = [(I, j) for j in range(J)]
            deeper = [(I + 1, J - 1)] + full_scale_sources(I, J, full_scale_from_bottleneck)
            sources = same_row + deeper
            steps = [I - i for i, _ in sources]  # 0 for the same row, -(i - I) deeper
            cat = FullScaleConcat(steps, name=f"cat_{I}_{J}")([A[s] for s in sources])
            A[I, J] = vgg_block(cat, filters[I], name=f"x_{I}_{J}", batch_norm=batch_norm)

    # Heads: the final mask, L_In (full size, 1x1x1) and L_De (own size, 3x3x3).
    branches = {"mask": (0, level)}
    if deep_supervision:
        branches.update({f"ds_0_{j}": (0, j) for j in range(1, level)})
    if decoder_heads:
        branches.update({f"de_{i}_{level - i}": (i, level - i) for i in range(1, level + 1)})
    outputs = {}
    for branch, node in branches.items():
        kernel = 3 if branch.startswith("de_") else 1
        outputs[branch] = head(A[node], num_classes, name=branch, kernel_size=kernel)
        if classification_guide:
            kind = "full" if node[0] >= 3 else "light"
            outputs[f"cls_{branch}"] = ClassificationGuide(
                kind, dropout=cgm_dropout, name=f"cls_{branch}"
            )(A[node])
    return finish(inputs, outputs, name)
