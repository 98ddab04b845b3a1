"""The output files of every command: checked, claimed and written the same way.

Each command names its outputs and inputs with the option that gave them (``"--csv"``,
``"OUTPUT"``), so that every refusal is one line a user can act on:

* :func:`refuse_clashes`: an output that is one of the inputs (the same path, a link to it,
  a hard link), an output inside an input folder, and two outputs naming the same file are
  refused before any work.
* :func:`claim`: the outputs are claimed when the run starts
  (:func:`keras_liverseg.io.atomic.claim_paths`): their folders are created and shown to be
  writable, existing files are refused without ``--overwrite``, and a second run writing
  the same file fails at once. The claim ends with the command (or on any error, Ctrl-C or
  SIGTERM) and leaves nothing behind.
* :func:`write_text`: a text output written atomically.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from keras_liverseg.cli.errors import UserError
from keras_liverseg.io.atomic import (
    OutputBusy,
    OutputExists,
    atomic_write_text,
    claim_folder,
    claim_paths,
)

__all__ = ["claim", "claim_run_folder", "cannot_write", "refuse_clashes", "write_text"]

# option name -> path (None: not given); a list of pairs where one option names many files
Named = Mapping[str, "Path | None"] | Sequence[tuple[str, "Path | None"]]


def _present(named: Named) -> list[tuple[str, Path]]:
    pairs = named.items() if isinstance(named, Mapping) else named
    return [(name, Path(path)) for name, path in pairs if path is not None]


def _same(a: Path, b: Path) -> bool:
    try:
        if os.path.samefile(a, b):
            return True
    except OSError:  # one of them does not exist
        pass
    return a.resolve() == b.resolve()


def _inside(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder.resolve())


def refuse_clashes(outputs: Named, inputs: Named) -> None:
    """Refuse an output that is an input, lies in an input folder, or is another output.

    Args:
        outputs: option name -> output file or folder (``None``: not given).
        inputs: option name -> input file or folder (``None``: not given). An input folder
            (a folder of scans, a DICOM series, a dataset) holds no output, at any depth.
    """
    given = _present(outputs)
    for name, path in given:
        for source_name, source in _present(inputs):
            if source.is_dir():
                if _same(path, source):
                    raise UserError(f"{name} {path} is the {source_name} folder; "
                                    "choose another one")
                if _inside(path, source):
                    raise UserError(f"{name} {path} is inside the {source_name} folder "
                                    f"{source}; write it elsewhere")
            elif _same(path, source):
                what = (f"the {source_name}" if str(path) == str(source)
                        else f"the same file as {source_name} {source}")
                raise UserError(f"{name} {path} is {what}; an output never replaces an "
                                "input, choose another file")
    for i, (name, path) in enumerate(given):
        for other_name, other in given[i + 1 :]:
            if _same(path, other):
                raise UserError(f"{name} and {other_name} name the same file {path}")


def cannot_write(name: str, path: Path, error: OSError) -> UserError:
    """The one-line error of an output that cannot be written."""
    reason = error.strerror or str(error)
    where = error.filename
    if where is not None and Path(where) != path:
        reason = f"{where}: {reason}"
    return UserError(f"cannot write {name} {path}: {reason}")


def _refusal(named: list[tuple[str, Path]], error: OSError) -> UserError:
    target = Path(error.filename) if error.filename is not None else None
    name, path = next(((n, p) for n, p in named if target is not None and p == target),
                      named[0])
    if isinstance(error, OutputExists):
        return UserError(f"{name} {path} exists; pass --overwrite to replace it")
    if isinstance(error, OutputBusy):
        return UserError(f"{name} {path}: {error.strerror}; wait for it to finish or "
                         "choose another file")
    if isinstance(error, IsADirectoryError) and target == path:
        return UserError(f"{name} {path} is a folder; give a file name")
    return cannot_write(name, path, error)


@contextlib.contextmanager
def claim(outputs: Named, overwrite: bool) -> Iterator[None]:
    """Claim the given outputs for the block (see the module docstring); one-line errors."""
    named = _present(outputs)
    try:
        context = claim_paths([path for _, path in named], overwrite)
        context.__enter__()
    except OSError as error:
        raise _refusal(named, error) from None
    except ValueError as error:  # two names for one file
        raise UserError(str(error)) from None
    with contextlib.ExitStack() as stack:
        stack.push(context)
        yield


@contextlib.contextmanager
def claim_run_folder(name: str, folder: Path) -> Iterator[None]:
    """Claim an output folder (a training run, a dataset) for the block; one-line errors."""
    try:
        context = claim_folder(folder)
        context.__enter__()
    except OSError as error:
        if isinstance(error, NotADirectoryError) and Path(error.filename or "") == folder:
            raise UserError(f"{name} {folder} is a file; give a folder") from None
        raise _refusal([(name, folder)], error) from None
    with contextlib.ExitStack() as stack:
        stack.push(context)
        yield


def write_text(name: str, path: Path, text: str) -> None:
    """Write ``text`` to the output ``path`` atomically; an OS error is one line."""
    try:
        atomic_write_text(path, text)
    except OSError as error:
        raise cannot_write(name, path, error) from None
