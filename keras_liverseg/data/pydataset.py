"""A backend-agnostic batch source (``keras.utils.PyDataset``): the JAX backend's, and the
TensorFlow backend's with sampler worker processes (``liverseg train --workers``)."""

from __future__ import annotations

import os
import signal

import keras

from keras_liverseg.data.sampler import Sampler, one_hot
from keras_liverseg.losses import deep_supervision_targets


def sampler_threads(limit: int = 8) -> int:
    """Threads that build batches for ``model.fit``: one per core, at most ``limit``.

    Threads rather than processes: the sampler's resizing and affine warps run in NumPy and
    SciPy code that releases the GIL (two threads draw 1.9 times the slices of one on a
    2-core CPU), and nothing forks beside the JAX runtime. The ``tf.data`` pipeline gets
    the same parallelism from ``num_parallel_calls=AUTOTUNE``. ``liverseg train --workers N``
    uses N processes instead (``use_multiprocessing``), for accelerators that outrun threads.
    """
    return max(1, min(int(limit), os.cpu_count() or 1))


class SliceBatches(keras.utils.PyDataset):
    """``steps`` batches of ``(x, {head: target})`` per epoch from a
    :class:`~keras_liverseg.data.sampler.SliceSampler` (or, for a 3D model, a
    :class:`~keras_liverseg.data.patches.PatchSampler`).

    Epoch ``e`` serves slices ``start + (e * steps + i) * batch_size ...``: the same stream
    as :func:`keras_liverseg.data.tfdata.slice_dataset`, so both backends train on
    identical data. ``label_inputs`` feeds one-hot label maps instead of CT (ES-UNet++'s
    encoding network); ``extra_targets(labels) -> {name: target}`` adds targets that are not
    label maps (ES-UNet++'s encoder features). ``**kwargs`` go to ``PyDataset`` (``workers``,
    ``use_multiprocessing``, ``max_queue_size``): batches are drawn by index, so any number
    of workers serves the same stream.
    """

    def __init__(self, sampler: Sampler, heads: dict[str, tuple], batch_size: int,
                 steps: int, start: int = 0, label_inputs: int | None = None,
                 extra_targets=None, **kwargs):
        super().__init__(**kwargs)
        if self.use_multiprocessing:
            _quiet_workers()
        self.sampler = sampler
        self.heads = {n: s for n, s in heads.items() if not n.startswith("enc_")}
        self.batch_size = int(batch_size)
        self.steps = int(steps)
        self.start = int(start)
        self.epoch = 0
        self.label_inputs = label_inputs
        self.extra_targets = extra_targets

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, i: int):
        first = self.start + (self.epoch * self.steps + i) * self.batch_size
        x, y = self.sampler.batch(range(first, first + self.batch_size))
        targets = deep_supervision_targets(list(self.heads), y)
        if self.extra_targets is not None:
            targets.update(self.extra_targets(y))
        return (one_hot(y, self.label_inputs) if self.label_inputs else x), targets

    def on_epoch_end(self):
        self.epoch += 1


_HOOKED = False


def _quiet_workers() -> None:
    """Forked sampler workers take SIGTERM's default action and ignore SIGINT.

    Keras ends its worker pool with SIGTERM, and Ctrl-C reaches every process of the
    group; a worker that inherited the training process's handlers (``liverseg``'s turn
    SIGTERM into an exception) would print a traceback each. The parent handles both.
    """
    global _HOOKED
    if _HOOKED:
        return

    def in_child() -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    os.register_at_fork(after_in_child=in_child)
    _HOOKED = True
