"""Fold inference-mode BatchNormalization into the convolution before it.

At inference a BatchNormalization layer is an affine map per channel,
``y = gamma * (x - mean) / sqrt(var + eps) + beta`` (Ioffe and Szegedy 2015, Algorithm 2,
with the moving statistics). After a convolution ``x = W * z + b`` it folds into that
convolution: ``W' = W * s`` and ``b' = (b - mean) * s + beta`` per output channel, with
``s = gamma / sqrt(var + eps)``. Keras 3 runs the batch normalisation as separate
element-wise ops over the whole feature map; folded, the network does one pass less over
every feature map. The folded model computes the same function up to float rounding.

The same copy can also split the convolution that reads a concatenation: a convolution is
linear in its input channels, so ``conv(concat(x_1, ..., x_n), W) = sum_i conv(x_i, W_i)``
with ``W_i`` the kernel's slice of ``x_i``'s channels (:class:`ConcatConv2D`). UNet#'s
full-scale skips concatenate up to six maps at full resolution before each decoder
convolution (272 channels at 192 x 192 for the default model's top node); split, that
copy is never written.

A part that the full-scale skip up-samples (by 2, 4 or 8) need not be convolved at full
size either: up-sampling acts on each channel and the convolution's channel sum on each
pixel, so the two commute, and ``conv(up(x), W)`` is the sum over the kernel's taps of
``up(x W_k)`` shifted by the tap. :class:`ConcatConv2D` projects such a part onto
``kh kw filters`` channels at its own resolution and interpolates those with the
up-sampling matrices shifted per tap, where that costs less than half the multiply-adds
(``project_first``): for the default model, 2.72 of the 4.56 G multiply-adds a slice are
convolutions of up-sampled parts. The interpolation matrices are banded (an output reads two
inputs per tap), so their products go block by block along the band
(:class:`_BandedProduct`) instead of over every input: the default model then computes 5.42
instead of 9.12 GFLOP a slice (6.46 with dense interpolation products).

On a 2-core AMX host (benchmarks/bench_forward.py, issue 24) the split alone made the
default model's float32 forward 10-11 % faster and its bfloat16 forward 17 % slower; split
and projected, float32 is 31 % faster than whole (0.043 -> 0.030 s a slice, the model's
FLOPs at the float32 matmul peak's rate) and bfloat16 21 % faster at batch 4, so
:func:`~keras_liverseg.inference.precision.at_precision` splits both. Banded products then
made float32 another 5-7 % faster at 192 x 192 and 12-14 % at 256 x 256 (a larger field of
view: a dense interpolation product grows with the cube of the side), bfloat16 0-5 % and
8-10 %. In bfloat16 each
partial sum is rounded on its own; the probabilities stay as far from float32's as the
whole graph's (0.149 against 0.150 at most on random slices).
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from keras_liverseg.layers.full_scale_concat import _rescaled, rescaler

__all__ = ["ConcatConv2D", "FoldedBatchNorm", "LayerRebuild", "concat_conv_pairs", "copy_model",
           "fold_batch_norm", "foldable_pairs"]

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


@keras.saving.register_keras_serializable(package="keras_liverseg")
class ConcatConv2D(keras.layers.Conv2D):
    """A 2D convolution of the channel concatenation of its inputs, computed without
    making it: ``sum_i conv(x_i, W_i) + b``, ``W_i`` the slice of the kernel that reads
    ``x_i``'s channels (the kernel is that of the ``Conv2D`` it replaces, same shape).
    Called with a list of channels-last maps.

    Args:
        scale_steps: rescale each input first as a
            :class:`~keras_liverseg.layers.FullScaleConcat` without convolutions does
            (factor-2 steps, negative up), with its ``downsampling``; ``None``: the inputs
            have one size already (a ``Concatenate``).
        downsampling: ``"max"`` or ``"weighted"``, as in ``FullScaleConcat``.
        project_first: convolve an up-sampled part at its own resolution and interpolate
            the result (:meth:`_projected`, the same sum of products) where that needs
            fewer than half the multiply-adds; ``False``: up-sample, then convolve.
        **kwargs: the ``Conv2D``'s.
    """

    def __init__(self, *args, scale_steps=None, downsampling: str = "max",
                 project_first: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.scale_steps = None if scale_steps is None else [int(s) for s in scale_steps]
        self.downsampling = downsampling
        self.project_first = bool(project_first)
        self.input_spec = None  # a list of maps, not one

    def build(self, input_shape):
        shapes = [tuple(shape) for shape in input_shape]
        steps = self.scale_steps or [0] * len(shapes)
        self.rescalers = [rescaler(step, i, 2, self.downsampling, self.dtype_policy)
                          for i, step in enumerate(steps)]
        self._plan(shapes)
        for i, layer in enumerate(self.rescalers):
            if layer is not None:
                layer.build(shapes[i])
                shapes[i] = tuple(layer.compute_output_shape(shapes[i]))
        self._parts = [int(shape[-1]) for shape in shapes]
        super().build((*shapes[0][:-1], sum(self._parts)))
        self.input_spec = None

    def _plan(self, shapes) -> None:
        """Which parts of these input shapes are projected (:meth:`_projection`), and the
        sizes :meth:`multiply_adds` counts with. Run by ``build`` and again by ``call``
        when the sizes differ (a model rebuilt from its config for another input size is
        built with the sizes of its config)."""
        steps = self.scale_steps or [0] * len(shapes)
        self._small_shapes = [tuple(shape) for shape in shapes]
        self._projections = [self._projection(shape, 2 ** -step)
                             if step < 0 and self.project_first else None
                             for shape, step in zip(self._small_shapes, steps, strict=True)]
        self._output_size = tuple(_rescaled(n, steps[0]) for n in self._small_shapes[0][1:-1])

    def multiply_adds(self) -> int:
        """Multiply-adds per sample as this layer computes them (built layers only): per
        part, the convolution at full size, or for a projected part the 1x1 product and
        the two interpolation products over their bands (:meth:`_projected`)."""
        (kh, kw), filters = self.kernel_size, self.filters
        total = 0
        for shape, channels, projection in zip(self._small_shapes, self._parts,
                                               self._projections, strict=True):
            if projection is None:
                total += int(np.prod(self._output_size)) * kh * kw * channels * filters
            else:
                total += self._projected_multiply_adds(shape[1], shape[2], channels,
                                                       projection)
        return total

    def _projected_multiply_adds(self, height: int, width: int, channels: int,
                                 products: tuple[_BandedProduct, _BandedProduct]) -> int:
        """Multiply-adds of :meth:`_projected` for one sample of a ``(height, width,
        channels)`` part with these row and column products: the 1x1 product, then the
        column and row products, each over its band (:class:`_BandedProduct`)."""
        rows, cols = products
        (kh, kw), filters = self.kernel_size, self.filters
        return (height * width * channels * kh * kw * filters
                + height * cols.size * cols.reach * kh * filters
                + rows.size * rows.reach * cols.size * filters)

    def _projection(self, shape, factor: int):
        """The row and column products (each a :class:`_BandedProduct`) that compute this
        convolution of a map up-sampled by ``factor`` from the map itself (see
        :meth:`_projected`), or ``None`` where the plain way costs fewer multiply-adds (by
        half) or does not apply."""
        _, height, width, channels = shape
        (kh, kw), filters = self.kernel_size, self.filters
        if (None in (height, width, channels) or self.strides != (1, 1)
                or self.dilation_rate != (1, 1) or self.padding != "same"
                or kh % 2 == 0 or kw % 2 == 0):
            return None
        products = (_BandedProduct.of(_shifted_interpolation(height, factor, kh), height, kh),
                    _BandedProduct.of(_shifted_interpolation(width, factor, kw), width, kw))
        plain = height * factor * width * factor * kh * kw * channels * filters
        if 2 * self._projected_multiply_adds(height, width, channels, products) > plain:
            return None
        return products

    def _projected(self, part, kernel, products):
        """``conv(up(part), kernel)`` computed at ``part``'s resolution, then interpolated.

        Up-sampling acts on each channel alone and a convolution's channel sum on each
        pixel alone, so they commute: ``up(x) W_k = up(x W_k)`` for each kernel tap ``k``.
        So project the small map onto ``kh kw filters`` channels (a 1x1 product, ``factor**2``
        times cheaper than at full size), then up-sample each tap's maps shifted by the tap
        and sum them, as two products with the interpolation matrices shifted and stacked
        per tap (:func:`_shifted_interpolation`), columns then rows, each block by block
        along the matrix's band (:class:`_BandedProduct`). Zero rows of those matrices are
        the convolution's zero padding, so borders are exact too."""
        rows, cols = products
        _, height, width, channels = part.shape
        (kh, kw), filters = self.kernel_size, self.filters
        ops = keras.ops
        # (cin, kw, kh, filters): the column tap next to the column index after the product
        weights = ops.reshape(ops.transpose(kernel, (2, 1, 0, 3)), (channels, kw * kh * filters))
        x = ops.matmul(ops.reshape(part, (-1, channels)), weights)
        x = cols(ops.reshape(x, (-1, width, kw * kh * filters)), kh * filters,
                 self.compute_dtype)  # (b h, W, kh f)
        big_w = cols.size
        x = ops.transpose(ops.reshape(x, (-1, height, big_w, kh, filters)), (0, 1, 3, 2, 4))
        x = rows(ops.reshape(x, (-1, height, kh * big_w * filters)), big_w * filters,
                 self.compute_dtype)  # (b, H, W f)
        return ops.reshape(x, (-1, rows.size, big_w, filters))

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list | tuple) and isinstance(input_shape[0], list | tuple):
            shapes = [tuple(shape) for shape in input_shape]
            steps = self.scale_steps or [0] * len(shapes)
            size = [_rescaled(n, steps[0]) for n in shapes[0][1:-1]]
            input_shape = (shapes[0][0], *size, sum(int(shape[-1]) for shape in shapes))
        return super().compute_output_shape(input_shape)

    def call(self, inputs):
        shapes = [tuple(part.shape) for part in inputs]
        if [shape[1:] for shape in shapes] != [shape[1:] for shape in self._small_shapes]:
            self._plan(shapes)
        outputs, start = None, 0
        for part, layer, channels, projection in zip(inputs, self.rescalers, self._parts,
                                                     self._projections, strict=True):
            kernel = self.kernel[:, :, start:start + channels, :]
            if projection is not None:
                partial = self._projected(part, kernel, projection)
            else:
                if layer is not None:
                    part = layer(part)
                partial = self.convolution_op(part, kernel)
            if outputs is None and self.use_bias:  # the first convolution adds the bias
                partial = keras.ops.add(partial, keras.ops.reshape(self.bias, (1, 1, 1, -1)))
            outputs = partial if outputs is None else keras.ops.add(outputs, partial)
            start += channels
        return outputs if self.activation is None else self.activation(outputs)

    def get_config(self):
        return {**super().get_config(), "scale_steps": self.scale_steps,
                "downsampling": self.downsampling, "project_first": self.project_first}


def _shifted_interpolation(size: int, factor: int, taps: int) -> np.ndarray:
    """``(size * factor, size * taps)``: for an odd ``taps``-wide kernel, bilinear
    up-sampling by ``factor`` along one axis read at each tap's offset, stacked so that
    column ``i * taps + t`` holds tap ``t`` of input ``i``: row ``o`` of tap ``t`` is row
    ``o + t - taps // 2`` of
    :func:`~keras_liverseg.layers.bilinear_upsampling.interpolation_matrix`, zero outside
    the up-sampled map (the convolution's zero padding)."""
    from keras_liverseg.layers.bilinear_upsampling import interpolation_matrix

    plain = interpolation_matrix(size, factor)
    out = np.zeros((size * factor, size, taps))
    for tap in range(taps):
        shift = tap - taps // 2
        low, high = max(0, -shift), min(size * factor, size * factor - shift)
        out[low:high, :, tap] = plain[low + shift:high + shift]
    return out.reshape(size * factor, size * taps)


INTERPOLATION_BLOCK = 8
"""Inputs per block of a :class:`_BandedProduct` (the divisor of the size nearest it)."""


class _BandedProduct:
    """An interpolation matrix's product, block by block along its band.

    A row of :func:`_shifted_interpolation`'s ``(size * factor, size * taps)`` matrix reads
    two inputs for each tap, so as one dense product most of its multiply-adds are by zero
    (at a factor of 2 with 3 taps and 96 inputs, all but 6 of 288). Cut into blocks of
    ``block`` inputs, the ``block * factor`` outputs of a block read only a window of inputs
    that reaches a row or two into the neighbouring blocks: the product is then one gather
    of the windows and a batch of small products, ``(groups, block * factor, window * taps)
    @ (n, groups, window * taps, inner)``. The blocks hold the dense matrix's own numbers,
    so the sums are the same.
    """

    def __init__(self, index: np.ndarray | None, blocks: np.ndarray, size: int):
        self.index, self.blocks, self.size = index, blocks, size

    @property
    def reach(self) -> int:
        """The inputs (times the taps) each output multiplies: ``window * taps``."""
        return int(self.blocks.shape[-1])

    @classmethod
    def of(cls, matrix: np.ndarray, size: int, taps: int,
           block: int = INTERPOLATION_BLOCK) -> _BandedProduct:
        """``matrix`` (``(out, size * taps)``, column ``i * taps + t`` for input ``i``'s
        tap ``t``) in blocks of the divisor of ``size`` nearest ``block``; one block, the
        dense product, where a window would not be smaller than ``size``."""
        out = matrix.shape[0]
        dense = matrix.reshape(out, size, taps)
        block = _block_of(size, block)
        groups = size // block
        per = out // groups
        low, high = _overhang(dense, block, per, groups)
        window = block + low + high
        if window >= size:
            return cls(None, matrix.reshape(1, out, size * taps), out)
        positions = np.arange(groups)[:, None] * block - low + np.arange(window)
        inside = (positions >= 0) & (positions < size)
        blocks = np.zeros((groups, per, window, taps))
        for group in range(groups):
            blocks[group][:, inside[group]] = dense[group * per:(group + 1) * per,
                                                    positions[group][inside[group]]]
        return cls(np.clip(positions, 0, size - 1).ravel(), blocks.reshape(groups, per, -1),
                   out)

    def __call__(self, x, inner: int, dtype):
        """``(n, size, taps * inner)`` -> ``(n, out, inner)``: the matrix times ``x``'s
        second axis, tap by tap."""
        ops = keras.ops
        groups, per, _ = self.blocks.shape
        if self.index is not None:
            x = ops.take(x, self.index, axis=1)  # (n, groups * window, taps * inner)
        x = ops.reshape(x, (-1, groups, self.reach, inner))
        x = ops.matmul(ops.convert_to_tensor(self.blocks, dtype), x)  # (n, groups, per, inner)
        return ops.reshape(x, (-1, groups * per, inner))


def _block_of(size: int, block: int) -> int:
    """The divisor of ``size`` nearest ``block`` (the larger on a tie)."""
    divisors = [d for d in range(1, size + 1) if size % d == 0]
    return min(divisors, key=lambda d: (abs(d - block), -d))


def _overhang(dense: np.ndarray, block: int, per: int, groups: int) -> tuple[int, int]:
    """How far below and above its own block of inputs any block's outputs read."""
    low = high = 0
    for group in range(groups):
        read = np.flatnonzero(np.abs(dense[group * per:(group + 1) * per]).sum(axis=(0, 2)))
        if read.size:
            low = max(low, group * block - int(read[0]))
            high = max(high, int(read[-1]) - (group * block + block - 1))
    return low, high


def concat_conv_pairs(model: keras.Model) -> dict[str, str]:
    """``{concatenation_layer: conv_layer}`` for each channel-axis ``Concatenate``, or
    :class:`~keras_liverseg.layers.FullScaleConcat` without convolutions or weights (UNet#'s
    full-scale skips), whose output only a ``Conv2D`` reads (channels last, no groups, one
    call of each layer, the concatenation not a model output): what :class:`ConcatConv2D`
    can replace."""
    from keras_liverseg.layers import FullScaleConcat

    outputs = {id(tensor) for tensor in model.outputs}
    pairs = {}
    for layer in model.layers:
        if type(layer) is keras.layers.Concatenate:
            if layer.axis not in (-1, len(layer.output.shape) - 1):
                continue
        elif type(layer) is not FullScaleConcat or layer.filters is not None or layer.weights:
            continue
        if (len(layer._inbound_nodes) != 1 or len(layer._outbound_nodes) != 1
                or id(layer.output) in outputs or len(layer.output.shape) != 4):
            continue
        conv = layer._outbound_nodes[0].operation
        if (type(conv) is keras.layers.Conv2D and conv.data_format == "channels_last"
                and conv.groups == 1 and len(conv._inbound_nodes) == 1):
            pairs[layer.name] = conv.name
    return pairs


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


def fold_batch_norm(model: keras.Model, rebuild: LayerRebuild | None = None,
                    split_concatenations: bool = False) -> keras.Model:
    """A copy of the functional ``model`` with every foldable BatchNormalization
    (:func:`foldable_pairs`) folded into its convolution (which gains a bias) and replaced
    by a :class:`FoldedBatchNorm` of the same name. With ``split_concatenations``, each
    convolution of a concatenation (:func:`concat_conv_pairs`) becomes a
    :class:`ConcatConv2D` of the convolution's name at the concatenation's place, and an
    ``Identity`` of the concatenation's name at the convolution's. Other layers are copied
    with their weights, each built by ``rebuild`` (default: from its own config), so that
    folding and a change of precision make one copy of the model, not two. A model with
    nothing to change and no ``rebuild`` is returned as it is."""
    pairs = foldable_pairs(model)
    splits = concat_conv_pairs(model) if split_concatenations else {}
    if not pairs and not splits and rebuild is None:
        return model
    return _copy(model, pairs, rebuild or _from_config, splits)


def copy_model(model: keras.Model, rebuild: LayerRebuild) -> keras.Model:
    """A copy of the functional ``model`` with its weights, each layer built by
    ``rebuild`` (which may change its config, or its class for one with the same weights)."""
    return _copy(model, {}, rebuild)


def _copy(model: keras.Model, pairs: dict[str, str], rebuild: LayerRebuild,
          splits: dict[str, str] | None = None) -> keras.Model:
    convs = set(pairs.values())
    splits = splits or {}
    split_convs = {conv: concat for concat, conv in splits.items()}

    def clone(layer):
        if layer.name in pairs:
            layer = FoldedBatchNorm(name=layer.name)
        elif layer.name in split_convs:  # its work moved to the concatenation's place
            layer = keras.layers.Identity(name=split_convs[layer.name])
        elif layer.name in splits:
            conv = model.get_layer(splits[layer.name])
            steps = getattr(layer, "scale_steps", None)  # a FullScaleConcat's
            layer = ConcatConv2D.from_config({
                **conv.get_config(), "scale_steps": steps,
                "downsampling": getattr(layer, "downsampling", "max")})
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
