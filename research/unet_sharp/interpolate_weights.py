"""Weights between two weights files of one model: ``(1 - alpha) * BASE + alpha * TUNED``.

    python research/unet_sharp/interpolate_weights.py BASE TUNED --alpha 0.5 0.7 -o OUT_DIR

Weight-space ensembling of a fine-tuned model with the one it started from (WiSE-FT:
Wortsman et al., "Robust fine-tuning of zero-shot models", CVPR 2022, Eq. 1): where
fine-tuning on a new distribution (here phantoms of generator 2.0) costs accuracy on the old
one (generator 1.1.0), the weights on the line between them often keep most of both. Both
files must come from the same architecture and configuration, and TUNED from fine-tuning
BASE (``liverseg train --init``), so that their weights are comparable one by one.

Reads the Keras ``.weights.h5`` files with h5py alone (no backend): every float dataset is
interpolated, BatchNormalization's moving statistics included; anything else must be equal
in both. Writes ``OUT_DIR/alpha-<alpha>.weights.h5`` per alpha (refusing to overwrite) and
prints each file with its SHA-256.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import sys
from pathlib import Path

import h5py
import numpy as np


def _datasets(path: Path) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, obj: arrays.__setitem__(name, obj[()])
                        if isinstance(obj, h5py.Dataset) else None)
    return arrays


def interpolate(base: Path, tuned: Path, alpha: float, out: Path) -> None:
    """Write ``(1 - alpha) * base + alpha * tuned`` to ``out``, laid out as ``base``.

    Raises:
        ValueError: the files hold different datasets, shapes or dtypes, or differ in a
            dataset that is not floating point.
    """
    a, b = _datasets(base), _datasets(tuned)
    if a.keys() != b.keys():
        missing = sorted(a.keys() ^ b.keys())
        raise ValueError(f"{base} and {tuned} hold different weights: {missing[:3]}")
    for name, value in a.items():
        other = b[name]
        if value.shape != other.shape or value.dtype != other.dtype:
            raise ValueError(f"{name}: {value.shape} {value.dtype} against "
                             f"{other.shape} {other.dtype}")
        if not np.issubdtype(value.dtype, np.floating) and not np.array_equal(value, other):
            raise ValueError(f"{name}: non-float weights differ")
    temp = out.with_name(out.name + ".partial")
    try:
        shutil.copyfile(base, temp)
        with h5py.File(temp, "r+") as file:
            for name, value in a.items():
                if np.issubdtype(value.dtype, np.floating):
                    mixed = (1.0 - alpha) * value.astype(np.float64) + alpha * b[name]
                    file[name][...] = mixed.astype(value.dtype)
        temp.replace(out)
    finally:  # a failed write leaves nothing half-written behind
        temp.unlink(missing_ok=True)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", type=Path)
    parser.add_argument("tuned", type=Path)
    parser.add_argument("--alpha", type=float, nargs="+", required=True)
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if any(not 0.0 <= alpha <= 1.0 for alpha in args.alpha):
        sys.exit("Error: --alpha values must lie in [0, 1]")
    args.output.mkdir(parents=True, exist_ok=True)
    for alpha in args.alpha:
        out = args.output / f"alpha-{alpha:g}.weights.h5"
        if out.exists():
            sys.exit(f"Error: {out} exists")
        try:
            interpolate(args.base, args.tuned, alpha, out)
        except (OSError, ValueError) as error:
            sys.exit(f"Error: {error}")
        print(out, hashlib.sha256(out.read_bytes()).hexdigest())


if __name__ == "__main__":
    main()
