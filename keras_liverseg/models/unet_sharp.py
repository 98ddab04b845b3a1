"""UNet# (Qian et al., seed 004): dense plus full-scale skip connections, two kinds of deep
supervision, classification-guided modules, pruning levels L1-L4."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_liverseg.layers import ClassificationGuide, FullScaleConcat, vgg_block
from keras_liverseg.losses import MixedLoss
from keras_liverseg.models.common import (
    DEFAULT_FILTERS,
    check_filters,
    check_num_classes,
    finish,
    head,
    stem,
)
from keras_liverseg.models.registry import register

BOTTOM = 4
"""Row of the bottom encoder node ``A^{4,0}`` of the full (L4) network."""


def full_scale_sources(I: int, J: int, from_bottleneck: bool = False) -> list[tuple[int, int]]:
    """Nodes feeding ``A^{I,J}`` through full-scale skips (Eq. 1, third case).

    The anti-diagonal ``i + j = I + J`` from ``(I+J, 0)`` to ``(I+2, J-2)``. The paper's
    text lists ``A^{4,0}`` among them for ``A^{2,2}, A^{1,3}, A^{0,4}``, but its reported
    9.71M parameters are reached only without it: it is left out unless ``from_bottleneck``.
    """
    sources = [(i, I + J - i) for i in range(I + J, I + 1, -1)]
    if not from_bottleneck:
        sources = [(i, j) for i, j in sources if (i, j) != (BOTTOM, 0)]
    return sources


@register("unet_sharp", loss=MixedLoss)  # 0.5 focal + Dice + 0.5 Lovasz
def unet_sharp(
    input_shape: Sequence[int] = (256, 256, 1),
    num_classes: int = 1,
    filters: Sequence[int] = DEFAULT_FILTERS,
    level: int = 4,
    deep_supervision: bool = False,
    decoder_heads: bool = False,
    classification_guide: bool = False,
    full_scale_from_bottleneck: bool = False,
    batch_norm: bool = True,
    cgm_dropout: float = 0.5,
    hu_window: Sequence[float] = (-200.0, 250.0),
    name: str = "unet_sharp",
) -> keras.Model:
    """UNet#: the node matrix ``A^{I,J}`` of Qian et al., Eq. 1 and Fig. 1.

    - ``J = 0``: encoder, ``A^{I,0} = f^2(maxpool(A^{I-1,0}))``.
    - ``J = 1``: ``A^{I,1} = f^2([A^{I,0}, up2(A^{I+1,0})])``.
    - ``J > 1``: ``A^{I,J} = f^2([A^{I,0..J-1}, up2(A^{I+1,J-1}),
      up_{2^{i-I}}(A^{i,j}) for i + j = I + J, i >= I + 2])``: dense skips from the same
      row plus full-scale skips from deeper nodes, concatenated without an extra conv.

    With ``filters=(32, 64, 128, 256, 512)``, 3 input channels and 1 class the levels
    L1 / L2 / L3 / L4 (one 1x1 head per ``A^{0,j}``) have 103,041 / 556,002 / 2,531,139 /
    9,716,388 trainable parameters (paper: Fig. 7 and Table 1).

    Outputs (see :mod:`keras_liverseg.models.common` for the naming rule):

    - ``"mask"``: 1x1 head on ``A^{0,level}``, full size, the segmentation.
    - ``deep_supervision``: ``"ds_0_j"``, 1x1 heads on ``A^{0,j}``, ``j < level``, full
      size (the paper's ``L_In``; they make :func:`~keras_liverseg.models.prune` useful).
    - ``decoder_heads``: ``"de_i_j"``, 3x3 heads on the anti-diagonal ``i + j = level``,
      ``i >= 1`` (``A^{1,3}, A^{2,2}, A^{3,1}, A^{4,0}`` at L4), each at its node's size,
      ``2^i`` times smaller than the input: compare them with the ground truth max-pooled
      by ``2^i`` (the paper's ``L_De``).
    - ``classification_guide``: ``"cls_<head>"`` for every head above, ``(batch, 2)``
      probabilities that the slice contains the organ, the full CGM on rows 3-4 and the
      light one elsewhere (Sec. 2.3). Train them with BCE; at inference
      :func:`~keras_liverseg.models.inference_model` gates the mask by their argmax.

    Args:
        input_shape: ``(H, W, C)``; H, W divisible by 16.
        num_classes: 1 (sigmoid) or >= 2 (softmax).
        filters: channels of the five rows ``I = 0..4``.
        level: 1-4, the pruning level the network is built at (``A^{0,level}`` is last).
        deep_supervision: add the ``L_In`` heads.
        decoder_heads: add the ``L_De`` heads.
        classification_guide: add a CGM to every head.
        full_scale_from_bottleneck: keep ``A^{4,0}`` among the full-scale inputs of
            ``A^{2,2}, A^{1,3}, A^{0,4}`` as the paper's text says (10,748,580 params at L4).
        batch_norm: BatchNorm after every convolution.
        cgm_dropout: dropout rate inside the CGMs.
        hu_window: HU window of the input layer.
        name: model name.
    """
    filters = check_filters(filters)
    num_classes = check_num_classes(num_classes)
    if level not in (1, 2, 3, 4):
        raise ValueError(f"level must be 1, 2, 3 or 4, got {level!r}")
    inputs, x = stem(input_shape, hu_window)

    A = {}
    # Encoder column, J = 0.
    for I in range(level + 1):
        if I:
            x = keras.layers.MaxPooling2D(2, name=f"pool_{I}")(x)
        A[I, 0] = x = vgg_block(x, filters[I], name=f"x_{I}_0", batch_norm=batch_norm)

    # Columns J = 1..level, top to bottom of each column (Eq. 1, second and third cases).
    for J in range(1, level + 1):
        for I in range(level - J + 1):
            same_row = [(I, j) for j in range(J)]
            deeper = [(I + 1, J - 1)] + full_scale_sources(I, J, full_scale_from_bottleneck)
            sources = same_row + deeper
            steps = [I - i for i, _ in sources]  # 0 for the same row, -(i - I) deeper
            cat = FullScaleConcat(steps, name=f"cat_{I}_{J}")([A[s] for s in sources])
            A[I, J] = vgg_block(cat, filters[I], name=f"x_{I}_{J}", batch_norm=batch_norm)

    # Heads: the final mask, L_In (full size, 1x1) and L_De (own size, 3x3).
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
