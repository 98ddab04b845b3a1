"""Find a zoo model's weights file: bundled, else cached, else downloaded from a mirror.

Where the weights come from, in order (the Keras way, as ``keras.utils.get_file``):

1. **Bundled**: package data in ``keras_liverseg/weights`` (the default ``unet_sharp``).
2. **Cache**: ``$LIVERSEG_HOME`` (default ``$KERAS_HOME/liverseg``, else
   ``~/.keras/liverseg``), as ``weights/<model>/<release>/<file>``.
3. **Mirror**: ``$LIVERSEG_WEIGHTS_URL`` (``http://``, ``https://`` or ``file://``); unset,
   the ``releases/`` folder of the source checkout the package runs from, when there is one.
   A download goes to a temporary file beside its target, is checked (size, then SHA-256
   against the index record) and only then renamed onto the target, so a partial or corrupt
   download is never cached nor loaded, and two processes fetching the same file end with
   one good copy (each rename is atomic; the last one wins with identical bytes).

``LIVERSEG_OFFLINE=1`` never touches the network: a file that is not bundled or cached
raises :class:`~keras_liverseg.zoo.errors.WeightsOffline`, naming it and how to get it.

A mirror named by ``LIVERSEG_WEIGHTS_URL`` may serve an ``index.json`` (``liverseg zoo
publish`` writes one): its records join the package's (:mod:`keras_liverseg.zoo.index`).
It is downloaded once and cached (``mirrors/<hash of the URL>/index.json``); ``liverseg zoo
fetch`` refreshes it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable
from pathlib import Path

from keras_liverseg.io.errors import one_line
from keras_liverseg.zoo.errors import DownloadError, WeightsMismatch, WeightsOffline
from keras_liverseg.zoo.index import (
    INDEX_FILE,
    BadIndex,
    WeightsRecord,
    bundled_file,
    packaged_records,
    parse_index,
    write_index,
)

__all__ = ["all_records", "cache_path", "fetch", "is_cached", "liverseg_home", "mirror_records",
           "offline", "resolve", "sha256_of", "verify_file", "weights_url"]

CHUNK = 1 << 16
TIMEOUT_S = 30.0


def liverseg_home() -> Path:
    """The cache folder: ``$LIVERSEG_HOME``, else ``$KERAS_HOME/liverseg``, else
    ``~/.keras/liverseg``."""
    if os.environ.get("LIVERSEG_HOME"):
        return Path(os.environ["LIVERSEG_HOME"]).expanduser()
    if os.environ.get("KERAS_HOME"):
        return Path(os.environ["KERAS_HOME"]).expanduser() / "liverseg"
    return Path("~/.keras/liverseg").expanduser()


def offline() -> bool:
    """``LIVERSEG_OFFLINE`` is set to a true value (``1``, ``true``, ``yes``)."""
    return os.environ.get("LIVERSEG_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def _checkout_releases() -> Path | None:
    """The ``releases/`` folder of the source checkout this package runs from, if any."""
    root = Path(__file__).resolve().parents[2]
    folder = root / "releases"
    return folder if (root / "setup.cfg").is_file() and folder.is_dir() else None


def weights_url() -> str | None:
    """The mirror's base URL (no trailing slash): ``$LIVERSEG_WEIGHTS_URL``, else the source
    checkout's ``releases/`` folder as a ``file://`` URL, else ``None``."""
    url = os.environ.get("LIVERSEG_WEIGHTS_URL", "").strip()
    if url:
        if "://" not in url:  # a plain folder
            url = Path(url).expanduser().resolve().as_uri()
        return url.rstrip("/")
    releases = _checkout_releases()
    return releases.as_uri() if releases is not None else None


def sha256_of(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_path(record: WeightsRecord) -> Path:
    """Where ``record``'s file is (or would be) cached."""
    return liverseg_home() / "weights" / record.model / record.release / record.file_name


def verify_file(path: Path, record: WeightsRecord) -> None:
    """Raise :class:`WeightsMismatch` unless ``path`` has the record's size and SHA-256."""
    size = path.stat().st_size
    if size != record.size:
        raise WeightsMismatch(f"{path} has {size} bytes, the index says {record.size} "
                              f"({record.model}, release {record.release})")
    actual = sha256_of(path)
    if actual != record.sha256:
        raise WeightsMismatch(f"{path} has SHA-256 {actual}, the index says {record.sha256} "
                              f"({record.model}, release {record.release})")


def is_cached(record: WeightsRecord) -> bool:
    """The record's file is in the cache with the right size (not re-hashed here)."""
    path = cache_path(record)
    return path.is_file() and path.stat().st_size == record.size


def resolve(record: WeightsRecord, progress: bool = True) -> Path:
    """The checked local file of ``record``: bundled, cached or downloaded (see the module
    docstring). A cached file that fails the check is downloaded again (not offline)."""
    if record.bundled:
        path = bundled_file(record)
        if path is None:
            raise WeightsMismatch(f"the bundled weights {record.path} of {record.model!r} are "
                                  "not installed: reinstall keras_liverseg")
        try:
            verify_file(path, record)
        except WeightsMismatch as error:
            raise WeightsMismatch(f"{error}: the installed file is corrupt or was replaced; "
                                  "reinstall keras_liverseg") from None
        return path
    path = cache_path(record)
    if path.is_file():
        try:
            verify_file(path, record)
            return path
        except WeightsMismatch as error:
            if offline():
                raise WeightsOffline(f"{error}; LIVERSEG_OFFLINE is set, so it is not "
                                     f"downloaded again: run `liverseg zoo fetch {record.model}"
                                     f" --release {record.release}` with network") from None
            warnings.warn(f"{error}; downloading it again", stacklevel=2)
    return fetch(record, progress=progress, force=True)


def _missing_offline(record: WeightsRecord) -> WeightsOffline:
    return WeightsOffline(
        f"LIVERSEG_OFFLINE is set and the weights of {record.model!r} (release "
        f"{record.release}, {record.file_name}, {record.size / 1e6:.1f} MB) are not in the "
        f"cache: run `liverseg zoo fetch {record.model}` with network (or unset "
        f"LIVERSEG_OFFLINE), or copy the file to {cache_path(record)}"
    )


def _url_of(record: WeightsRecord) -> str:
    base = record.source if record.source != "package" else weights_url()
    if base is None:
        raise DownloadError(
            f"no mirror to download the weights of {record.model!r} from: set "
            "LIVERSEG_WEIGHTS_URL to a mirror (e.g. a clone's releases/ folder, or a URL "
            "that serves it)"
        )
    return f"{base}/{urllib.parse.quote(record.path)}"


def fetch(record: WeightsRecord, progress: bool = True, force: bool = False) -> Path:
    """Download ``record``'s file into the cache (unless a good copy is there and not
    ``force``) and return its path; see the module docstring for the guarantees."""
    if record.bundled:
        return resolve(record, progress=progress)
    target = cache_path(record)
    if not force and target.is_file():
        with contextlib.suppress(WeightsMismatch):
            verify_file(target, record)
            return target
    if offline():
        raise _missing_offline(record)
    url = _url_of(record)
    _make_folder(target.parent)
    handle, temp_name = _temporary_file(target)
    temp = Path(temp_name)
    report = _progress(record, progress)
    finished = False
    try:
        with os.fdopen(handle, "wb") as out:
            received = _download(url, out, record.size, report)
        if received != record.size:
            raise DownloadError(f"download of {url} was truncated: {received} of "
                                f"{record.size} bytes; nothing was cached")
        try:
            verify_file(temp, record)
        except WeightsMismatch:
            raise DownloadError(f"{url} does not have the SHA-256 the index gives "
                                f"({record.sha256[:12]}...): the mirror's file is corrupt or "
                                "was replaced; nothing was cached") from None
        os.replace(temp, target)
        finished = True
    except OSError as error:
        raise _disk_error(error, target.parent) from None
    finally:
        report(-1 if finished else -2)
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
    return target


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _disk_error(error, folder) from None


def _temporary_file(target: Path) -> tuple[int, str]:
    try:
        return tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                suffix=".partial")
    except OSError as error:
        raise _disk_error(error, target.parent) from None


def _disk_error(error: OSError, folder: Path) -> DownloadError:
    if isinstance(error, DownloadError):
        return error
    if error.errno == errno.ENOSPC:
        return DownloadError(f"disk full while writing to {folder}: free some space or set "
                             "LIVERSEG_HOME to another disk; nothing was cached")
    return DownloadError(f"the weights cache folder {folder} cannot be written "
                         f"({one_line(error.strerror or error, 120)}): set LIVERSEG_HOME to a "
                         "writable folder")


def _download(url: str, out, expected: int | None, report: Callable[[int], None]) -> int:
    """Copy ``url``'s body into ``out``, calling ``report`` with the bytes received so far;
    the number of bytes received."""
    request = urllib.request.Request(url, headers={"User-Agent": "keras_liverseg"})
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except http.client.IncompleteRead as partial:
                    received += len(partial.partial)
                    break
                if not chunk:
                    break
                out.write(chunk)
                received += len(chunk)
                report(received)
                if expected is not None and received > expected:
                    break
    except urllib.error.HTTPError as error:
        hint = (" (the mirror has no such file: check LIVERSEG_WEIGHTS_URL)"
                if error.code == 404 else "")
        raise DownloadError(f"HTTP {error.code} {error.reason} for {url}{hint}") from None
    except urllib.error.URLError as error:
        reason = error.reason
        if isinstance(reason, FileNotFoundError | NotADirectoryError):
            raise DownloadError(f"{url}: no such file on the mirror (check "
                                "LIVERSEG_WEIGHTS_URL)") from None
        raise DownloadError(_unreachable(url, reason)) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as error:
        raise DownloadError(_unreachable(url, error)) from None
    return received


def _unreachable(url: str, reason) -> str:
    host = urllib.parse.urlsplit(url).netloc or url
    return (f"cannot download {url}: {one_line(reason, 120)} (no network, or {host} is down); "
            "try again, set LIVERSEG_WEIGHTS_URL to a mirror, or LIVERSEG_OFFLINE=1 to use "
            "cached weights only")


def _progress(record: WeightsRecord, enabled: bool) -> Callable[[int], None]:
    """A callback drawing a one-line progress bar on stderr (``-1``: finished, ``-2``:
    failed)."""
    if not enabled:
        return lambda received: None
    stream = sys.stderr
    tty = getattr(stream, "isatty", lambda: False)()
    total = max(record.size, 1)
    label = f"downloading {record.model} ({record.release}, {record.size / 1e6:.1f} MB)"
    state = {"shown": -1}

    def report(received: int) -> None:
        if received < 0:
            if state["shown"] >= 0:
                stream.write("\n" if tty else (" done\n" if received == -1 else " failed\n"))
                stream.flush()
            return
        percent = min(100, received * 100 // total)
        if state["shown"] < 0 and not tty:
            stream.write(label + " ...")
        if tty and percent != state["shown"]:
            bar = "=" * (percent // 4)
            stream.write(f"\r{label} [{bar:<25}] {percent:3d}%")
        state["shown"] = percent
        stream.flush()

    return report


# --- the mirror's own index ------------------------------------------------------------


def _mirror_index_path(url: str) -> Path:
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return liverseg_home() / "mirrors" / key / INDEX_FILE


def mirror_records(refresh: bool = False) -> list[WeightsRecord]:
    """The records of ``$LIVERSEG_WEIGHTS_URL/index.json`` (none when that variable is
    unset or the mirror serves no index). Cached after the first download; ``refresh``
    downloads it again. A mirror that cannot be reached gives the cached copy (or none)
    with a warning, so that bundled and cached weights still load."""
    url = os.environ.get("LIVERSEG_WEIGHTS_URL", "").strip()
    if not url:
        return []
    base = weights_url()
    cached = _mirror_index_path(base)
    if cached.is_file() and (not refresh or offline()):
        return _read_mirror_index(cached.read_bytes(), str(cached), base)
    if offline():
        return []
    try:
        with tempfile.TemporaryFile() as out:
            _download(f"{base}/{INDEX_FILE}", out, None, lambda received: None)
            out.seek(0)
            body = out.read()
    except DownloadError as error:
        if "HTTP 404" in str(error) or "no such file" in str(error):
            return []
        warnings.warn(f"weights mirror index not read: {error}", stacklevel=2)
        if cached.is_file():
            return _read_mirror_index(cached.read_bytes(), str(cached), base)
        return []
    records = _read_mirror_index(body, f"{base}/{INDEX_FILE}", base)
    with contextlib.suppress(OSError, DownloadError):
        _make_folder(cached.parent)
        from keras_liverseg.io.atomic import atomic_write_text

        atomic_write_text(cached, write_index(records))
    return records


def _read_mirror_index(body: bytes, where: str, base: str) -> list[WeightsRecord]:
    import json

    try:
        data = json.loads(body)
    except ValueError as error:
        raise BadIndex(f"{where}: not JSON ({one_line(error, 80)})") from None
    records = parse_index(data, where, source=base)
    bundled = [r for r in records if r.bundled]
    if bundled:
        raise BadIndex(f"{where}: a mirror cannot mark weights as bundled ({bundled[0].path})")
    return records


def all_records(refresh: bool = False) -> list[WeightsRecord]:
    """The mirror's records (if ``LIVERSEG_WEIGHTS_URL`` serves an index) and the
    package's."""
    return [*mirror_records(refresh), *packaged_records()]
