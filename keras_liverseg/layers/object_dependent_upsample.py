"""mU-Net's object-dependent up-sampling residual path (Seo et al. 2020, seed 001)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_liverseg")
class ObjectDependentUpsample(keras.layers.Layer):
    """The residual skip of mU-Net: ``s = x - PReLU(ConvTranspose_3x3/2(pool(x)))``.

    Seo et al. (2020), "Modified U-Net (mU-Net) with Incorporation of Object-Dependent High
    Level Features", Sec. II-B and Fig. 2: right after pooling, a 3x3 transposed convolution
    with stride 2 and a PReLU bring the pooled map ``p`` back to the stage's resolution, and
    the skip connection carries the difference to the stage's output ``x``. For large objects
    the path learns to interpolate, so ``s`` keeps the edges; for small objects it learns to
    vanish, so ``s`` keeps everything.

    Called on ``[x, pooled]``; returns a tensor shaped like ``x``. When ``x`` has an odd
    height or width the up-sampled map is cropped or zero-padded to ``x``'s size.
    """

    def build(self, input_shapes):
        x_shape, pooled_shape = input_shapes
        channels = int(x_shape[-1])
        self.transpose = keras.layers.Conv2DTranspose(
            channels, 3, strides=2, padding="same", name="transpose"
        )
        self.prelu = keras.layers.PReLU(shared_axes=[1, 2], name="prelu")
        self.transpose.build(pooled_shape)
        self.prelu.build(self.transpose.compute_output_shape(pooled_shape))

    def call(self, inputs):
        x, pooled = inputs
        r = self.prelu(self.transpose(pooled))
        r = _match_spatial(r, ops.shape(x)[1], ops.shape(x)[2])
        return x - r

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


def _match_spatial(r, height, width):
    """Crop, or zero-pad at the bottom/right, ``r`` to ``height x width``."""
    r = r[:, :height, :width, :]
    pad_h = height - ops.shape(r)[1]
    pad_w = width - ops.shape(r)[2]
    if isinstance(pad_h, int) and isinstance(pad_w, int) and pad_h == 0 and pad_w == 0:
        return r
    return ops.pad(r, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]])
