"""Each export format's file size and time per slice, on this host (issue 25, part 3).

Exports the default model (and its pruned L1 and L2 heads with ``--levels``) as ONNX, a
SavedModel and TFLite (float32, float16, int8 dynamic-range) with
:func:`keras_liverseg.export.export_model`, checks each (:func:`check_export`), and times a
batch of phantom slices through each runtime loaded once (best of ``--repeats``): Keras on
TensorFlow, ONNX Runtime, the SavedModel's ``serve``, the TFLite interpreter.

Usage::

    python benchmarks/bench_export.py                  # the default model, every format
    python benchmarks/bench_export.py --levels 1 2 3 --batch 1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path


def runner(path: Path, fmt: str):
    """A callable running a batch through the exported file, loaded once."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})[0]
    if fmt == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        return lambda x: loaded.serve([tf.constant(x)]).numpy()
    from keras_liverseg.export import _tflite_interpreter

    interpreter = _tflite_interpreter(str(path))
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    shape = {"value": None}

    def run(x):
        if shape["value"] != x.shape:
            interpreter.resize_tensor_input(inp["index"], list(x.shape))
            interpreter.allocate_tensors()
            shape["value"] = x.shape
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return interpreter.get_tensor(out["index"])

    return run


def best_seconds(run, x, repeats: int) -> float:
    run(x)
    best = float("inf")
    for _ in range(repeats):
        tick = time.perf_counter()
        run(x)
        best = min(best, time.perf_counter() - tick)
    return best / len(x)


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="unet_sharp")
    parser.add_argument("--levels", type=int, nargs="*", default=[],
                        help="also the model pruned to these levels")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from keras_liverseg import models, zoo
    from keras_liverseg.export import check_export, export_model, sample_slices

    full = zoo.load(args.model)
    variants = [("full", models.inference_model(full))]
    variants += [(f"level {n}", models.prune(full, n)) for n in args.levels]
    formats = [("onnx", None, "m.onnx"), ("saved_model", None, "sm"),
               ("tflite", None, "m.tflite"), ("tflite", "float16", "m16.tflite"),
               ("tflite", "int8", "m8.tflite")]
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, model in variants:
            exported = models.inference_model(model)
            x = sample_slices(exported, count=args.batch)
            keras_s = best_seconds(exported.predict_on_batch, x,
                                   args.repeats)
            print(json.dumps({"model": args.model, "variant": label, "format": "keras",
                              "parameters": exported.count_params(),
                              "s_per_slice": round(keras_s, 4)}), flush=True)
            for fmt, quantize, name in formats:
                path = Path(folder) / f"{label.replace(' ', '')}-{name}"
                try:
                    export_model(model, path, fmt, quantize)
                except ImportError as error:  # no tf2onnx / onnxruntime: skip ONNX
                    print(json.dumps({"format": fmt, "skipped": str(error)}))
                    continue
                facts = check_export(path, fmt, exported, quantize, x)
                seconds = best_seconds(runner(path, fmt), x, args.repeats)
                print(json.dumps({
                    "model": args.model, "variant": label, "format": fmt,
                    "quantize": quantize, "mb": round(size_of(path) / 1e6, 2),
                    "s_per_slice": round(seconds, 4), "vs_keras": round(seconds / keras_s, 2),
                    **facts}), flush=True)


if __name__ == "__main__":
    main()
