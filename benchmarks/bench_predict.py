"""Wall time and peak memory of ``liverseg predict`` on 512x512xN synthetic CT volumes.

Each run is a fresh process executing the ``predict`` command exactly as the CLI does
(NIfTI in, labels + JSON report out), so the peak RSS includes the Python interpreter,
TensorFlow/Keras and the model. Models:

* ``oracle`` (default): a contract-following Keras model (HUWindow first, output "mask")
  at 256x256x3 whose output is a per-pixel function of HU. It costs almost nothing, so
  the numbers measure the pipeline itself: reading, 2.5D stacking, resizing 512 -> 256 ->
  512, argmax, post-processing, writing.
* ``zoo:NAME``: the zoo model NAME (e.g. ``zoo:unet_sharp``) with its bundled weights (or
  untrained when it has none), saved as a ``.keras`` file and passed with ``--weights``:
  the real network cost. A cascade (an entry with a ``second_stage`` whose weights are
  bundled) runs both stages, its second stage saved and passed with
  ``--second-stage-weights``, unless ``--single-stage``.

Usage::

    python benchmarks/bench_predict.py                       # 100 and 600 slices, oracle
    python benchmarks/bench_predict.py --slices 100 --model zoo:unet_sharp_fast
    python benchmarks/bench_predict.py --slices 100 --model zoo:unet_sharp --input-size 224

``--input-size N`` rebuilds a zoo model for N x N slices (same weights): what a first stage
trained at a finer input would cost. ``--runtime onnx`` / ``--precision float32`` are passed
to ``liverseg predict``; ``--repeat 2`` runs each size twice (with ``--runtime onnx`` the
first run exports the graph into ``$LIVERSEG_HOME/onnx``, the second reads it from there).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

_CHILD = r"""
import json, resource, sys, time
started = time.perf_counter()
from keras_liverseg.cli.predict import predict
try:
    predict.main(sys.argv[2:], prog_name="liverseg predict", standalone_mode=False)
except SystemExit:
    pass
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
with open(sys.argv[1], "w") as handle:
    json.dump({"wall_s": time.perf_counter() - started, "peak_rss_bytes": rss}, handle)
"""


def phantom(depth: int, seed: int = 0) -> np.ndarray:
    """A 512x512xdepth int16 HU volume: air, an elliptic body (0 HU), a liver (60 HU) with
    a lesion (120 HU), Gaussian noise (sigma 8 HU)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:512, 0:512].astype(np.float32)
    body = ((x - 256) / 220) ** 2 + ((y - 256) / 160) ** 2 <= 1
    volume = np.empty((512, 512, depth), np.int16)
    for k in range(depth):
        z = (k - depth / 2) / (depth / 2.5)
        liver = ((x - 200) / 90) ** 2 + ((y - 230) / 80) ** 2 + z**2 <= 1
        lesion = liver & (((x - 180) / 15) ** 2 + ((y - 220) / 15) ** 2 + (z * 6) ** 2 <= 1)
        slab = np.where(body, 0, -1000) + np.where(liver, 60, 0) + np.where(lesion, 60, 0)
        volume[:, :, k] = slab + rng.normal(0, 8, (512, 512)).astype(np.int16)
    return volume


def oracle_model(path: Path) -> None:
    import keras

    from keras_liverseg.layers import HUWindow

    inputs = keras.Input((256, 256, 3), name="ct")
    liver = HUWindow((29.0, 31.0), name="hu_window")(inputs)  # liver above 30 HU
    tumor = HUWindow((89.0, 91.0), name="tumor_window")(inputs)  # tumor above 90 HU
    head = keras.layers.Conv2D(3, 1, name="mask")
    outputs = head(keras.layers.Concatenate()([liver, tumor]))
    kernel = np.zeros((1, 1, 6, 3), np.float32)
    kernel[0, 0, 1] = [-1.0, 1.0, 0.0]  # middle slice only
    kernel[0, 0, 4] = [0.0, -1.0, 1.0]
    head.set_weights([kernel, np.array([1.0, 0.0, 0.0], np.float32)])
    keras.Model(inputs, outputs, name="oracle").save(path)


def zoo_model(name: str, path: Path, input_size: int | None = None) -> str | None:
    """Save zoo model ``name`` at ``path`` (rebuilt for ``input_size`` square slices if
    given); returns its second stage's zoo name when that stage has bundled weights (what
    ``liverseg predict --model NAME`` would run)."""
    from keras_liverseg import zoo
    from keras_liverseg.models import inference_model

    entry = zoo.get_entry(name)
    weights = "default" if zoo.default_weights(name) is not None else None
    config = {}
    if input_size is not None:
        config["input_shape"] = (input_size, input_size, entry.config["input_shape"][2])
    inference_model(zoo.load(name, weights=weights, **config)).save(path)
    second = entry.second_stage
    return second if second and zoo.default_weights(second) is not None else None


def bundled_postprocess_args(name: str) -> list[str]:
    """The post-processing ``liverseg predict --model NAME`` applies with the bundled
    weights (their lesion filter and growth), as options: the saved ``.keras`` file has
    another SHA-256, so without them it would run with none."""
    from keras_liverseg import zoo

    record = zoo.default_weights(name)
    if record is None:
        return []
    options = zoo.postprocess_for(name, record.sha256)
    return ["--min-lesion-mm3", str(options.min_lesion_mm3),
            "--lesion-growth-mm", str(options.lesion_growth_mm)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=int, nargs="+", default=[100, 600])
    parser.add_argument("--model", default="oracle", help="'oracle' or 'zoo:NAME'")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="default: liverseg predict's (4 slices; one patch for a 3D model)")
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--single-stage", action="store_true", help="a cascade's first stage only")
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here")
    parser.add_argument("--input-size", type=int, default=None,
                        help="a zoo model rebuilt for N x N slices (first stage only)")
    parser.add_argument("--runtime", choices=["keras", "onnx"], default=None,
                        help="liverseg predict --runtime (default: its own, keras)")
    parser.add_argument("--precision", choices=["auto", "float32", "bfloat16"], default=None,
                        help="liverseg predict --precision (default: its own, auto)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each size")
    args = parser.parse_args()
    if args.input_size is not None and not args.model.startswith("zoo:"):
        parser.error("--input-size needs --model zoo:NAME")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="bench_predict_"))
    work.mkdir(parents=True, exist_ok=True)
    weights, second_weights = work / "model.keras", None
    postprocess_args: list[str] = []
    if args.model == "oracle":
        oracle_model(weights)
    elif args.model.startswith("zoo:"):
        postprocess_args = bundled_postprocess_args(args.model[4:])
        second = zoo_model(args.model[4:], weights, args.input_size)
        if second is not None and not args.single_stage:
            second_weights = work / "second_stage.keras"
            zoo_model(second, second_weights)
    else:
        parser.error("--model must be 'oracle' or 'zoo:NAME'")

    import nibabel as nib

    rows = []
    for depth in [depth for depth in args.slices for _ in range(args.repeat)]:
        source = work / f"ct_{depth}.nii"
        if not source.exists():
            affine = np.diag([-0.75, -0.75, 1.0, 1.0])
            nib.save(nib.Nifti1Image(phantom(depth), affine), str(source))
        out, report, stats = (
            work / f"seg_{depth}.nii.gz",
            work / f"report_{depth}.json",
            work / f"stats_{depth}.json",
        )
        command = [
            sys.executable,
            "-c",
            _CHILD,
            str(stats),
            str(source),
            "-o",
            str(out),
            "--weights",
            str(weights),
            "--report",
            str(report),
            "--overwrite",
            "--quiet",
            "--device",
            "cpu",
        ]
        command += postprocess_args
        if args.batch_size is not None:
            command += ["--batch-size", str(args.batch_size)]
        if args.tta:
            command.append("--tta")
        for option in ("runtime", "precision"):
            if getattr(args, option) is not None:
                command += [f"--{option}", getattr(args, option)]
        if second_weights is not None:
            command += ["--second-stage-weights", str(second_weights)]
        started = time.perf_counter()
        subprocess.run(command, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        measured = json.loads(stats.read_text())
        facts = json.loads(report.read_text())
        timing = facts["timing_s"]
        rows.append(
            {
                "shape": f"512x512x{depth}",
                "model": args.model,
                "input_size": args.input_size,
                "runtime": facts["model"].get("runtime"),
                "precision": facts["model"].get("precision"),
                "process_wall_s": round(time.perf_counter() - started, 1),
                "predict_s": timing["predict"],
                "predict_second_stage_s": timing.get("predict_second_stage"),
                "postprocess_s": timing["postprocess"],
                "peak_rss_gb": round(measured["peak_rss_bytes"] / 1e9, 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    print(f"# {os.cpu_count()} CPUs; files in {work}")


if __name__ == "__main__":
    main()
