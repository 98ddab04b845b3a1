"""One training epoch, for either backend: a function ``first_slice -> mean loss``.

TensorFlow: the ``tf.data`` pipeline and the package's distributed step
(:class:`~keras_liverseg.training.steps.DistributedTrainer`) under the run's strategy.
JAX: a ``keras.utils.PyDataset`` of the same slices, built in threads, and ``model.fit``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import keras

from keras_liverseg.data.sampler import SliceSampler


def strategy_scope(strategy):
    """``strategy.scope()``, or a no-op context without a strategy (JAX)."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def make_epoch_runner(
    model: keras.Model,
    optimizer,
    head_losses: dict,
    head_weights: dict,
    strategy,
    sampler: SliceSampler,
    heads: dict[str, tuple],
    steps: int,
    batch_size: int,
    label_inputs: int | None = None,
    extra_targets: tuple[Callable, Callable] | None = None,
) -> Callable[[int], float]:
    """Build the epoch function of a model.

    Args:
        model, optimizer, head_losses, head_weights: what to train and how.
        strategy: the ``tf.distribute`` strategy (TensorFlow), ``None`` on JAX.
        sampler, heads, steps, batch_size: the data of an epoch.
        label_inputs: feed one-hot label maps with this many classes instead of CT.
        extra_targets: ``(in_graph, numpy)`` versions of ``targets/labels -> {name:
            target}`` for targets that are not label maps (ES-UNet++'s encoder features).
    """
    if keras.backend.backend() == "tensorflow":
        from keras_liverseg.data.tfdata import slice_dataset
        from keras_liverseg.training.steps import DistributedTrainer

        trainer = DistributedTrainer(model, head_losses, head_weights, optimizer, strategy,
                                     extra_targets[0] if extra_targets else None)

        def run_epoch(first: int) -> float:
            dataset = slice_dataset(sampler, heads, batch_size, start=first, count=steps,
                                    label_inputs=label_inputs)
            return trainer.train(strategy.experimental_distribute_dataset(dataset), steps)

        return run_epoch

    from keras_liverseg.data.pydataset import SliceBatches, sampler_threads

    model.compile(optimizer=optimizer, loss=head_losses, loss_weights=head_weights)

    def run_epoch(first: int) -> float:
        data = SliceBatches(sampler, heads, batch_size, steps, start=first,
                            label_inputs=label_inputs,
                            extra_targets=extra_targets[1] if extra_targets else None,
                            workers=sampler_threads())
        history = model.fit(data, epochs=1, verbose=0)
        return float(history.history["loss"][-1])

    return run_epoch
