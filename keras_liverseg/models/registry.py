"""Architectures by name: ``build(name, **config)`` and ``available()``.

A new architecture is one module in ``keras_liverseg/models/`` whose builder is decorated
with :func:`register`, plus its import in ``keras_liverseg/models/__init__.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import keras

_BUILDERS: dict[str, Callable[..., keras.Model]] = {}


def register(name: str):
    """Decorator: make a builder available as ``build(name, ...)``."""

    def decorator(builder: Callable[..., keras.Model]):
        if name in _BUILDERS:
            raise ValueError(f"architecture {name!r} is registered twice")
        _BUILDERS[name] = builder
        return builder

    return decorator


def available() -> list[str]:
    """Names of the registered architectures, sorted."""
    return sorted(_BUILDERS)


def get_builder(name: str) -> Callable[..., keras.Model]:
    try:
        return _BUILDERS[name]
    except KeyError:
        raise ValueError(
            f"unknown architecture {name!r}; available: {', '.join(available())}"
        ) from None


def build(name: str, **config) -> keras.Model:
    """Build the architecture ``name`` with the builder's keyword arguments ``config``."""
    return get_builder(name)(**config)
