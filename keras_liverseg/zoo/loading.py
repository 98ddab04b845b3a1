"""``zoo.load``: build a zoo model and load its weights, checking their hash."""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path

import keras

from keras_liverseg import models
from keras_liverseg.io.errors import one_line
from keras_liverseg.zoo.catalog import ZooEntry, get_entry


class WeightsNotAvailable(RuntimeError):
    """The zoo entry has no released weights (yet): pass ``weights=None`` or a path."""


class WeightsMismatch(RuntimeError):
    """A weights file does not match the SHA-256 its zoo entry records."""


class WeightsDoNotMatch(ValueError):
    """A weights file holds another architecture's (or configuration's) weights.

    The message is one line: the file, the model and the first layer that differs.
    """


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
        load_weights(model, _existing(weights), name)
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
    load_weights(model, path, entry.name)


# Keras warns once per layer it skips (70 lines for a file of another architecture) and
# then raises; these are summed up by WeightsDoNotMatch instead.
_SKIPPED = ("could not be loaded", "freshly-initialized", "Skipping")


def load_weights(model: keras.Model, path: str | os.PathLike, name: str) -> None:
    """``model.load_weights(path)``, with one :class:`WeightsDoNotMatch` for a file of
    another model instead of Keras' warning per layer and its long error."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model.load_weights(path)
            error = None
        except ValueError as raised:
            error = raised
    skipped = [w for w in caught if any(text in str(w.message) for text in _SKIPPED)]
    for w in caught:
        if w not in skipped and not issubclass(w.category, DeprecationWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if error is not None:
        raise WeightsDoNotMatch(
            f"weights {path} do not match model {name!r}: {_first_mismatch(str(error))}"
        ) from None
    if skipped:
        raise WeightsDoNotMatch(f"weights {path} do not match model {name!r}: "
                                f"{_first_line(str(skipped[0].message))}")


def _first_mismatch(text: str) -> str:
    """The first layer that differs, from Keras' error text (one line)."""
    total = re.search(r"A total of (\d+) objects could not be loaded", text)
    layer = re.search(r"object <\w+ name=([^,>]+)", text)
    shapes = re.search(r"variable\.shape=(\([^)]*\)), Received: value\.shape=(\([^)]*\))", text)
    if layer and shapes:
        found = (f"layer {layer.group(1)} has weights of shape {shapes.group(1)}, the file "
                 f"{shapes.group(2)}")
        return f"{found} ({total.group(1)} layers differ)" if total else found
    return _first_line(text)


def _first_line(text: str, limit: int = 200) -> str:
    return one_line(text.strip().split("\n\n")[0], limit)


def _pruned(entry: ZooEntry, model: keras.Model) -> keras.Model:
    """The entry's pruned head of ``model``; a ``.keras`` file saved from a model trained
    as that head (its name ends in ``_L<level>``, as :func:`models.prune` names it) is
    used as it is."""
    if entry.prune_level is None or model.name.endswith(f"_L{entry.prune_level}"):
        return model
    return models.prune(model, entry.prune_level)


def _existing(path: str | os.PathLike) -> str:
    if not Path(path).is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return str(path)
