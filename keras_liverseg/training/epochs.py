"""One training epoch, for either backend, and the run's budget and learning-rate schedule.

An epoch is a function ``(first_slice, steps) -> mean loss``. TensorFlow: the ``tf.data``
pipeline and the package's distributed step
(:class:`~keras_liverseg.training.steps.DistributedTrainer`) under the run's strategy.
JAX: a ``keras.utils.PyDataset`` of the same slices and ``model.fit``. Either way the
sampler runs in threads of the training process, or with ``workers`` in that many worker
processes (the ``PyDataset``'s own pool, which ``tf.data`` then reads on TensorFlow).

:class:`Budget` says how many steps each epoch runs and when the run ends (``epochs``,
``steps`` or ``minutes``); :func:`warmup_cosine` is the learning rate over that budget.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Callable

import keras

from keras_liverseg.data.sampler import Sampler


def strategy_scope(strategy):
    """``strategy.scope()``, or a no-op context without a strategy (JAX)."""
    return strategy.scope() if strategy is not None else contextlib.nullcontext()


def make_epoch_runner(
    model: keras.Model,
    optimizer,
    head_losses: dict,
    head_weights: dict,
    strategy,
    sampler: Sampler,
    heads: dict[str, tuple],
    steps: int,
    batch_size: int,
    label_inputs: int | None = None,
    extra_targets: tuple[Callable, Callable] | None = None,
    workers: int = 0,
) -> Callable[..., float]:
    """Build the epoch function of a model: ``run_epoch(first, steps=steps) -> mean loss``
    trains ``steps`` batches from sampler slice (3D: patch) ``first`` on.

    Args:
        model, optimizer, head_losses, head_weights: what to train and how.
        strategy: the ``tf.distribute`` strategy (TensorFlow), ``None`` on JAX.
        sampler, heads, steps, batch_size: the data of an epoch.
        label_inputs: feed one-hot label maps with this many classes instead of CT.
        extra_targets: ``(in_graph, numpy)`` versions of ``targets/labels -> {name:
            target}`` for targets that are not label maps (ES-UNet++'s encoder features).
        workers: sampler worker processes (``0``: threads of this process).
    """
    default_steps = steps
    if keras.backend.backend() == "tensorflow":
        from keras_liverseg.data.tfdata import slice_dataset
        from keras_liverseg.training.steps import DistributedTrainer

        trainer = DistributedTrainer(model, head_losses, head_weights, optimizer, strategy,
                                     extra_targets[0] if extra_targets else None)

        def run_epoch(first: int, steps: int = default_steps) -> float:
            dataset = slice_dataset(sampler, heads, batch_size, start=first, count=steps,
                                    label_inputs=label_inputs, workers=workers)
            return trainer.train(strategy.experimental_distribute_dataset(dataset), steps)

        return run_epoch

    from keras_liverseg.data.pydataset import SliceBatches, sampler_threads

    model.compile(optimizer=optimizer, loss=head_losses, loss_weights=head_weights)

    def run_epoch(first: int, steps: int = default_steps) -> float:
        data = SliceBatches(sampler, heads, batch_size, steps, start=first,
                            label_inputs=label_inputs,
                            extra_targets=extra_targets[1] if extra_targets else None,
                            workers=workers or sampler_threads(),
                            use_multiprocessing=workers > 0)
        with warnings.catch_warnings():
            # Keras forks the sampler workers; they run NumPy and SciPy only, never JAX
            warnings.filterwarnings("ignore", r"os\.fork\(\) was called", RuntimeWarning)
            history = model.fit(data, epochs=1, verbose=0)
        return float(history.history["loss"][-1])

    return run_epoch


# --- the budget -------------------------------------------------------------------------------

WARMUP_START = 0.05  # the warm-up starts at this share of the learning rate (Adam's first
# steps are wild), and the cosine ends at this share
CHUNK = 100  # under a time budget, steps between two learning-rate updates and clock checks
TIME_STEPS = 10_000  # a time budget's schedule is read at (share of the time done) * this


def warmup_cosine(learning_rate: float, total_steps: int, warmup: float = 0.05):
    """The learning rate over a run of ``total_steps``: a linear warm-up from 5 % to
    ``learning_rate`` over the first ``warmup`` of the run, then a cosine to 5 %
    (Keras's ``CosineDecay``, so a saved optimizer loads anywhere)."""
    total = max(1, int(total_steps))
    warm = int(round(warmup * total))
    if warm < 1:
        return keras.optimizers.schedules.CosineDecay(learning_rate, total, alpha=WARMUP_START)
    return keras.optimizers.schedules.CosineDecay(
        learning_rate * WARMUP_START, max(1, total - warm), alpha=WARMUP_START,
        warmup_target=learning_rate, warmup_steps=warm)


class Budget:
    """How long a run trains, epoch by epoch, and (under a time budget) its learning rate.

    ``config.epochs`` epochs of ``steps_per_epoch`` steps; or ``config.steps`` steps in all,
    in epochs of ``steps_per_epoch`` (the last one cut short); or ``config.minutes`` of wall
    time counted from the end of the run's first step (which compiles the train step), in
    epochs of ``steps_per_epoch`` steps or until the time is up. A step budget's learning
    rate is the optimizer's :func:`warmup_cosine` schedule (per step, in the train step); a
    time budget sets the optimizer's learning rate every :data:`CHUNK` steps from the same
    schedule at the share of the time done.

    Args:
        config: the run's :class:`~keras_liverseg.training.config.TrainConfig`.
        steps_per_epoch: steps of a full epoch.
        steps_done, seconds_done: what a resumed run had done already.
    """

    def __init__(self, config, steps_per_epoch: int, steps_done: int = 0,
                 seconds_done: float = 0.0):
        self.config = config
        self.steps_per_epoch = int(steps_per_epoch)
        self.steps_done = int(steps_done)
        self.seconds_done = float(seconds_done)
        if config.minutes is not None:
            self.total_steps = None
        elif config.steps is not None:
            self.total_steps = int(config.steps)
        else:
            self.total_steps = int(config.epochs) * self.steps_per_epoch
        self.schedule = warmup_cosine(config.learning_rate, self.total_steps or TIME_STEPS,
                                      config.warmup_share)
        self._clock: float | None = None  # perf_counter at which the budget's time began

    @property
    def timed(self) -> bool:
        return self.total_steps is None

    def optimizer(self) -> keras.optimizers.Optimizer:
        """Adam on this budget's schedule (a time budget: a learning rate it sets)."""
        if self.timed:
            return keras.optimizers.Adam(self.learning_rate())
        return keras.optimizers.Adam(self.schedule)

    def seconds(self) -> float:
        """Wall time of the budget so far (0 before the first step)."""
        if self._clock is None:
            return self.seconds_done
        return time.perf_counter() - self._clock

    def done(self) -> float:
        """Share of the budget spent."""
        if self.timed:
            return self.seconds() / (60.0 * self.config.minutes)
        return self.steps_done / self.total_steps

    def finished(self) -> bool:
        return self.done() >= 1.0

    def epochs(self) -> int | None:
        """Epochs of the whole run, if a step count fixes them."""
        if self.timed:
            return None
        return math.ceil(self.total_steps / self.steps_per_epoch)

    def learning_rate(self) -> float:
        """The learning rate at this point of the budget."""
        step = self.done() * TIME_STEPS if self.timed else self.steps_done
        return float(keras.ops.convert_to_numpy(self.schedule(step)))

    def run_epoch(self, run_epoch: Callable[..., float], optimizer, batch_size: int) -> float:
        """Train one epoch (or what is left of the budget) with ``run_epoch(first, steps)``;
        its mean loss. Slices follow on from the last epoch's."""
        if not self.timed:
            steps = min(self.steps_per_epoch, self.total_steps - self.steps_done)
            loss = run_epoch(self.steps_done * batch_size, steps)
            self.steps_done += steps
            return loss
        total, steps_in_epoch = 0.0, 0
        while steps_in_epoch < self.steps_per_epoch and not (steps_in_epoch and self.finished()):
            # the first step alone: it compiles, and the clock starts after it
            chunk = 1 if self._clock is None else CHUNK
            chunk = min(chunk, self.steps_per_epoch - steps_in_epoch)
            optimizer.learning_rate.assign(self.learning_rate())
            loss = run_epoch(self.steps_done * batch_size, chunk)
            if not math.isfinite(loss):
                return loss
            if self._clock is None:
                self._clock = time.perf_counter() - self.seconds_done
            total += loss * chunk
            steps_in_epoch += chunk
            self.steps_done += chunk
        return total / steps_in_epoch
