"""Training: ``train(TrainConfig)`` behind ``liverseg train``.

- :mod:`.config`: the run's settings (saved in the run folder and the model card).
- :mod:`.steps`: the train step under a ``tf.distribute`` strategy (TensorFlow only).
- :mod:`.inputs`: what the model reads, axial slices (2D) or patches (3D): volumes,
  sampler, the length of one pass.
- :mod:`.validation`: Dice per case on whole validation volumes.
- :mod:`.run`: the run folder, checkpoints, history, resume.
"""

from keras_liverseg.training.config import TrainConfig

__all__ = ["TrainConfig", "train"]


def train(config: TrainConfig):
    """Run a training described by ``config``; returns the run folder's path."""
    from keras_liverseg.training.run import train as _train

    return _train(config)
