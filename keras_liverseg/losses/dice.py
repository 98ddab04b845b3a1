"""Soft Dice with Laplace smoothing, plain and boundary-weighted.

- :class:`SoftDiceLoss`: ``1 - (2|XY| + s) / (|X| + |Y| + s)`` per class, averaged over the
  foreground classes; UNet# (Qian et al., seed 004) Eq. 4 with ``s = 1``, and ES-UNet++'s
  Dice loss (Cui et al., seed 003, Eq. 8) with the same smoothing.
- :class:`WeightedDiceLoss`: ES-UNet++ Eq. 11,
  ``1 - 2|W GT MP| / (|W GT| + |W MP|)``, with the boundary distance weight map ``W`` of
  Eqs. 9-10 (:func:`keras_liverseg.losses.boundary_weight_map`) carried as a second channel of
  ``y_true``.

Inputs follow :mod:`keras_liverseg.losses._inputs`. Every loss returns one value per sample
``(batch,)``; Keras then averages over the batch (and ``sample_weight`` is per sample).
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
from keras import ops

from keras_liverseg.losses._inputs import (
    LIVER_LABELS,
    foreground_tuple,
    one_hot_targets,
    per_sample,
    probabilities,
)

__all__ = ["SoftDiceLoss", "WeightedDiceLoss", "dice_scores"]


def dice_scores(target, probs, weight=None, smooth: float = 1.0, per_image: bool = True):
    """Soft Dice per class, ``(2 sum(w y p) + s) / (sum(w y) + sum(w p) + s)``.

    Args:
        target: one-hot float target ``(batch, ..., C)``.
        probs: probabilities, same shape.
        weight: optional per-pixel weight ``(batch, ...)`` (ES-UNet++ Eq. 11), or ``None``.
        smooth: the Laplace smoothing ``s``.
        per_image: sum over each image's pixels (``(batch, C)`` scores) or over the whole
            batch (``(1, C)``).
    """
    rank = len(probs.shape)
    axes = tuple(range(1 if per_image else 0, rank - 1))
    if weight is not None:
        weight = ops.expand_dims(weight, -1)
        target_w, probs_w = target * weight, probs * weight
    else:
        target_w, probs_w = target, probs
    intersection = ops.sum(target_w * probs, axis=axes)
    total = ops.sum(target_w, axis=axes) + ops.sum(probs_w, axis=axes)
    scores = (2.0 * intersection + smooth) / (total + smooth)
    return scores if per_image else ops.expand_dims(scores, 0)


@keras.saving.register_keras_serializable(package="keras_liverseg")
class SoftDiceLoss(keras.losses.Loss):
    """Soft Dice loss with Laplace smoothing (UNet# Eq. 4; ES-UNet++ Eq. 8).

    ``loss = 1 - mean_c (2 sum(y_c p_c) + s) / (sum(y_c) + sum(p_c) + s)``

    The classes averaged are the foreground ones: the single channel of a sigmoid output,
    or channels ``1..C-1`` of a softmax (``include_background=True`` adds channel 0).
    The smoothing keeps the loss defined (and ~0 for an empty prediction) on slices
    without the organ.

    Args:
        smooth: Laplace smoothing ``s`` (default 1).
        include_background: also average the Dice of softmax channel 0.
        per_image: Dice of each image, averaged over the batch (default; UNet# Eq. 6
            averages the loss over the N images), or one Dice over the whole batch.
        foreground_labels: label values that are foreground for a one-channel output
            (default ``(1, 2)``: liver including tumor).
        name, reduction, dtype: as for :class:`keras.losses.Loss`.
    """

    def __init__(
        self,
        smooth: float = 1.0,
        include_background: bool = False,
        per_image: bool = True,
        foreground_labels: Iterable[int] = LIVER_LABELS,
        name: str = "soft_dice_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if smooth < 0:
            raise ValueError(f"smooth must be >= 0, got {smooth}")
        self.smooth = float(smooth)
        self.include_background = bool(include_background)
        self.per_image = bool(per_image)
        self.foreground_labels = foreground_tuple(foreground_labels)

    def _loss(self, target, probs, weight=None):
        scores = dice_scores(target, probs, weight, self.smooth, self.per_image)
        if probs.shape[-1] > 1 and not self.include_background:
            scores = scores[:, 1:]
        loss = 1.0 - ops.mean(scores, axis=-1)
        return loss if self.per_image else per_sample(loss, probs)

    def call(self, y_true, y_pred):
        probs = probabilities(y_pred)
        return self._loss(one_hot_targets(y_true, probs, self.foreground_labels), probs)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "smooth": self.smooth,
            "include_background": self.include_background,
            "per_image": self.per_image,
            "foreground_labels": list(self.foreground_labels),
        }


@keras.saving.register_keras_serializable(package="keras_liverseg")
class WeightedDiceLoss(SoftDiceLoss):
    """Boundary-weighted Dice loss, ES-UNet++ (Cui et al., seed 003) Eq. 11.

    ``loss = 1 - mean_c (2 sum(W y_c p_c) + s) / (sum(W y_c) + sum(W p_c) + s)``

    **The weight map travels in y_true**: ``y_true`` is ``(batch, ..., 2)`` with the
    integer label map in channel 0 and the weight map ``W`` in channel 1, built in the data
    pipeline with :func:`keras_liverseg.losses.with_weight_map` and
    :func:`keras_liverseg.losses.boundary_weight_map` (Eqs. 9-10, ``w = 0.05``,
    ``sigma = 20``). Keras applies ``sample_weight`` *after* a loss has reduced a sample,
    so a per-pixel map cannot reach a Dice through it; the extra target channel keeps one
    target per output and works with ``model.fit``, deep supervision and ``tf.data``.
    A map of ones gives :class:`SoftDiceLoss`.

    Args: as for :class:`SoftDiceLoss` (the paper's Eq. 11 has no smoothing; ``s = 1``
    keeps the package's Dice losses alike, ``smooth=0`` gives the equation as printed).
    """

    def __init__(self, name: str = "weighted_dice_loss", **kwargs) -> None:
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        probs = probabilities(y_pred)
        y_true = ops.convert_to_tensor(y_true)
        if len(y_true.shape) != len(probs.shape) or y_true.shape[-1] not in (2, None):
            raise ValueError(
                "WeightedDiceLoss wants y_true (batch, ..., 2) = [label, weight map], got "
                f"shape {tuple(y_true.shape)}; build it with losses.with_weight_map()"
            )
        labels, weight = y_true[..., 0], ops.cast(y_true[..., 1], "float32")
        target = one_hot_targets(labels, probs, self.foreground_labels)
        return self._loss(target, probs, weight)
