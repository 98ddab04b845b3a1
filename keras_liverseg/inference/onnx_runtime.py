"""Run a slice model's folded float32 graph with ONNX Runtime (``liverseg predict --runtime onnx``).

On a CPU without native bfloat16, ONNX Runtime runs the BatchNormalization-folded graph of
the default model in 0.83-0.89 times TensorFlow's float32 time (``benchmarks/bench_export.py``,
README "Export formats"); where the CPU has AMX or AVX-512 BF16, TensorFlow's bfloat16 is
faster still, so ``keras`` stays the default runtime.

ONNX fixes a graph's slice size, and a model with a ``pixel_spacing`` reads each scan on a
canvas of its own size, so one ONNX file is written per canvas size, the first time it is
needed, with Keras' tf2onnx exporter (TensorFlow backend; the ``export`` extra), checked
against Keras on phantom slices (:func:`keras_liverseg.export.check_export`: probabilities
within 1e-4) and cached under ``$LIVERSEG_HOME/onnx`` by the SHA-256 of the graph's config
and weights, so a later prediction at that size starts at once. A file is written to a
temporary name beside its place and renamed into it only after it passed the check; a cached
file that ONNX Runtime cannot open (truncated, say) is exported again. Two predictions that
need the same file at once export it once: the second waits for the first's file.

A zoo model with a weights file (bundled, a release, or a path) is also cached by name:
:func:`onnx_stem` hashes the zoo name, its configuration, the weights file's SHA-256 and
the versions of this package, of its inference graph (:data:`GRAPH_REVISION`) and of Keras,
and a small JSON file of the model's facts
(:func:`write_facts`: its :class:`~keras_liverseg.inference.preprocessing.Preprocessing`
and Keras name) sits beside its graphs. When both are cached, a prediction needs neither
Keras nor TensorFlow: ``load_model(..., runtime="onnx")`` reads the facts and ONNX Runtime
the graph (about 5 s less start-up on a 2-core host, README "Prediction speed"), and the
Keras model is built only if a slice size has no graph yet. The cache is kept per package
version: delete ``$LIVERSEG_HOME/onnx`` to clear it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from keras_liverseg.io.atomic import OutputBusy, atomic_path

__all__ = ["RUNTIMES", "OnnxRunner", "cached_facts", "cached_runner", "check_onnx_runtime",
           "check_onnxruntime_installed",
           "graph_sha256", "onnx_cache", "onnx_runner", "onnx_stem", "write_facts"]

RUNTIMES = ("keras", "onnx")

GRAPH_REVISION = 4
"""Part of every :func:`onnx_stem`, which names the cached ONNX graphs and the kept Keras
graphs (:mod:`keras_liverseg.inference.graph_cache`): raised when the inference graph built
from the same weights changes within one package version (2: convolutions of concatenations split,
:class:`~keras_liverseg.models.folding.ConcatConv2D`; 3: their up-sampled parts projected
before the up-sampling; 4: the projections' interpolation products taken block by block
along their bands), so that no older graph is served."""

EXPORT_WAIT_S = 600.0
"""How long a prediction waits for another process exporting the same graph (its claim on
the cache file) before it gives up; it then uses that process's file."""
WAIT_STEP_S = 0.5


class OnnxRunner:
    """An ONNX Runtime session that answers ``predict_on_batch`` as a Keras model does.

    Attributes:
        path: the ONNX file the session runs.
        input_shape: ``(None, H, W, C)``, the graph's input.
    """

    def __init__(self, path: str | os.PathLike):
        import onnxruntime

        self.path = Path(path)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only
        self.session = onnxruntime.InferenceSession(
            str(self.path), options, providers=["CPUExecutionProvider"])
        (inp,) = self.session.get_inputs()
        self._input = inp.name
        self.input_shape = (None, *inp.shape[1:])

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities of the HU batch ``(b, H, W, C)``."""
        (out,) = self.session.run(None, {self._input: np.asarray(batch, dtype=np.float32)})
        return out


def check_onnxruntime_installed() -> None:
    """Raise ``RuntimeError`` (one line) unless ONNX Runtime can be imported: all that a
    prediction from cached graphs needs."""
    if not _importable("onnxruntime"):
        raise RuntimeError("--runtime onnx needs onnxruntime: pip install "
                           "'keras_liverseg[export]'")


def check_onnx_runtime() -> None:
    """Raise ``RuntimeError`` (one line) unless this environment can export and run ONNX:
    the TensorFlow backend, tf2onnx and onnxruntime (the ``export`` extra)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise RuntimeError("--runtime onnx exports the model with TensorFlow: run it with "
                           "KERAS_BACKEND=tensorflow")
    missing = [module for module in ("onnxruntime", "tf2onnx", "onnx")
               if not _importable(module)]
    if missing:
        raise RuntimeError(f"--runtime onnx needs {', '.join(missing)}: pip install "
                           "'keras_liverseg[export]'")


def _importable(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def graph_sha256(model: Any) -> str:
    """SHA-256 of a Keras model's config and weights: the ONNX cache key (the same graph
    and weights give the same file, whatever the weights file was called)."""
    digest = hashlib.sha256(json.dumps(model.get_config(), sort_keys=True,
                                       default=str).encode())
    for array in model.get_weights():
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def onnx_cache() -> Path:
    """Where exported graphs are kept: ``$LIVERSEG_HOME/onnx`` (see
    :func:`keras_liverseg.zoo.download.liverseg_home`)."""
    from keras_liverseg.zoo.download import liverseg_home

    return liverseg_home() / "onnx"


def onnx_stem(name: str, weights_sha256: str, config: dict) -> str:
    """The file-name stem of zoo model ``name``'s cached graphs and facts, built with
    ``config`` (the entry's builder configuration with the weights record's) and the
    weights file of SHA-256 ``weights_sha256``: the same stem for the same model, weights,
    version of this package and version of Keras, which are known without importing Keras."""
    from keras_liverseg import __version__

    key = json.dumps({"name": name, "config": config, "weights_sha256": weights_sha256,
                      "keras_liverseg": __version__, "graph": GRAPH_REVISION,
                      "keras": importlib.metadata.version("keras")},
                     sort_keys=True, default=str)
    return f"{name}-{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def _graph_path(folder: Path, stem: str, size: tuple[int, ...]) -> Path:
    return folder / f"{stem}-{'x'.join(str(int(n)) for n in size)}.onnx"


def cached_facts(stem: str, cache: str | os.PathLike | None = None) -> dict | None:
    """The facts :func:`write_facts` kept for ``stem``; ``None`` when there are none or
    they cannot be read."""
    path = (Path(cache) if cache is not None else onnx_cache()) / f"{stem}.json"
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return facts if isinstance(facts, dict) and "preprocessing" in facts else None


def write_facts(stem: str, facts: dict, cache: str | os.PathLike | None = None) -> None:
    """Keep ``facts`` (JSON values: the model's ``preprocessing`` dict and ``keras_name``)
    for ``stem``, written whole or not at all; a cache that cannot be written, or a second
    process writing the same file, leaves it for a later run."""
    path = (Path(cache) if cache is not None else onnx_cache()) / f"{stem}.json"
    try:
        with atomic_path(path) as temporary:
            Path(temporary).write_text(json.dumps(facts, sort_keys=True), encoding="utf-8")
    except (OSError, OutputBusy):
        pass


def cached_runner(stem: str, size: tuple[int, int, int],
                  cache: str | os.PathLike | None = None) -> OnnxRunner | None:
    """The runner of ``stem``'s cached graph for ``(H, W, C)`` slices, or ``None``."""
    folder = Path(cache) if cache is not None else onnx_cache()
    return _cached(_graph_path(folder, stem, size))


def onnx_runner(model: Any, cache: str | os.PathLike | None = None,
                stem: str | None = None) -> OnnxRunner:
    """An :class:`OnnxRunner` of the float32 slice ``model`` (a functional Keras model at
    a fixed input size): its cached ONNX file, else one exported, checked and cached now.
    ``stem``: the file-name stem (:func:`onnx_stem`); default: the model's name and
    :func:`graph_sha256`.

    Raises:
        RuntimeError: no TensorFlow backend or no ``export`` extra
            (:func:`check_onnx_runtime`); a model that is not a float32 slice model; the
            cache folder cannot be written; another process has held the file's claim for
            :data:`EXPORT_WAIT_S` (one line each).
        keras_liverseg.export.ExportMismatch: the export does not compute what Keras does.
    """
    check_onnx_runtime()
    shape = tuple(model.inputs[0].shape[1:])
    if len(shape) != 3 or None in shape:
        raise RuntimeError("--runtime onnx runs slice models at a fixed size; "
                           f"this one reads {shape}")
    if any(getattr(layer, "compute_dtype", "float32") != "float32" for layer in model.layers):
        raise RuntimeError("--runtime onnx runs float32 graphs (use --precision float32)")
    folder = Path(cache) if cache is not None else onnx_cache()
    path = _graph_path(folder, stem or f"{model.name}-{graph_sha256(model)[:20]}", shape)
    waited = 0.0
    while True:
        runner = _cached(path)
        if runner is not None:
            return runner
        try:
            _export_checked(model, path)
            return OnnxRunner(path)
        except OutputBusy:  # another process is exporting this graph: use its file
            if waited >= EXPORT_WAIT_S:
                raise RuntimeError(f"another process has been exporting {path} for "
                                   f"{EXPORT_WAIT_S:.0f} s: try again when it has finished"
                                   ) from None
            time.sleep(WAIT_STEP_S)
            waited += WAIT_STEP_S


def _cached(path: Path) -> OnnxRunner | None:
    """The runner of the cached file at ``path``; ``None`` when there is none, or when it
    cannot be opened (truncated, overwritten), in which case it is removed."""
    if not path.is_file():
        return None
    try:
        return OnnxRunner(path)
    except Exception:
        path.unlink(missing_ok=True)
        return None


def _export_checked(model: Any, path: Path) -> None:
    """Export ``model`` to ``path`` through a temporary file that is renamed into place only
    after it passed :func:`~keras_liverseg.export.check_export`
    (:func:`~keras_liverseg.io.atomic.atomic_path`, which also claims ``path`` against a
    second process exporting it: :class:`OutputBusy`)."""
    from keras_liverseg.export import check_export, export_onnx

    try:
        with atomic_path(path) as temporary:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                exported = export_onnx(model, temporary)
            check_export(temporary, "onnx", exported)
    except OutputBusy:
        raise
    except OSError as error:
        raise RuntimeError(f"cannot write the ONNX cache {path.parent} "
                           f"({error.strerror or error}): set LIVERSEG_HOME to a writable "
                           "folder") from None
