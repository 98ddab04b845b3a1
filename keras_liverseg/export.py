"""Export a model as ONNX, a TensorFlow SavedModel or TFLite, and check what was written.

TensorFlow backend only. A model is exported at its fixed input size (``H x W x C``, or a
3D model's patch ``D x H x W x 1``; the batch size stays dynamic) as the single-output,
BatchNormalization-folded :func:`keras_liverseg.models.inference_model`, so every format
returns the (gated) class probabilities ``liverseg predict`` uses, from raw HU.

* ``onnx``: Keras' tf2onnx exporter (the ``export`` extra: tf2onnx, onnxruntime);
* ``saved_model``: ``model.export(format="tf_saved_model")``, a folder with a ``serve``
  endpoint, loaded back with ``tf.saved_model.load``;
* ``tflite``: the SavedModel converted by TensorFlow's TFLite converter, in float32 or
  quantised (``float16`` weights, or ``int8``: dynamic-range quantisation, int8 weights and
  float activations), run with ``ai_edge_litert`` when installed (the ``litert`` extra),
  else ``tf.lite.Interpreter``. Seed 004 (UNet#) prunes its model for devices where
  compute is scarce; this is how a pruned model (``models.prune``) gets there.

:func:`check_export` runs the written file on phantom slices (:func:`sample_slices`) and
compares it with the Keras model: float32 formats within ``FLOAT_TOLERANCE`` of the
probabilities, quantised TFLite by the liver Dice of the two label maps
(``QUANTIZED_MIN_DICE``).
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

import keras
import numpy as np

from keras_liverseg.metrics.overlap import dice
from keras_liverseg.models import inference_model

__all__ = ["FLOAT_TOLERANCE", "FORMATS", "QUANTIZATIONS", "QUANTIZED_MIN_DICE",
           "ExportMismatch", "check_export", "export_model", "export_onnx", "run_export",
           "sample_slices"]

FORMATS = ("onnx", "saved_model", "tflite")
QUANTIZATIONS = ("float16", "int8")
FLOAT_TOLERANCE = 1e-4
"""Largest absolute probability difference a float32 export may have from Keras."""
QUANTIZED_MIN_DICE = 0.99
"""Smallest liver Dice between a quantised export's labels and Keras' labels."""


class ExportMismatch(RuntimeError):
    """The exported file does not compute what the Keras model computes; one line."""


def _require_tensorflow(what: str) -> None:
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(f"{what} export needs the TensorFlow backend "
                           "(KERAS_BACKEND=tensorflow)")


def _traced(model: keras.Model) -> keras.Model:
    exported = inference_model(model)
    # Keras' exporters trace a model that has been called at least once.
    exported([np.zeros((1, *exported.inputs[0].shape[1:]), dtype="float32")])
    return exported


def export_onnx(model: keras.Model, path: str | os.PathLike) -> keras.Model:
    """Write ``model`` as an ONNX file; returns the exported single-output model."""
    _require_tensorflow("ONNX")
    exported = _traced(model)
    exported.export(str(path), format="onnx", verbose=False)
    return exported


def export_model(model: keras.Model, path: str | os.PathLike, format: str = "onnx",
                 quantize: str | None = None) -> keras.Model:
    """Write ``model`` in ``format`` (:data:`FORMATS`) at ``path`` (a file; a folder for
    ``saved_model``); ``quantize`` (:data:`QUANTIZATIONS`) is for ``tflite`` only.
    Returns the exported single-output Keras model."""
    if format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    if quantize is not None and (format != "tflite" or quantize not in QUANTIZATIONS):
        raise ValueError(f"quantize is float16 or int8, for tflite only (got {quantize!r} "
                         f"for {format})")
    if format == "tflite" and len(model.inputs[0].shape) == 5:
        raise ExportMismatch("TFLite takes the slice models only: its PReLU, which the 3D "
                             "models' V-Net encoder uses, is at most 4-D; export a 3D model "
                             "as onnx or saved_model")
    if format == "onnx":
        return export_onnx(model, path)
    _require_tensorflow(format)
    exported = _traced(model)
    if format == "saved_model":
        exported.export(str(path), format="tf_saved_model", verbose=False)
        return exported
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as folder:
        exported.export(folder, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        if quantize is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if quantize == "float16":
                converter.target_spec.supported_types = [tf.float16]
        Path(path).write_bytes(converter.convert())
    return exported


def _tflite_interpreter(path: str):
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806 (the class, as ai_edge_litert names it)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        return Interpreter(model_path=path)


def run_export(path: str | os.PathLike, format: str, x: np.ndarray) -> np.ndarray:
    """The probabilities the exported file at ``path`` gives for the HU batch ``x``."""
    x = np.asarray(x, dtype="float32")
    if format == "onnx":
        from keras_liverseg.inference.onnx_runtime import OnnxRunner

        return np.asarray(OnnxRunner(path).predict_on_batch(x))
    if format == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        return np.asarray(loaded.serve([tf.constant(x)]))  # traced with a list of inputs
    if format == "tflite":
        interpreter = _tflite_interpreter(str(path))
        (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
        interpreter.resize_tensor_input(inp["index"], list(x.shape))
        interpreter.allocate_tensors()
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return np.asarray(interpreter.get_tensor(out["index"]))
    raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")


def sample_slices(model: keras.Model, count: int = 4, seed: int = 11) -> np.ndarray:
    """``count`` neighbouring-slice stacks of a synthetic abdomen through its liver, resized
    to ``model``'s input: what an export is checked on. For a 3D model, one patch
    ``(1, D, H, W, 1)``: ``D`` slices through the liver, each resized to ``H x W``."""
    from keras_liverseg.io.orientation import to_canonical
    from keras_liverseg.io.slices import slice_stack
    from keras_liverseg.phantom import generate_case

    shape = tuple(int(n) for n in model.inputs[0].shape[1:])
    depth = shape[0] if len(shape) == 4 else count  # a 3D model's patch depth
    case = generate_case(seed, (256, 256, max(24, depth)))
    volume, _, _ = to_canonical(case.volume, case.affine)
    labels, _, _ = to_canonical(case.labels, case.affine)
    with_liver = np.flatnonzero((labels > 0).any(axis=(0, 1)))
    middle = int(with_liver[len(with_liver) // 2]) if with_liver.size else volume.shape[2] // 2
    ks = np.clip(np.arange(depth) - depth // 2 + middle, 0, volume.shape[2] - 1)
    if len(shape) == 4:  # (D, H, W, 1): the slices stacked along D
        _, height, width, _ = shape
        return slice_stack(volume, ks, 1, (height, width), nan_fill=-1024.0)[None]
    height, width, context = shape
    return slice_stack(volume, ks, context, (height, width), nan_fill=-1024.0)


def _liver(probs: np.ndarray) -> np.ndarray:
    """The liver (liver or tumor) of class probabilities."""
    return probs[..., 0] > 0.5 if probs.shape[-1] == 1 else np.argmax(probs, -1) >= 1


def check_export(path: str | os.PathLike, format: str, exported: keras.Model,
                 quantize: str | None = None, x: np.ndarray | None = None) -> dict:
    """Run the file at ``path`` and ``exported`` (the Keras model it was written from) on
    ``x`` (default :func:`sample_slices`); :class:`ExportMismatch` unless they agree (see
    the module docstring). Returns ``max_abs_difference`` and ``liver_dice``."""
    x = sample_slices(exported) if x is None else x
    expected = np.asarray(exported.predict(x, verbose=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        actual = run_export(path, format, x)
    if actual.shape != expected.shape:
        raise ExportMismatch(f"the exported {format} model gives shape {actual.shape}, "
                             f"Keras {expected.shape}")
    facts = {"max_abs_difference": float(np.abs(actual - expected).max()),
             "liver_dice": round(dice(_liver(actual), _liver(expected)), 5)}
    if quantize is None and facts["max_abs_difference"] > FLOAT_TOLERANCE:
        raise ExportMismatch(f"the exported {format} model differs from Keras by up to "
                             f"{facts['max_abs_difference']:.2g} in probability (allowed "
                             f"{FLOAT_TOLERANCE:g})")
    if quantize is not None and facts["liver_dice"] < QUANTIZED_MIN_DICE:
        raise ExportMismatch(f"the {quantize}-quantised {format} model's liver differs from "
                             f"Keras' (Dice {facts['liver_dice']:.3f} < {QUANTIZED_MIN_DICE})")
    return facts
