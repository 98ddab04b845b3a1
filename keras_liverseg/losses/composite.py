"""The papers' combined segmentation losses.

- :class:`MixedLoss`: UNet# (Qian et al., seed 004) Eq. 2,
  ``0.5 * focal + Laplace-smoothed soft Dice + 0.5 * Lovasz``; the loss of every UNet#
  branch.
- :class:`SegLoss`: ES-UNet++ (Cui et al., seed 003) Eq. 13,
  ``w1 * Dice + w2 * cross-entropy`` with equal weights; Eq. 14's DS-Loss over the heads is
  :func:`keras_liverseg.losses.deep_supervision_losses`.

Both take probabilities and integer label maps (:mod:`keras_liverseg.losses._inputs`) and
return one value per sample, the weighted sum of their terms' per-sample values.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras

from keras_liverseg.losses._inputs import LIVER_LABELS, foreground_tuple, probabilities
from keras_liverseg.losses.crossentropy import CrossEntropyLoss
from keras_liverseg.losses.dice import SoftDiceLoss
from keras_liverseg.losses.focal import FocalLoss
from keras_liverseg.losses.lovasz import LovaszHingeLoss, LovaszSoftmaxLoss

__all__ = ["MixedLoss", "SegLoss"]


def _weighted_sum(terms, y_true, probs):
    total = None
    for weight, loss in terms:
        if weight:
            value = weight * loss.call(y_true, probs)
            total = value if total is None else total + value
    if total is None:
        raise ValueError("every term of the loss has weight 0")
    return total


@keras.saving.register_keras_serializable(package="keras_liverseg")
class MixedLoss(keras.losses.Loss):
    """UNet#'s mixed loss, Eq. 2: ``0.5 focal + soft Dice + 0.5 Lovasz``.

    - focal: :class:`~keras_liverseg.losses.FocalLoss` (``alpha = 0.25``, ``gamma = 2``,
      Eq. 3);
    - Dice: :class:`~keras_liverseg.losses.SoftDiceLoss` with Laplace smoothing ``s = 1``
      (Eq. 4), over the foreground classes;
    - Lovasz: :class:`~keras_liverseg.losses.LovaszHingeLoss` (Eq. 5) for a one-channel
      sigmoid output, :class:`~keras_liverseg.losses.LovaszSoftmaxLoss` (its multi-class
      form, Berman et al. 2018) for a softmax.

    Dice and Lovasz are taken per image and averaged over the batch (Eq. 6).

    Args:
        focal_weight, dice_weight, lovasz_weight: the weights of Eq. 2 (0.5, 1, 0.5).
        alpha, gamma: focal-loss parameters.
        smooth: Dice smoothing.
        include_background: also average the softmax background channel's Dice.
        per_image: Dice and Lovasz per image (default) or over the whole batch.
        foreground_labels: label values that are foreground for a one-channel output.
        name, reduction, dtype: as for :class:`keras.losses.Loss`.
    """

    def __init__(
        self,
        focal_weight: float = 0.5,
        dice_weight: float = 1.0,
        lovasz_weight: float = 0.5,
        alpha: float | None = 0.25,
        gamma: float = 2.0,
        smooth: float = 1.0,
        include_background: bool = False,
        per_image: bool = True,
        foreground_labels: Iterable[int] = LIVER_LABELS,
        name: str = "mixed_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.focal_weight = float(focal_weight)
        self.dice_weight = float(dice_weight)
        self.lovasz_weight = float(lovasz_weight)
        self.alpha = None if alpha is None else float(alpha)
        self.gamma = float(gamma)
        self.smooth = float(smooth)
        self.include_background = bool(include_background)
        self.per_image = bool(per_image)
        self.foreground_labels = foreground_tuple(foreground_labels)
        fg = self.foreground_labels
        self._focal = FocalLoss(self.alpha, self.gamma, fg)
        self._dice = SoftDiceLoss(self.smooth, self.include_background, self.per_image, fg)
        self._hinge = LovaszHingeLoss(self.per_image, fg)
        self._lovasz_softmax = LovaszSoftmaxLoss(self.per_image, True, fg)

    def call(self, y_true, y_pred):
        probs = probabilities(y_pred)
        lovasz = self._hinge if probs.shape[-1] == 1 else self._lovasz_softmax
        terms = [
            (self.focal_weight, self._focal),
            (self.dice_weight, self._dice),
            (self.lovasz_weight, lovasz),
        ]
        return _weighted_sum(terms, y_true, probs)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "focal_weight": self.focal_weight,
            "dice_weight": self.dice_weight,
            "lovasz_weight": self.lovasz_weight,
            "alpha": self.alpha,
            "gamma": self.gamma,
            "smooth": self.smooth,
            "include_background": self.include_background,
            "per_image": self.per_image,
            "foreground_labels": list(self.foreground_labels),
        }


@keras.saving.register_keras_serializable(package="keras_liverseg")
class SegLoss(keras.losses.Loss):
    """ES-UNet++'s Seg-Loss, Eq. 13: ``w1 * Dice + w2 * cross-entropy`` (``w1 = w2 = 1``).

    - Dice: :class:`~keras_liverseg.losses.SoftDiceLoss` (Eq. 8, with smoothing ``s``);
    - cross-entropy: :class:`~keras_liverseg.losses.CrossEntropyLoss`, binary for one
      sigmoid channel, categorical for a softmax, mean over pixels.

    Args:
        dice_weight, ce_weight: ``w1``, ``w2`` (the paper weighs all terms equally).
        smooth, include_background, per_image: as for ``SoftDiceLoss``.
        foreground_labels: label values that are foreground for a one-channel output.
        name, reduction, dtype: as for :class:`keras.losses.Loss`.
    """

    def __init__(
        self,
        dice_weight: float = 1.0,
        ce_weight: float = 1.0,
        smooth: float = 1.0,
        include_background: bool = False,
        per_image: bool = True,
        foreground_labels: Iterable[int] = LIVER_LABELS,
        name: str = "seg_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.dice_weight = float(dice_weight)
        self.ce_weight = float(ce_weight)
        self.smooth = float(smooth)
        self.include_background = bool(include_background)
        self.per_image = bool(per_image)
        self.foreground_labels = foreground_tuple(foreground_labels)
        fg = self.foreground_labels
        self._dice = SoftDiceLoss(self.smooth, self.include_background, self.per_image, fg)
        self._ce = CrossEntropyLoss(fg)

    def call(self, y_true, y_pred):
        probs = probabilities(y_pred)
        terms = [(self.dice_weight, self._dice), (self.ce_weight, self._ce)]
        return _weighted_sum(terms, y_true, probs)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "dice_weight": self.dice_weight,
            "ce_weight": self.ce_weight,
            "smooth": self.smooth,
            "include_background": self.include_background,
            "per_image": self.per_image,
            "foreground_labels": list(self.foreground_labels),
        }
