"""The error raised for scans that cannot be read or used."""

from __future__ import annotations


class InputError(ValueError):
    """A scan (or folder of scans) that cannot be read or segmented, with a one-line reason.

    The message is meant for the user as is: the CLI prints it as ``Error: <message>``.
    """
