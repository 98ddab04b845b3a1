"""Who writes a run: the chief worker into the run folder, every other worker into scratch.

Under ``--strategy multi-worker`` (``TF_CONFIG``) every worker runs the same program with the
same ``--output``. As in TensorFlow's multi-worker guide, only the chief writes the run folder
(checkpoints, ``model.keras``, model card, history, TensorBoard logs, cache); the other
workers still do every save, into a scratch folder of their own that is removed when the run
ends, so that the program stays one code path for every worker and every strategy. All
workers *read* the run folder (resume: ``config.json``, ``state.json`` and the last
checkpoint are the chief's).

No TensorFlow import here: the CLI asks who is chief before it claims the run folder, on
either backend.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def multi_worker(strategy: str) -> bool:
    """Whether the strategy name ``strategy`` trains over the workers of ``TF_CONFIG``
    (``multi-worker``, or ``auto`` with ``TF_CONFIG`` set, on the TensorFlow backend)."""
    import keras

    if keras.backend.backend() != "tensorflow":
        return False
    return strategy == "multi-worker" or (strategy == "auto" and "TF_CONFIG" in os.environ)


def task() -> tuple[str, int]:
    """This process's ``(task type, index)`` in ``TF_CONFIG`` (``("worker", 0)`` without)."""
    config = json.loads(os.environ.get("TF_CONFIG") or "{}")
    entry = config.get("task") or {}
    return str(entry.get("type", "worker")), int(entry.get("index", 0))


def is_chief(strategy: str = "multi-worker") -> bool:
    """True on the worker that writes the run folder.

    Single-process strategies (and the JAX backend): always. Under ``TF_CONFIG``: the task
    of type ``chief``, or worker 0 of a cluster without a chief (TensorFlow's rule).
    """
    if not multi_worker(strategy):
        return True
    kind, index = task()
    if kind == "chief":
        return True
    cluster = json.loads(os.environ.get("TF_CONFIG") or "{}").get("cluster") or {}
    return kind == "worker" and index == 0 and not cluster.get("chief")


@contextlib.contextmanager
def write_folder(run: str | os.PathLike, strategy: str) -> Iterator[Path]:
    """The folder this process writes the run ``run`` into, for the block.

    The chief: ``run`` itself. Any other worker: a new scratch folder (under ``TMPDIR``),
    removed with everything in it when the block ends, however it ends.
    """
    if is_chief(strategy):
        yield Path(run)
        return
    kind, index = task()
    scratch = Path(tempfile.mkdtemp(prefix=f"liverseg-{kind}{index}-"))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
