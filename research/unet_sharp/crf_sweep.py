"""Liver and tumor Dice with and without the fully connected CRF, for several kernel settings.

    python research/unet_sharp/crf_sweep.py DATA_DIR [CASE_ID ...]
        [--split research/unet_sharp/splits/phantoms-train-240.json --first 20 --last 32]
        [--model unet_sharp] [--weights default]
        [--setting W1,THETA_A_MM,THETA_B_HU,W2,THETA_G_MM,ITERATIONS ...]
        [--real]

Segments each case ``volume-N.nii*`` of DATA_DIR (reference ``segmentation-N.nii*`` beside
it; by default validation cases 20-31 of the stage-2 split, which picked no checkpoint)
once with ``predict_volume``, keeping the probabilities and leaving out post-processing;
then, for no CRF and for each ``--setting``, refines a copy of the probabilities with
:func:`keras_liverseg.inference.crf.refine_volume`, takes the labels and post-processes
them with the model's own options, exactly as ``liverseg predict --crf`` does. Prints one
line per case and setting, then a table per setting: mean liver and tumor Dice per case,
false lesions (26-connected components touching no reference tumor) and the CRF's mean
seconds per scan. ``--real`` scores the two real CT examples of ../shared/data the same way
(liver Dice, as research/unet_sharp/real_examples.py does) instead of DATA_DIR.
It chose the defaults of :class:`~keras_liverseg.inference.crf.CRFOptions`
(zoo/unet_sharp.md, "Fully connected CRF").
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from nibabel.affines import voxel_sizes

from keras_liverseg.inference.crf import CRFOptions, refine_volume
from keras_liverseg.inference.postprocess import postprocess_labels
from keras_liverseg.metrics import dice

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from lesion_prob_sweep import SPLIT, false_lesions  # noqa: E402

SETTINGS = (
    "0.003,20,10,0.01,2,5",
    "0.01,20,10,0.03,2,5",
    "0.03,20,10,0.1,2,5",
    "0.1,20,10,0.3,2,5",
    "0.01,40,10,0.03,2,5",
    "0.01,10,10,0.03,2,5",
    "0.01,20,20,0.03,2,5",
    "0.01,20,5,0.03,2,5",
)
FIELDS = ("appearance_weight", "appearance_mm", "appearance_hu", "smoothness_weight",
          "smoothness_mm", "iterations")


def parse_setting(text: str) -> CRFOptions:
    values = [float(v) for v in text.split(",")]
    if len(values) != len(FIELDS):
        raise argparse.ArgumentTypeError(f"{text!r}: give {len(FIELDS)} numbers: "
                                         + ",".join(FIELDS))
    values[-1] = int(values[-1])
    return CRFOptions(**dict(zip(FIELDS, values, strict=True)))


@dataclass
class Scores:
    liver: list[float] = field(default_factory=list)
    tumor: list[float] = field(default_factory=list)
    false_lesions: int = 0
    seconds: list[float] = field(default_factory=list)


def labels_of(probs: np.ndarray) -> np.ndarray:
    from keras_liverseg.inference.predictor import _labels_of

    return _labels_of(probs)


def segment(loaded, scan, settings: dict[str, CRFOptions | None]):
    """Yield ``(name, post-processed labels, CRF seconds)`` per setting, on the scan's
    canonical grid, with its canonical volume and spacing."""
    from keras_liverseg.inference import predict_volume
    from keras_liverseg.io import to_canonical

    seg = predict_volume(loaded, scan, postprocess=False, return_probabilities=True)
    volume_c, affine_c, reorientation = to_canonical(np.asarray(scan.volume, np.float32)
                                                     .reshape(seg.labels.shape), scan.affine)
    probs_c, _, _ = to_canonical(seg.probabilities, scan.affine)
    spacing = tuple(float(s) for s in voxel_sizes(affine_c))
    options = loaded.postprocess_options()
    for name, crf in settings.items():
        probs = np.array(probs_c, dtype=np.float16)
        tick = time.perf_counter()
        if crf is not None:
            refine_volume(probs, volume_c, spacing[:2], crf,
                          hu_window=loaded.preprocessing.hu_window)
        seconds = time.perf_counter() - tick
        labels = postprocess_labels(labels_of(probs), float(np.prod(spacing)), options,
                                    image=volume_c, spacing=spacing,
                                    tumor_prob=probs[..., 2])
        yield name, labels, seconds, affine_c


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, nargs="?")
    parser.add_argument("cases", nargs="*", help="case numbers (default: from --split)")
    parser.add_argument("--split", type=Path, default=SPLIT)
    parser.add_argument("--first", type=int, default=20)
    parser.add_argument("--last", type=int, default=32)
    parser.add_argument("--model", default="unet_sharp")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--setting", nargs="+", default=list(SETTINGS))
    parser.add_argument("--real", action="store_true")
    args = parser.parse_args(argv)
    settings: dict[str, CRFOptions | None] = {"no CRF": None}
    settings.update({text: parse_setting(text) for text in args.setting})

    from keras_liverseg.inference.loading import load_model
    from keras_liverseg.io import load_scan, to_canonical
    from keras_liverseg.metrics.evaluate import read_labels

    jobs = []  # (case, scan path, truth reader)
    if args.real:
        import nibabel as nib

        sys.path.insert(0, str(HERE.parents[1] / "tests"))
        from geometry import read_nrrd

        shared = HERE.parents[2] / "shared" / "data"
        total = shared / "totalsegmentator_example"

        def total_truth():
            image = nib.load(total / "example_seg.nii.gz")
            return (np.asarray(image.dataobj) == 5).astype(np.uint8), image.affine

        jobs = [("totalsegmentator_example", total / "example_ct_sm.nii.gz", total_truth),
                ("dcmqi_ct_3slice", shared / "dcmqi_ct_3slice",
                 lambda: read_nrrd(shared / "dcmqi_ct_3slice" / "liver_seg.nrrd"))]
    else:
        if args.data is None:
            parser.error("give DATA_DIR, or --real")
        cases = args.cases or [
            c.removeprefix("volume-")
            for c in json.loads(args.split.read_text())["validation"][args.first:args.last]]
        for case in cases:
            volume = sorted(args.data.glob(f"volume-{case}.nii*"))
            truth = sorted(args.data.glob(f"segmentation-{case}.nii*"))
            if not volume or not truth:
                print(f"Error: no volume-{case} or segmentation-{case} in {args.data}",
                      file=sys.stderr)
                return 2

            def reader(path=truth[0]):
                ref = read_labels(path, "reference")
                return ref.labels, ref.geometry.affine

            jobs.append((case, volume[0], reader))
    loaded = load_model(args.model, args.weights)
    print(f"{args.model} ({loaded.weights_sha256}), {loaded.postprocess_options()}")
    scores = {name: Scores() for name in settings}
    for case, path, truth_of in jobs:
        scan = load_scan(path)
        truth, truth_affine = truth_of()
        truth_c, truth_affine_c, _ = to_canonical(np.asarray(truth), truth_affine)
        for name, labels, seconds, affine_c in segment(loaded, scan, settings):
            if labels.shape != truth_c.shape or not np.allclose(affine_c, truth_affine_c,
                                                                 atol=1e-2):
                print(f"Error: {case}: prediction and reference grids differ", file=sys.stderr)
                return 2
            score = scores[name]
            score.liver.append(float(dice(labels >= 1, truth_c >= 1)))
            score.seconds.append(seconds)
            line = f"{case} [{name}]: liver {score.liver[-1]:.4f}"
            if not args.real:
                score.tumor.append(float(dice(labels == 2, truth_c == 2)))
                _, _, false = false_lesions(labels, truth_c)
                score.false_lesions += int(false[1:].sum())
                line += f", tumor {score.tumor[-1]:.4f}, false lesions {int(false[1:].sum())}"
            print(line + f", CRF {seconds:.1f} s", flush=True)
    print("| setting (w1, theta_a mm, theta_b HU, w2, theta_g mm, iterations) | liver Dice "
          "| tumor Dice | false lesions | CRF s per scan |\n|---|---|---|---|---|")
    for name, score in scores.items():
        tumor = f"{np.mean(score.tumor):.4f}" if score.tumor else "-"
        print(f"| {name} | {np.mean(score.liver):.4f} | {tumor} | "
              f"{score.false_lesions if score.tumor else '-'} | {np.mean(score.seconds):.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
