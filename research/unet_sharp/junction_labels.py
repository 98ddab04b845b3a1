"""Does generator 2.4's hilar junction label background only where the image shows it?

    python research/unet_sharp/junction_labels.py [--seed 5] [--cases 12] [--size 512 512 64]

Draws each case ``i`` of ``--seed`` (as ``liverseg sample-data`` and the v9mix-v11mix
runs draw it, without lesions) twice: as generated, and with the junction switched off
(``liver.JUNCTION_P = 0``). For the voxels the junction turns from liver into background,
prints their count and how far the written image moved there (median, and the shares
under 20 and 50 HU). A label that says background where the image still shows liver
would move little. Model card, "A tenth CPU run".
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def relabelled_change(case, plain) -> np.ndarray:
    """The absolute HU change of the image at each voxel that is liver in ``plain`` and
    background in ``case``."""
    moved = (plain.labels >= 1) & (case.labels == 0)
    return np.abs(case.volume.astype(np.float32) - plain.volume.astype(np.float32))[moved]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--size", type=int, nargs=3, default=[512, 512, 64])
    args = parser.parse_args(argv)

    import keras_liverseg.phantom.liver as liver
    from keras_liverseg.phantom import case_seed, generate_case

    shares = []
    for n in range(args.cases):
        seed = case_seed(args.seed, n)
        case = generate_case(seed, tuple(args.size), n_lesions=0)
        drawn = liver.JUNCTION_P
        liver.JUNCTION_P = 0.0
        try:
            plain = generate_case(seed, tuple(args.size), n_lesions=0)
        finally:
            liver.JUNCTION_P = drawn
        change = relabelled_change(case, plain)
        if not change.size:
            print(f"case {n}: no voxel relabelled")
            continue
        shares.append(float(np.mean(change < 20)))
        print(f"case {n}: {change.size} voxels relabelled, HU change median "
              f"{np.median(change):.0f}, under 20 HU {shares[-1]:.2f}, under 50 HU "
              f"{np.mean(change < 50):.2f}")
    if shares:
        print(f"mean share of relabelled voxels the image moved by under 20 HU: "
              f"{np.mean(shares):.3f} ({len(shares)} cases)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
