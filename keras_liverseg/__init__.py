"""keras_liverseg: liver and liver-tumor segmentation in abdominal CT with Keras 3.

Submodules are imported lazily so that ``liverseg --help`` and ``import keras_liverseg``
stay fast; ``keras_liverseg.layers``, ``.models``, ``.zoo`` and friends load Keras on
first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_SUBMODULES = ("layers", "models", "zoo", "losses", "metrics", "data", "io", "inference")
_ATTRIBUTES = {"predict_volume": "inference", "Segmentation": "inference"}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _ATTRIBUTES:
        module = importlib.import_module(f"{__name__}.{_ATTRIBUTES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["__version__", *_SUBMODULES, *_ATTRIBUTES]
