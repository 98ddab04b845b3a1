"""Export to ONNX (TensorFlow backend only, through Keras' tf2onnx exporter).

Needs the ``export`` extra: ``pip install "keras_liverseg[export]"``. A model is exported
at its fixed input size (``H x W x C`` of the model; the batch size stays dynamic), as the
single-output :func:`keras_liverseg.models.inference_model` so the ONNX graph returns the
(gated) probabilities that ``liverseg predict`` uses.
"""

from __future__ import annotations

import os

import keras
import numpy as np

from keras_liverseg.models import inference_model


def export_onnx(model: keras.Model, path: str | os.PathLike) -> keras.Model:
    """Write ``model`` as an ONNX file; returns the exported single-output model."""
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("ONNX export needs the TensorFlow backend (KERAS_BACKEND=tensorflow)")
    exported = inference_model(model)
    # Keras' exporter traces a model that has been called at least once.
    exported([np.zeros((1, *exported.inputs[0].shape[1:]), dtype="float32")])
    exported.export(str(path), format="onnx", verbose=False)
    return exported
