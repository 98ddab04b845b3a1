"""Validation during training: Dice per case on whole volumes, as LiTS scores models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_liverseg.data.sampler import task_labels
from keras_liverseg.data.volumes import Volume
from keras_liverseg.inference.loading import LoadedModel
from keras_liverseg.inference.predictor import predict_slices
from keras_liverseg.metrics import dice
from keras_liverseg.models import inference_model, preprocessing_of

CLASSES = {"both": {"liver": (1, 2), "tumor": (2,)}, "liver": {"liver": (1,)},
           "tumor": {"tumor": (1,)}}
"""Per task: class name -> label values of the task's label map that make up the class."""


def validate(model, volumes: Sequence[Volume], task: str, batch_size: int = 8) -> dict:
    """Segment every volume slice by slice; Dice per case for each class of the task.

    Returns ``{"dice_per_case_<class>": mean over cases, ..., "dice_per_case": mean over
    the task's classes}`` (empty when there are no volumes).
    """
    if not volumes:
        return {}
    net = inference_model(model)
    loaded = LoadedModel(net, preprocessing_of(net), model.name)
    scores = {name: [] for name in CLASSES[task]}
    for volume in volumes:
        predicted, _ = predict_slices(loaded, np.asarray(volume.image), batch_size=batch_size)
        truth = task_labels(np.asarray(volume.labels), task)
        for name, values in CLASSES[task].items():
            scores[name].append(dice(np.isin(predicted, values), np.isin(truth, values)))
    result = {f"dice_per_case_{name}": float(np.mean(v)) for name, v in scores.items()}
    result["dice_per_case"] = float(np.mean([result[f"dice_per_case_{n}"] for n in scores]))
    return result
