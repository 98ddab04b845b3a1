"""Liver and tumor Dice per case of a model under several decision rules.

    python research/unet_sharp/decision_sweep.py DATA_DIR CASE_ID[,CASE_ID...] [--model unet_sharp]
        [--weights default] [--organ argmax 0.4] [--tumor argmax 0.4 0.3]
        [--min-lesion-mm3 0 100 500] [--min-lesion-confidence 0 0.9]
        [--second-stage-weights PATH --shares 0 0.25 0.5 0.75 1]

Segments each case (LiTS layout, as ``liverseg train`` reads it) once, keeps the class
probabilities, and for every combination of

- ``share`` (only with ``--second-stage-weights``, a cascade): the model's second stage
  re-segments its liver region as ``predict_volume`` does (the first stage's largest liver
  component, framed by the second stage's ``LiverROI``); inside that box the
  probabilities are ``share * second + (1 - share) * first``, outside it everything is
  background (share 0: the first stage cut to its liver box);
- ``organ``: a voxel is liver-or-tumor when ``1 - p(background) >= organ`` (``argmax``:
  when background is not the most probable class; ``connected:LOW``: the argmax organ plus
  the voxels with ``1 - p(background) >= LOW`` connected to it, a hysteresis);
- ``tumor``: an organ voxel is tumor when ``p(tumor) >= tumor`` (``argmax``: when
  ``p(tumor) >= p(liver)``; with both ``argmax`` the rule is the plain argmax);
- ``min_lesion_mm3``: post-processing's smallest kept lesion;
- ``min_lesion_confidence``: after post-processing, a lesion (26-connected tumor component)
  whose highest ``p(tumor)`` is below this becomes liver (not a package option yet);

labels it, runs the default post-processing and takes Dice against the case's labels.
Use cases that did not pick the checkpoints (for the shipped ``unet_sharp`` and the
``unet_sharp_roi`` runs: not the first 20 validation cases of their split). Prints one
line per case and the means, best tumor Dice last.
"""

from __future__ import annotations

import argparse
import itertools
from dataclasses import replace

import numpy as np
from scipy import ndimage

from keras_liverseg.data.datasets import DatasetError
from keras_liverseg.data.volumes import case_arrays
from keras_liverseg.inference.loading import load_model
from keras_liverseg.inference.postprocess import (
    LESION_CONNECTIVITY,
    PostprocessOptions,
    label_components,
    postprocess_labels,
)
from keras_liverseg.inference.predictor import liver_region, predict_slices
from keras_liverseg.metrics import dice


def parse_organ(rule: str) -> float | tuple[str, float] | None:
    """``argmax`` -> None, ``connected:LOW`` -> ("connected", LOW), else a threshold."""
    if rule == "argmax":
        return None
    if rule.startswith("connected:"):
        return ("connected", float(rule.removeprefix("connected:")))
    return float(rule)


def decide(probs: np.ndarray, organ, tumor: float | None) -> np.ndarray:
    """uint8 labels of ``(..., 3)`` probabilities under one decision rule (None: argmax;
    for ``organ`` also a threshold or ``("connected", low)``, see :func:`parse_organ`)."""
    if organ is None or isinstance(organ, tuple):
        foreground = np.argmax(probs, axis=-1) != 0
        if isinstance(organ, tuple):
            loose = (1.0 - probs[..., 0].astype(np.float32)) >= organ[1]
            foreground = ndimage.binary_propagation(foreground, mask=loose | foreground)
    else:
        foreground = (1.0 - probs[..., 0].astype(np.float32)) >= organ
    if tumor is None:
        is_tumor = probs[..., 2] >= probs[..., 1]
    else:
        is_tumor = probs[..., 2] >= tumor
    labels = foreground.astype(np.uint8)
    labels[foreground & is_tumor] = 2
    return labels


def drop_unsure_lesions(labels: np.ndarray, p_tumor: np.ndarray, confidence: float):
    """Lesions of ``labels`` whose highest ``p_tumor`` is below ``confidence`` become liver."""
    if confidence <= 0 or not (labels == 2).any():
        return labels
    lesions, count = label_components(labels == 2, LESION_CONNECTIVITY)
    peaks = ndimage.maximum(p_tumor.astype(np.float32), lesions, np.arange(1, count + 1))
    unsure = np.concatenate([[False], np.asarray(peaks) < confidence])
    out = labels.copy()
    out[unsure[lesions]] = 1
    return out


def stage_probabilities(loaded, image: np.ndarray, shares: list[float], spacing=None):
    """``(box, {share: probabilities inside box})``; box None and share 0 alone without a
    second stage (the whole volume). ``spacing``: the in-plane voxel sizes (mm), for a
    model that reads slices at a pixel spacing."""
    labels, probs = predict_slices(loaded, image, batch_size=8, keep_probabilities=True,
                                   voxel_spacing=spacing)
    if loaded.second_stage is None:
        return None, {0.0: probs}
    box = liver_region(labels, loaded.second_stage.liver_roi)
    if box is None:
        return box, {}
    _, second = predict_slices(loaded.second_stage, image[box], batch_size=8,
                               keep_probabilities=True, voxel_spacing=spacing)
    second = second.astype(np.float32)
    return box, {share: share * second + (1 - share) * probs[box] for share in shares}


def whole_volume(box, inside: np.ndarray, shape: tuple[int, ...], dtype) -> np.ndarray:
    """``inside`` placed at ``box`` of a zero volume of ``shape`` (``inside`` itself when
    there is no box)."""
    if box is None:
        return inside
    out = np.zeros(shape, dtype)
    out[box] = inside
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data")
    parser.add_argument("cases", help="comma-separated case ids, e.g. volume-117,volume-118")
    parser.add_argument("--model", default="unet_sharp")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--second-stage-weights", default=None,
                        help="weights of the zoo model's second stage (a cascade)")
    parser.add_argument("--shares", type=float, nargs="+", default=[0, 0.25, 0.5, 0.75, 1])
    parser.add_argument("--organ", nargs="+", default=["argmax", 0.4])
    parser.add_argument("--tumor", nargs="+", default=["argmax", 0.4, 0.3])
    parser.add_argument("--min-lesion-mm3", type=float, nargs="+", default=[0.0, 100.0, 500.0])
    parser.add_argument("--min-lesion-confidence", type=float, nargs="+", default=[0.0])
    args = parser.parse_args()

    loaded = load_model(args.model, args.weights,
                        second_stage_weights=args.second_stage_weights or "auto")
    shares = args.shares if loaded.second_stage is not None else [0.0]
    organs = [parse_organ(str(o)) for o in args.organ]
    tumors = [None if t == "argmax" else float(t) for t in args.tumor]
    rules = list(itertools.product(shares, organs, tumors, args.min_lesion_mm3,
                                   args.min_lesion_confidence))
    scores = {rule: {"liver": [], "tumor": []} for rule in rules}
    try:
        cases = case_arrays(args.data, args.cases.split(","))
    except DatasetError as error:
        raise SystemExit(f"Error: {error}") from None
    for case_id, image, truth, voxel_mm3, spacing in cases:
        box, mixed = stage_probabilities(loaded, image, shares, spacing)
        if not mixed:
            raise SystemExit(f"{case_id}: the first stage found no liver")
        line = []
        for share, organ, tumor in itertools.product(shares, organs, tumors):
            decided = whole_volume(box, decide(mixed[share], organ, tumor), truth.shape,
                                   np.uint8)
            p_tumor = None
            if max(args.min_lesion_confidence) > 0:
                p_tumor = whole_volume(box, mixed[share][..., 2], truth.shape, np.float16)
            for smallest in args.min_lesion_mm3:
                options = replace(PostprocessOptions(), min_lesion_mm3=smallest)
                processed = postprocess_labels(decided, voxel_mm3, options)
                for confidence in args.min_lesion_confidence:
                    labels = drop_unsure_lesions(processed, p_tumor, confidence)
                    score = scores[(share, organ, tumor, smallest, confidence)]
                    score["liver"].append(dice(labels >= 1, truth >= 1))
                    score["tumor"].append(dice(labels == 2, truth == 2))
                    line.append(f"{score['liver'][-1]:.3f}/{score['tumor'][-1]:.3f}")
        print(case_id, " ".join(line), flush=True)
    for rule in sorted(rules, key=lambda r: np.mean(scores[r]["tumor"])):
        share, organ, tumor, smallest, confidence = rule
        values = scores[rule]
        cascade = f"share {share:.2f} " if loaded.second_stage is not None else ""
        print(f"{cascade}organ {_rule(organ)} tumor {_rule(tumor)} "
              f"min lesion {smallest:6.0f} mm3, p >= {confidence:.2f}: "
              f"liver {np.mean(values['liver']):.4f} "
              f"tumor {np.mean(values['tumor']):.4f} ({len(values['liver'])} cases)")


def _rule(threshold) -> str:
    if isinstance(threshold, tuple):
        return f"argmax + connected >= {threshold[1]:.2f}"
    return "argmax" if threshold is None else f"{threshold:6.2f}"


if __name__ == "__main__":
    main()
