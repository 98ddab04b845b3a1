"""Validation during training: Dice per case on whole volumes, as LiTS scores models.

A class absent from a case's reference is left out of that class's mean: where both the
reference and the prediction are empty, Dice is 1 by convention (two empty sets agree), and
counting it would make a model that predicts no tumor at all look perfect on validation
slices without tumor. So liver is scored over the cases with liver, tumor over the cases
with tumor, and the best checkpoint is chosen on the mean of the classes that were scored.

A 3D model segments each validation volume with the sliding window
(:func:`~keras_liverseg.inference.sliding_window.sliding_window_probabilities`) on the
volume as training holds it, already on the model's voxel spacing, so Dice is taken on that
grid (no resampling back to the scan's, which ``liverseg predict`` does); its windows
overlap by :data:`VOLUME_OVERLAP` of a patch instead of inference's half, to keep
validation cheap. The scores have the same names either way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_liverseg.data.sampler import task_labels
from keras_liverseg.data.volumes import Volume
from keras_liverseg.inference.loading import LoadedModel
from keras_liverseg.inference.predictor import predict_slices
from keras_liverseg.inference.sliding_window import sliding_window_probabilities
from keras_liverseg.metrics import dice
from keras_liverseg.models import inference_model, preprocessing_of

CLASSES = {"both": {"liver": (1, 2), "tumor": (2,)}, "liver": {"liver": (1,)},
           "tumor": {"tumor": (1,)}}
"""Per task: class name -> label values of the task's label map that make up the class."""

VOLUME_OVERLAP = 0.25
"""A 3D model's validation windows overlap by this share of a patch (inference: 0.5)."""
VOLUME_BATCH = 2
"""Patches per model call when a 3D model is validated."""


def validate(model, volumes: Sequence[Volume], task: str, batch_size: int = 8) -> dict:
    """Segment every volume slice by slice (a 3D model: window by window); Dice per case
    for each class of the task.

    Returns (empty when there are no volumes), for each class of the task:
    ``"dice_per_case_<class>"``, the mean Dice over the cases whose reference holds the
    class (``None`` when none does), ``"cases_<class>"``, how many cases that is, and
    ``"false_positive_cases_<class>"``, how many of the other cases the model put the class
    in; and ``"dice_per_case"``, the mean of the classes' scores that are not ``None`` (what
    the best checkpoint is chosen on; absent when no class was scored).
    """
    if not volumes:
        return {}
    net = inference_model(model, fold=False)  # shares the weights being trained
    loaded = LoadedModel(net, preprocessing_of(net), model.name)
    cases = []
    for volume in volumes:
        if loaded.preprocessing.volumetric:
            predicted = _segment_patches(loaded, volume)
        else:
            predicted, _ = predict_slices(loaded, np.asarray(volume.image),
                                          batch_size=batch_size, voxel_spacing=volume.spacing)
        cases.append(case_scores(predicted, task_labels(np.asarray(volume.labels), task), task))
    return summarize_cases(cases, task)


def _segment_patches(loaded: LoadedModel, volume: Volume) -> np.ndarray:
    """Labels of a volume on a 3D model's voxel spacing, by its sliding window."""
    pre = loaded.preprocessing
    labels, _ = sliding_window_probabilities(
        loaded.model, np.asarray(volume.image), tuple(pre.input_size),
        num_classes=pre.num_classes, overlap=VOLUME_OVERLAP, batch_size=VOLUME_BATCH)
    return labels


def case_scores(predicted: np.ndarray, truth: np.ndarray, task: str) -> dict:
    """Per class of ``task``: ``(Dice, reference holds the class, prediction holds it)``."""
    scores = {}
    for name, values in CLASSES[task].items():
        pred_mask, true_mask = np.isin(predicted, values), np.isin(truth, values)
        scores[name] = (dice(pred_mask, true_mask), bool(true_mask.any()),
                        bool(pred_mask.any()))
    return scores


def summarize_cases(cases: Sequence[dict], task: str) -> dict:
    """The scores of :func:`validate` from the :func:`case_scores` of every case."""
    result, means = {}, []
    for name in CLASSES[task]:
        present = [score for score, in_truth, _ in (c[name] for c in cases) if in_truth]
        mean = float(np.mean(present)) if present else None
        result[f"dice_per_case_{name}"] = mean
        result[f"cases_{name}"] = len(present)
        result[f"false_positive_cases_{name}"] = sum(
            1 for _, in_truth, in_pred in (c[name] for c in cases) if in_pred and not in_truth)
        if mean is not None:
            means.append(mean)
    if means:
        result["dice_per_case"] = float(np.mean(means))
    return result


def describe(scores: dict, task: str) -> str:
    """One sentence for the model card: over which cases each class's Dice was taken."""
    parts = []
    for name in CLASSES[task]:
        count, mean = scores.get(f"cases_{name}", 0), scores.get(f"dice_per_case_{name}")
        false = scores.get(f"false_positive_cases_{name}", 0)
        if mean is None:
            parts.append(f"{name} not scored (no validation case has {name}"
                         + (f"; the model put {name} in {false} case(s))" if false else ")"))
        else:
            parts.append(f"{name} {mean:.4f} over the {count} case(s) with {name}"
                         + (f" (and {name} put in {false} case(s) without it)" if false else ""))
    return ("Dice per case: " + "; ".join(parts) + ". A class absent from a case's reference "
            "is left out of its mean (an empty prediction of an empty class is not a Dice "
            "of 1); the best epoch is chosen on the mean of the scored classes.")
