"""The error evaluation raises for inputs a user can fix (the CLI turns it into ``Error: ...``)."""

from __future__ import annotations

__all__ = ["EvaluationInputError"]


class EvaluationInputError(ValueError):
    """A bad input to an evaluation: missing or unreadable file, unpaired cases, bad labels.

    The message is one line, names the file(s) involved and says what is wrong.
    """
