"""Time and memory of a 3D model's sliding window alone, on 512x512xN synthetic CT volumes.

``bench_predict.py`` times the whole ``liverseg predict`` process; with random 3D weights
(none are released) its post-processing and report see an arbitrary label map, often one
lesion the size of the scan, and their cost hides the sliding window's. This script runs
only :func:`keras_liverseg.inference.volumetric.predict_volumetric` (resample to the model's
voxel spacing, Gaussian-weighted windows, probabilities back onto the scan's grid, argmax),
each depth in a fresh process, and reports how much the peak RSS grows above the process
holding the read volume and the loaded model: the memory the 3D path itself needs, which
should hardly grow with the number of slices.

Usage::

    python benchmarks/bench_sliding_window.py   # vnet_sharp, 100 and 600 slices
    python benchmarks/bench_sliding_window.py --model vnet --slices 100 --batch-size 2
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[1])
from bench_predict import phantom
from keras_liverseg.inference.loading import load_model
from keras_liverseg.inference.volumetric import predict_volumetric

model, depth, batch = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
volume = phantom(depth).astype("float32")
loaded = load_model(model, None)  # random weights: only time and memory are measured
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
started = time.perf_counter()
predict_volumetric(loaded, volume, (0.75, 0.75, 1.0), batch_size=batch)
seconds = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"shape": f"512x512x{depth}", "model": model, "batch_size": batch,
                  "window_s": round(seconds, 1), "rss_before_gb": round(before / 1e9, 2),
                  "peak_rss_gb": round(after / 1e9, 2),
                  "growth_gb": round((after - before) / 1e9, 2)}), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="vnet_sharp", help="a 3D zoo entry")
    parser.add_argument("--slices", type=int, nargs="+", default=[100, 600])
    parser.add_argument("--batch-size", type=int, default=1)
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent)
    for depth in args.slices:
        subprocess.run([sys.executable, "-c", _CHILD, here, args.model, str(depth),
                        str(args.batch_size)], check=True,
                       env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


if __name__ == "__main__":
    main()
