"""What can go wrong getting a zoo model's weights; every message is one line for the user."""

from __future__ import annotations


class WeightsNotAvailable(RuntimeError):
    """The zoo entry has no released weights (or none by the release name asked for):
    pass ``weights=None`` for an untrained model or a path to a weights file."""


class WeightsOffline(WeightsNotAvailable):
    """``LIVERSEG_OFFLINE`` is set and the weights are not in the cache; the message says
    which file is missing and how to get it."""


class WeightsMismatch(RuntimeError):
    """A weights file does not match the SHA-256 (or size) its index record gives."""


class WeightsDoNotMatch(ValueError):
    """A weights file holds another architecture's (or configuration's) weights.

    The message is one line: the file, the model and the first layer that differs.
    """


class DownloadError(RuntimeError):
    """Weights (or a mirror's index) could not be downloaded: no network, an HTTP error,
    a truncated or corrupt body, a full disk or a cache folder that cannot be written.
    Nothing was cached."""
