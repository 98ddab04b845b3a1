"""Tumor Dice per case and false lesions under several lesion-confidence thresholds.

    python research/unet_sharp/lesion_prob_sweep.py DATA_DIR [CASE_ID ...]
        [--split research/unet_sharp/splits/phantoms-train-240.json --first 20 --last 48]
        [--model unet_sharp] [--weights default] [--thresholds 0 0.3 0.4 0.5 0.6 0.7]
        [--min-lesion-mm3 MM3] [--lesion-growth-mm MM] [--min-lesion-prob P] [--json OUT]

Segments each case ``volume-N.nii*`` of DATA_DIR (reference ``segmentation-N.nii*`` beside
it; by default the 28 validation cases ``default_weights.sh validate`` scores: validation
cases 20-48 of the stage-2 split, tumor-free ones included) once with ``predict_volume``
(no post-processing, the tumor probability kept), then post-processes the raw labels with
the model's own :class:`~keras_liverseg.inference.postprocess.PostprocessOptions` (with
``--min-lesion-mm3`` / ``--lesion-growth-mm`` in their place, as ``liverseg predict`` takes
them: candidate weights then get the bundled weights' post-processing) and each
``min_lesion_prob`` (a lesion whose mean tumor probability is below it becomes liver,
:func:`~keras_liverseg.inference.postprocess.drop_unsure_lesions`), exactly as
``liverseg predict --min-lesion-prob`` does. Prints every predicted lesion of the
threshold-0 labels (volume, mean and max tumor probability, true or false), one line per
case (tumor Dice per threshold), and per threshold: mean liver and tumor Dice per case,
and the false lesions (26-connected components touching no reference tumor) with their
volume, in tumor-free cases and in all cases. It chose the bundled weights'
``min_lesion_prob`` (zoo/unet_sharp.md, "Lesion confidence"). ``--json OUT`` also writes
those means and counts per threshold, and the tumor Dice per case, for ``rule_check.py``.
``--min-lesion-prob P`` is ``--thresholds P``, named as ``liverseg predict`` names it, so
that one set of post-processing options serves both (``default_weights.sh stepa``).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from nibabel.affines import voxel_sizes

from keras_liverseg.inference.postprocess import (
    LESION_CONNECTIVITY,
    PostprocessOptions,
    label_components,
    lesion_probabilities,
    postprocess_labels,
)
from keras_liverseg.io.atomic import atomic_write_text
from keras_liverseg.metrics import dice

THRESHOLDS = (0.0, 0.3, 0.4, 0.5, 0.6, 0.7)
SPLIT = Path(__file__).resolve().parent / "splits" / "phantoms-train-240.json"


@dataclass
class Scores:
    """One threshold's scores over the cases so far."""

    liver: list[float] = field(default_factory=list)
    tumor: list[float] = field(default_factory=list)
    false_free: int = 0  # false lesions in tumor-free cases
    false_free_ml: float = 0.0
    false_all: int = 0  # false lesions in all cases
    false_all_ml: float = 0.0


def false_lesions(labels: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """Lesions of ``labels`` (26-connected label 2) and which touch no reference tumor:
    ``(components, count)`` and a boolean per lesion ``1..count`` (index 0 unused)."""
    components, count = label_components(labels == 2, LESION_CONNECTIVITY)
    hit = np.zeros(count + 1, bool)
    hit[np.unique(components[(truth == 2) & (components > 0)])] = True
    hit[0] = True  # the background is no lesion
    return components, count, ~hit


def score_case(raw: np.ndarray, tumor_prob: np.ndarray, truth: np.ndarray,
               image: np.ndarray, spacing, options: PostprocessOptions,
               thresholds, scores: dict[float, Scores]) -> list[float]:
    """Post-process ``raw`` under each threshold, add the scores; the tumor Dice list."""
    voxel_mm3 = float(np.prod(spacing))
    free = not (truth == 2).any()
    line = []
    for threshold in thresholds:
        labels = postprocess_labels(raw, voxel_mm3, replace(options, min_lesion_prob=threshold),
                                    image=image, spacing=spacing, tumor_prob=tumor_prob)
        score = scores[threshold]
        score.liver.append(float(dice(labels >= 1, truth >= 1)))
        score.tumor.append(float(dice(labels == 2, truth == 2)))
        line.append(score.tumor[-1])
        components, count, false = false_lesions(labels, truth)
        sizes = np.bincount(components.ravel(), minlength=count + 1)
        ml = float(sizes[false].sum()) * voxel_mm3 / 1000 if count else 0.0
        number = int(false[1:].sum())
        score.false_all += number
        score.false_all_ml += ml
        if free:
            score.false_free += number
            score.false_free_ml += ml
    return line


def describe_lesions(case: str, raw: np.ndarray, tumor_prob: np.ndarray, truth: np.ndarray,
                     image, spacing, options: PostprocessOptions) -> list[str]:
    """One line per lesion of ``raw`` post-processed without the threshold (whatever the
    weights' own ``min_lesion_prob``)."""
    labels = postprocess_labels(raw, float(np.prod(spacing)),
                                replace(options, min_lesion_prob=0.0), image=image,
                                spacing=spacing)
    components, count, false = false_lesions(labels, truth)
    if not count:
        return []
    means, peaks = lesion_probabilities(components, count, tumor_prob)
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    voxel_ml = float(np.prod(spacing)) / 1000
    return [f"  {case} lesion {i}: {sizes[i] * voxel_ml:8.2f} ml, mean {means[i - 1]:.3f}, "
            f"max {peaks[i - 1]:.3f}, {'FALSE' if false[i] else 'true'}"
            for i in range(1, count + 1)]


def summary(scores: dict[float, Scores]) -> list[str]:
    """The table of the means, one row per threshold."""
    rows = ["| min_lesion_prob | liver Dice | tumor Dice | false lesions, tumor-free cases "
            "(ml) | false lesions, all cases (ml) |", "|---|---|---|---|---|"]
    for threshold, score in scores.items():
        rows.append(f"| {threshold:g} | {np.mean(score.liver):.4f} | {np.mean(score.tumor):.4f} "
                    f"| {score.false_free} ({score.false_free_ml:.1f}) "
                    f"| {score.false_all} ({score.false_all_ml:.1f}) |")
    return rows


def summary_record(score: Scores) -> dict:
    """One threshold's means and counts, and its per-case tumor Dice, as JSON values."""
    return {"liver_dice": float(np.mean(score.liver)), "tumor_dice": float(np.mean(score.tumor)),
            "false_lesions_tumor_free": score.false_free,
            "false_lesions_tumor_free_ml": score.false_free_ml,
            "false_lesions_all": score.false_all, "false_lesions_all_ml": score.false_all_ml,
            "tumor_dice_per_case": score.tumor}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("cases", nargs="*", help="case numbers (default: from --split)")
    parser.add_argument("--split", type=Path, default=SPLIT)
    parser.add_argument("--first", type=int, default=20)
    parser.add_argument("--last", type=int, default=48)
    parser.add_argument("--model", default="unet_sharp")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    parser.add_argument("--min-lesion-mm3", type=float)
    parser.add_argument("--lesion-growth-mm", type=float)
    parser.add_argument("--min-lesion-prob", type=float, help="one threshold: --thresholds P")
    parser.add_argument("--json", type=Path, help="write the summary here as well")
    args = parser.parse_args(argv)
    if args.min_lesion_prob is not None:
        args.thresholds = [args.min_lesion_prob]
    cases = args.cases or [
        c.removeprefix("volume-")
        for c in json.loads(args.split.read_text())["validation"][args.first:args.last]]

    from keras_liverseg.inference import predict_volume
    from keras_liverseg.inference.loading import load_model
    from keras_liverseg.io import load_scan
    from keras_liverseg.metrics.evaluate import read_labels

    files = {}
    for case in cases:  # every case is there before the model loads
        for kind in ("volume", "segmentation"):
            found = sorted(args.data.glob(f"{kind}-{case}.nii*"))
            if not found:
                print(f"Error: no {kind}-{case}.nii* in {args.data}", file=sys.stderr)
                return 2
            files[kind, case] = found[0]
    loaded = load_model(args.model, args.weights)
    overrides = {key: getattr(args, key) for key in ("min_lesion_mm3", "lesion_growth_mm")
                 if getattr(args, key) is not None}
    options = replace(loaded.postprocess_options(), **overrides)
    print(f"{args.model} ({loaded.weights_sha256}), {options}")
    scores = {threshold: Scores() for threshold in args.thresholds}
    for case in cases:
        scan = load_scan(files["volume", case])
        seg = predict_volume(loaded, scan, postprocess=False, return_probabilities=True)
        truth = read_labels(files["segmentation", case], "reference").labels
        tumor_prob = seg.probabilities[..., 2].reshape(truth.shape)
        raw = seg.labels.reshape(truth.shape)
        image = np.asarray(scan.volume, dtype=np.float32).reshape(truth.shape)
        spacing = tuple(float(s) for s in voxel_sizes(scan.affine))
        print("\n".join(describe_lesions(case, raw, tumor_prob, truth, image, spacing,
                                         options)))
        line = score_case(raw, tumor_prob, truth, image, spacing, options,
                          args.thresholds, scores)
        free = " (tumor-free)" if not (truth == 2).any() else ""
        print(f"{case}{free}: tumor Dice " + " ".join(f"{v:.3f}" for v in line), flush=True)
    print("\n".join(summary(scores)))
    if args.json:
        atomic_write_text(args.json, json.dumps(
            {"weights_sha256": loaded.weights_sha256, "cases": cases,
             "thresholds": {f"{t:g}": summary_record(s) for t, s in scores.items()}},
            indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
