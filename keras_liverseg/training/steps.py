"""The train step under a ``tf.distribute`` strategy (TensorFlow backend only).

One code path for every strategy: ``strategy.run`` of a step that computes the heads'
losses, takes the gradient with ``tf.GradientTape`` and applies it with the Keras
optimizer. With the default strategy it is plain single-device training; under
``MirroredStrategy`` and ``MultiWorkerMirroredStrategy`` the gradients are all-reduced.
(Keras 3.15's ``model.fit`` fails under ``MultiWorkerMirroredStrategy``, keras-team/keras
issue 20585, which is why the package runs its own step everywhere.)
"""

from __future__ import annotations

import os

import tensorflow as tf

from keras_liverseg.training.workers import is_chief

__all__ = ["DistributedTrainer", "is_chief", "make_strategy"]


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``one`` | ``mirrored`` | ``multi-worker`` | ``auto`` -> a ``tf.distribute`` strategy."""
    if name == "auto":
        gpus = tf.config.list_logical_devices("GPU")
        name = "multi-worker" if "TF_CONFIG" in os.environ else (
            "mirrored" if len(gpus) > 1 else "one")
    if name == "one":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy multi-worker needs the TF_CONFIG environment variable")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"unknown strategy {name!r}")


class DistributedTrainer:
    """Compiled distributed step for a model, its per-head losses and an optimizer.

    Args:
        model: built inside ``strategy.scope()``.
        losses: output name -> Keras loss (``reduction="sum_over_batch_size"``).
        loss_weights: output name -> weight.
        optimizer: a Keras optimizer created inside ``strategy.scope()``.
        strategy: the ``tf.distribute`` strategy.
        extra_targets: ``targets -> {name: target}`` computed inside the step (ES-UNet++'s
            encoder-feature targets from the frozen encoding network).
    """

    def __init__(self, model, losses, loss_weights, optimizer, strategy, extra_targets=None):
        self.model = model
        self.losses = dict(losses)
        self.loss_weights = {name: float(loss_weights.get(name, 1.0)) for name in self.losses}
        self.optimizer = optimizer
        self.strategy = strategy
        self.extra_targets = extra_targets
        self._step = tf.function(self._distributed_step, reduce_retracing=True)
        self._sync = tf.function(self._average_non_trainable)

    def _replica_step(self, x, targets):
        if self.extra_targets is not None:
            targets = {**targets, **self.extra_targets(targets)}
        with tf.GradientTape() as tape:
            outputs = self.model(x, training=True)
            if not isinstance(outputs, dict):
                outputs = {self.model.output_names[0]: outputs}
            per_head = {name: self.losses[name](targets[name], outputs[name]) * weight
                        for name, weight in self.loss_weights.items()}
            loss = tf.add_n(list(per_head.values()))
            if self.model.losses:  # regularisers
                loss += tf.add_n(self.model.losses)
            scaled = loss / self.strategy.num_replicas_in_sync
        variables = self.model.trainable_variables
        gradients = tape.gradient(scaled, variables)
        self.optimizer.apply_gradients(zip(gradients, variables, strict=True))
        return loss

    def _distributed_step(self, batch):
        x, targets = batch
        per_replica = self.strategy.run(self._replica_step, args=(x, targets))
        return self.strategy.reduce(tf.distribute.ReduceOp.MEAN, per_replica, axis=None)

    def _average_non_trainable(self):
        variables = self.model.non_trainable_variables

        def replica_means():
            context = tf.distribute.get_replica_context()
            return [context.all_reduce(tf.distribute.ReduceOp.MEAN, tf.identity(v.value))
                    for v in variables]

        means = self.strategy.run(replica_means)
        for variable, mean in zip(variables, means, strict=True):
            variable.assign(self.strategy.experimental_local_results(mean)[0])

    def synchronise(self) -> None:
        """Average the non-trainable state (BatchNorm moving statistics) over all replicas.

        Gradients are all-reduced every step, so trainable weights agree everywhere; each
        replica's BatchNorm statistics follow its own batches, so they are averaged at the
        end of every epoch, before checkpoints, validation and saving.
        """
        if self.strategy.num_replicas_in_sync > 1 and self.model.non_trainable_variables:
            self._sync()

    def train(self, dataset, steps: int, on_step=None) -> float:
        """Run ``steps`` steps over ``dataset`` (a distributed dataset); mean loss."""
        total = 0.0
        iterator = iter(dataset)
        for step in range(steps):
            loss = float(self._step(next(iterator)))
            if not tf.math.is_finite(loss):
                raise FloatingPointError(f"loss became {loss} at step {step}")
            total += loss
            if on_step is not None:
                on_step(step + 1, loss)
        self.synchronise()
        return total / steps
