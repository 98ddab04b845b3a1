"""Get a ready-to-predict model: from the zoo, a weights file or a Keras model object."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["LoadedModel", "ModelLoadError", "as_loaded", "fast_variant", "load_model"]

WEIGHT_SUFFIXES = (".keras", ".weights.h5")


class ModelLoadError(ValueError):
    """The model or its weights cannot be loaded; the message says what to pass instead."""


@dataclass
class LoadedModel:
    """A single-output inference model and what the predictor needs to know about it.

    Attributes:
        model: one input (raw HU slices), one output (per-class probabilities).
        preprocessing: :class:`keras_liverseg.models.Preprocessing` of the model.
        name: zoo name (or the Keras model's name for a model passed as an object).
        weights: where the weights came from: a path, ``"default"`` (bundled), ``None``
            (untrained or unknown).
        weights_sha256: SHA-256 of the weights file, when there is one.
    """

    model: Any
    preprocessing: Any
    name: str
    weights: str | None = None
    weights_sha256: str | None = None

    def describe(self) -> dict[str, Any]:
        """Model facts for the report."""
        return {
            "name": self.name,
            "keras_name": getattr(self.model, "name", None),
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            **self.preprocessing.to_dict(),
        }


def fast_variant(name: str) -> str:
    """The zoo's fast variant of ``name`` (``<name>_fast``) when it has one, else ``name``."""
    from keras_liverseg import zoo

    candidate = f"{name}_fast"
    known = {entry.name for entry in zoo.entries()}
    return candidate if not name.endswith("_fast") and candidate in known else name


def _wrap(model: Any, name: str, weights: str | None, sha256: str | None) -> LoadedModel:
    from keras_liverseg.models import inference_model, preprocessing_of

    try:
        preprocessing = preprocessing_of(model)
        single = inference_model(model)
    except (ValueError, KeyError) as error:
        raise ModelLoadError(f"model {name!r} cannot be used for prediction: {error}") from None
    if len(single.inputs) != 1 or len(single.outputs) != 1:
        raise ModelLoadError(f"model {name!r} must have one input and one output")
    return LoadedModel(single, preprocessing, name, weights, sha256)


def load_model(
    name: str = "unet_sharp",
    weights: str | os.PathLike | None = "default",
    *,
    fast: bool = False,
) -> LoadedModel:
    """Load a zoo model for prediction.

    Args:
        name: zoo name (``liverseg models`` lists them).
        weights: ``"default"`` (the bundled weights), a ``.keras`` model file (loaded as
            saved, Keras safe mode on; ``name`` then only picks the fast variant), a
            ``.weights.h5`` file (loaded into the zoo architecture), or ``None`` (untrained).
        fast: use the zoo's fast variant ``<name>_fast`` when there is one (UNet#: the
            pruned L2 head); otherwise the same model.

    Raises:
        ModelLoadError: unknown name, missing or unreadable weights, no bundled weights.
    """
    from keras_liverseg import zoo

    if fast:
        name = fast_variant(name)
    try:
        zoo.get_entry(name)
    except ValueError as error:
        raise ModelLoadError(str(error)) from None
    sha256 = None
    if weights == "default" and not zoo.get_entry(name).has_default_weights():
        raise ModelLoadError(
            f"no trained weights are released for {name!r} yet: pass --weights PATH "
            "(Python: weights=PATH), a .keras model or .weights.h5 file"
        )
    if weights is not None and weights != "default":
        path = Path(weights)
        if not str(path).lower().endswith(WEIGHT_SUFFIXES):
            raise ModelLoadError(
                f"{path}: weights must be a .keras model file or a .weights.h5 file"
            )
        if not path.is_file():
            raise ModelLoadError(f"{path}: weights file not found")
        weights = str(path)
        sha256 = zoo.sha256_of(path)
    try:
        model = zoo.load(name, weights=weights)
    except zoo.WeightsNotAvailable:
        raise ModelLoadError(
            f"no trained weights are released for {name!r} yet: pass --weights PATH "
            "(Python: weights=PATH), a .keras model or .weights.h5 file"
        ) from None
    except Exception as error:  # corrupt file, wrong architecture, unsafe model, ...
        text = " ".join(str(error).split())[:200] or type(error).__name__
        raise ModelLoadError(f"cannot load weights {weights} for {name!r}: {text}") from None
    if weights == "default":
        path = zoo.get_entry(name).weights_path()
        sha256 = zoo.sha256_of(path) if path is not None else None
    return _wrap(model, name, None if weights is None else str(weights), sha256)


def as_loaded(model: Any) -> LoadedModel:
    """Accept a :class:`LoadedModel`, a zoo name (default weights) or a Keras model."""
    if isinstance(model, LoadedModel):
        return model
    if isinstance(model, str):
        return load_model(model)
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(
            f"model must be a keras.Model, a zoo name or a LoadedModel, got {type(model)}"
        )
    return _wrap(model, model.name, None, None)
