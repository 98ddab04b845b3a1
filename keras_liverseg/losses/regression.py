"""Regression-type losses: Smooth-L1 feature supervision and MSE on probabilities.

- :class:`SmoothL1Loss`: ES-UNet++ (Cui et al., seed 003) Eqs. 15-16, between the encoder
  features ``X^{1,0}..X^{4,0}`` of the segmentation UNet++ (outputs ``enc_i_0``) and those
  the frozen encoding UNet++ computes from the label map. Eq. 16 with ``beta`` is exactly
  Keras' Huber loss with ``delta = beta`` (and Smooth-L1 at the paper's ``beta = 1``), so
  ``keras.losses.huber`` computes it.
- :class:`SoftmaxMSELoss`: mU-Net (Seo et al., seed 001, Sec. II.C): the mean squared
  error between the softmax output and the one-hot labels.
"""

from __future__ import annotations

import keras
from keras import ops

from keras_liverseg.losses._inputs import PixelwiseLoss, per_sample_mean

__all__ = ["SmoothL1Loss", "SoftmaxMSELoss"]


@keras.saving.register_keras_serializable(package="keras_liverseg")
class SmoothL1Loss(keras.losses.Loss):
    """Smooth-L1 / Huber loss of feature maps, ES-UNet++ Eq. 16, mean over elements.

    ``l = 0.5 (x - y)^2`` if ``|x - y| < beta``, else ``beta (|x - y| - 0.5 beta)``.

    ``y_true`` and ``y_pred`` are float feature maps of one shape (the target is the frozen
    encoder's output). Eq. 15 sums ``l`` over the elements; we average them (PyTorch's
    ``SmoothL1Loss`` default), which only rescales the loss by the feature size and keeps
    the levels ``X^{1,0}..X^{4,0}`` comparable.

    Args:
        beta: the switch point (paper: 1).
        name, reduction, dtype: as for :class:`keras.losses.Loss`.
    """

    def __init__(
        self,
        beta: float = 1.0,
        name: str = "smooth_l1_loss",
        reduction: str | None = "sum_over_batch_size",
        dtype: str | None = None,
    ) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        if beta <= 0:
            raise ValueError(f"beta must be > 0, got {beta}")
        self.beta = float(beta)

    def call(self, y_true, y_pred):
        y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
        y_true = ops.cast(ops.convert_to_tensor(y_true), "float32")
        return per_sample_mean(keras.losses.huber(y_true, y_pred, delta=self.beta))

    def get_config(self) -> dict:
        return {**super().get_config(), "beta": self.beta}


@keras.saving.register_keras_serializable(package="keras_liverseg")
class SoftmaxMSELoss(PixelwiseLoss):
    """Mean squared error between probabilities and one-hot labels (mU-Net's loss).

    ``loss = mean over pixels and channels of (p_c - y_c)^2``; with one sigmoid channel the
    target is ``label in foreground_labels``.

    Args:
        foreground_labels: label values that are foreground for a one-channel output.
        name, reduction, dtype: as for :class:`keras.losses.Loss`.
    """

    DEFAULT_NAME = "softmax_mse_loss"

    def pixel_loss(self, target, probs):
        return ops.square(probs - target)
