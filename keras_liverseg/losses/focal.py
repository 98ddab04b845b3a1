"""Focal loss (Lin et al. 2017, "Focal loss for dense object detection") on label maps.

UNet# (Qian et al., seed 004) Eq. 3 and ES-UNet++ (Cui et al., seed 003) Eq. 12, with the
paper's ``alpha = 0.25``, ``gamma = 2``. Computed by Keras' own
``keras.losses.binary_focal_crossentropy`` (one sigmoid channel, alpha-balanced: ``alpha``
on the foreground, ``1 - alpha`` on the background) and
``keras.losses.categorical_focal_crossentropy`` (softmax: ``-alpha (1 - p_t)^gamma log p_t``);
this class adds integer-label input and the package's conventions
(:mod:`keras_liverseg.losses._inputs`).
"""

from __future__ import annotations

from collections.abc import Iterable

import keras

from keras_liverseg.losses._inputs import (
    LIVER_LABELS,
    foreground_tuple,
    one_hot_targets,
    per_sample_mean,
    probabilities,
)

__all__ = ["FocalLoss"]


@keras.saving.register_keras_serializable(package="keras_liverseg")
class FocalLoss(keras.losses.Loss):
    """Binary (1 channel) or categorical (C channels) focal loss, mean over pixels.

    - one sigmoid channel: ``-a_t (1 - p_t)^gamma log(p_t)`` with ``a_t = alpha`` for
      foreground pixels and ``1 - alpha`` for background ones (Lin et al. Eq. 5);
    - softmax: ``-alpha sum_c y_c (1 - p_c)^gamma log(p_c)``.

    Args:
        alpha: balancing factor (default 0.25); ``None`` switches balancing off (binary)
            or uses 1 (categorical).
        gamma: focusing parameter (default 2); ``gamma = 0`` gives (balanced) cross-entropy.
        foreground_labels: label values that are foreground for a one-channel output.
        name, reduction, dtype: as for :class:`keras.losses.Loss`.

    Returns one value per sample, the mean over its pixels.
    """

    def __init__(
        self,
        alpha: float | None = 0.25,
        gamma: float = 2.0,
        foreground_labels: Iterable[int] = LIVER_LABELS,
        name: str = "focal_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if gamma < 0:
            raise ValueError(f"gamma must be >= 0, got {gamma}")
        self.alpha = None if alpha is None else float(alpha)
        self.gamma = float(gamma)
        self.foreground_labels = foreground_tuple(foreground_labels)

    def call(self, y_true, y_pred):
        probs = probabilities(y_pred)
        target = one_hot_targets(y_true, probs, self.foreground_labels)
        if probs.shape[-1] == 1:
            per_pixel = keras.losses.binary_focal_crossentropy(
                target,
                probs,
                apply_class_balancing=self.alpha is not None,
                alpha=0.25 if self.alpha is None else self.alpha,
                gamma=self.gamma,
            )
        else:
            per_pixel = keras.losses.categorical_focal_crossentropy(
                target, probs, alpha=1.0 if self.alpha is None else self.alpha, gamma=self.gamma
            )
        return per_sample_mean(per_pixel)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "gamma": self.gamma,
            "foreground_labels": list(self.foreground_labels),
        }
