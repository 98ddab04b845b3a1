"""Streaming Keras metrics for training: Dice and IoU of one class, backend-agnostic.

Written with ``keras.ops`` only, so they run on the TensorFlow and JAX backends (and inside
``jit``). Each metric accumulates the voxel counts ``|A ∩ B|``, ``|A|`` and ``|B|`` over all
batches seen since the last reset, so its result is the *pooled* score of the epoch, like
LiTS's "Dice global" (Bilic et al. 2023, "The Liver Tumor Segmentation Benchmark (LiTS)"),
not a mean of per-batch scores. As in :mod:`keras_liverseg.metrics.overlap`, the score is 1
while both accumulated masks are empty.

Inputs:

- ``y_pred``: probabilities ``(batch, ..., C)``. One channel (``C == 1``) is a sigmoid
  foreground probability, thresholded at ``threshold``. Several channels are a softmax;
  each voxel takes its ``argmax`` class. A list or tuple of such tensors (deep-supervision
  heads at the same resolution) is averaged first.
- ``y_true``: integer labels ``(batch, ...)`` or ``(batch, ..., 1)`` (LiTS: 0 background,
  1 liver, 2 tumor); a one-hot ``(batch, ..., C)`` tensor is accepted too.
- ``sample_weight`` (optional): per sample ``(batch,)`` or per voxel, weighting the counts.

A metric scores one class, given as the set of label values ``class_ids`` that belong to it.
For LiTS, the liver (organ) is ``LIVER = (1, 2)`` and the tumor ``TUMOR = (2,)``. With a
sigmoid output the prediction's foreground is scored against ``label in class_ids``; with a
softmax it is ``argmax in class_ids`` against ``label in class_ids`` (class ids beyond the
softmax's channels are never predicted, so a background/liver softmax scores the liver
organ correctly with ``LIVER``).

Deep supervision: in Keras 3 metrics are attached per output. For a model with several
named outputs, give a dict with fresh metric instances per output (an instance keeps one
output's state)::

    model.compile(
        optimizer="adam",
        loss={"mask": loss, "aux_1": loss},
        metrics={"mask": lits_metrics(3), "aux_1": lits_metrics(3)},
    )

Keras logs them as ``mask_dice_liver``, ``aux_1_dice_liver``, ... Called directly, a metric
also accepts a list of head predictions and averages them.

The classes are registered as ``keras_liverseg>ClassDice`` and ``keras_liverseg>ClassIoU``:
import this module before loading a model saved with them.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import keras
from keras import ops

__all__ = ["LIVER", "TUMOR", "ClassDice", "ClassIoU", "lits_metrics"]

LIVER = (1, 2)
"""LiTS label values of the liver as an organ (parenchyma and tumor)."""
TUMOR = (2,)
"""LiTS label value of tumor."""


def _merge_heads(y_pred):
    if isinstance(y_pred, list | tuple):
        if not y_pred:
            raise ValueError("an empty list of predictions was given")
        heads = [ops.convert_to_tensor(head) for head in y_pred]
        shapes = {tuple(head.shape) for head in heads}
        if len(shapes) > 1:
            raise ValueError(f"prediction heads must share one shape to be averaged: {shapes}")
        return ops.mean(ops.stack([ops.cast(h, "float32") for h in heads], axis=0), axis=0)
    return ops.convert_to_tensor(y_pred)


def _is_in(values, class_ids: Sequence[int]):
    hits = ops.equal(values, class_ids[0])
    for class_id in class_ids[1:]:
        hits = ops.logical_or(hits, ops.equal(values, class_id))
    return hits


def _labels(y_true, pred_rank: int):
    y_true = ops.convert_to_tensor(y_true)
    rank = len(y_true.shape)
    if rank == pred_rank:
        if y_true.shape[-1] == 1:
            y_true = ops.squeeze(y_true, axis=-1)
        else:  # one-hot
            return ops.cast(ops.argmax(y_true, axis=-1), "int32")
    elif rank != pred_rank - 1:
        raise ValueError(
            f"y_true of shape {tuple(y_true.shape)} does not fit predictions of rank "
            f"{pred_rank}: give labels (batch, ...) or (batch, ..., 1)"
        )
    return ops.cast(ops.round(ops.cast(y_true, "float32")), "int32")


class _ClassOverlap(keras.metrics.Metric):
    """Shared state and update of :class:`ClassDice` and :class:`ClassIoU`."""

    _prefix = "overlap"

    def __init__(
        self,
        class_ids: int | Sequence[int] = LIVER,
        threshold: float = 0.5,
        name: str | None = None,
        dtype: str | None = None,
    ) -> None:
        if isinstance(class_ids, numbers.Integral):
            class_ids = (class_ids,)
        ids = tuple(int(c) for c in class_ids)
        if not ids or any(c < 0 for c in ids):
            raise ValueError(f"class_ids must be one or more labels >= 0, got {class_ids!r}")
        if name is None:
            name = f"{self._prefix}_" + "_".join(str(c) for c in ids)
        super().__init__(name=name, dtype=dtype)
        self.class_ids = ids
        self.threshold = float(threshold)
        self.intersection = self.add_variable(shape=(), initializer="zeros", name="intersection")
        self.pred_total = self.add_variable(shape=(), initializer="zeros", name="pred_total")
        self.true_total = self.add_variable(shape=(), initializer="zeros", name="true_total")

    def _masks(self, y_true, y_pred):
        y_pred = _merge_heads(y_pred)
        rank = len(y_pred.shape)
        if rank < 2:
            raise ValueError(f"y_pred needs a channel axis, got shape {tuple(y_pred.shape)}")
        channels = y_pred.shape[-1]
        if channels == 1:
            pred_mask = ops.greater_equal(
                ops.cast(y_pred[..., 0], "float32"), ops.cast(self.threshold, "float32")
            )
        else:
            if channels is not None and min(self.class_ids) >= channels:
                raise ValueError(
                    f"class_ids {self.class_ids} are all beyond the {channels} channels of the "
                    "prediction"
                )
            pred_mask = _is_in(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), self.class_ids)
        true_mask = _is_in(_labels(y_true, rank), self.class_ids)
        return ops.cast(pred_mask, self.dtype), ops.cast(true_mask, self.dtype)

    def _weights(self, sample_weight, like):
        weight = ops.cast(ops.convert_to_tensor(sample_weight), self.dtype)
        rank = len(like.shape)
        if len(weight.shape) == rank + 1 and weight.shape[-1] == 1:
            weight = ops.squeeze(weight, axis=-1)
        while len(weight.shape) < rank:
            weight = ops.expand_dims(weight, axis=-1)
        return ops.broadcast_to(weight, ops.shape(like))

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        """Add a batch: ``y_true`` labels, ``y_pred`` probabilities (or a list of heads)."""
        pred_mask, true_mask = self._masks(y_true, y_pred)
        overlap = pred_mask * true_mask
        if sample_weight is not None:
            weight = self._weights(sample_weight, true_mask)
            overlap, pred_mask, true_mask = overlap * weight, pred_mask * weight, true_mask * weight
        self.intersection.assign_add(ops.cast(ops.sum(overlap), self.dtype))
        self.pred_total.assign_add(ops.cast(ops.sum(pred_mask), self.dtype))
        self.true_total.assign_add(ops.cast(ops.sum(true_mask), self.dtype))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(class_ids=list(self.class_ids), threshold=self.threshold)
        return config


@keras.saving.register_keras_serializable(package="keras_liverseg")
class ClassDice(_ClassOverlap):
    """Streaming Dice ``2|A ∩ B| / (|A| + |B|)`` of one class, pooled over batches (LiTS Dice).

    Args:
        class_ids: the label value(s) forming the class, e.g. ``LIVER = (1, 2)``,
            ``TUMOR = (2,)``.
        threshold: foreground threshold of a one-channel (sigmoid) prediction.
        name: metric name; default ``dice_<ids>``, e.g. ``dice_1_2``.
        dtype: dtype of the accumulators.
    """

    _prefix = "dice"

    def result(self):
        total = self.pred_total + self.true_total
        return ops.where(
            ops.greater(total, 0),
            ops.divide_no_nan(2.0 * self.intersection, total),
            ops.ones_like(total),
        )


@keras.saving.register_keras_serializable(package="keras_liverseg")
class ClassIoU(_ClassOverlap):
    """Streaming IoU (Jaccard) ``|A ∩ B| / |A ∪ B|`` of one class, pooled over batches.

    Arguments as for :class:`ClassDice`; default name ``iou_<ids>``.
    """

    _prefix = "iou"

    def result(self):
        union = self.pred_total + self.true_total - self.intersection
        return ops.where(
            ops.greater(union, 0),
            ops.divide_no_nan(self.intersection, union),
            ops.ones_like(union),
        )


def lits_metrics(num_classes: int, threshold: float = 0.5) -> list[keras.metrics.Metric]:
    """Fresh LiTS training metrics for a model with ``num_classes`` output channels.

    Liver-organ Dice and IoU (``dice_liver``, ``iou_liver``) for a sigmoid (1) or a
    background/liver softmax (2); tumor Dice and IoU as well (``dice_tumor``, ``iou_tumor``)
    for a background/liver/tumor softmax (3).
    """
    if num_classes not in (1, 2, 3):
        raise ValueError(f"num_classes must be 1, 2 or 3 for LiTS, got {num_classes}")
    metrics: list[keras.metrics.Metric] = [
        ClassDice(LIVER, threshold, name="dice_liver"),
        ClassIoU(LIVER, threshold, name="iou_liver"),
    ]
    if num_classes == 3:
        metrics += [
            ClassDice(TUMOR, threshold, name="dice_tumor"),
            ClassIoU(TUMOR, threshold, name="iou_tumor"),
        ]
    return metrics
