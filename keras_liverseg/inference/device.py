"""Choose CPU or GPU for inference, for whichever Keras backend is active.

``select_device("cpu")`` before Keras is imported hides the GPUs from every backend
(``CUDA_VISIBLE_DEVICES=-1``, ``JAX_PLATFORMS=cpu``). After import, TensorFlow can still
be told to ignore its GPUs if it has not started using them.
"""

from __future__ import annotations

import os
import sys

__all__ = ["DeviceError", "gpu_count", "select_device"]


class DeviceError(RuntimeError):
    """The requested device is not available."""


def gpu_count() -> int:
    """Number of GPUs the active Keras backend can use."""
    import keras

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return len(tf.config.get_visible_devices("GPU"))
    if backend == "jax":
        import jax

        return sum(device.platform == "gpu" for device in jax.devices())
    if backend == "torch":
        import torch

        return torch.cuda.device_count()
    return 0


def _hide_gpus_after_import() -> None:
    import keras

    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        try:
            tf.config.set_visible_devices([], "GPU")
        except RuntimeError:  # TensorFlow already initialised its GPUs
            if tf.config.get_visible_devices("GPU"):
                raise DeviceError(
                    "cannot switch to the CPU: TensorFlow is already using the GPU; "
                    "set CUDA_VISIBLE_DEVICES=-1 before starting"
                ) from None
    elif gpu_count():
        raise DeviceError(
            f"cannot switch the {keras.backend.backend()} backend to the CPU after it started; "
            "set CUDA_VISIBLE_DEVICES=-1 before starting"
        )


def select_device(device: str | None) -> None:
    """Use ``"cpu"``, ``"gpu"`` or, with None, whatever the backend picks (GPU if any).

    Raises:
        DeviceError: ``"gpu"`` without a usable GPU, or an unknown device name.
    """
    if device is None:
        return
    device = device.lower()
    if device not in ("cpu", "gpu"):
        raise DeviceError(f"unknown device {device!r}; use 'cpu' or 'gpu'")
    if device == "cpu":
        if "keras" not in sys.modules:
            os.environ["CUDA_VISIBLE_DEVICES"] = "-1"
            os.environ["JAX_PLATFORMS"] = "cpu"
        else:
            _hide_gpus_after_import()
        return
    if gpu_count() == 0:
        import keras

        raise DeviceError(
            f"--device gpu: no GPU is available to Keras ({keras.backend.backend()} backend); "
            "use --device cpu"
        )
