"""Input conventions shared by every loss: probabilities in, integer label maps in.

- ``y_pred``: probabilities ``(batch, ..., C)`` as the models output them (README,
  "Outputs"): one sigmoid channel (``C == 1``, P(foreground)) or a softmax over ``C >= 2``
  classes. Cast to float32 first, so float16 / bfloat16 outputs of a mixed-precision model
  are safe.
- ``y_true``: integer labels ``(batch, ...)`` or ``(batch, ..., 1)`` (LiTS: 0 background,
  1 liver, 2 tumor), or a one-hot ``(batch, ..., C)`` with ``C >= 2`` (its channel axis must
  be known when traced; an unknown one is read as the ``(batch, ..., 1)`` label channel).

Labels become a float32 one-hot target of ``y_pred``'s shape: with one channel the target
is ``label in foreground_labels`` (default ``(1, 2)``: the liver including tumor); with
``C`` channels it is ``one_hot(min(label, C - 1))``, so a (background, liver) softmax
counts tumor (2) as liver, as the LiTS convention "liver = label >= 1" wants.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable

import keras
from keras import ops

EPSILON = 1e-7
"""Probabilities are clipped to ``[EPSILON, 1 - EPSILON]`` before a log (float32-safe)."""

LIVER_LABELS = (1, 2)
"""LiTS label values of the liver as an organ: the default ``foreground_labels``."""


def foreground_tuple(labels: int | Iterable[int]) -> tuple[int, ...]:
    """Validate ``foreground_labels``: one or more label values ``>= 0``, as a tuple."""
    if isinstance(labels, numbers.Integral):
        labels = (labels,)
    values = tuple(int(v) for v in labels)
    if not values or any(v < 0 for v in values):
        raise ValueError(f"foreground_labels must be one or more labels >= 0, got {labels!r}")
    return values


def probabilities(y_pred):
    """``y_pred`` as float32, with a channel axis required."""
    y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    if len(y_pred.shape) < 2 or y_pred.shape[-1] is None:
        raise ValueError(
            f"y_pred needs a known channel axis (batch, ..., C), got shape {tuple(y_pred.shape)}"
        )
    return y_pred


def _is_in(values, labels: tuple[int, ...]):
    hits = ops.equal(values, labels[0])
    for label in labels[1:]:
        hits = ops.logical_or(hits, ops.equal(values, label))
    return hits


def integer_labels(y_true, pred_rank: int):
    """Label map ``(batch, ...)`` as int32 from ``(batch, ...)`` or ``(batch, ..., 1)``.

    A channel axis of unknown size (a traced ``tf.data`` shape) is taken as the label channel.
    """
    y_true = ops.convert_to_tensor(y_true)
    rank = len(y_true.shape)
    if rank == pred_rank and y_true.shape[-1] in (1, None):
        y_true = y_true[..., 0]
    elif rank != pred_rank - 1:
        raise ValueError(
            f"y_true of shape {tuple(y_true.shape)} does not fit predictions of rank "
            f"{pred_rank}: give labels (batch, ...) or (batch, ..., 1)"
        )
    return ops.cast(ops.round(ops.cast(y_true, "float32")), "int32")


def one_hot_targets(y_true, y_pred, foreground_labels: tuple[int, ...] = LIVER_LABELS):
    """Float32 target of ``y_pred``'s shape from labels (or a one-hot, passed through)."""
    rank = len(y_pred.shape)
    channels = y_pred.shape[-1]
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == rank and channels > 1 and y_true.shape[-1] == channels:
        return ops.cast(y_true, "float32")  # already one-hot
    labels = integer_labels(y_true, rank)
    if channels == 1:
        return ops.expand_dims(ops.cast(_is_in(labels, foreground_labels), "float32"), -1)
    labels = ops.clip(labels, 0, channels - 1)
    return ops.one_hot(labels, channels, dtype="float32")


def per_sample_mean(values):
    """Mean over every axis but the first: one value per sample, shape ``(batch,)``."""
    rank = len(values.shape)
    if rank <= 1:
        return values
    return ops.mean(values, axis=tuple(range(1, rank)))


def per_sample(value, like):
    """Broadcast a scalar (a whole-batch loss) to ``(batch,)`` of ``like``."""
    return ops.broadcast_to(ops.reshape(value, (1,)), (ops.shape(like)[0],))


class PixelwiseLoss(keras.losses.Loss):
    """Base of the losses that compare probabilities with the one-hot target pixel by pixel.

    A subclass defines :meth:`pixel_loss` (``(batch, ...)`` values) and ``DEFAULT_NAME``;
    the loss is their mean per sample.

    Args:
        foreground_labels: label values that are foreground for a one-channel output.
        name, reduction, dtype: as for :class:`keras.losses.Loss`.
    """

    DEFAULT_NAME = "pixelwise_loss"

    def __init__(
        self,
        foreground_labels: Iterable[int] = LIVER_LABELS,
        name: str | None = None,
        reduction: str | None = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name or self.DEFAULT_NAME, reduction=reduction, dtype=dtype)
        self.foreground_labels = foreground_tuple(foreground_labels)

    def pixel_loss(self, target, probs):
        raise NotImplementedError

    def call(self, y_true, y_pred):
        probs = probabilities(y_pred)
        target = one_hot_targets(y_true, probs, self.foreground_labels)
        return per_sample_mean(self.pixel_loss(target, probs))

    def get_config(self) -> dict:
        return {**super().get_config(), "foreground_labels": list(self.foreground_labels)}
