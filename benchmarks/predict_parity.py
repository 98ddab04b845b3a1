"""Does reading only the liver's slices change the labels? (issue 24, part 1)

With ``--compare precision``: float32 against bfloat16; ``--compare runtime``: Keras in
float32 against ONNX Runtime (``--runtime onnx``; the graph is exported into
``$LIVERSEG_HOME/onnx`` on first use); ``--compare split``: the float32 graph with its
convolutions of concatenations whole against split
(:class:`keras_liverseg.models.folding.ConcatConv2D`, what ``liverseg predict`` runs).

Segments each scan twice with the same loaded model, reading every axial slice
(``all_slices=True``) and the default survey (:mod:`keras_liverseg.inference.slice_range`),
and prints per scan: the slices read, whether the labels are identical, and if not the
liver and tumor Dice between the two label maps and the voxels that differ; then the
prediction time of each. Against a ground truth (a phantom's ``segmentation-<i>.nii.gz``
beside its ``volume-<i>.nii.gz``), also the liver and tumor Dice of each reading.

Usage::

    liverseg sample-data -o data/parity --cases 5 --seed 2 --size 512 512 100
    python benchmarks/slice_range_parity.py data/parity/volume-*.nii.gz \\
        ../shared/data/totalsegmentator_example/example_ct_sm.nii.gz ../shared/data/dcmqi_ct_3slice
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from keras_liverseg.metrics.overlap import dice


def truth_of(scan: Path) -> np.ndarray | None:
    name = scan.name.replace("volume-", "segmentation-")
    path = scan.with_name(name)
    if name == scan.name or not path.is_file():
        return None
    import nibabel as nib

    return np.asarray(nib.load(path).dataobj).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scans", nargs="+", type=Path)
    parser.add_argument("--model", default="unet_sharp")
    parser.add_argument("--compare", choices=["slices", "precision", "runtime", "split"],
                        default="slices")
    args = parser.parse_args()

    from keras_liverseg import predict_volume
    from keras_liverseg.inference.loading import load_model
    from keras_liverseg.io import load_scan

    if args.compare == "slices":
        same = load_model(args.model, precision="float32")
        ways = {"all slices": (same, True), "survey": (same, False)}
    elif args.compare == "precision":
        ways = {"float32": (load_model(args.model, precision="float32"), False),
                "bfloat16": (load_model(args.model, precision="bfloat16"), False)}
    elif args.compare == "runtime":
        ways = {"keras": (load_model(args.model, precision="float32"), False),
                "onnx": (load_model(args.model, runtime="onnx"), False)}
    else:
        import dataclasses

        from keras_liverseg import models, zoo

        split = load_model(args.model, precision="float32", second_stage_weights=None)
        whole = models.fold_batch_norm(models.inference_model(zoo.load(args.model),
                                                              fold=False))
        ways = {"whole": (dataclasses.replace(split, model=whole, _resized={}), False),
                "split": (split, False)}
    slow, fast = ways
    print(f"model {args.model}, {slow} against {fast}; columns: scan, slices read / total, "
          "identical, liver and tumor Dice between the two, voxels that differ, predict s, "
          f"and against the truth liver / tumor Dice ({slow} | {fast})")
    for path in args.scans:
        scan = load_scan(path)
        timed = {}
        segs = {}
        for way, (loaded, all_slices) in ways.items():
            tick = time.perf_counter()
            segs[way] = predict_volume(loaded, scan, all_slices=all_slices)
            timed[way] = time.perf_counter() - tick
        a, b = segs[slow].labels, segs[fast].labels
        read = segs[fast].report["slices_read"]
        line = (f"{path.name}: {read['read']}/{read['total']} (step {read['survey_step']}), "
                f"identical {bool(np.array_equal(a, b))}, liver {dice(a >= 1, b >= 1):.4f}, "
                f"tumor {dice(a == 2, b == 2):.4f}, differ {int((a != b).sum())}, "
                f"{timed[slow]:.1f} / {timed[fast]:.1f} s")
        truth = truth_of(path)
        if truth is not None:
            scores = [f"{dice(s.labels >= 1, truth >= 1):.4f} / "
                      f"{dice(s.labels == 2, truth == 2):.4f}"
                      for s in (segs[slow], segs[fast])]
            line += f"; truth {scores[0]} | {scores[1]}"
        print(line, flush=True)


if __name__ == "__main__":
    main()
