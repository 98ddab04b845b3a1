"""Inference: segment CT volumes with a Keras model and describe the result.

``predict_volume(model, path_or_array, affine=None) -> Segmentation`` is the entry point
(also exposed as ``keras_liverseg.predict_volume``). The modules:

* :mod:`.predictor`: slice-batch prediction, geometry, the :class:`Segmentation` result;
* :mod:`.loading`: zoo / weights-file model loading;
* :mod:`.postprocess`: largest component, hole filling, tumor-in-liver, lesion size;
* :mod:`.report`: volumes, lesions, versions; :mod:`.overlay`: PNG quick look;
* :mod:`.device`: CPU/GPU choice (in-plane resizing is :mod:`keras_liverseg.io.slices`).

Keras is imported only when a model is used.
"""

from keras_liverseg.inference.loading import LoadedModel, ModelLoadError, load_model
from keras_liverseg.inference.postprocess import PostprocessOptions, postprocess_labels
from keras_liverseg.inference.predictor import Segmentation, predict_slices, predict_volume

__all__ = [
    "LoadedModel",
    "ModelLoadError",
    "PostprocessOptions",
    "Segmentation",
    "load_model",
    "postprocess_labels",
    "predict_slices",
    "predict_volume",
]
