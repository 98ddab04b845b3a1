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

from collections.abc import Iterable

import keras
from keras import ops

from keras_liverseg.losses._inputs import (
    LIVER_LABELS,
    foreground_tuple,
    one_hot_targets,
    per_sample_mean,
    probabilities,
)

__all__ = ["CrossEntropyLoss", "pixel_crossentropy"]


def pixel_crossentropy(target, probs):
    """Per-pixel cross-entropy ``(batch, ...)`` of a one-hot target and probabilities."""
    if probs.shape[-1] == 1:
        return ops.binary_crossentropy(target, probs)[..., 0]
    return ops.categorical_crossentropy(target, probs, axis=-1)


@keras.saving.register_keras_serializable(package="keras_liverseg")
class CrossEntropyLoss(keras.losses.Loss):
    """Pixel-wise (binary or categorical) cross-entropy from label maps, mean over pixels.

    Args:
        foreground_labels: label values that are foreground for a one-channel output.
        name, reduction, dtype: as for :class:`keras.losses.Loss`.
    """

    def __init__(
        self,
        foreground_labels: Iterable[int] = LIVER_LABELS,
        name: str = "crossentropy_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.foreground_labels = foreground_tuple(foreground_labels)

    def call(self, y_true, y_pred):
        probs = probabilities(y_pred)
        target = one_hot_targets(y_true, probs, self.foreground_labels)
        return per_sample_mean(pixel_crossentropy(target, probs))

    def get_config(self) -> dict:
        return {**super().get_config(), "foreground_labels": list(self.foreground_labels)}
