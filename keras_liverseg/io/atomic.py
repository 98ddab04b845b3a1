"""Write outputs safely: claim them first, write to a temporary file beside each, then rename.

* :func:`claim_paths` claims output files for the length of a run, before any work: it
  creates their folders, checks that they can be written there, refuses existing files
  unless ``overwrite``, and holds a lock so that a second run writing the same file fails
  at once (:class:`OutputBusy`) instead of replacing the first run's result.
* :func:`atomic_paths` writes through a temporary file per target and renames them onto the
  targets when the body has finished. A crash, an exception, Ctrl-C or SIGTERM while writing
  leaves the targets untouched (absent, or the previous version) and removes the temporary
  files, so no half-written output is ever left.
* :func:`uninterrupted` holds SIGINT and SIGTERM while a group of files that belong together
  (a training checkpoint) is written, and delivers them afterwards.

The lock of ``folder/seg.nii.gz`` is the hidden file ``folder/.seg.nii.gz.lock``; it exists
only while a run holds the claim. The target itself is not touched until the final rename,
so with ``overwrite`` the previous version stays intact until the new one is complete. The
lock is an advisory ``flock`` (POSIX), released by the system when a process dies: a lock
file left by a killed process does not block the next run, which takes it over.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import signal
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

try:  # POSIX
    import fcntl
except ImportError:  # pragma: no cover - Windows: an exclusively created lock file
    fcntl = None

__all__ = [
    "OutputBusy",
    "OutputExists",
    "atomic_path",
    "atomic_paths",
    "atomic_write_bytes",
    "atomic_write_text",
    "claim_folder",
    "claim_paths",
    "lock_path",
    "uninterrupted",
]


class OutputExists(FileExistsError):
    """The output exists and may not be replaced (``overwrite`` is off)."""


class OutputBusy(FileExistsError):
    """Another process is writing the same output (it holds the output's lock)."""


# Outputs this process holds, by resolved path, with the lock's file descriptor: a claim
# inside a claim (the CLI claims at the start, a writer claims again when it writes) is
# already held and is left to the outer one.
_HELD: dict[str, int] = {}
_HELD_GUARD = threading.Lock()


def lock_path(target: str | os.PathLike) -> Path:
    """The lock file of ``target``: ``.<name>.lock`` in the same folder."""
    target = Path(target)
    return target.with_name(f".{target.name}.lock")


def _key(path: Path) -> str:
    return str(path.resolve())


def _holder(lock: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        pid = int(lock.read_text().strip() or 0)
        if pid:
            return f" (pid {pid})"
    return ""


def _acquire(target: Path) -> int:
    """Lock ``target``'s lock file; returns its descriptor. Raises :class:`OutputBusy`."""
    lock = lock_path(target)
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    if fcntl is None:  # pragma: no cover
        flags |= os.O_EXCL
    while True:
        try:
            fd = os.open(lock, flags, 0o644)
        except FileExistsError:  # pragma: no cover - Windows
            raise OutputBusy(errno.EEXIST, "another process is writing it", str(target)) from None
        if fcntl is None:  # pragma: no cover
            break
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise OutputBusy(errno.EBUSY, f"another process{_holder(lock)} is writing it",
                             str(target)) from None
        # The previous holder removes the lock file before it lets go of it: a lock taken on
        # a removed file is no lock; open the file again.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        _release(fd, lock)
        raise
    return fd


def _release(fd: int, lock: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        lock.unlink()
    os.close(fd)


def _make_folders(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the ones created, outermost first.

    A folder that another process creates in the meantime (two workers writing into the
    same new cache folder) is used as it is, and not counted as created here.
    """
    missing = []
    for candidate in (folder, *folder.parents):
        if candidate.is_dir():
            break
        if candidate.exists() or candidate.is_symlink():
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(candidate))
        missing.append(candidate)
    created = []
    try:
        for candidate in reversed(missing):
            try:
                candidate.mkdir()
            except FileExistsError:
                if not candidate.is_dir():
                    raise
                continue
            created.append(candidate)
    except BaseException:
        _remove_empty(created)
        raise
    return created


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


@contextlib.contextmanager
def _claimed(targets: Sequence[str | os.PathLike], overwrite: bool,
             folders: bool) -> Iterator[list[Path]]:
    finals = [Path(t) for t in targets]
    seen: dict[str, Path] = {}
    for final in finals:
        key = _key(final)
        if key in seen:
            raise ValueError(f"{seen[key]} and {final} are the same file")
        seen[key] = final
    created: list[Path] = []
    taken: list[tuple[str, int, Path]] = []
    try:
        for final in finals:
            key = _key(final)
            with _HELD_GUARD:
                if key in _HELD:
                    continue
            if final.is_dir() and not folders:
                raise IsADirectoryError(errno.EISDIR, "is a folder", str(final))
            if final.exists() and not final.is_dir() and folders:
                raise NotADirectoryError(errno.ENOTDIR, "not a folder", str(final))
            created += _make_folders(final.parent)
            fd = _acquire(final)
            with _HELD_GUARD:
                _HELD[key] = fd
            taken.append((key, fd, lock_path(final)))
            if not overwrite and (final.exists() or final.is_symlink()):
                raise OutputExists(errno.EEXIST, "exists", str(final))
        yield finals
    finally:
        for key, fd, lock in reversed(taken):
            with _HELD_GUARD:
                _HELD.pop(key, None)
            _release(fd, lock)
        _remove_empty(created)


@contextlib.contextmanager
def claim_paths(targets: Sequence[str | os.PathLike], overwrite: bool = False
                ) -> Iterator[list[Path]]:
    """Claim output files for the length of the block, before any work is done.

    Creates the missing folders of each target, locks ``.<name>.lock`` beside it (which
    also shows that the folder can be written) and, unless ``overwrite``, refuses a target
    that exists. On leaving the block the locks are removed, and so are the folders it
    created if they are still empty. Writers inside the block (:func:`atomic_paths`) find
    the targets claimed by this process and write them.

    Raises:
        OutputExists: a target exists and ``overwrite`` is off.
        OutputBusy: another process holds a target's claim.
        IsADirectoryError: a target is a folder.
        NotADirectoryError: a parent of a target is a file.
        ValueError: two targets name the same file.
        OSError: a folder cannot be created or written (read-only, no permission, ...).
    """
    with _claimed(targets, overwrite, folders=False) as finals:
        yield finals


@contextlib.contextmanager
def claim_folder(folder: str | os.PathLike) -> Iterator[Path]:
    """Claim an output folder (a training run) as :func:`claim_paths` claims a file.

    The lock is ``.<name>.lock`` beside the folder, so the folder's content is untouched;
    the folder's parents are created, the folder itself is left to the caller.
    """
    with _claimed([folder], True, folders=True) as (final,):
        yield final


def _temporary_name(target: Path) -> Path:
    # Keep the full name at the end so writers that pick the format from the suffix
    # (nibabel: ".nii.gz", pillow: ".png") still see it; a leading dot hides the file.
    token = secrets.token_hex(4)
    return target.with_name(f".{target.name}.{token}.partial{_suffix(target)}")


def _suffix(target: Path) -> str:
    name = target.name.lower()
    for double in (".nii.gz", ".tar.gz", ".weights.h5"):  # Keras saves by the full suffix
        if name.endswith(double):
            return target.name[-len(double) :]
    return target.suffix


@contextlib.contextmanager
def atomic_paths(targets: Sequence[str | os.PathLike], overwrite: bool = True
                 ) -> Iterator[list[Path]]:
    """Yield one temporary path per target; on success rename them all onto their targets.

    The targets are claimed (:func:`claim_paths`) unless this process holds them already:
    parent folders are created when missing, and a target another process is writing
    raises :class:`OutputBusy`. If the body raises (or is interrupted), every temporary file
    is removed and no target is touched. The renames happen only after the body has
    finished, one after the other (each ``os.replace`` is atomic).
    """
    with claim_paths(targets, overwrite) as finals:
        temps: list[Path] = []
        try:
            temps = [_temporary_name(final) for final in finals]
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


@contextlib.contextmanager
def uninterrupted() -> Iterator[None]:
    """Hold SIGINT and SIGTERM inside the block and deliver them when it ends.

    For files that are only valid together (a checkpoint's weights, optimizer state and
    epoch counter): Ctrl-C or SIGTERM during the block takes effect after the last of them
    is written, with the handler that was in place (KeyboardInterrupt, the CLI's
    termination, or the default action). Outside the main thread it does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    previous = {}
    for number in (signal.SIGINT, signal.SIGTERM):
        handler = signal.getsignal(number)
        if handler in (signal.SIG_IGN, None):
            continue
        previous[number] = handler
        signal.signal(number, lambda received, _frame: pending.append(received))
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for number in dict.fromkeys(pending):
            signal.raise_signal(number)
