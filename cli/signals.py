"""Ctrl-C and SIGTERM: unwind like an error, so that no temporary file or claim is left.

Python turns SIGINT into ``KeyboardInterrupt``; :func:`handle_termination` turns SIGTERM
(``kill``, a batch scheduler, ``docker stop``) into :class:`Terminated` the same way. Both
unwind through the ``finally`` blocks of :mod:`keras_liverseg.io.atomic`, which remove the
temporary files and the output claims, and ``liverseg`` then exits with 130 (SIGINT) or 143
(SIGTERM), as a shell reports a process stopped by these signals. Files that belong
together (a training checkpoint) are written under
:func:`keras_liverseg.io.atomic.uninterrupted`, so a signal takes effect after them.

An exception raised by a signal handler is lost when the signal arrives while Python runs
a callback whose exceptions are ignored (a garbage-collection hook, a ``__del__``: JAX
registers such a hook). So the handlers also record the signal, and the long loops call
:func:`raise_pending` at safe points (each batch of ``predict``, each epoch of ``train``):
a lost signal still stops the run there.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["INTERRUPTED", "TERMINATED", "Terminated", "handle_termination", "raise_pending",
           "received"]

INTERRUPTED = 130  # 128 + SIGINT
TERMINATED = 143  # 128 + SIGTERM


class Terminated(BaseException):  # noqa: N818 - named like KeyboardInterrupt, its sibling
    """SIGTERM was received (raised in the main thread, like ``KeyboardInterrupt``)."""


_PENDING: list[int] = []  # the signals received and not yet raised again
_RECEIVED: list[int] = []  # every signal received, for the exit code


def _terminate(number, _frame) -> None:
    # A second SIGTERM must not cut the clean-up short; SIGKILL still stops the process.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _PENDING.append(number)
    _RECEIVED.append(number)
    raise Terminated()


def _interrupt(number, frame) -> None:
    _PENDING.append(number)
    _RECEIVED.append(number)
    signal.default_int_handler(number, frame)  # raises KeyboardInterrupt


def received() -> int | None:
    """The last signal received inside :func:`handle_termination` (even one whose exception
    was turned into another error by C code it interrupted, such as a ``SystemError``), or
    None."""
    return _RECEIVED[-1] if _RECEIVED else None


def raise_pending() -> None:
    """Raise again the exception of a signal received earlier (whose first exception a
    callback may have swallowed); nothing when no signal came."""
    if _PENDING:
        number = _PENDING.pop()
        _PENDING.clear()
        raise Terminated() if number == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def handle_termination() -> Iterator[None]:
    """Raise :class:`Terminated` on SIGTERM inside the block (unless SIGTERM is ignored).

    The previous handler comes back when the block ends.
    """
    _PENDING.clear()
    _RECEIVED.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous != signal.SIG_DFL:  # ignored or handled by whoever runs us
        yield
        return
    previous_int = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGTERM, _terminate)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)
        _PENDING.clear()
