"""``zoo.load``: build a zoo model and load its weights, checking their hash."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import keras

from keras_liverseg import models
from keras_liverseg.zoo.catalog import ZooEntry, get_entry


class WeightsNotAvailable(RuntimeError):
    """The zoo entry has no released weights (yet): pass ``weights=None`` or a path."""


class WeightsMismatch(RuntimeError):
    """A weights file does not match the SHA-256 its zoo entry records."""


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load(
    name: str,
    weights: str | os.PathLike | None = "default",
    **config,
) -> keras.Model:
    """Build the zoo model ``name`` and load its weights.

    Args:
        name: a zoo name (``keras_liverseg.zoo.catalog()``; ``liverseg models`` lists them).
        weights: ``"default"`` for the weights shipped with the package (checked against
            their SHA-256); ``None`` for an untrained model; a path to a ``.weights.h5``
            file (loaded into the zoo architecture) or to a ``.keras`` model file (loaded
            as saved, with Keras safe mode on; ``config`` must then be empty).
        **config: overrides of the entry's builder configuration, e.g. ``input_shape``.

    Returns:
        The Keras model (with its deep-supervision heads; see
        :func:`keras_liverseg.models.inference_model` for the single-output version).

    Example:
        >>> model = keras_liverseg.zoo.load("unet_sharp", weights=None)
        >>> model.compile(optimizer="adam", loss=...)  # then model.fit(...)
    """
    entry = get_entry(name)
    if weights is not None and str(weights).endswith(".keras"):
        if config:
            raise ValueError("a .keras file holds its own configuration; drop the overrides")
        model = keras.saving.load_model(_existing(weights), safe_mode=True)
        return _pruned(entry, model)
    model = models.build(entry.architecture, **{**entry.config, **config})
    if weights == "default":
        _load_default(entry, model)
    elif weights is not None:
        model.load_weights(_existing(weights))
    return _pruned(entry, model)


def _load_default(entry: ZooEntry, model: keras.Model) -> None:
    path = entry.weights_path()
    if path is None:
        raise WeightsNotAvailable(
            f"no weights are released for zoo model {entry.name!r} yet: pass weights=None "
            "for an untrained model or weights=PATH for a .weights.h5 / .keras file "
            "(CLI: --weights PATH)"
        )
    actual = sha256_of(path)
    if entry.sha256 and actual != entry.sha256:
        raise WeightsMismatch(
            f"{path} has SHA-256 {actual}, expected {entry.sha256}: the file is corrupt or "
            "was replaced; reinstall keras_liverseg"
        )
    model.load_weights(path)


def _pruned(entry: ZooEntry, model: keras.Model) -> keras.Model:
    if entry.prune_level is None:
        return model
    return models.prune(model, entry.prune_level)


def _existing(path: str | os.PathLike) -> str:
    if not Path(path).is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return str(path)
