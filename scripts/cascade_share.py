"""Liver and tumor Dice per case of a cascade at several second-stage shares.

    python scripts/cascade_share.py SECOND_STAGE_WEIGHTS DATA_DIR CASE_ID[,CASE_ID...]
        [--first-stage-weights PATH] [--shares 0 0.25 0.5 0.75 1]

Segments each case (LiTS layout, as ``liverseg train`` reads it) with ``unet_sharp`` and its
second stage ``unet_sharp_roi`` as ``predict_volume`` does (the first stage's largest liver
component, framed by the second stage's ``LiverROI``), then, for every share ``s``, takes
``s * second + (1 - s) * first`` inside the box, background outside, the default
post-processing, and Dice against the case's labels. Share 0 is the first stage alone
(cut to its liver box). Use cases that did not pick the checkpoint (not the first
``validation_cases_max`` of the run's validation split). Prints one line per case and the
means.
"""

from __future__ import annotations

import argparse

import nibabel as nib
import numpy as np

from keras_liverseg.data.datasets import find_cases
from keras_liverseg.data.volumes import load_volume
from keras_liverseg.inference.loading import load_model
from keras_liverseg.inference.postprocess import PostprocessOptions, postprocess_labels
from keras_liverseg.inference.predictor import liver_region, predict_slices
from keras_liverseg.metrics import dice


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("second_stage_weights")
    parser.add_argument("data")
    parser.add_argument("cases", help="comma-separated case ids, e.g. volume-117,volume-118")
    parser.add_argument("--first-stage-weights", default="default")
    parser.add_argument("--shares", type=float, nargs="+", default=[0, 0.25, 0.5, 0.75, 1])
    args = parser.parse_args()

    first = load_model("unet_sharp", args.first_stage_weights,
                       second_stage_weights=args.second_stage_weights)
    second = first.second_stage
    cases = {case.case_id: case for case in find_cases(args.data)}
    scores = {share: {"liver": [], "tumor": []} for share in args.shares}
    for case_id in args.cases.split(","):
        case = cases[case_id]
        volume = load_volume(case)
        image, truth = np.asarray(volume.image, np.float32), np.asarray(volume.labels)
        voxel_mm3 = float(np.prod(nib.load(str(case.image)).header.get_zooms()[:3]))
        labels1, probs1 = predict_slices(first, image, batch_size=8, keep_probabilities=True)
        box = liver_region(labels1, second.liver_roi)
        if box is None:
            raise SystemExit(f"{case_id}: the first stage found no liver")
        _, probs2 = predict_slices(second, image[box], batch_size=8, keep_probabilities=True)
        line = []
        for share in args.shares:
            mixed = share * probs2.astype(np.float32) + (1 - share) * probs1[box]
            labels = np.zeros(truth.shape, np.uint8)
            labels[box] = np.argmax(mixed, axis=-1)
            labels = postprocess_labels(labels, voxel_mm3, PostprocessOptions())
            scores[share]["liver"].append(dice(labels >= 1, truth >= 1))
            scores[share]["tumor"].append(dice(labels == 2, truth == 2))
            line.append(f"{share:g}: {scores[share]['liver'][-1]:.3f}/"
                        f"{scores[share]['tumor'][-1]:.3f}")
        print(case_id, "  ".join(line), flush=True)
    for share, values in scores.items():
        print(f"share {share:.2f}: liver {np.mean(values['liver']):.4f} "
              f"tumor {np.mean(values['tumor']):.4f} ({len(values['liver'])} cases)")


if __name__ == "__main__":
    main()
