"""Losses and targets for models with several outputs (deep supervision, CGM, features).

Keras 3 takes one loss per output, as dicts keyed by output name (README, "Outputs"):

- ``mask``, ``ds_*``, ``de_*``: segmentation heads. UNet# (Qian et al., seed 004) and
  ES-UNet++ (Cui et al., seed 003, Eq. 14 with equal ``w_i``) *average* the branches'
  losses, so by default each of the ``n`` heads weighs ``1 / n``.
- ``cls_*``: the classification-guided modules, ``(batch, 2)`` softmax of "slice contains
  the organ", trained with Keras' ``CategoricalCrossentropy`` against a one-hot target
  (UNet#'s BCE: on a two-way softmax the two are the same number). Together they weigh
  ``cls_weight`` (each ``cls_weight / n_cls``).
- ``enc_*``: ES-UNet++'s encoder features, supervised by ``feature_loss`` (e.g.
  :class:`~keras_liverseg.losses.SmoothL1Loss`) when one is given (Eq. 17: ``w2`` =
  ``feature_weight``, shared by the levels); left without a loss otherwise.

:func:`deep_supervision_targets` builds the matching ``y`` dict from a batch of label maps
(NumPy; in a ``tf.data`` pipeline call it through ``tf.numpy_function`` or precompute).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import keras
import numpy as np

__all__ = [
    "deep_supervision_losses",
    "deep_supervision_targets",
    "head_kind",
    "pooled_labels",
    "presence_targets",
]

SEGMENTATION, CLASSIFICATION, FEATURE = "segmentation", "classification", "feature"


def _output_names(model: keras.Model | Iterable[str] | str) -> list[str]:
    if isinstance(model, str):
        return [model]
    if isinstance(model, keras.Model):
        if isinstance(model.output, dict):
            return list(model.output)
        return list(model.output_names)
    return list(model)


def head_kind(name: str) -> str:
    """``"segmentation"`` (``mask``, ``ds_*``, ``de_*``), ``"classification"`` (``cls_*``)
    or ``"feature"`` (``enc_*``); a ``ValueError`` for any other output name."""
    if name == "mask" or name.startswith(("ds_", "de_")):
        return SEGMENTATION
    if name.startswith("cls_"):
        return CLASSIFICATION
    if name.startswith("enc_"):
        return FEATURE
    raise ValueError(
        f"output {name!r} is none of mask, ds_*, de_*, cls_*, enc_*: "
        "give its loss yourself (README, 'Outputs')"
    )


def deep_supervision_losses(
    model: keras.Model | Iterable[str],
    loss: Any,
    weights: Mapping[str, float] | None = None,
    cls_loss: Any = "CategoricalCrossentropy",
    feature_loss: Any = None,
    *,
    cls_weight: float = 1.0,
    feature_weight: float = 1.0,
) -> tuple[dict[str, Any], dict[str, float]]:
    """``(loss, loss_weights)`` dicts for ``model.compile`` over a model's outputs.

    Args:
        model: a Keras model (or its output names).
        loss: the segmentation loss of every ``mask`` / ``ds_*`` / ``de_*`` head, e.g.
            ``MixedLoss()`` (UNet#) or ``SegLoss()`` (ES-UNet++).
        weights: per-output weights overriding the defaults, by output name.
        cls_loss: loss of the ``cls_*`` heads (default: a Keras ``CategoricalCrossentropy``
            instance); a name is resolved with ``keras.losses.get``; ``None`` leaves them
            without a loss.
        feature_loss: loss of the ``enc_*`` outputs; ``None`` (default) leaves them out.
        cls_weight: total weight of the ``cls_*`` heads, shared equally.
        feature_weight: total weight of the ``enc_*`` outputs, shared equally.

    Returns:
        ``losses`` and ``loss_weights`` dicts with the same keys; outputs left without a
        loss are absent (Keras then ignores them). Default weights: each segmentation head
        ``1 / n_segmentation_heads`` (the average of the branches).

    Example::

        losses, weights = deep_supervision_losses(model, MixedLoss())
        model.compile("adam", loss=losses, loss_weights=weights)
        model.fit(x, deep_supervision_targets(model, labels))
    """
    names = _output_names(model)
    if isinstance(cls_loss, str):
        cls_loss = keras.losses.get(cls_loss)
    groups: dict[str, list[str]] = {SEGMENTATION: [], CLASSIFICATION: [], FEATURE: []}
    for name in names:
        groups[head_kind(name)].append(name)
    chosen = [
        (SEGMENTATION, loss, 1.0),
        (CLASSIFICATION, cls_loss, float(cls_weight)),
        (FEATURE, feature_loss, float(feature_weight)),
    ]
    losses: dict[str, Any] = {}
    loss_weights: dict[str, float] = {}
    for kind, kind_loss, total in chosen:
        if kind_loss is None or not groups[kind]:
            continue
        for name in groups[kind]:
            losses[name] = kind_loss
            loss_weights[name] = total / len(groups[kind])
    if not losses:
        raise ValueError(f"no output of {names} gets a loss")
    for name, weight in (weights or {}).items():
        if name not in losses:
            raise ValueError(
                f"weights names {name!r}, which has no loss; outputs with a loss: {sorted(losses)}"
            )
        loss_weights[name] = float(weight)
    return losses, loss_weights


def presence_targets(labels: np.ndarray, foreground_labels: Iterable[int] = (1, 2)) -> np.ndarray:
    """One-hot ``(N, 2)`` float32 "slice contains the organ" targets of the ``cls_*`` heads.

    ``[1, 0]``: no pixel of the slice is in ``foreground_labels``; ``[0, 1]``: some are.
    """
    labels = np.asarray(labels)
    present = np.isin(labels, tuple(foreground_labels)).reshape(len(labels), -1).any(axis=1)
    return np.stack([~present, present], axis=-1).astype(np.float32)


def _spatial_dims(labels: np.ndarray) -> int:
    """2 for slices ``(N, H, W[, 1])``, 3 for patches ``(N, D, H, W[, 1])``."""
    if labels.ndim == 3 or (labels.ndim == 4 and labels.shape[-1] == 1):
        return 2
    if labels.ndim in (4, 5):
        return 3
    raise ValueError(f"label maps must be (N, H, W[, 1]) or (N, D, H, W[, 1]), got shape "
                     f"{labels.shape}")


def pooled_labels(labels: np.ndarray, factor: int, spatial_dims: int | None = None) -> np.ndarray:
    """Label maps max-pooled by ``factor`` along every spatial axis (the targets of
    ``de_i_j``): ``(N, H, W[, 1])`` slices along H and W, ``(N, D, H, W[, 1])`` patches of a
    3D model along D, H and W.

    Max pooling keeps a class wherever it covers any voxel of the window, tumor (2) over
    liver (1) over background (0), as UNet#'s ``MaxPool2d`` down-scaling of the ground truth
    (``MaxPool3d`` for V-Net#).

    Args:
        labels: integer label maps, the batch first, optionally a trailing channel of 1.
        factor: the pooling window and stride along each spatial axis.
        spatial_dims: 2 or 3; ``None`` reads it from the shape: 3 axes are 2D, 5 axes
            3D, and 4 axes 2D with a channel if the last one is 1, else 3D (a patch is
            never 1 voxel wide).
    """
    labels = np.asarray(labels)
    if factor == 1:
        return labels
    spatial_dims = _spatial_dims(labels) if spatial_dims is None else int(spatial_dims)
    n, *spatial = labels.shape[: 1 + spatial_dims]
    if any(size % factor for size in spatial):
        size = "x".join(str(s) for s in spatial)
        raise ValueError(f"label maps {size} are not divisible by the pooling factor {factor}")
    blocks = [n]
    for size in spatial:
        blocks += [size // factor, factor]
    blocks = labels.reshape(*blocks, *labels.shape[1 + spatial_dims:])
    return blocks.max(axis=tuple(2 + 2 * i for i in range(spatial_dims)))


def deep_supervision_targets(
    model: keras.Model | Iterable[str],
    labels: np.ndarray,
    foreground_labels: Iterable[int] = (1, 2),
    spatial_dims: int | None = None,
) -> dict[str, np.ndarray]:
    """The ``y`` dict for ``model.fit`` from a batch of label maps ``(N, H, W[, 1])``, or
    ``(N, D, H, W[, 1])`` for a 3D model.

    ``mask`` and ``ds_*`` get ``labels``; ``de_i_j`` the labels max-pooled by ``2**i``
    along every spatial axis (:func:`pooled_labels`);
    ``cls_*`` :func:`presence_targets`. ``enc_*`` outputs are left out: their targets are
    the frozen encoding network's features, which the caller adds. ``spatial_dims`` as for
    :func:`pooled_labels`.
    """
    labels = np.asarray(labels)
    targets: dict[str, np.ndarray] = {}
    for name in _output_names(model):
        kind = head_kind(name)
        if kind == CLASSIFICATION:
            targets[name] = presence_targets(labels, foreground_labels)
        elif kind == SEGMENTATION:
            factor = 2 ** int(name.split("_")[1]) if name.startswith("de_") else 1
            targets[name] = pooled_labels(labels, factor, spatial_dims)
    return targets
