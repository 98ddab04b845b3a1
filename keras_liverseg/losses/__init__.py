"""Segmentation losses of the seed papers, as registered, serialisable Keras 3 losses.

Written with ``keras.ops`` only (TensorFlow and JAX backends). Conventions shared by all
(:mod:`keras_liverseg.losses._inputs`):

- ``y_pred``: probabilities as the models output them, one sigmoid channel or a softmax over
  ``C`` classes; cast to float32 inside (mixed precision), clipped before any log.
- ``y_true``: integer label maps ``(batch, H, W)`` or ``(batch, H, W, 1)`` (LiTS 0/1/2),
  one-hot-encoded inside: one channel -> ``label in foreground_labels`` (default liver incl.
  tumor); ``C`` channels -> ``one_hot(min(label, C - 1))``. A one-hot ``y_true`` is accepted.
- Each loss returns one value per sample, so ``sample_weight`` is per sample ``(batch,)``.

Losses:

- :class:`SoftDiceLoss`: Laplace-smoothed soft Dice (UNet# Eq. 4; ES-UNet++ Eq. 8).
- :class:`WeightedDiceLoss`: boundary-weighted Dice (ES-UNet++ Eq. 11); ``y_true`` carries
  the weight map as channel 1, see :func:`with_weight_map`, :func:`boundary_weight_map`.
- :class:`FocalLoss`: binary / categorical focal loss (Lin et al. 2017; UNet# Eq. 3).
- :class:`LovaszHingeLoss`, :class:`LovaszSoftmaxLoss`: Berman et al. 2018 (UNet# Eq. 5).
- :class:`CrossEntropyLoss`: pixel-wise binary / categorical cross-entropy from labels.
- :class:`MixedLoss`: UNet#'s ``0.5 focal + Dice + 0.5 Lovasz`` (Eq. 2).
- :class:`SegLoss`: ES-UNet++'s ``Dice + cross-entropy`` (Eq. 13).
- :class:`SmoothL1Loss`: ES-UNet++'s encoder-feature supervision (Eqs. 15-16).
- :class:`SoftmaxMSELoss`: mU-Net's MSE between softmax and one-hot labels.

Multi-output models: :func:`deep_supervision_losses` (``loss`` / ``loss_weights`` dicts;
``cls_*`` heads get Keras' ``CategoricalCrossentropy``) and
:func:`deep_supervision_targets` (the matching ``y`` dict from label maps).

All classes are registered as ``keras_liverseg>ClassName``: import this package before
loading a model compiled with them.
"""

from keras_liverseg.losses.composite import MixedLoss, SegLoss
from keras_liverseg.losses.crossentropy import CrossEntropyLoss
from keras_liverseg.losses.deep_supervision import (
    deep_supervision_losses,
    deep_supervision_targets,
    pooled_labels,
    presence_targets,
)
from keras_liverseg.losses.dice import SoftDiceLoss, WeightedDiceLoss
from keras_liverseg.losses.distance_weights import (
    boundary_weight_map,
    boundary_weight_maps,
    with_weight_map,
)
from keras_liverseg.losses.focal import FocalLoss
from keras_liverseg.losses.lovasz import LovaszHingeLoss, LovaszSoftmaxLoss
from keras_liverseg.losses.regression import SmoothL1Loss, SoftmaxMSELoss

__all__ = [
    "CrossEntropyLoss",
    "FocalLoss",
    "LovaszHingeLoss",
    "LovaszSoftmaxLoss",
    "MixedLoss",
    "SegLoss",
    "SmoothL1Loss",
    "SoftDiceLoss",
    "SoftmaxMSELoss",
    "WeightedDiceLoss",
    "boundary_weight_map",
    "boundary_weight_maps",
    "deep_supervision_losses",
    "deep_supervision_targets",
    "pooled_labels",
    "presence_targets",
    "with_weight_map",
]
