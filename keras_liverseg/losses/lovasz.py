"""Lovasz hinge and Lovasz-softmax losses (Berman, Rannen Triki & Blaschko 2018, "The
Lovasz-Softmax loss: a tractable surrogate for the optimization of the intersection-over-union
measure in neural networks"; Yu & Blaschko 2018 for the hinge).

The Lovasz extension of the Jaccard loss: sort the pixel errors in decreasing order and take
their dot product with the gradient of the Jaccard loss along that order (Berman et al.,
Alg. 1). Written with ``keras.ops`` (``argsort``, ``take_along_axis``, ``cumsum``), so the
gradient flows to the sorted errors on the TensorFlow and JAX backends; the Jaccard
gradient depends only on the labels and is a constant.

UNet# (Qian et al., seed 004) Eq. 5 uses the hinge for its binary outputs. Our models
output probabilities, so :class:`LovaszHingeLoss` recovers the logit
``log(p) - log(1 - p)`` (``p`` clipped to ``[eps, 1 - eps]``) as the hinge's score.
"""

from __future__ import annotations

from collections.abc import Iterable

import keras
from keras import ops

from keras_liverseg.losses._inputs import (
    EPSILON,
    LIVER_LABELS,
    foreground_tuple,
    one_hot_targets,
    per_sample,
    probabilities,
)

__all__ = ["LovaszHingeLoss", "LovaszSoftmaxLoss", "lovasz_gradient", "lovasz_extension"]


def lovasz_gradient(gt_sorted):
    """Gradient of the Jaccard loss along sorted errors (Berman et al., Alg. 1).

    ``gt_sorted``: ``(..., N)`` 0/1 ground truth in the order of decreasing error.
    """
    gts = ops.sum(gt_sorted, axis=-1, keepdims=True)
    intersection = gts - ops.cumsum(gt_sorted, axis=-1)
    union = gts + ops.cumsum(1.0 - gt_sorted, axis=-1)
    jaccard = 1.0 - intersection / union
    return ops.concatenate([jaccard[..., :1], jaccard[..., 1:] - jaccard[..., :-1]], axis=-1)


def lovasz_extension(errors, gt, hinge: bool = False):
    """Lovasz extension of the Jaccard loss for each row of ``errors``, ``(..., N) -> (...)``.

    ``hinge`` applies ``relu`` to the sorted errors (the Lovasz hinge).
    """
    order = ops.argsort(-ops.stop_gradient(errors), axis=-1)
    errors_sorted = ops.take_along_axis(errors, order, axis=-1)
    grad = ops.stop_gradient(lovasz_gradient(ops.take_along_axis(gt, order, axis=-1)))
    if hinge:
        errors_sorted = ops.relu(errors_sorted)
    return ops.sum(errors_sorted * grad, axis=-1)


def _rows(x, per_image: bool):
    """``(batch, ...)`` -> ``(batch, N)`` per image, ``(1, batch * N)`` otherwise."""
    if per_image:
        return ops.reshape(x, (ops.shape(x)[0], -1))
    return ops.reshape(x, (1, -1))


class _LovaszBase(keras.losses.Loss):
    def __init__(
        self,
        per_image: bool,
        foreground_labels: Iterable[int],
        name: str,
        reduction: str | None,
        dtype: str | None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.per_image = bool(per_image)
        self.foreground_labels = foreground_tuple(foreground_labels)

    def _per_sample(self, loss, like):
        return loss if self.per_image else per_sample(loss[0], like)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "per_image": self.per_image,
            "foreground_labels": list(self.foreground_labels),
        }


@keras.saving.register_keras_serializable(package="keras_liverseg")
class LovaszHingeLoss(_LovaszBase):
    """Binary Lovasz hinge (UNet# Eq. 5) for a one-channel sigmoid output.

    Errors ``1 - s * (2y - 1)`` of the logit score ``s``; loss = Lovasz extension of the
    Jaccard loss of ``relu(errors)``.

    Args:
        per_image: the loss of each image, averaged over the batch (default, as Berman et
            al.'s ``lovasz_hinge`` and UNet# Eq. 6), or one loss over the whole batch.
        foreground_labels: label values that are foreground (default liver incl. tumor).
        name, reduction, dtype: as for :class:`keras.losses.Loss`.
    """

    def __init__(
        self,
        per_image: bool = True,
        foreground_labels: Iterable[int] = LIVER_LABELS,
        name: str = "lovasz_hinge_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(per_image, foreground_labels, name, reduction, dtype)

    def call(self, y_true, y_pred):
        probs = probabilities(y_pred)
        if probs.shape[-1] != 1:
            raise ValueError(
                f"LovaszHingeLoss needs one sigmoid channel, got {probs.shape[-1]}: "
                "use LovaszSoftmaxLoss for a softmax"
            )
        target = one_hot_targets(y_true, probs, self.foreground_labels)
        p = ops.clip(probs, EPSILON, 1.0 - EPSILON)
        logits = ops.log(p) - ops.log(1.0 - p)
        errors = 1.0 - logits * (2.0 * target - 1.0)
        loss = lovasz_extension(
            _rows(errors, self.per_image), _rows(target, self.per_image), hinge=True
        )
        return self._per_sample(loss, probs)


@keras.saving.register_keras_serializable(package="keras_liverseg")
class LovaszSoftmaxLoss(_LovaszBase):
    """Multi-class Lovasz-softmax (Berman et al. 2018, Eq. 12 / Alg. 1).

    For each class ``c`` the errors ``|y_c - p_c|``; loss = mean over classes of the Lovasz
    extension of the Jaccard loss. A one-channel sigmoid output is treated as the two-class
    softmax ``(1 - p, p)``.

    Args:
        per_image: the loss of each image, averaged over the batch (default), or one loss
            over the whole batch (Berman et al.'s default for ``lovasz_softmax``).
        only_present: average over the classes present in the ground truth (Berman et
            al.'s ``classes="present"``, default) or over all classes.
        foreground_labels: label values that are foreground for a one-channel output.
        name, reduction, dtype: as for :class:`keras.losses.Loss`.
    """

    def __init__(
        self,
        per_image: bool = True,
        only_present: bool = True,
        foreground_labels: Iterable[int] = LIVER_LABELS,
        name: str = "lovasz_softmax_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(per_image, foreground_labels, name, reduction, dtype)
        self.only_present = bool(only_present)

    def call(self, y_true, y_pred):
        probs = probabilities(y_pred)
        target = one_hot_targets(y_true, probs, self.foreground_labels)
        if probs.shape[-1] == 1:
            probs = ops.concatenate([1.0 - probs, probs], axis=-1)
            target = ops.concatenate([1.0 - target, target], axis=-1)
        channels = probs.shape[-1]
        # (rows, C, N): one Lovasz extension per row and class
        rows_err = _class_rows(ops.abs(target - probs), self.per_image, channels)
        rows_gt = _class_rows(target, self.per_image, channels)
        losses = lovasz_extension(rows_err, rows_gt)  # (rows, C)
        if self.only_present:
            present = ops.cast(ops.sum(rows_gt, axis=-1) > 0, "float32")
            loss = ops.sum(losses * present, axis=-1) / ops.maximum(ops.sum(present, axis=-1), 1)
        else:
            loss = ops.mean(losses, axis=-1)
        return self._per_sample(loss, probs)

    def get_config(self) -> dict:
        return {**super().get_config(), "only_present": self.only_present}


def _class_rows(x, per_image: bool, channels: int):
    """``(batch, ..., C)`` -> ``(rows, C, N)`` with rows = batch (per image) or 1."""
    rows = ops.shape(x)[0] if per_image else 1
    x = ops.reshape(x, (rows, -1, channels))
    return ops.transpose(x, (0, 2, 1))
