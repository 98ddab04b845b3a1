"""UNet#'s classification-guided module (Qian et al., seed 004, Sec. 2.3 and Fig. 3)."""

from __future__ import annotations

import keras
from keras import ops

KINDS = ("full", "light")


@keras.saving.register_keras_serializable(package="keras_liverseg")
class ClassificationGuide(keras.layers.Layer):
    """Predict whether a slice contains the organ, from one branch's feature map.

    Qian et al., "UNet#", Sec. 2.3 / Fig. 3, two shapes:

    - ``"full"`` (on ``X^{4,0}`` and ``X^{3,1}``): concat(global avg pool, global max pool)
      -> flatten -> BN -> Dropout -> Dense -> ReLU -> BN -> Dropout -> Dense(2) -> softmax.
    - ``"light"`` (on the other six branches): concat(global avg pool, global max pool)
      -> flatten -> BN -> Dropout -> Dense(2) -> softmax.

    The input is a 2D feature map ``(batch, H, W, C)`` or, in the 3D networks (V-Net3+,
    V-Net#), a volume ``(batch, D, H, W, C)``: the global pooling covers every spatial axis.

    Returns ``(batch, 2)`` probabilities ``(no organ, organ)``, a real differentiable output
    that is trained with (binary) cross-entropy against "this slice contains the organ".
    The paper's ``argmax`` gate is *not* part of this layer (``argmax`` has no gradient):
    it is :class:`ClassificationGate`, applied at inference only.

    Args:
        kind: ``"full"`` or ``"light"``.
        hidden_units: width of the full shape's hidden Dense layer; default = the input's
            channel count (the paper does not state it).
        dropout: dropout rate (UNet3+'s CGM uses 0.5; UNet# does not state it).
    """

    def __init__(self, kind: str = "light", hidden_units: int | None = None,
                 dropout: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"ClassificationGuide kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.hidden_units = None if hidden_units is None else int(hidden_units)
        self.dropout = float(dropout)

    def build(self, input_shape):
        features = 2 * int(input_shape[-1])
        shape = (input_shape[0], features)
        self.stages = [keras.layers.BatchNormalization(name="bn1"),
                       keras.layers.Dropout(self.dropout, name="dropout1")]
        if self.kind == "full":
            hidden = self.hidden_units or int(input_shape[-1])
            self.stages += [keras.layers.Dense(hidden, activation="relu", name="hidden"),
                            keras.layers.BatchNormalization(name="bn2"),
                            keras.layers.Dropout(self.dropout, name="dropout2")]
        self.stages.append(keras.layers.Dense(2, name="logits"))
        for layer in self.stages:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs):
        spatial = tuple(range(1, len(inputs.shape) - 1))  # (H, W) or (D, H, W)
        pooled = ops.concatenate(
            [ops.mean(inputs, axis=spatial), ops.max(inputs, axis=spatial)], axis=-1
        )
        x = pooled
        for layer in self.stages:
            x = layer(x)
        return ops.softmax(ops.cast(x, "float32"), axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], 2)

    def get_config(self):
        return {**super().get_config(), "kind": self.kind,
                "hidden_units": self.hidden_units, "dropout": self.dropout}


@keras.saving.register_keras_serializable(package="keras_liverseg")
class ClassificationGate(keras.layers.Layer):
    """Inference-time gate of UNet#'s CGM: multiply a mask by the 0/1 classifier decision.

    Called on ``[mask, cls]`` with ``cls`` the ``(batch, 2)`` output of
    :class:`ClassificationGuide`; ``d = argmax(cls)``. A one-channel sigmoid mask becomes
    ``d * mask``. For a softmax mask the foreground channels are multiplied by ``d`` and
    the removed probability goes to the background channel, so every pixel still sums to 1.
    The mask is a 2D map or a 3D volume alike.
    """

    def call(self, inputs):
        mask, cls = inputs
        # argmax over two classes, written as a comparison (ties go to "no organ" as argmax
        # does) so that it exports to ONNX, where Keras' argmax lowers to an unsupported op.
        decision = ops.cast(ops.greater(cls[:, 1], cls[:, 0]), mask.dtype)
        decision = decision[(slice(None),) + (None,) * (len(mask.shape) - 1)]  # (batch, 1, ..)
        if mask.shape[-1] == 1:
            return mask * decision
        background, foreground = mask[..., :1], mask[..., 1:]
        removed = ops.sum(foreground, axis=-1, keepdims=True) * (1.0 - decision)
        return ops.concatenate([background + removed, foreground * decision], axis=-1)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]
