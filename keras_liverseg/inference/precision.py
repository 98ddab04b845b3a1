"""Run inference in bfloat16 where the CPU computes it natively, float32 elsewhere.

A CPU with AMX (``amx_bf16``) or AVX-512 BF16 (``avx512_bf16``) multiplies bfloat16
matrices several times faster than float32 (a 2-core AMX host: 1061 against 310 GFLOP/s,
``benchmarks/bench_forward.py``); without them bfloat16 is emulated and slower. So
``"auto"`` picks bfloat16 only on such a CPU, with the TensorFlow backend and no GPU, and
float32 everywhere else. A bfloat16 model is the float32 one rebuilt under Keras' mixed
precision policy ``"mixed_bfloat16"`` (Micikevicius et al. 2018): weights stay float32,
convolutions compute in bfloat16; its ``HUWindow`` (raw HU in) and its output layers (the
class probabilities) stay float32. Its bilinear up-sampling becomes
:class:`~keras_liverseg.layers.BilinearUpSampling2D`, which stays in bfloat16 where
TensorFlow's resize would answer in float32.
"""

from __future__ import annotations

import os
import platform
from typing import Any

__all__ = ["PRECISIONS", "at_precision", "choose_precision", "cpu_flags", "cpu_name",
           "native_bfloat16"]

PRECISIONS = ("auto", "float32", "bfloat16")
_NATIVE_FLAGS = ("amx_bf16", "avx512_bf16")


def _cpuinfo(field: str) -> str:
    """The value of the first ``field`` line of ``/proc/cpuinfo`` ("" off Linux)."""
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.split(":", 1)[0].strip() == field:
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def cpu_flags() -> set[str]:
    """The CPU's feature flags (``avx512f``, ``amx_bf16``, ...; empty off Linux)."""
    return set(_cpuinfo("flags").split())


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else what :mod:`platform` says."""
    return _cpuinfo("model name") or platform.processor() or platform.machine() or "?"


def native_bfloat16() -> bool:
    """The CPU computes bfloat16 natively (AMX or AVX-512 BF16; read on Linux only)."""
    return any(flag in cpu_flags() for flag in _NATIVE_FLAGS)


def choose_precision(requested: str = "auto") -> str:
    """``"float32"`` or ``"bfloat16"``: ``requested`` as it is, or for ``"auto"``
    ``$LIVERSEG_PRECISION`` when set, else bfloat16 exactly when the backend is
    TensorFlow, no GPU is in use and the CPU has native bfloat16 (:func:`native_bfloat16`).
    """
    if requested == "auto" and os.environ.get("LIVERSEG_PRECISION", "").strip():
        requested = os.environ["LIVERSEG_PRECISION"].strip().lower()
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {requested!r}")
    if requested != "auto":
        return requested
    import keras

    from keras_liverseg.inference.device import gpu_count

    if keras.backend.backend() != "tensorflow" or gpu_count():
        return "float32"
    return "bfloat16" if native_bfloat16() else "float32"


def at_precision(model: Any, precision: str, fold: bool = False) -> Any:
    """``model`` (a functional Keras model) in ``precision``: itself for float32, else a
    copy with the same weights whose layers are rebuilt under ``"mixed_bfloat16"`` (see
    the module docstring for the layers kept float32). With ``fold``, its
    BatchNormalizations are folded into their convolutions
    (:func:`~keras_liverseg.models.folding.fold_batch_norm`) in the same copy: the model
    is copied once, not twice (a third of a second less for ``liverseg predict`` to load
    the default model, issue 24), and has its convolutions of concatenations split, their
    up-sampled parts projected first (:class:`~keras_liverseg.models.folding.ConcatConv2D`:
    on a 2-core AMX host the default model's forward 31 % faster in float32, 21 % in
    bfloat16 at predict's batch of 4)."""
    if precision not in ("float32", "bfloat16"):
        raise ValueError(f"precision must be float32 or bfloat16, got {precision!r}")
    from keras_liverseg.models.folding import copy_model, fold_batch_norm

    rebuild = None if precision == "float32" else _bfloat16_rebuild(model)
    if fold:  # and convolve their concatenations' parts (folding.py)
        return fold_batch_norm(model, rebuild, split_concatenations=True)
    return model if rebuild is None else copy_model(model, rebuild)


def _bfloat16_rebuild(model: Any):
    """How :func:`at_precision` rebuilds a layer of ``model`` in bfloat16
    (a :data:`~keras_liverseg.models.folding.LayerRebuild`): under ``"mixed_bfloat16"``,
    but its ``HUWindow`` and output layers as they are; a bilinear ``UpSampling2D``
    (float32 out on TensorFlow) becomes the blocks' bfloat16 up-sampling layer of the same
    name and factor (:func:`~keras_liverseg.layers.conv_blocks.upsampling_layer`), which
    stays in bfloat16."""
    import keras

    from keras_liverseg.layers import HUWindow
    from keras_liverseg.layers.conv_blocks import upsampling_layer

    keep = {layer.name for layer in model.layers if isinstance(layer, HUWindow)}
    keep |= {tensor._keras_history.operation.name for tensor in model.outputs}
    policy = keras.dtype_policies.DTypePolicy("mixed_bfloat16")
    serialised = keras.dtype_policies.serialize(policy)  # a config holds it so

    def rebuild(layer, config: dict):
        if layer.name in keep:
            return layer.__class__.from_config(config)
        if (type(layer) is keras.layers.UpSampling2D and layer.interpolation == "bilinear"
                and layer.data_format == "channels_last" and len(set(layer.size)) == 1):
            return upsampling_layer(layer.size[0], name=layer.name, dtype=policy)
        return layer.__class__.from_config({**config, "dtype": serialised})

    return rebuild
