"""Refuse images that cannot fit in memory before allocating them."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np

from keras_liverseg.io.errors import InputError

__all__ = ["available_memory", "check_memory", "describe_array"]


def available_memory() -> int | None:
    """Bytes of memory available now: ``MemAvailable`` of ``/proc/meminfo``, else the
    physical memory (``os.sysconf``), else None (unknown)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, OSError, ValueError):
        return None


def _size(nbytes: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if nbytes >= scale:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes} bytes"


def describe_array(shape: Sequence[int], dtype: np.dtype | type) -> str:
    """``"512x512x90 int16 (47.2 MB)"``: an array's dimensions, type and size."""
    dtype = np.dtype(dtype)
    dims = "x".join(str(int(n)) for n in shape)
    return f"{dims} {dtype.name} ({_size(math.prod(int(n) for n in shape) * dtype.itemsize)})"


def check_memory(
    shape: Sequence[int], dtype: np.dtype | type, source: object, extra_bytes: int = 0
) -> None:
    """Raise :class:`InputError` if an array of ``shape`` and ``dtype`` (plus
    ``extra_bytes``, e.g. a second copy) is larger than the memory available now.

    Nothing is checked where the available memory is unknown.
    """
    needed = math.prod(int(n) for n in shape) * np.dtype(dtype).itemsize + int(extra_bytes)
    available = available_memory()
    if available is not None and needed > available:
        raise InputError(
            f"{source}: the image is {describe_array(shape, dtype)}, more than the "
            f"{_size(available)} of memory available"
        )
