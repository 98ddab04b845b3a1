"""The error raised for scans that cannot be read or used."""

from __future__ import annotations


class InputError(ValueError):
    """A scan (or folder of scans) that cannot be read or segmented, with a one-line reason.

    The message is meant for the user as is: the CLI prints it as ``Error: <message>``.
    """


def one_line(error: BaseException | str, limit: int | None = None) -> str:
    """An error's message on one line (runs of whitespace, newlines included, become one
    space), or its type's name when it has no message; cut to ``limit`` characters, the last
    three ``...``, when longer.
    """
    text = " ".join(str(error).split())
    if not text and isinstance(error, BaseException):
        text = type(error).__name__
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text
