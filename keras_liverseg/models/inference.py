"""What the predictor needs to know about a model: its preprocessing and one output."""

from __future__ import annotations

import keras

from keras_liverseg.inference.preprocessing import Preprocessing, class_names
from keras_liverseg.layers import ClassificationGate, HUWindow
from keras_liverseg.models.folding import fold_batch_norm

__all__ = ["Preprocessing", "class_names", "hu_window_of", "inference_model", "preprocessing_of"]


def _mask_output(model: keras.Model):
    if len(model.outputs) == 1:
        return model.outputs[0]
    return model.get_layer("mask").output


def hu_window_of(model: keras.Model) -> HUWindow:
    """The model's (first) :class:`HUWindow` layer, which holds its CT preprocessing.

    Raises:
        ValueError: the model has none (it does not read CT).
    """
    for layer in model.layers:
        if isinstance(layer, HUWindow):
            return layer
    raise ValueError(f"model {model.name!r} has no HUWindow layer: it does not read CT")


def preprocessing_of(model: keras.Model) -> Preprocessing:
    """Read a model's :class:`Preprocessing` (window, input size, context, classes)."""
    window = hu_window_of(model)
    *size, channels = model.inputs[0].shape[1:]
    num_classes = int(_mask_output(model).shape[-1])
    return Preprocessing(
        hu_window=tuple(window.window),
        input_size=tuple(int(v) for v in size),
        context_slices=int(channels),
        num_classes=num_classes,
        classes=class_names(num_classes),
        pixel_spacing=window.pixel_spacing,
        slice_spacing=getattr(window, "slice_spacing", None),
        volumetric=len(size) == 3,
    )


def inference_model(model: keras.Model, fold: bool = True) -> keras.Model:
    """One input, one output: the ``"mask"`` probabilities, gated by a CGM if there is one.

    Deep-supervision heads are dropped. When the model has a classification guide on its
    mask (``"cls_mask"``), the mask passes :class:`ClassificationGate`, the paper's
    inference-time ``argmax`` gate (UNet# Sec. 2.3). With ``fold`` (the default), every
    BatchNormalization after a convolution is folded into it, and each convolution of a
    concatenation convolves its parts instead
    (:func:`~keras_liverseg.models.folding.fold_batch_norm`): the same function, faster,
    in a copy that no longer shares weights with ``model`` (``fold=False`` keeps them
    shared, as training's validation needs). A single-output model without anything to
    fold is returned as is.
    """
    single = model
    if len(model.outputs) > 1:
        mask = model.get_layer("mask").output
        if "cls_mask" in model.output_names:
            cls = model.get_layer("cls_mask").output
            mask = ClassificationGate(name="gated_mask")([mask, cls])
        single = keras.Model(model.inputs, mask, name=f"{model.name}_inference")
    return fold_batch_norm(single, split_concatenations=True) if fold else single
