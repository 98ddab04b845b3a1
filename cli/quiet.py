"""Start the deep-learning backend without its C++ start-up chatter on stderr.

TensorFlow prints absl/oneDNN/CUDA-stub lines from C++ before any Python logging setting
can take effect; a user of the CLI should see our progress and errors only. The CLI
imports the backend through :func:`import_backend`, which points file descriptor 2 at
``/dev/null`` while TensorFlow loads and initialises. ``LIVERSEG_VERBOSE=1`` keeps them.

It also keeps two packages that TensorFlow and Keras import at start-up, only when they
are installed, from loading for features a command never uses
(:data:`UNUSED_AT_START_UP`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator

UNUSED_AT_START_UP = {
    # tensorflow.lite.python.util: TFLite's converter from JAX functions (``jax.jit``)
    "jax": "tensorflow",
    # keras.src.saving.file_editor: its display in a notebook
    "IPython": None,
}
"""Packages imported at start-up, when installed, for what no ``liverseg`` command uses
(name: the only backend under which it is kept out, None for any). Installed (the
``jax`` and ``test`` extras install JAX; IPython comes with Jupyter), they add 0.5 s and
0.4 s to every command that loads the backend, on a 2-core host (``python -X importtime``,
issue 24). A package already imported is left alone, and later imports find it as usual.
"""


@contextlib.contextmanager
def silenced_stderr():
    """Redirect the process's file descriptor 2 to /dev/null inside the block."""
    if os.environ.get("LIVERSEG_VERBOSE"):
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def import_backend() -> None:
    """Import Keras and its backend, and run one op so that lazy start-up happens now.

    Under ``TF_CONFIG`` (multi-worker training) no op is run: TensorFlow's collective ops
    must be configured by ``MultiWorkerMirroredStrategy`` before the first op.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    backend = configured_backend()
    unused = [name for name, under in UNUSED_AT_START_UP.items() if under in (None, backend)]
    with silenced_stderr(), kept_out(unused):
        import keras

        if "TF_CONFIG" not in os.environ:
            keras.ops.add(keras.ops.zeros((1,)), 1.0)


def configured_backend() -> str:
    """The backend Keras will load, found as Keras finds it: ``$KERAS_BACKEND``, else
    ``keras.json`` in ``$KERAS_HOME`` (default ``~/.keras``), else ``"tensorflow"``."""
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    try:
        with open(os.path.join(home, "keras.json")) as handle:
            return str(json.load(handle).get("backend", "tensorflow"))
    except (OSError, ValueError, AttributeError):
        return "tensorflow"


@contextlib.contextmanager
def kept_out(names: list[str]) -> Iterator[None]:
    """Inside the block, importing one of the top-level packages ``names`` raises
    ImportError (what the code that imports them optionally expects when they are not
    installed); those already imported are left alone."""
    blocked = [name for name in names if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # the import system's "not importable" mark
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
