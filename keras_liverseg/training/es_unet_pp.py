"""ES-UNet++'s first stage and its feature targets (Cui, Xiao et al., seed 003, Sec. 3.2).

1. The encoding UNet++ (no skips) learns to reproduce label maps from label maps, with deep
   supervision (Seg-Loss on ``X^{0,1..4}``).
2. Frozen, it turns each training slice's label map into encoder features ``X^{1..4,0}``:
   the targets of the segmentation UNet++'s ``enc_i_0`` outputs under Smooth-L1 (every
   level: "ES"; the bottleneck only: "BS").

:func:`encoding_stage` runs stage 1 (or reloads it on resume) and returns the functions that
compute the feature targets inside the train step (TensorFlow) or per batch (JAX).
"""

from __future__ import annotations

import csv
from pathlib import Path

import keras

from keras_liverseg import losses, models, zoo
from keras_liverseg.data.sampler import SliceSampler, one_hot
from keras_liverseg.io.atomic import atomic_path
from keras_liverseg.models.es_unet_pp import encoder_feature_model
from keras_liverseg.training.config import TrainConfig
from keras_liverseg.training.epochs import make_epoch_runner, strategy_scope

FEATURES = [f"enc_{i}_0" for i in range(1, 5)]


def supervised_features(config: TrainConfig) -> list[str]:
    """The ``enc_i_0`` outputs that get a Smooth-L1 loss: all (ES) or the bottleneck (BS)."""
    return FEATURES if config.feature_supervision == "encoder" else FEATURES[-1:]


def encoding_stage(config: TrainConfig, run: Path, strategy, sampler: SliceSampler,
                   log, out: Path | None = None) -> tuple:
    """Train (or reload) the encoding UNet++; ``(in_graph, numpy)`` feature-target functions.

    Its weights are reloaded from the run folder ``run``; a new one's weights and history go
    to ``out`` (this worker's folder: ``run`` but on a multi-worker run's other workers).
    """
    out = run if out is None else out
    classes = config.num_classes
    height, width = sampler.input_size
    filters = {**zoo.get_entry(config.model).config, **config.model_config}.get(
        "filters", models.common.DEFAULT_FILTERS)
    path = run / "encoder.weights.h5"
    with strategy_scope(strategy):
        encoder = models.es_unet_pp_encoder(input_shape=(height, width, classes),
                                            num_classes=classes, filters=filters)
    if path.is_file():
        encoder.load_weights(path)
        log(f"encoding UNet++: reusing {path}")
    else:
        epochs = config.encoder_epochs or max(1, config.epochs // 3)
        with strategy_scope(strategy):
            optimizer = keras.optimizers.Adam(config.learning_rate)
            optimizer.build(encoder.trainable_variables)
        head_losses, head_weights = losses.deep_supervision_losses(encoder, losses.SegLoss())
        heads = {name: tuple(out.shape[1:])
                 for name, out in zip(encoder.output_names, encoder.outputs, strict=True)
                 if name in head_losses}
        run_epoch = make_epoch_runner(encoder, optimizer, head_losses, head_weights, strategy,
                                      sampler, heads, config.steps_per_epoch,
                                      config.batch_size, label_inputs=classes)
        with (out / "encoder_history.csv").open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["epoch", "loss"])
            for epoch in range(1, epochs + 1):
                loss = run_epoch((epoch - 1) * config.steps_per_epoch * config.batch_size)
                writer.writerow([epoch, loss])
                log(f"encoding UNet++ epoch={epoch}/{epochs} loss={loss:.4g}")
        with atomic_path(out / path.name) as temp:  # a killed run leaves no half file
            encoder.save_weights(temp)

    features = encoder_feature_model(encoder)
    features.trainable = False

    def in_graph(targets: dict) -> dict:
        labels = keras.ops.cast(targets["mask"], "int32")
        values = features(keras.ops.one_hot(labels, classes), training=False)
        return dict(zip(FEATURES, values, strict=True))

    def numpy(labels) -> dict:
        values = features.predict_on_batch(one_hot(labels, classes))
        return dict(zip(FEATURES, values, strict=True))

    return in_graph, numpy
