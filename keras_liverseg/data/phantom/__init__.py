"""Deprecated: the phantom generator is now :mod:`keras_liverseg.phantom`.

This alias keeps ``keras_liverseg.data.phantom`` and its submodules
(``keras_liverseg.data.phantom.scanner``, ...) importable for one release: they are the
same module objects as ``keras_liverseg.phantom``'s. Importing it warns once
(``DeprecationWarning``); it will be removed in the next release.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import warnings

import keras_liverseg.phantom as _phantom
from keras_liverseg.phantom import *  # noqa: F403  (the new package's public names)

__all__ = list(_phantom.__all__)

warnings.warn(
    "keras_liverseg.data.phantom is deprecated and will be removed in the next release: "
    "import keras_liverseg.phantom instead",
    DeprecationWarning,
    stacklevel=2,
)

# The old submodule paths name the new modules themselves (one module object each, so a
# patch through either name reaches both).
for _info in pkgutil.iter_modules(_phantom.__path__):
    _module = importlib.import_module(f"{_phantom.__name__}.{_info.name}")
    sys.modules[f"{__name__}.{_info.name}"] = _module
    globals()[_info.name] = _module
del _info, _module
