"""The Keras graph ``liverseg predict`` runs, kept as a ``.keras`` file per zoo model, weights
and precision, so that a later prediction loads it instead of making it again.

Making the graph takes three steps: build the zoo architecture, load its weights, and copy
it folded, split and in the chosen precision
(:func:`~keras_liverseg.inference.precision.at_precision`): 0.6-0.8 s for the default model
on a 2-core host, where loading the result saved as a ``.keras`` file takes 0.2 s (issue 24,
start-up). A zoo model loaded with a weights file (bundled, a release or a path: anything
with a SHA-256) keeps its graph under ``$LIVERSEG_HOME/graphs`` the first time, named by
:func:`~keras_liverseg.inference.onnx_runtime.onnx_stem` (the zoo name, its configuration,
the weights' SHA-256, the versions of this package, of its inference graph and of Keras)
with the Keras backend and the precision. A JSON file beside it holds the file's SHA-256,
written after the file: a graph without it, or that does not match it, or that Keras cannot
load (safe mode on: nothing is unpickled) is made again and replaces it. Both are written
to temporary names and renamed into place. A cache that cannot be written is left alone:
the graph is then made each time, as before.
"""

from __future__ import annotations

import contextlib
import json
import os
import warnings
from pathlib import Path
from typing import Any

from keras_liverseg.io.atomic import OutputBusy, atomic_path

__all__ = ["cached_graph", "graph_cache", "keep_graph"]


def graph_cache() -> Path:
    """Where graphs are kept: ``$LIVERSEG_HOME/graphs`` (see
    :func:`keras_liverseg.zoo.download.liverseg_home`)."""
    from keras_liverseg.zoo.download import liverseg_home

    return liverseg_home() / "graphs"


def _paths(stem: str, precision: str, cache: str | os.PathLike | None) -> tuple[Path, Path]:
    import keras

    folder = Path(cache) if cache is not None else graph_cache()
    base = f"{stem}-{keras.backend.backend()}-{precision}"
    return folder / f"{base}.keras", folder / f"{base}.json"


def cached_graph(stem: str, precision: str, cache: str | os.PathLike | None = None) -> Any:
    """The Keras model :func:`keep_graph` kept for ``stem`` in ``precision``, or ``None``
    (none kept, or one that does not match its SHA-256 or does not load: it is removed)."""
    from keras_liverseg.zoo.download import sha256_of

    path, facts = _paths(stem, precision, cache)
    try:
        expected = json.loads(facts.read_text(encoding="utf-8"))["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        if sha256_of(path) != expected:
            raise ValueError(f"{path} does not match its SHA-256")
        import keras

        import keras_liverseg.models  # noqa: F401  (registers every layer a graph holds)

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception:
        for stale in (facts, path):
            with contextlib.suppress(OSError):
                stale.unlink()
        return None


def keep_graph(stem: str, precision: str, model: Any,
               cache: str | os.PathLike | None = None) -> None:
    """Keep ``model`` (the graph made for ``stem`` in ``precision``) for
    :func:`cached_graph`; a cache that cannot be written, or a second process writing the
    same files, leaves them for a later run."""
    from keras_liverseg.zoo.download import sha256_of

    path, facts = _paths(stem, precision, cache)
    try:
        with atomic_path(path) as temporary:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.save(temporary)
        with atomic_path(facts) as temporary:
            Path(temporary).write_text(json.dumps({"sha256": sha256_of(path)}),
                                       encoding="utf-8")
    except (OSError, OutputBusy):
        pass
