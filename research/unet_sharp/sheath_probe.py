"""False lesions that generator 2.1's periportal fat sheath costs candidate weights.

    python research/unet_sharp/sheath_probe.py [WEIGHTS ...] [--seeds 100 112]
        [--shape 128 128 60] [--spacing 3 3 3] [--phase non_contrast]

Draws tumor-free phantoms like the real TotalSegmentator example (3 mm voxels, no contrast:
the scan whose one false lesion sits on the sheath at the portal bifurcation) twice per seed:
as generator 2.1.0 draws them, and with the sheath left out (everything else is the same
draw, ``test_phantom_anatomy`` checks it). Each weights file (``default`` = the bundled
ones) segments both with the bundled weights' post-processing (smallest lesion, lesion
growth, ``min_lesion_prob``), as ``liverseg predict --weights FILE`` with those options
would. Prints, per weights and per version of the phantoms, the predicted lesions over
0.5 ml (all false: the phantoms have none) per case and in total; the difference between
the two versions is what the sheath alone costs. Phantom figures, not a target: the
domain randomisation draws noise and bias fields far beyond real scans, so most of the
volume is noise-made in both versions.
"""

from __future__ import annotations

import argparse
import sys
from unittest import mock

import numpy as np

from keras_liverseg.inference import predict_volume
from keras_liverseg.inference.loading import load_model
from keras_liverseg.io.scan import scan_from_array
from keras_liverseg.phantom import generate_case
from keras_liverseg.phantom.liver import Liver
from keras_liverseg.zoo.catalog import DEFAULT_POSTPROCESS


def draw(seeds, shape, spacing, phase) -> dict[str, list]:
    """``{"2.1": scans, "no sheath": scans}``, tumor-free, one per seed."""
    kw = dict(phase=phase, spacing=spacing, n_lesions=0, orientation="RAS")
    sets: dict[str, list] = {"2.1": [], "no sheath": []}
    for seed in seeds:
        case = generate_case(seed, shape, **kw)
        sets["2.1"].append(scan_from_array(case.volume, case.affine))
        with mock.patch.object(Liver, "_sheath", lambda self, box, portal, hull: None):
            plain = generate_case(seed, shape, **kw)
        sets["no sheath"].append(scan_from_array(plain.volume, plain.affine))
    return sets


def false_lesions_ml(loaded, scan) -> list[float]:
    """Volumes (ml) of the predicted lesions over 0.5 ml."""
    seg = predict_volume(loaded, scan, postprocess=DEFAULT_POSTPROCESS)
    return [lesion["volume_ml"] for lesion in seg.report["lesions"] if lesion["volume_ml"] > 0.5]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="*", default=["default"])
    parser.add_argument("--seeds", type=int, nargs=2, default=(100, 112), metavar=("FIRST", "END"))
    parser.add_argument("--shape", type=int, nargs=3, default=(128, 128, 60))
    parser.add_argument("--spacing", type=float, nargs=3, default=(3.0, 3.0, 3.0))
    parser.add_argument("--phase", default="non_contrast")
    args = parser.parse_args(argv)
    seeds = range(*args.seeds)
    sets = draw(seeds, tuple(args.shape), tuple(args.spacing), args.phase)
    print(f"{len(seeds)} tumor-free phantoms, seeds {args.seeds[0]}-{args.seeds[1] - 1}, "
          f"{tuple(args.shape)} at {tuple(args.spacing)} mm, {args.phase}; {DEFAULT_POSTPROCESS}")
    for weights in args.weights:
        loaded = load_model("unet_sharp", weights, progress=False)
        for name, scans in sets.items():
            per_case = [false_lesions_ml(loaded, scan) for scan in scans]
            total = float(np.sum([sum(c) for c in per_case]))
            count = sum(len(c) for c in per_case)
            print(f"{weights} ({loaded.weights_sha256[:8]}), {name}: {count} false lesions, "
                  f"{total:.1f} ml; per case {[round(sum(c), 1) for c in per_case]}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
