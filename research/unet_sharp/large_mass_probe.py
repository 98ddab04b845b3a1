"""How much of a large liver mass candidate weights find, with and without generator 2.2's bulge.

    python research/unet_sharp/large_mass_probe.py [WEIGHTS ...] [--seeds 300 340]
        [--shape 256 256 64] [--site subcapsular dome]

The real scan F of issue 22 (portal phase, two ~80 ml tumours) had only 9 % and 19 % of its
tumours found. Generator 2.1.0 cut a large mass under the capsule flat at the liver's
outline; 2.2.0 lets it bulge out (``lesions._bulge``). This draws, per seed, one case with a
single large ``heterogeneous`` mass (40-100 mm), keeps the seeds whose mass lies at a wanted
site, draws each again with the bulge left out (``BULGE_P = 0``: every other draw is the
same), and segments both with each weights file and the bundled post-processing (once
where the two are the same scan: no bulge drawn, or none outside the liver). Prints
per case the mass's site, diameter and labelled volume, the share of its label predicted
tumor, and for the bulging part (tumor label outside the case's 2.1 liver) the shares
predicted tumor, liver and background. Phantom figures, not a target.
"""

from __future__ import annotations

import argparse
import sys
from unittest import mock

import numpy as np

from keras_liverseg.inference import predict_volume
from keras_liverseg.inference.loading import load_model
from keras_liverseg.io.scan import scan_from_array
from keras_liverseg.phantom import generate_case, lesions
from keras_liverseg.zoo.catalog import DEFAULT_POSTPROCESS


def draw(seeds, shape, sites) -> list[dict]:
    """Cases with one large mass at one of ``sites``: both versions and the bulge mask."""
    kw = dict(n_lesions=1, lesion_kinds=("heterogeneous",), orientation="RAS")
    out = []
    for seed in seeds:
        case = generate_case(seed, shape, **kw)
        mass = case.meta["lesions"][0] if case.meta["lesions"] else None
        if mass is None or mass["site"] not in sites:
            continue
        with mock.patch.object(lesions, "BULGE_P", 0.0):
            flat = generate_case(seed, shape, **kw)
        out.append({"seed": seed, "mass": mass, "2.2": case, "flat": flat,
                    "bulge": (case.labels == 2) & (flat.labels == 0),
                    "same": np.array_equal(case.volume, flat.volume)})
    return out


def shares(pred: np.ndarray, where: np.ndarray) -> tuple[float, float, float]:
    """Shares of ``where`` predicted tumor, liver and background."""
    n = max(int(where.sum()), 1)
    return tuple(float(((pred == v) & where).sum()) / n for v in (2, 1, 0))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", nargs="*", default=["default"])
    parser.add_argument("--seeds", type=int, nargs=2, default=(300, 340), metavar=("FIRST", "END"))
    parser.add_argument("--shape", type=int, nargs=3, default=(256, 256, 64))
    parser.add_argument("--site", nargs="+", default=["subcapsular", "dome"])
    args = parser.parse_args(argv)
    cases = draw(range(*args.seeds), tuple(args.shape), set(args.site))
    print(f"{len(cases)} cases with one large mass at {args.site}, seeds {args.seeds[0]}-"
          f"{args.seeds[1] - 1}, shape {tuple(args.shape)}; {DEFAULT_POSTPROCESS}")
    for weights in args.weights:
        loaded = load_model("unet_sharp", weights, progress=False)
        found = {"2.2": [], "flat": []}
        for c in cases:
            row = []
            for version in ("flat", "2.2"):
                case = c[version]
                if version == "flat" or not c["same"]:  # the same scan is segmented once
                    seg = predict_volume(loaded, scan_from_array(case.volume, case.affine),
                                         postprocess=DEFAULT_POSTPROCESS)
                    pred = np.asarray(seg.labels)
                tumor = case.labels == 2
                share = shares(pred, tumor)[0]
                found[version].append(share)
                row.append(f"{version} found {share:.2f}")
                if version == "2.2" and c["bulge"].any():
                    t, li, bg = shares(pred, c["bulge"])
                    ml = float(c["bulge"].sum()) * float(np.prod(case.meta["spacing"])) / 1000
                    row.append(f"bulge {ml:.1f} ml: tumor {t:.2f} liver {li:.2f} "
                               f"background {bg:.2f}")
            m = c["mass"]
            print(f"{weights} ({loaded.weights_sha256[:8]}) seed {c['seed']} {m['site']} "
                  f"{m['diameter_mm']} mm {m['volume_ml']} ml: " + "; ".join(row), flush=True)
        print(f"{weights}: mean share found, without the bulge {np.mean(found['flat']):.3f}, "
              f"generator 2.2 {np.mean(found['2.2']):.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
