"""The weights index: which released weights exist for each zoo entry, and where they live.

The index is a small JSON file. The package ships one (``keras_liverseg/weights/index.json``)
and a weights mirror serves one beside its files (``<LIVERSEG_WEIGHTS_URL>/index.json``), so
a release adds weights without a code change::

    {"format": 1,
     "weights": [
       {"model": "unet", "release": "phantoms-gpu-2026-12-04",
        "path": "phantoms-gpu-2026-12-04/unet.keras", "size": 23869712,
        "sha256": "90a5...", "card": "zoo/unet.md", "default": true,
        "parameters": 1968547, "summary": "..."}]}

A record's ``path`` is relative to the mirror's base URL (a ``bundled`` record's file lies
in the package instead: ``keras_liverseg/weights/<path>``). ``.keras`` files carry their own
configuration; a ``.weights.h5`` file is loaded into the zoo entry's architecture built with
the entry's configuration updated by the record's ``config``. A record may carry the
post-processing chosen for its weights (``postprocess``: the fields of
:class:`~keras_liverseg.inference.postprocess.PostprocessOptions`).

Which record :func:`default_record` gives for an entry: a mirror's record marked default
(the user pointed ``LIVERSEG_WEIGHTS_URL`` at weights they chose), else the package's
record marked default, else none (the entry builds untrained).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["FORMAT", "INDEX_FILE", "BadIndex", "WeightsRecord", "bundled_file", "default_record",
           "find_record", "packaged_records", "parse_index", "read_index", "records_for",
           "write_index"]

FORMAT = 1
INDEX_FILE = "index.json"  # in the package and at a mirror's base URL
WEIGHT_SUFFIXES = (".keras", ".weights.h5")


class BadIndex(ValueError):
    """A weights index that cannot be read; the message names the file and the field."""


@dataclass(frozen=True)
class WeightsRecord:
    """One released weights file of one zoo entry.

    Attributes:
        model: the zoo entry's name.
        release: the release it belongs to (a name; ``--release`` picks it).
        path: where the file lives, relative to the mirror's base URL (bundled: relative
            to ``keras_liverseg/weights``); a POSIX path without ``..``.
        size: the file's size in bytes.
        sha256: the file's SHA-256 (hex), checked before the file is cached and on load.
        card: the model card (a repository path such as ``zoo/unet.md``, or a path relative
            to the mirror's base URL for a published release).
        bundled: the file is package data (works offline, never downloaded).
        default: the entry's weights when none are asked for by release.
        parameters: parameter count of the model ``zoo.load`` makes of the file (for
            ``liverseg zoo list``).
        summary: one line about the weights.
        config: builder configuration overrides for a ``.weights.h5`` file.
        postprocess: post-processing options chosen for these weights (may be empty).
        source: where the record came from: ``"package"`` or the mirror's base URL.
    """

    model: str
    release: str
    path: str
    size: int
    sha256: str
    card: str = ""
    bundled: bool = False
    default: bool = False
    parameters: int | None = None
    summary: str = ""
    config: dict = field(default_factory=dict)
    postprocess: dict = field(default_factory=dict)
    source: str = "package"

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def is_keras_file(self) -> bool:
        return self.path.endswith(".keras")

    def to_json(self) -> dict[str, Any]:
        """The record as it is written in an index (without its ``source``)."""
        data = asdict(self)
        data.pop("source")
        return {key: value for key, value in data.items() if value not in ({}, None, "")}


_REQUIRED = {"model": str, "release": str, "path": str, "size": int, "sha256": str}
_OPTIONAL = {"card": str, "bundled": bool, "default": bool, "parameters": int, "summary": str,
             "config": dict, "postprocess": dict}


def parse_index(data: Any, where: str, source: str = "package") -> list[WeightsRecord]:
    """The records of an index already decoded from JSON; :class:`BadIndex` names the
    first field that is missing or of the wrong type."""
    if not isinstance(data, dict) or not isinstance(data.get("weights"), list):
        raise BadIndex(f"{where}: not a weights index (no 'weights' list)")
    if data.get("format", FORMAT) != FORMAT:
        raise BadIndex(f"{where}: index format {data.get('format')!r}; this version of "
                          f"keras_liverseg reads format {FORMAT} (upgrade keras_liverseg)")
    records = []
    for number, item in enumerate(data["weights"]):
        label = f"{where}: weights[{number}]"
        if not isinstance(item, dict):
            raise BadIndex(f"{label} is not an object")
        for key, kind in _REQUIRED.items():
            if not isinstance(item.get(key), kind) or isinstance(item.get(key), bool):
                raise BadIndex(f"{label}: '{key}' missing or not a {kind.__name__}")
        for key in ("model", "release"):  # folder names of the cache (download.cache_path)
            if item[key] in ("", ".", "..") or "/" in item[key] or "\\" in item[key]:
                raise BadIndex(f"{label}: '{key}' {item[key]!r} must be a name, not a path")
        for key, kind in _OPTIONAL.items():
            if key in item and not isinstance(item[key], kind):
                raise BadIndex(f"{label}: '{key}' is not a {kind.__name__}")
        path = PurePosixPath(item["path"])
        if path.is_absolute() or ".." in path.parts or not item["path"].endswith(WEIGHT_SUFFIXES):
            raise BadIndex(f"{label}: path {item['path']!r} must be relative, without "
                              "'..', and end in .keras or .weights.h5")
        if len(item["sha256"]) != 64 or any(c not in "0123456789abcdef" for c in item["sha256"]):
            raise BadIndex(f"{label}: sha256 must be 64 lower-case hex digits")
        known = {key: item[key] for key in (*_REQUIRED, *_OPTIONAL) if key in item}
        records.append(WeightsRecord(**known, source=source))
    return records


def read_index(path: str | Path, source: str = "package") -> list[WeightsRecord]:
    """The records of the index file at ``path``."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as error:
        raise BadIndex(f"{path}: cannot read the weights index ({error})") from None
    return parse_index(data, str(path), source)


def write_index(records: list[WeightsRecord]) -> str:
    """The JSON text of an index holding ``records``."""
    return json.dumps({"format": FORMAT, "weights": [r.to_json() for r in records]},
                      indent=2) + "\n"


def _packaged_index_path() -> Path:
    return Path(str(resources.files("keras_liverseg").joinpath("weights", INDEX_FILE)))


def packaged_records() -> list[WeightsRecord]:
    """The records of the index shipped in the package."""
    return read_index(_packaged_index_path())


def bundled_file(record: WeightsRecord) -> Path | None:
    """The installed file of a bundled record, or ``None`` (not bundled, or not installed)."""
    if not record.bundled:
        return None
    path = _packaged_index_path().parent.joinpath(*PurePosixPath(record.path).parts)
    return path if path.is_file() else None


def records_for(model: str, records: list[WeightsRecord]) -> list[WeightsRecord]:
    """The records of one zoo entry, the default one first, mirrors' before the package's."""
    own = [r for r in records if r.model == model]
    return sorted(own, key=lambda r: (not r.default, r.source == "package"))


def default_record(model: str, records: list[WeightsRecord]) -> WeightsRecord | None:
    """The weights ``zoo.load(model)`` uses: see the module docstring."""
    own = [r for r in records_for(model, records) if r.default]
    return own[0] if own else None


def find_record(model: str, release: str, records: list[WeightsRecord]) -> WeightsRecord | None:
    """The record of ``model`` in ``release`` (a mirror's before the package's)."""
    own = [r for r in records_for(model, records) if r.release == release]
    return own[0] if own else None
