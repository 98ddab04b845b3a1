"""Get a ready-to-predict model: from the zoo, a weights file or a Keras model object."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from keras_liverseg.inference.postprocess import PostprocessOptions
from keras_liverseg.io.errors import one_line

__all__ = [
    "LoadedModel",
    "ModelLoadError",
    "as_loaded",
    "at_input_size",
    "fast_variant",
    "load_model",
]


# A --weights value with one of these endings is a file of the wrong kind, not a release name.
_OTHER_WEIGHT_FILES = (".h5", ".hdf5", ".pt", ".pth", ".onnx", ".npz", ".ckpt", ".pb",
                       ".tflite", ".savedmodel")


class ModelLoadError(ValueError):
    """The model or its weights cannot be loaded; the message says what to pass instead."""


@dataclass
class LoadedModel:
    """A single-output inference model and what the predictor needs to know about it.

    Attributes:
        model: one input (raw HU slices), one output (per-class probabilities); ``None``
            until :meth:`keras_model` builds it, for a model loaded for the ``onnx`` runtime
            from cached graphs (:mod:`keras_liverseg.inference.onnx_runtime`).
        preprocessing: :class:`keras_liverseg.models.Preprocessing` of the model.
        name: zoo name (or the Keras model's name for a model passed as an object).
        weights: where the weights came from: a path, ``"default"`` (bundled), ``None``
            (untrained or unknown).
        weights_sha256: SHA-256 of the weights file, when there is one.
        liver_roi: for a second stage, the :class:`~keras_liverseg.data.roi.LiverROI` its
            input is cut to; ``None`` for a model that reads whole slices.
        second_stage: the model that re-segments this one's liver region (a cascade), or
            ``None``.
        second_stage_share: inside the liver region, the weight of the second stage's
            probabilities in the average with this model's (1.0: the second stage's alone).
        postprocess: the default post-processing for these weights: the zoo entry's
            :attr:`~keras_liverseg.zoo.ZooEntry.postprocess` for its bundled weights (also
            when a file with their SHA-256 is passed as a path), else the default
            :class:`PostprocessOptions` (every lesion kept, no growth).
        precision: what :attr:`model` computes in, ``"float32"`` or ``"bfloat16"``
            (:mod:`keras_liverseg.inference.precision`).
        runtime: what runs the model: ``"keras"`` (the Keras backend) or ``"onnx"`` (ONNX
            Runtime on the exported float32 graph,
            :mod:`keras_liverseg.inference.onnx_runtime`).
        keras_name: the Keras model's name (for the report; known without building it).
        onnx_stem: the file-name stem of the cached ONNX graphs of a zoo model with a
            weights file (:func:`~keras_liverseg.inference.onnx_runtime.onnx_stem`);
            ``None``: named after the graph's own hash.
    """

    model: Any
    preprocessing: Any
    name: str
    weights: str | None = None
    weights_sha256: str | None = None
    liver_roi: Any = None
    second_stage: LoadedModel | None = None
    second_stage_share: float = 1.0
    postprocess: PostprocessOptions = PostprocessOptions()
    precision: str = "float32"
    runtime: str = "keras"
    keras_name: str | None = None
    onnx_stem: str | None = None
    _build: Callable[[], Any] | None = field(default=None, repr=False, compare=False)
    _resized: dict = field(default_factory=dict, repr=False, compare=False)
    _runners: dict = field(default_factory=dict, repr=False, compare=False)

    def keras_model(self) -> Any:
        """:attr:`model`, built now if it was not (Keras starts here for a model loaded
        from cached ONNX graphs)."""
        if self.model is None:
            self.model = self._build()
            self.keras_name = self.model.name
        return self.model

    def at_input_size(self, size: tuple[int, int]) -> Any:
        """:attr:`model` rebuilt for ``(H, W)`` input slices, same weights (cached)."""
        size = (int(size[0]), int(size[1]))
        if size == tuple(self.preprocessing.input_size):
            return self.keras_model()
        if size not in self._resized:
            self._resized[size] = at_input_size(self.keras_model(), size, self.name)
        return self._resized[size]

    def runner_at(self, size: tuple[int, int]) -> Any:
        """What predicts ``(H, W)`` slices (its ``predict_on_batch``): the Keras model of
        :meth:`at_input_size`, or for the ``onnx`` runtime an ONNX Runtime session of it
        (exported and cached the first time a size is needed; a cached graph runs without
        building the Keras model)."""
        if self.runtime == "keras":
            return self.at_input_size(size)
        size = (int(size[0]), int(size[1]))
        if size not in self._runners:
            from keras_liverseg.inference.onnx_runtime import cached_runner

            runner = None
            if self.onnx_stem is not None:
                runner = cached_runner(self.onnx_stem,
                                       (*size, self.preprocessing.context_slices))
            self._runners[size] = runner or self._exported(size)
        return self._runners[size]

    def _exported(self, size: tuple[int, int]) -> Any:
        model = self.at_input_size(size)  # first: it starts the backend if it must
        from keras_liverseg.export import ExportMismatch
        from keras_liverseg.inference.onnx_runtime import onnx_runner

        try:
            return onnx_runner(model, stem=self.onnx_stem)
        except (RuntimeError, ExportMismatch) as error:
            raise ModelLoadError(one_line(error, limit=300)) from None

    def postprocess_options(self) -> PostprocessOptions:
        """The default post-processing steps for these weights (:attr:`postprocess`)."""
        return self.postprocess

    def describe(self) -> dict[str, Any]:
        """Model facts for the report."""
        facts = {
            "name": self.name,
            "keras_name": self.keras_name or getattr(self.model, "name", None),
            "weights": self.weights,
            "weights_sha256": self.weights_sha256,
            "precision": self.precision,
            "runtime": self.runtime,
            **self.preprocessing.to_dict(),
        }
        if self.liver_roi is not None:
            facts["liver_roi"] = {"margin": self.liver_roi.margin,
                                  "slices": self.liver_roi.slices}
        if self.second_stage is not None:
            facts["second_stage"] = {**self.second_stage.describe(),
                                     "share": self.second_stage_share}
        return facts


def at_input_size(model: Any, size: tuple[int, int], name: str | None = None) -> Any:
    """A functional Keras ``model`` rebuilt from its config for ``(H, W)`` input, sharing
    nothing but a copy of its weights (convolutional models only: a layer whose weights or
    config depend on the input size makes this fail with :class:`ModelLoadError`)."""
    import keras

    config = model.get_config()
    inputs = [layer for layer in config.get("layers", []) if layer["class_name"] == "InputLayer"]
    if len(inputs) != 1:
        raise ModelLoadError(f"model {name or model.name!r} is not a one-input functional model")
    shape = list(inputs[0]["config"]["batch_shape"])
    inputs[0]["config"]["batch_shape"] = [shape[0], int(size[0]), int(size[1]), *shape[3:]]
    try:
        twin = keras.Model.from_config(config)
        twin.set_weights(model.get_weights())
    except Exception as error:  # shape-dependent layers or weights
        text = one_line(error, limit=200)
        raise ModelLoadError(
            f"model {name or model.name!r} cannot read {size[0]}x{size[1]} slices: {text}"
        ) from None
    return twin


def fast_variant(name: str) -> str:
    """The zoo's fast variant of ``name`` (``<name>_fast``) when it has one, else ``name``."""
    from keras_liverseg import zoo

    candidate = f"{name}_fast"
    known = {entry.name for entry in zoo.entries()}
    return candidate if not name.endswith("_fast") and candidate in known else name


def _wrap(model: Any, name: str, weights: str | None, sha256: str | None,
          precision: str = "float32") -> LoadedModel:
    from keras_liverseg.inference.precision import at_precision
    from keras_liverseg.models import inference_model, preprocessing_of

    try:
        preprocessing = preprocessing_of(model)
        single = inference_model(model, fold=False)
    except (ValueError, KeyError) as error:
        raise ModelLoadError(f"model {name!r} cannot be used for prediction: {error}") from None
    if len(single.inputs) != 1 or len(single.outputs) != 1:
        raise ModelLoadError(f"model {name!r} must have one input and one output")
    # folded and in its precision in one copy of the model
    return LoadedModel(at_precision(single, precision, fold=True), preprocessing, name,
                       weights, sha256, precision=precision)


def _loaded_graph(graph: Any, name: str, weights: str | None, sha256: str | None,
                  precision: str) -> LoadedModel:
    """A :class:`LoadedModel` of a graph :func:`_wrap` made before (from the cache)."""
    from keras_liverseg.models import preprocessing_of

    return LoadedModel(graph, preprocessing_of(graph), name, weights, sha256,
                       precision=precision)


def load_model(
    name: str = "unet_sharp",
    weights: str | os.PathLike | None = "default",
    *,
    fast: bool = False,
    second_stage_weights: str | os.PathLike | None = "auto",
    progress: bool = True,
    precision: str = "auto",
    runtime: str = "keras",
    start_backend: Callable[[], None] | None = None,
) -> LoadedModel:
    """Load a zoo model for prediction, with its second stage when it has one.

    Args:
        name: zoo name (``liverseg models`` lists them).
        weights: ``"default"`` (the entry's released weights: bundled, cached or
            downloaded, :mod:`keras_liverseg.zoo.download`), a release name of the entry
            (``liverseg zoo list``), a ``.keras`` model file (loaded as
            saved, Keras safe mode on; ``name`` then only picks the fast variant), a
            ``.weights.h5`` file (loaded into the zoo architecture), or ``None`` (untrained).
        fast: use the zoo's fast variant ``<name>_fast`` when there is one (UNet#: the
            pruned L2 head); otherwise the same model.
        second_stage_weights: weights of the entry's second stage (a cascade, e.g.
            ``unet_sharp`` -> ``unet_sharp_roi``), as ``weights``; ``None`` for no second
            stage; ``"auto"``: its bundled weights when ``weights`` is ``"default"`` (and
            they are installed), and no second stage for other weights (a fine-tuned first
            stage is used alone).
        progress: show a progress bar on stderr while weights download.
        precision: ``"auto"`` (bfloat16 on a CPU that computes it natively, else float32;
            ``$LIVERSEG_PRECISION`` overrides it), ``"float32"`` or ``"bfloat16"``
            (:mod:`keras_liverseg.inference.precision`); both stages get it.
        runtime: ``"keras"`` or ``"onnx"``: ONNX Runtime on the float32 graph, exported
            per slice size and cached (:mod:`keras_liverseg.inference.onnx_runtime`; slice
            models only, TensorFlow backend and the ``export`` extra); ``precision`` is
            then float32. A zoo model with weights whose facts and graphs are cached
            loads and predicts without Keras.
        start_backend: called before Keras is first imported by this loading, if it is
            (the CLI starts the backend quietly; with ``runtime="onnx"`` and a warm cache,
            never).

    Raises:
        ModelLoadError: unknown name, missing or unreadable weights, no released weights
            (or no such release), a download that failed, second-stage weights for a model
            without a second stage.
    """
    from keras_liverseg import zoo

    if fast:
        name = fast_variant(name)
    try:
        entry = zoo.get_entry(name)
    except ValueError as error:
        raise ModelLoadError(str(error)) from None
    if second_stage_weights == "auto":
        released = entry.second_stage and zoo.default_weights(entry.second_stage) is not None
        second_stage_weights = "default" if weights == "default" and released else None
    if second_stage_weights is not None and entry.second_stage is None:
        raise ModelLoadError(f"{name!r} has no second stage to load weights into")
    chosen = _precision_for(runtime, precision)
    loaded = _load_single(name, weights, progress, chosen, runtime, start_backend)
    if runtime == "onnx" and loaded.preprocessing.volumetric:
        raise ModelLoadError(f"--runtime onnx runs slice models; {name!r} is a 3D model")
    if second_stage_weights is not None:
        second = _load_single(entry.second_stage, second_stage_weights, progress, chosen,
                              runtime, start_backend)
        if second.preprocessing.num_classes != loaded.preprocessing.num_classes:
            raise ModelLoadError(
                f"second stage {entry.second_stage!r} has {second.preprocessing.num_classes}"
                f" classes, {name!r} has {loaded.preprocessing.num_classes}"
            )
        loaded.second_stage = second
        loaded.second_stage_share = entry.second_stage_share
    return loaded


def _precision_for(runtime: str, precision: str) -> str:
    """The precision ``load_model`` builds in: ``precision`` chosen for the Keras runtime,
    float32 for ONNX Runtime (which needs onnxruntime, and to export a graph the
    ``export`` extra and TensorFlow: checked when one is exported)."""
    from keras_liverseg.inference.onnx_runtime import RUNTIMES, check_onnxruntime_installed

    if runtime not in RUNTIMES:
        raise ModelLoadError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    if runtime == "onnx":
        if precision == "bfloat16":
            raise ModelLoadError("--runtime onnx computes in float32; drop --precision "
                                 "bfloat16 or use --runtime keras")
        try:
            check_onnxruntime_installed()
        except RuntimeError as error:
            raise ModelLoadError(str(error)) from None
        return "float32"
    from keras_liverseg.inference.precision import choose_precision

    try:
        return choose_precision(precision)
    except ValueError as error:
        raise ModelLoadError(str(error)) from None


def _load_single(name: str, weights: str | os.PathLike | None, progress: bool = True,
                 precision: str = "float32", runtime: str = "keras",
                 start_backend: Callable[[], None] | None = None) -> LoadedModel:
    """One zoo model, without its second stage (``name``: a known zoo name). With a
    weights file, its graph is loaded from the cache when it was kept there
    (:mod:`keras_liverseg.inference.graph_cache`), and kept there when it is made. For the
    ``onnx`` runtime, a model whose facts are cached
    (:func:`~keras_liverseg.inference.onnx_runtime.cached_facts`) is not built: Keras
    starts (``start_backend`` first) only when a slice size has no cached graph."""
    from keras_liverseg import zoo
    from keras_liverseg.inference.onnx_runtime import cached_facts, onnx_stem

    entry = zoo.get_entry(name)
    weights, sha256, record = _weights_source(name, weights)
    stem = facts = None
    if sha256 is not None:
        stem = onnx_stem(name, sha256, {**entry.config, **(record.config if record else {})})
        facts = cached_facts(stem) if runtime == "onnx" else None

    def build() -> LoadedModel:
        if start_backend is not None:  # before anything imports Keras
            start_backend()
        if runtime == "onnx":  # built to export a graph: TensorFlow and tf2onnx
            _check_export()
        source = None if weights is None else str(weights)
        if stem is not None:
            from keras_liverseg.inference.graph_cache import cached_graph

            graph = cached_graph(stem, precision)
            if graph is not None:
                return _loaded_graph(graph, name, source, sha256, precision)
        model = _zoo_model(name, record or weights, weights, progress)
        loaded = _wrap(model, name, source, sha256, precision)
        if stem is not None:
            from keras_liverseg.inference.graph_cache import keep_graph

            keep_graph(stem, precision, loaded.model)
        return loaded

    if facts is not None:
        from keras_liverseg.inference.preprocessing import Preprocessing

        loaded = LoadedModel(None, Preprocessing.from_dict(facts["preprocessing"]), name,
                             str(weights), sha256, precision=precision,
                             keras_name=facts.get("keras_name"),
                             _build=lambda: build().model)
    else:
        loaded = build()
        if runtime == "onnx" and stem is not None and not loaded.preprocessing.volumetric:
            from keras_liverseg.inference.onnx_runtime import write_facts

            write_facts(stem, {"preprocessing": loaded.preprocessing.to_dict(),
                               "keras_name": loaded.model.name})
    loaded.runtime, loaded.onnx_stem = runtime, stem if runtime == "onnx" else None
    loaded.liver_roi = entry.liver_roi
    loaded.postprocess = zoo.postprocess_for(name, sha256, [record] if record else None)
    return loaded


def _weights_source(name: str, weights: str | os.PathLike | None) -> tuple:
    """``(weights, sha256, record)`` of zoo model ``name``'s ``weights`` argument: a file
    path (its SHA-256), a release or ``"default"`` (the index record, not downloaded), or
    ``None`` (untrained: no SHA-256)."""
    from keras_liverseg import zoo

    if weights is None:
        return None, None, None
    if zoo.is_weights_path(weights):
        path = Path(weights)
        if not path.is_file():
            raise ModelLoadError(f"{path}: weights file not found")
        return str(path), zoo.sha256_of(path), None
    text = str(weights)
    if "/" in text or os.sep in text or Path(text).exists() or text.lower().endswith(
            _OTHER_WEIGHT_FILES):
        raise ModelLoadError(
            f"{weights}: weights must be a .keras model file or a .weights.h5 file"
        )
    try:  # the default weights or a release: bundled, cached or downloaded
        record = zoo.weights_record(name, text)
    except zoo.WeightsNotAvailable as error:
        raise ModelLoadError(str(error)) from None
    return weights, record.sha256, record


def _zoo_model(name: str, source: Any, weights: Any, progress: bool) -> Any:
    """``zoo.load(name, source)`` (``weights``: what the caller asked for, named in errors),
    its failures as one-line :class:`ModelLoadError`."""
    from keras_liverseg import zoo

    try:
        return zoo.load(name, weights=source, progress=progress)
    except (zoo.WeightsNotAvailable, zoo.DownloadError, zoo.WeightsMismatch,
            zoo.WeightsDoNotMatch) as error:  # one line each
        raise ModelLoadError(str(error)) from None
    except Exception as error:  # corrupt file, unsafe model, ...
        text = one_line(error, limit=200)
        raise ModelLoadError(f"cannot load weights {weights} for {name!r}: {text}") from None


def _check_export() -> None:
    from keras_liverseg.inference.onnx_runtime import check_onnx_runtime

    try:
        check_onnx_runtime()
    except RuntimeError as error:
        raise ModelLoadError(str(error)) from None


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
