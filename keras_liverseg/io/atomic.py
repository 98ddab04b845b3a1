"""Write outputs atomically: to a temporary file beside the target, then rename.

A crash, an exception or Ctrl-C while writing leaves the target untouched (absent or the
previous version) and removes the temporary file, so no half-written output is ever left.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["atomic_path", "atomic_paths", "atomic_write_bytes", "atomic_write_text"]


def _temporary_name(target: Path) -> Path:
    # Keep the full name at the end so writers that pick the format from the suffix
    # (nibabel: ".nii.gz", pillow: ".png") still see it; a leading dot hides the file.
    token = secrets.token_hex(4)
    return target.with_name(f".{target.name}.{token}.partial{_suffix(target)}")


def _suffix(target: Path) -> str:
    name = target.name.lower()
    for double in (".nii.gz", ".tar.gz"):
        if name.endswith(double):
            return target.name[-len(double) :]
    return target.suffix


@contextlib.contextmanager
def atomic_paths(targets: Sequence[str | os.PathLike]) -> Iterator[list[Path]]:
    """Yield one temporary path per target; on success rename them all onto their targets.

    Parent folders are created when missing. If the body raises (or is interrupted), every
    temporary file is removed and no target is touched. The renames happen only after the
    body has finished, one after the other (each ``os.replace`` is atomic).
    """
    finals = [Path(t) for t in targets]
    temps: list[Path] = []
    try:
        for final in finals:
            final.parent.mkdir(parents=True, exist_ok=True)
            temps.append(_temporary_name(final))
        yield list(temps)
        for temp, final in zip(temps, finals, strict=True):
            if not temp.exists():
                raise RuntimeError(f"nothing was written to the temporary file for {final}")
        for temp, final in zip(temps, finals, strict=True):
            os.replace(temp, final)
    finally:
        for temp in temps:
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Single-target :func:`atomic_paths`: ``with atomic_path(out) as tmp: save(tmp)``."""
    with atomic_paths([target]) as (temp,):
        yield temp


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``target`` atomically; returns the target path."""
    with atomic_path(target) as temp:
        temp.write_bytes(data)
    return Path(target)


def atomic_write_text(target: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``target`` atomically; returns the target path."""
    return atomic_write_bytes(target, text.encode("utf-8"))
