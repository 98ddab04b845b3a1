"""What the predictor needs to know about a model: its preprocessing and one output."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from keras_liverseg.layers import ClassificationGate, HUWindow
from keras_liverseg.models.folding import fold_batch_norm


@dataclass(frozen=True)
class Preprocessing:
    """The preprocessing a model expects, read from the model itself.

    Attributes:
        hu_window: ``(low, high)`` HU window of the model's :class:`HUWindow` layer.
        input_size: ``(H, W)`` of the axial slices the model reads; for a 3D model, the
            ``(D, H, W)`` of the patches its sliding window reads.
        context_slices: neighbouring slices fed as channels (1 = 2D; 1 for a 3D model).
        num_classes: channels of the ``"mask"`` output.
        classes: names of those channels.
        pixel_spacing: in-plane spacing (mm) slices are resampled to before the model reads
            them on a canvas of at least ``input_size``; ``None``: each slice is resized to
            ``input_size`` whatever it covers (see :class:`HUWindow`).
        slice_spacing: for a 3D model, the axial spacing (mm) volumes are resampled to.
        volumetric: the model reads 3D patches ``(D, H, W)`` instead of axial slices.
    """

    hu_window: tuple[float, float]
    input_size: tuple[int, ...]
    context_slices: int
    num_classes: int
    classes: tuple[str, ...]
    pixel_spacing: float | None = None
    slice_spacing: float | None = None
    volumetric: bool = False

    def to_dict(self) -> dict:
        out = {
            "hu_window": list(self.hu_window),
            "input_size": list(self.input_size),
            "pixel_spacing": self.pixel_spacing,
            "context_slices": self.context_slices,
            "num_classes": self.num_classes,
            "classes": list(self.classes),
        }
        if self.volumetric:
            out.update(slice_spacing=self.slice_spacing, volumetric=True)
        return out


def class_names(num_classes: int) -> tuple[str, ...]:
    """Channel names for ``num_classes`` outputs (LiTS order: background, liver, tumor)."""
    if num_classes == 1:
        return ("liver",)
    names = ("background", "liver", "tumor")
    if num_classes > len(names):
        return names + tuple(f"class_{i}" for i in range(len(names), num_classes))
    return names[:num_classes]


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
    BatchNormalization after a convolution is folded into it
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
    return fold_batch_norm(single) if fold else single
