"""NumPy's BLAS on one thread while a model predicts.

NumPy's OpenBLAS keeps its worker threads spinning for a while after each product, waiting
for the next one. Between two batches the predictor takes the last batch's probabilities
back to the slice grid with a NumPy product
(:func:`~keras_liverseg.inference.predictor.to_slice_grid`), so when the model's next batch
starts, OpenBLAS's spinning threads hold the cores that the backend's own threads
(TensorFlow, ONNX Runtime) need. On a 2-core host that made the
default model's forward 0.0217 instead of 0.0135 s a slice inside ``liverseg predict`` (the
same batches back to back: 0.0135), and the whole prediction of a 512 x 512 x 100 phantom
0.7 s slower (issue 24). One BLAS thread does those products nearly as fast and spins on
nobody's core.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

__all__ = ["one_blas_thread"]


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """Inside the block, the BLAS libraries loaded in this process (NumPy's, SciPy's) use
    one thread; their previous limits are restored after it (``threadpoolctl``)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield
