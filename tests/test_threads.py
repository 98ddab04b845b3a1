"""NumPy's BLAS runs on one thread while a model predicts, and as before afterwards
(:mod:`keras_liverseg.inference.threads`)."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from keras_liverseg.inference.loading import LoadedModel
from keras_liverseg.inference.predictor import predict_slices
from keras_liverseg.inference.preprocessing import Preprocessing, class_names


def _blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


class Recorder:
    """A model that answers background everywhere and records NumPy's BLAS threads."""

    def __init__(self) -> None:
        self.seen: list[set[int]] = []

    def predict_on_batch(self, batch: np.ndarray) -> np.ndarray:
        self.seen.append(_blas_threads())
        out = np.zeros((*batch.shape[:3], 3), np.float32)
        out[..., 0] = 1.0
        return out


def test_blas_runs_on_one_thread_while_the_model_predicts():
    assert _blas_threads(), "NumPy's BLAS is not visible to threadpoolctl"
    recorder = Recorder()
    pre = Preprocessing(hu_window=(-200.0, 300.0), input_size=(16, 16), context_slices=3,
                        num_classes=3, classes=class_names(3))
    loaded = LoadedModel(recorder, pre, "recorder")
    volume = np.zeros((20, 24, 9), np.int16)
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()
        labels, _ = predict_slices(loaded, volume, batch_size=4)
        after = _blas_threads()
    assert recorder.seen and all(seen == {1} for seen in recorder.seen)
    assert after == before
    assert labels.shape == volume.shape and not labels.any()
