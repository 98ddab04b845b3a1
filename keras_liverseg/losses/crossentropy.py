"""Cross-entropy on label maps: the CE term of ES-UNet++'s Seg-Loss (Cui et al., seed 003,
Eq. 13).

Binary cross-entropy for one sigmoid channel, categorical cross-entropy for a softmax,
with integer labels converted as in :mod:`keras_liverseg.losses._inputs`; probabilities are
clipped to ``[eps, 1 - eps]`` by ``keras.ops`` before the log.

For the ``cls_*`` outputs (``(batch, 2)`` softmax of "slice contains the organ"), use Keras'
own ``keras.losses.CategoricalCrossentropy()`` against a one-hot target (UNet#'s "BCE":
on a two-way softmax binary and categorical cross-entropy are the same number).
"""

from __future__ import annotations

import keras
from keras import ops

from keras_liverseg.losses._inputs import PixelwiseLoss

__all__ = ["CrossEntropyLoss", "pixel_crossentropy"]


def pixel_crossentropy(target, probs):
    """Per-pixel cross-entropy ``(batch, ...)`` of a one-hot target and probabilities."""
    if probs.shape[-1] == 1:
        return ops.binary_crossentropy(target, probs)[..., 0]
    return ops.categorical_crossentropy(target, probs, axis=-1)


@keras.saving.register_keras_serializable(package="keras_liverseg")
class CrossEntropyLoss(PixelwiseLoss):
    """Pixel-wise (binary or categorical) cross-entropy from label maps, mean over pixels.

    Args:
        foreground_labels: label values that are foreground for a one-channel output.
        name, reduction, dtype: as for :class:`keras.losses.Loss`.
    """

    DEFAULT_NAME = "crossentropy_loss"

    def pixel_loss(self, target, probs):
        return pixel_crossentropy(target, probs)
