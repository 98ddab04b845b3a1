"""Turn a ``liverseg train`` run folder into a weights release that a mirror serves.

A release folder is the base URL of a mirror (``liverseg zoo publish RUN -o RELEASES``)::

    RELEASES/index.json                  the weights index (:mod:`keras_liverseg.zoo.index`)
    RELEASES/<release>/<model>.keras     the run's final model (best validation weights)
    RELEASES/<release>/<model>.md        its model card

Serve it with ``python -m http.server --directory RELEASES 8000`` and point users at it with
``LIVERSEG_WEIGHTS_URL=http://HOST:8000`` (or a shared folder, read as ``file://``): their
``zoo.load(model)`` and ``liverseg predict --model MODEL`` then download, check and cache
the newest published weights, and ``--weights <release>`` picks a release by name. Publishing
into a folder that has releases already adds to its index; a release's files are never
replaced by different ones.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

from keras_liverseg.io.atomic import atomic_paths
from keras_liverseg.zoo.download import sha256_of
from keras_liverseg.zoo.index import INDEX_FILE, WeightsRecord, read_index, write_index

__all__ = ["PublishError", "publish", "release_name"]

_RELEASE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class PublishError(ValueError):
    """A run folder that cannot be published, or a release folder it would spoil; one line."""


def release_name(text: str) -> str:
    """``text`` if it is a valid release name (letters, digits, ``.``, ``_``, ``-``; a
    letter or digit first; at most 64), else :class:`PublishError`."""
    if not _RELEASE.match(text):
        raise PublishError(f"release name {text!r} must be 1-64 letters, digits, '.', '_' or "
                           "'-', starting with a letter or digit")
    return text


def publish(run_dir: str | os.PathLike, release_dir: str | os.PathLike,
            release: str | None = None, default: bool = True) -> WeightsRecord:
    """Publish the final model of the ``liverseg train`` run ``run_dir`` into
    ``release_dir`` (see the module docstring) and return its index record.

    Args:
        run_dir: a finished run folder (``model.keras`` and ``model_card.json``).
        release_dir: the mirror's folder; created when missing.
        release: the release name; default: the run folder's name.
        default: make these the model's default weights on this mirror (the model's other
            records there stop being its default).

    Publishing the same run again is a no-op that returns the existing record.
    """
    run = Path(run_dir)
    card = _run_card(run)
    model_name = card["model"]
    release = release_name(release if release is not None else run.resolve().name)
    source = run / "model.keras"
    out = Path(release_dir)
    if out.exists() and not out.is_dir():
        raise PublishError(f"{out} is a file, not a release folder")
    index_path = out / INDEX_FILE
    records = read_index(index_path) if index_path.is_file() else []
    sha256 = sha256_of(source)
    record = WeightsRecord(
        model=model_name, release=release, path=f"{release}/{model_name}.keras",
        size=source.stat().st_size, sha256=sha256, card=f"{release}/{model_name}.md",
        default=default, parameters=_parameters(model_name, source),
        summary=_summary(card))
    for old in records:
        if old.model == model_name and old.release == release:
            if old.sha256 == sha256:
                return old
            raise PublishError(f"{index_path} already has other weights of {model_name!r} in "
                               f"release {release!r}: choose another --release")
    target = out / record.path
    if target.exists():
        raise PublishError(f"{target} exists but is not in {index_path}: move it away or "
                           "choose another --release")
    if default:
        records = [replace(r, default=False) if r.model == model_name else r for r in records]
    text = write_index([record, *records])
    with atomic_paths([target, out / record.card, index_path]) as (weights, model_card, index):
        weights.write_bytes(source.read_bytes())
        model_card.write_text(_card_text(run, card, record))
        index.write_text(text)
    return record


def _run_card(run: Path) -> dict:
    """The run's ``model_card.json``, checked to describe a finished run of a zoo model."""
    from keras_liverseg.zoo.catalog import get_entry

    if not run.is_dir():
        raise PublishError(f"{run}: no such run folder")
    path = run / "model_card.json"
    if not path.is_file() or not (run / "model.keras").is_file():
        raise PublishError(f"{run} is not a finished `liverseg train` run (no model_card.json "
                           "and model.keras): finish it with `liverseg train --resume` first")
    try:
        card = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise PublishError(f"{path}: cannot read it ({error})") from None
    if not isinstance(card, dict) or not isinstance(card.get("model"), str):
        raise PublishError(f"{path}: no 'model' field; not written by `liverseg train`")
    try:
        get_entry(card["model"])
    except ValueError as error:
        raise PublishError(f"{path}: {error}") from None
    return card


def _parameters(model_name: str, path: Path) -> int:
    """Load the file as ``zoo.load`` will (safe mode): it must load, and this counts it."""
    from keras_liverseg.zoo.loading import load

    try:
        return int(load(model_name, weights=path).count_params())
    except Exception as error:  # a corrupt or foreign file: say so, in one line
        from keras_liverseg.io.errors import one_line

        raise PublishError(f"{path} does not load as zoo model {model_name!r}: "
                           f"{one_line(error, 160)}") from None


def _summary(card: dict) -> str:
    data = card.get("data", {})
    cases = len(data.get("training_cases", []))
    return (f"trained by `liverseg train` on {cases} cases of {data.get('folder', '?')}; "
            f"best epoch {card.get('best_epoch', '?')}")


def _card_text(run: Path, card: dict, record: WeightsRecord) -> str:
    """The release's model card: how to get the weights, then the run's own card."""
    run_card = run / "model_card.md"
    body = run_card.read_text() if run_card.is_file() else json.dumps(card, indent=2) + "\n"
    return "\n".join([
        f"# {record.model}, release {record.release}",
        "",
        f"- file: `{record.path}` ({record.size:,} bytes, {record.parameters:,} parameters)",
        f"- SHA-256: `{record.sha256}`",
        f"- validation: {json.dumps(card.get('validation', {}))}",
        "",
        "Use it (serve this release folder, e.g. `python -m http.server --directory "
        "RELEASES 8000`):",
        "",
        "```bash",
        "export LIVERSEG_WEIGHTS_URL=http://HOST:8000",
        f"liverseg zoo fetch {record.model} --release {record.release}",
        f"liverseg predict scan.nii.gz --model {record.model} --weights {record.release} "
        "-o seg.nii.gz",
        "```",
        "",
        "## The training run's card",
        "",
        re.sub(r"^# ", "### ", body, flags=re.MULTILINE).rstrip(),
        "",
    ])

