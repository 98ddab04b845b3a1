"""Time ASSD / MSSD / HD95 on a CT-sized pair of liver masks and report the peak memory.

Two 512 x 512 x 300 masks at 0.75 x 0.75 x 1.0 mm: a liver-sized ellipsoid (about
1.9 l) and a perturbed copy (shifted, resized, with a wavy surface). Run it as::

    python benchmarks/bench_surface_metrics.py            # cropped (the default)
    python benchmarks/bench_surface_metrics.py --no-crop  # whole-volume EDT, for comparison

It prints the wall time of each step and the process's peak resident memory (``ru_maxrss``),
plus the peak of NumPy allocations during the metric (``tracemalloc``).
"""

from __future__ import annotations

import argparse
import platform
import resource
import time
import tracemalloc

import numpy as np

from keras_liverseg.metrics.overlap import dice
from keras_liverseg.metrics.surface import surface_distances

SHAPE = (512, 512, 300)
SPACING = (0.75, 0.75, 1.0)


def liver_mask(
    center_mm: tuple[float, float, float],
    radii_mm: tuple[float, float, float],
    wave: float = 0.0,
) -> np.ndarray:
    """An ellipsoid (optionally with a wavy surface), built slice by slice to save memory."""
    x = np.arange(SHAPE[0])[:, None] * SPACING[0] - center_mm[0]
    y = np.arange(SHAPE[1])[None, :] * SPACING[1] - center_mm[1]
    mask = np.zeros(SHAPE, dtype=bool)
    azimuth = np.arctan2(y / radii_mm[1], x / radii_mm[0])
    in_plane = (x / radii_mm[0]) ** 2 + (y / radii_mm[1]) ** 2
    for k in range(SHAPE[2]):
        z = (k * SPACING[2] - center_mm[2]) / radii_mm[2]
        if abs(z) > 1.2:
            continue
        elevation = np.arctan2(z, np.sqrt(in_plane))
        scale = 1.0 + wave * np.sin(3 * azimuth) * np.cos(2 * elevation)
        mask[:, :, k] = in_plane + z**2 <= scale**2
    return mask


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-crop", action="store_true", help="run the EDT on the whole volume")
    args = parser.parse_args()

    center = (SHAPE[0] * SPACING[0] / 2, SHAPE[1] * SPACING[1] / 2, SHAPE[2] * SPACING[2] / 2)
    start = time.perf_counter()
    reference = liver_mask(center, (95.0, 75.0, 65.0))
    shifted = (center[0] + 4.0, center[1] - 3.0, center[2] + 5.0)
    prediction = liver_mask(shifted, (92.0, 78.0, 62.0), wave=0.06)
    built = time.perf_counter() - start
    voxel_ml = np.prod(SPACING) / 1000
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"volume {SHAPE} at {SPACING} mm; masks built in {built:.1f} s")
    print(
        f"reference {reference.sum() * voxel_ml:.0f} ml, prediction "
        f"{prediction.sum() * voxel_ml:.0f} ml, Dice {dice(prediction, reference):.4f}"
    )
    rss_before = peak_rss_mib()

    start = time.perf_counter()
    distances = surface_distances(prediction, reference, SPACING, crop=not args.no_crop)
    edt_time = time.perf_counter() - start
    start = time.perf_counter()
    assd, mssd, hd95 = distances.assd(), distances.mssd(), distances.hd95()
    stats_time = time.perf_counter() - start
    rss_after = peak_rss_mib()

    # A second, traced run for the NumPy allocation peak (tracemalloc slows it down a bit).
    tracemalloc.start()
    surface_distances(prediction, reference, SPACING, crop=not args.no_crop)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()

    mode = "whole volume" if args.no_crop else "cropped to the masks' bounding box"
    print(f"surface distances ({mode}): {edt_time:.2f} s")
    print(f"ASSD {assd:.3f} mm, MSSD {mssd:.3f} mm, HD95 {hd95:.3f} mm ({stats_time:.3f} s)")
    print(
        f"surface voxels: prediction {distances.pred_to_gt.size}, "
        f"reference {distances.gt_to_pred.size}"
    )
    print(
        f"peak RSS: {rss_before:.0f} MiB after building the masks, "
        f"{rss_after:.0f} MiB overall; NumPy peak during the metric "
        f"{traced_peak / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    main()
