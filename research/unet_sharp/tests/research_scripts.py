"""Import a script of ``research/unet_sharp/`` as a module, for its tests."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FOLDER = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """``research/unet_sharp/<name>.py`` as module ``name``, registered in ``sys.modules``
    (process pools pickle a script's functions by that name)."""
    spec = importlib.util.spec_from_file_location(name, FOLDER / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module
