"""The environment of a test's JAX subprocess (the tests run in TensorFlow's process)."""

from __future__ import annotations

import os

FAST_COMPILE = "--xla_backend_optimization_level=0"
"""XLA without its backend optimisations. The tests' models are tiny, so running them costs
milliseconds, while XLA's optimising compile of every op they need (a weight initialiser's
random draw for each new kernel shape, among them) took most of these tests' minutes; with
this flag a model is built four to five times faster. Results are the same to float32
rounding, within the tests' tolerances."""


def jax_env(xla_flags: str = "", **extra: str) -> dict[str, str]:
    """``os.environ`` with Keras on JAX on the CPU and :data:`FAST_COMPILE`, plus
    ``xla_flags`` (more XLA flags) and ``extra`` variables."""
    flags = " ".join(filter(None, [os.environ.get("XLA_FLAGS"), FAST_COMPILE, xla_flags]))
    return {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu", "XLA_FLAGS": flags,
            **extra}
