"""Start the deep-learning backend without its C++ start-up chatter on stderr.

TensorFlow prints absl/oneDNN/CUDA-stub lines from C++ before any Python logging setting
can take effect; a user of the CLI should see our progress and errors only. The CLI
imports the backend through :func:`import_backend`, which points file descriptor 2 at
``/dev/null`` while TensorFlow loads and initialises. ``LIVERSEG_VERBOSE=1`` keeps them.
"""

from __future__ import annotations

import contextlib
import os
import sys


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
    with silenced_stderr():
        import keras

        if "TF_CONFIG" not in os.environ:
            keras.ops.add(keras.ops.zeros((1,)), 1.0)
