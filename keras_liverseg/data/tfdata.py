"""The ``tf.data`` training pipeline (TensorFlow only).

Indices ``0, 1, 2, ...`` are batched and mapped to slices by
:class:`~keras_liverseg.data.sampler.SliceSampler` (to patches by
:class:`~keras_liverseg.data.patches.PatchSampler` for a 3D model) in parallel threads
(``num_parallel_calls=AUTOTUNE``; NumPy/SciPy release the GIL for the heavy parts), then
prefetched. The decoded volumes come from the ``.npy`` cache, so NIfTI is read once.
With ``workers``, the batches come instead from the same stream's
:class:`~keras_liverseg.data.pydataset.SliceBatches` drawn in that many worker processes
(Keras's own ``PyDataset`` pool, as ``model.fit`` reads it on TensorFlow).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_liverseg.data.sampler import Sampler, one_hot
from keras_liverseg.losses import deep_supervision_targets


def slice_dataset(
    sampler: Sampler,
    heads: dict[str, tuple],
    batch_size: int,
    start: int = 0,
    count: int | None = None,
    label_inputs: int | None = None,
    workers: int = 0,
) -> tf.data.Dataset:
    """Batches ``(x, {head: target})`` of training slices (or patches of a 3D model).

    Args:
        sampler: draws slice (patch) ``i`` deterministically.
        heads: output name -> output shape of the model, for the heads that get a loss
            (targets from :func:`keras_liverseg.losses.deep_supervision_targets`).
        batch_size: slices per batch.
        start: index of the first slice (a resumed run continues where it stopped).
        count: number of batches, or ``None`` for an endless stream.
        label_inputs: feed the one-hot label map of the slice (this many classes) instead
            of CT: the input of ES-UNet++'s encoding UNet++.
        workers: draw the batches in this many worker processes (``0``: threads); needs
            ``count``.
    """
    if workers:
        return _process_dataset(sampler, heads, batch_size, start, count, label_inputs,
                                workers)
    names = [n for n in heads if not n.startswith("enc_")]
    *spatial, channels = sampler.sample_shape
    channels = label_inputs or channels

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
        x = tf.ensure_shape(values[0], (batch_size, *spatial, channels))
        targets = {}
        for name, value in zip(names, values[1:], strict=True):
            shape = (batch_size, 2) if name.startswith("cls_") else (batch_size, *heads[name][:-1])
            targets[name] = tf.ensure_shape(value, shape)
        return x, targets

    stop = None if count is None else start + count * batch_size
    firsts = tf.data.Dataset.range(start, stop if stop is not None else np.iinfo(np.int64).max,
                                   batch_size)
    dataset = firsts.map(to_tensors, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)


def _process_dataset(sampler, heads, batch_size, start, count, label_inputs, workers):
    """``slice_dataset``'s batches drawn by a multiprocessing ``PyDataset``."""
    # Keras's adapter is what model.fit uses to read a PyDataset on TensorFlow: its ordered
    # enqueuer runs the worker pool and bounds the queue (not public API, so kept here)
    from keras.src.trainers.data_adapters.py_dataset_adapter import PyDatasetAdapter

    from keras_liverseg.data.pydataset import SliceBatches

    if count is None:
        raise ValueError("worker processes need a number of batches (count)")
    batches = SliceBatches(sampler, heads, batch_size, count, start=start,
                           label_inputs=label_inputs, workers=int(workers),
                           use_multiprocessing=True)
    dataset = PyDatasetAdapter(batches, shuffle=False).get_tf_dataset()
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)
