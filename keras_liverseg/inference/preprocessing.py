"""What the predictor needs to know about a model's input and output, without Keras:
:class:`Preprocessing` (read from a model by
:func:`keras_liverseg.models.inference.preprocessing_of`, kept beside a cached ONNX graph
by :mod:`keras_liverseg.inference.onnx_runtime`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Preprocessing", "class_names"]


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
        """The fields as JSON values (the report's ``model`` facts; :meth:`from_dict`
        reads them back)."""
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

    @classmethod
    def from_dict(cls, facts: dict) -> Preprocessing:
        """The :class:`Preprocessing` that :meth:`to_dict` wrote."""
        return cls(
            hu_window=tuple(float(v) for v in facts["hu_window"]),
            input_size=tuple(int(v) for v in facts["input_size"]),
            context_slices=int(facts["context_slices"]),
            num_classes=int(facts["num_classes"]),
            classes=tuple(str(v) for v in facts["classes"]),
            pixel_spacing=None if facts.get("pixel_spacing") is None
            else float(facts["pixel_spacing"]),
            slice_spacing=None if facts.get("slice_spacing") is None
            else float(facts["slice_spacing"]),
            volumetric=bool(facts.get("volumetric", False)),
        )


def class_names(num_classes: int) -> tuple[str, ...]:
    """Channel names for ``num_classes`` outputs (LiTS order: background, liver, tumor)."""
    if num_classes == 1:
        return ("liver",)
    names = ("background", "liver", "tumor")
    if num_classes > len(names):
        return names + tuple(f"class_{i}" for i in range(len(names), num_classes))
    return names[:num_classes]
