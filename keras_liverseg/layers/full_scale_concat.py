"""Full-scale skip connection (UNet3+, Huang et al. 2020; weighted variant of Lei et al. 2022)."""

from __future__ import annotations

import keras

from keras_liverseg.layers.conv_blocks import conv_class, max_pooling_class, upsampling_layer
from keras_liverseg.layers.weighted_pooling import WeightedPooling2D

DOWNSAMPLING = ("max", "weighted")


@keras.saving.register_keras_serializable(package="keras_liverseg")
class FullScaleConcat(keras.layers.Layer):
    """Bring feature maps of several scales to one scale and concatenate them.

    Huang et al. (2020), "UNet 3+", Sec. 2.1 and Fig. 2: a decoder node gathers every scale;
    finer maps are max-pooled down, coarser maps are bilinearly up-sampled, each passes one
    conv-BN-ReLU to ``filters`` channels, and the results are concatenated. Lei et al.
    (2022) replace the max pooling by :class:`WeightedPooling2D` with window = stride
    (Sec. "Full-scale skip connection based on weighted pooling"). UNet# (Qian et al.)
    concatenates the rescaled maps without the convolution (``filters=None``).

    The layer follows its inputs' rank: 2D maps ``(batch, H, W, C)`` or volumes
    ``(batch, D, H, W, C)``, whose maps are max-pooled with ``MaxPooling3D``, up-sampled
    trilinearly (:class:`TrilinearUpSampling3D`) and convolved with ``Conv3D`` (the 3D
    networks V-Net3+ and V-Net#; weighted pooling is 2D only).

    Args:
        scale_steps: one int per input: how many factor-2 steps the input is *finer* than
            the target (``2`` = pool by 4), or, if negative, *coarser* (``-3`` = up-sample
            by 8). ``0`` keeps the input's size.
        filters: channels of the conv-BN-ReLU applied to every rescaled input; ``None``
            concatenates the rescaled inputs as they are.
        downsampling: ``"max"`` (UNet3+) or ``"weighted"`` (Lei et al. 2022).
        batch_norm: BatchNorm in the per-input convolution.
        kernel_size: kernel of the per-input convolution (3 in UNet3+; Lei et al. 2022
            follow bilinear up-sampling with a 1x1 convolution).
    """

    def __init__(
        self,
        scale_steps,
        filters: int | None = None,
        downsampling: str = "max",
        batch_norm: bool = True,
        kernel_size: int = 3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if downsampling not in DOWNSAMPLING:
            raise ValueError(f"downsampling must be one of {DOWNSAMPLING}, got {downsampling!r}")
        self.scale_steps = [int(s) for s in scale_steps]
        self.filters = None if filters is None else int(filters)
        self.downsampling = downsampling
        self.batch_norm = bool(batch_norm)
        self.kernel_size = int(kernel_size)
        # nested layers compute as this layer does (a bfloat16 FullScaleConcat must not
        # concatenate in float32)
        self.concat = keras.layers.Concatenate(axis=-1, dtype=self.dtype_policy)

    def _resizer(self, step: int, index: int, rank: int):
        return rescaler(step, index, rank, self.downsampling, self.dtype_policy)

    def build(self, input_shapes):
        if len(input_shapes) != len(self.scale_steps):
            raise ValueError(
                f"FullScaleConcat got {len(input_shapes)} inputs for "
                f"{len(self.scale_steps)} scale_steps"
            )
        # The rescaling layers follow the inputs' rank: 2D maps or 3D volumes.
        rank = len(input_shapes[0]) - 2
        if rank not in (2, 3) or any(len(shape) - 2 != rank for shape in input_shapes):
            raise ValueError(f"FullScaleConcat needs 4D or 5D inputs of one rank, got "
                             f"{[tuple(shape) for shape in input_shapes]}")
        self.resizers = [self._resizer(step, i, rank) for i, step in enumerate(self.scale_steps)]
        self.convs = []
        if self.filters is not None:
            for i in range(len(self.scale_steps)):
                block = [conv_class(rank)(
                    self.filters, self.kernel_size, padding="same", name=f"conv{i}",
                    dtype=self.dtype_policy,
                )]
                if self.batch_norm:
                    block.append(keras.layers.BatchNormalization(name=f"bn{i}",
                                                                 dtype=self.dtype_policy))
                block.append(keras.layers.ReLU(name=f"relu{i}", dtype=self.dtype_policy))
                self.convs.append(block)
        shapes = []
        for i, shape in enumerate(input_shapes):
            if self.resizers[i] is not None:
                self.resizers[i].build(shape)
                shape = self.resizers[i].compute_output_shape(shape)
            for layer in self.convs[i] if self.convs else ():
                layer.build(shape)
                shape = layer.compute_output_shape(shape)
            shapes.append(shape)
        self.concat.build(shapes)

    def call(self, inputs):
        # Keras 3 passes the outer call's `training` flag on to nested layers itself.
        rescaled = []
        for i, x in enumerate(inputs):
            if self.resizers[i] is not None:
                x = self.resizers[i](x)
            for layer in self.convs[i] if self.convs else ():
                x = layer(x)
            rescaled.append(x)
        return self.concat(rescaled)

    def compute_output_shape(self, input_shapes):
        shapes = []
        for step, shape in zip(self.scale_steps, input_shapes, strict=True):
            spatial = [_rescaled(size, step) for size in shape[1:-1]]
            channels = shape[-1] if self.filters is None else self.filters
            shapes.append((shape[0], *spatial, channels))
        return self.concat.compute_output_shape(shapes)

    def get_config(self):
        return {
            **super().get_config(),
            "scale_steps": list(self.scale_steps),
            "filters": self.filters,
            "downsampling": self.downsampling,
            "batch_norm": self.batch_norm,
            "kernel_size": self.kernel_size,
        }


def rescaler(step: int, index: int, rank: int, downsampling: str, dtype):
    """The layer that brings input ``index`` ``step`` factor-2 steps down (positive: max or
    weighted pooling) or up (negative: bilinear / trilinear up-sampling) in
    :class:`FullScaleConcat`; ``None`` for ``step`` 0."""
    if step == 0:
        return None
    factor = 2 ** abs(step)
    if step < 0:
        return upsampling_layer(factor, name=f"up{index}", rank=rank, dtype=dtype)
    if downsampling == "weighted":
        if rank != 2:
            raise ValueError("FullScaleConcat: weighted pooling is 2D only")
        return WeightedPooling2D(factor, name=f"wpool{index}", dtype=dtype)
    return max_pooling_class(rank)(factor, name=f"pool{index}", dtype=dtype)


def _rescaled(size, step: int):
    """A spatial size after ``step`` factor-2 steps down (positive) or up (negative)."""
    if size is None:
        return None
    return size // 2**step if step >= 0 else size * 2 ** (-step)
