"""``zoo.load``: build a zoo model and load its weights: bundled, cached or downloaded."""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from keras_liverseg.inference.postprocess import PostprocessOptions
from keras_liverseg.io.errors import one_line
from keras_liverseg.zoo import download
from keras_liverseg.zoo.catalog import ZooEntry, get_entry
from keras_liverseg.zoo.errors import WeightsDoNotMatch, WeightsNotAvailable
from keras_liverseg.zoo.index import (
    WEIGHT_SUFFIXES,
    WeightsRecord,
    default_record,
    find_record,
    records_for,
)

if TYPE_CHECKING:
    import keras

# Keras and the architectures are imported where a model is built: the catalog, the weights
# index and the download need neither (a prediction from a cached ONNX graph runs without
# Keras, keras_liverseg.inference.onnx_runtime).


def is_weights_path(weights: str | os.PathLike) -> bool:
    """``weights`` names a file (a path-like, or a string ending in ``.keras`` or
    ``.weights.h5``), not a release."""
    return isinstance(weights, os.PathLike) or str(weights).lower().endswith(WEIGHT_SUFFIXES)


def weights_record(name: str, weights: str = "default") -> WeightsRecord:
    """The index record of zoo model ``name``'s weights: its default ones, or those of the
    release called ``weights``; :class:`WeightsNotAvailable` when there are none."""
    get_entry(name)
    records = download.all_records()
    record = _pick(name, weights, records)
    if record is None and os.environ.get("LIVERSEG_WEIGHTS_URL") and not download.offline():
        records = download.all_records(refresh=True)  # the cached mirror index may be old
        record = _pick(name, weights, records)
    if record is not None:
        return record
    releases = sorted({r.release for r in records_for(name, records)})
    known = f"; its releases: {', '.join(releases)}" if releases else ""
    what = "no weights are released" if weights == "default" else f"no release {weights!r}"
    raise WeightsNotAvailable(
        f"{what} for zoo model {name!r}{known}: pass weights=None for an untrained model or "
        "weights=PATH for a .weights.h5 / .keras file (CLI: --weights PATH); `liverseg zoo "
        "list` shows the released weights"
    )


def _pick(name: str, weights: str, records: list[WeightsRecord]) -> WeightsRecord | None:
    if weights == "default":
        return default_record(name, records)
    return find_record(name, str(weights), records)


def default_weights(name: str) -> WeightsRecord | None:
    """The record ``zoo.load(name)`` loads, or ``None`` when the entry has no released
    weights (it then builds untrained only)."""
    return default_record(name, download.all_records())


def postprocess_for(name: str, sha256: str | None,
                    records: list[WeightsRecord] | None = None) -> PostprocessOptions:
    """The post-processing chosen for the weights file of SHA-256 ``sha256`` of zoo model
    ``name``: the index record's ``postprocess``, else the entry's own for its bundled
    weights, else the default :class:`PostprocessOptions` (every lesion kept, no growth).
    ``records``: the index records to look in (default: all of them)."""
    entry = get_entry(name)
    if records is None:
        records = download.all_records()
    for record in records_for(name, records):
        if record.sha256 == sha256:
            if record.postprocess:
                return PostprocessOptions(**record.postprocess)
            if record.bundled:
                return entry.postprocess
    return PostprocessOptions()


def load(
    name: str,
    weights: str | os.PathLike | WeightsRecord | None = "default",
    *,
    progress: bool = True,
    **config,
) -> keras.Model:
    """Build the zoo model ``name`` and load its weights.

    Args:
        name: a zoo name (``liverseg zoo list`` lists them).
        weights: ``"default"``: the entry's released weights, bundled with the package or
            else taken from the cache or downloaded into it (:mod:`keras_liverseg.zoo.download`;
            checked against the index's size and SHA-256 on every load); a release name
            (``liverseg zoo list`` shows them) for other released weights; ``None`` for an
            untrained model; a path to a ``.weights.h5`` file (loaded into the zoo
            architecture) or to a ``.keras`` model file (loaded as saved, with Keras safe
            mode on; ``config`` must then be empty); or a record of the weights index
            (:func:`weights_record`), as a release name gives.
        progress: show a progress bar on stderr while downloading.
        **config: overrides of the entry's builder configuration, e.g. ``input_shape``.

    Returns:
        The Keras model (with its deep-supervision heads; see
        :func:`keras_liverseg.models.inference_model` for the single-output version).

    Example:
        >>> model = keras_liverseg.zoo.load("unet_sharp", weights=None)
        >>> model.compile(optimizer="adam", loss=...)  # then model.fit(...)
    """
    from keras_liverseg import models

    entry = get_entry(name)
    if weights is None:
        return _pruned(entry, models.build(entry.architecture, **{**entry.config, **config}))
    if isinstance(weights, WeightsRecord):
        record = weights
    elif is_weights_path(weights):
        return _load_file(entry, _existing(weights), {}, config)
    else:
        record = weights_record(name, str(weights))
    path = download.resolve(record, progress=progress)
    return _load_file(entry, str(path), record.config, config)


def _load_file(entry: ZooEntry, path: str, record_config: dict, config: dict) -> keras.Model:
    import keras

    from keras_liverseg import models

    if path.endswith(".keras"):
        if config:
            raise ValueError("a .keras file holds its own configuration; drop the overrides")
        return _pruned(entry, keras.saving.load_model(path, safe_mode=True))
    model = models.build(entry.architecture, **{**entry.config, **record_config, **config})
    load_weights(model, path, entry.name)
    return _pruned(entry, model)


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
    from keras_liverseg import models

    if entry.prune_level is None or model.name.endswith(f"_L{entry.prune_level}"):
        return model
    return models.prune(model, entry.prune_level)


def _existing(path: str | os.PathLike) -> str:
    if not Path(path).is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    return str(path)
