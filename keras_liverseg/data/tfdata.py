"""The ``tf.data`` training pipeline (TensorFlow only).

Indices ``0, 1, 2, ...`` are batched and mapped to slices by
:class:`~keras_liverseg.data.sampler.SliceSampler` in parallel threads
(``num_parallel_calls=AUTOTUNE``; NumPy/SciPy release the GIL for the heavy parts), then
prefetched. The decoded volumes come from the ``.npy`` cache, so NIfTI is read once.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_liverseg.data.sampler import SliceSampler, one_hot
from keras_liverseg.losses import deep_supervision_targets


def slice_dataset(
    sampler: SliceSampler,
    heads: dict[str, tuple],
    batch_size: int,
    start: int = 0,
    count: int | None = None,
    label_inputs: int | None = None,
) -> tf.data.Dataset:
    """Batches ``(x, {head: target})`` of training slices.

    Args:
        sampler: draws slice ``i`` deterministically.
        heads: output name -> output shape of the model, for the heads that get a loss
            (targets from :func:`keras_liverseg.losses.deep_supervision_targets`).
        batch_size: slices per batch.
        start: index of the first slice (a resumed run continues where it stopped).
        count: number of batches, or ``None`` for an endless stream.
        label_inputs: feed the one-hot label map of the slice (this many classes) instead
            of CT: the input of ES-UNet++'s encoding UNet++.
    """
    names = [n for n in heads if not n.startswith("enc_")]
    height, width = sampler.input_size
    channels = label_inputs or sampler.context_slices

    def make_batch(first):
        indices = range(int(first), int(first) + batch_size)
        x, y = sampler.batch(indices)
        if label_inputs:
            x = one_hot(y, label_inputs)
        targets = deep_supervision_targets(names, y)
        return (x, *[targets[n] for n in names])

    def to_tensors(first):
        dtypes = [tf.float32] + [tf.float32 if n.startswith("cls_") else tf.uint8 for n in names]
        values = tf.numpy_function(make_batch, [first], dtypes, stateful=False)
        x = tf.ensure_shape(values[0], (batch_size, height, width, channels))
        targets = {}
        for name, value in zip(names, values[1:], strict=True):
            shape = (batch_size, 2) if name.startswith("cls_") else (batch_size, *heads[name][:2])
            targets[name] = tf.ensure_shape(value, shape)
        return x, targets

    stop = None if count is None else start + count * batch_size
    firsts = tf.data.Dataset.range(start, stop if stop is not None else np.iinfo(np.int64).max,
                                   batch_size)
    dataset = firsts.map(to_tensors, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
