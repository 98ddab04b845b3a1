"""Fold inference-mode BatchNormalization into the convolution before it.

At inference a BatchNormalization layer is an affine map per channel,
``y = gamma * (x - mean) / sqrt(var + eps) + beta`` (Ioffe and Szegedy 2015, Algorithm 2,
with the moving statistics). After a convolution ``x = W * z + b`` it folds into that
convolution: ``W' = W * s`` and ``b' = (b - mean) * s + beta`` per output channel, with
``s = gamma / sqrt(var + eps)``. Keras 3 runs the batch normalisation as separate
element-wise ops over the whole feature map; folded, the network does one pass less over
every feature map. The folded model computes the same function up to float rounding.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

__all__ = ["FoldedBatchNorm", "LayerRebuild", "copy_model", "fold_batch_norm", "foldable_pairs"]

LayerRebuild = Callable[[keras.layers.Layer, dict], keras.layers.Layer]
"""``rebuild(layer, config)``: the copy of ``layer`` built from ``config`` (its own, or
edited): :func:`fold_batch_norm` and :func:`copy_model` build every layer they copy
through one, e.g. in another dtype policy
(:func:`keras_liverseg.inference.precision.at_precision`)."""


def _from_config(layer: keras.layers.Layer, config: dict) -> keras.layers.Layer:
    return layer.__class__.from_config(config)

_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.Conv3D)


@keras.saving.register_keras_serializable(package="keras_liverseg")
class FoldedBatchNorm(keras.layers.Layer):
    """Where a BatchNormalization was before :func:`fold_batch_norm` moved it into the
    convolution: passes its input through (it accepts the ``training`` and ``mask``
    arguments the normalisation was called with)."""

    def call(self, inputs, training=None, mask=None):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape


def foldable_pairs(model: keras.Model) -> dict[str, str]:
    """``{batch_norm_layer: conv_layer}`` for each BatchNormalization that reads only the
    output of a convolution that nothing else reads (channels last, no activation in the
    convolution, one call of each layer)."""
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization):
            continue
        if layer.axis not in (-1, len(layer.input.shape) - 1) or len(layer._inbound_nodes) != 1:
            continue
        source = layer._inbound_nodes[0].parent_nodes
        if len(source) != 1:
            continue
        conv = source[0].operation
        if (isinstance(conv, _CONVOLUTIONS) and conv.data_format == "channels_last"
                and conv.activation is keras.activations.linear
                and len(conv._inbound_nodes) == 1 and len(conv._outbound_nodes) == 1):
            pairs[layer.name] = conv.name
    return pairs


def fold_batch_norm(model: keras.Model, rebuild: LayerRebuild | None = None) -> keras.Model:
    """A copy of the functional ``model`` with every foldable BatchNormalization
    (:func:`foldable_pairs`) folded into its convolution (which gains a bias) and replaced
    by a :class:`FoldedBatchNorm` of the same name. Other layers are copied with their
    weights, each built by ``rebuild`` (default: from its own config), so that folding and
    a change of precision make one copy of the model, not two. A model with nothing to
    fold and no ``rebuild`` is returned as it is."""
    pairs = foldable_pairs(model)
    if not pairs and rebuild is None:
        return model
    return _copy(model, pairs, rebuild or _from_config)


def copy_model(model: keras.Model, rebuild: LayerRebuild) -> keras.Model:
    """A copy of the functional ``model`` with its weights, each layer built by
    ``rebuild`` (which may change its config, or its class for one with the same weights)."""
    return _copy(model, {}, rebuild)


def _copy(model: keras.Model, pairs: dict[str, str], rebuild: LayerRebuild) -> keras.Model:
    convs = set(pairs.values())

    def clone(layer):
        if layer.name in pairs:
            layer = FoldedBatchNorm(name=layer.name)
        config = layer.get_config()
        if layer.name in convs:
            config["use_bias"] = True
        return rebuild(layer, config)

    folded = keras.models.clone_model(model, clone_function=clone)
    for layer in model.layers:
        if layer.name in pairs or not layer.weights:
            continue
        target = folded.get_layer(layer.name)
        if layer.name in convs:
            norm = model.get_layer(next(b for b, c in pairs.items() if c == layer.name))
            target.set_weights(_folded(layer, norm))
        else:
            target.set_weights(layer.get_weights())
    return folded


def _folded(conv, norm) -> list[np.ndarray]:
    """The kernel and bias of ``conv`` followed by ``norm``, in float64 then cast."""
    kernel = keras.ops.convert_to_numpy(conv.kernel).astype(np.float64)
    channels = kernel.shape[-1]
    bias = (keras.ops.convert_to_numpy(conv.bias).astype(np.float64) if conv.use_bias
            else np.zeros(channels))
    mean = keras.ops.convert_to_numpy(norm.moving_mean).astype(np.float64)
    variance = keras.ops.convert_to_numpy(norm.moving_variance).astype(np.float64)
    gamma = (keras.ops.convert_to_numpy(norm.gamma).astype(np.float64) if norm.scale
             else np.ones(channels))
    beta = (keras.ops.convert_to_numpy(norm.beta).astype(np.float64) if norm.center
            else np.zeros(channels))
    scale = gamma / np.sqrt(variance + norm.epsilon)
    dtype = keras.ops.convert_to_numpy(conv.kernel).dtype
    return [(kernel * scale).astype(dtype), ((bias - mean) * scale + beta).astype(dtype)]
