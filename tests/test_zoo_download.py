"""Weights download and the weights index (keras_liverseg.zoo.download / .index).

Every download here is served by an HTTP server started on 127.0.0.1 inside the test (or
read through ``file://`` from a folder): no internet. Each test has its own cache folder
(``LIVERSEG_HOME``), so no test sees another's downloads.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import pytest
from mirror_server import Server, serve_folder

from keras_liverseg import zoo
from keras_liverseg.zoo import download, index
from keras_liverseg.zoo.errors import DownloadError, WeightsOffline
from keras_liverseg.zoo.index import BadIndex, WeightsRecord

REPO = Path(__file__).resolve().parents[1]
RELEASE = "rel-1"
FILE_NAME = "tiny.weights.h5"
SIZE = 200_000


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def fresh_environment(tmp_path, monkeypatch):
    """A cache folder of this test's own; no mirror, not offline, no proxy for 127.0.0.1."""
    monkeypatch.setenv("LIVERSEG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIVERSEG_WEIGHTS_URL", raising=False)
    monkeypatch.delenv("LIVERSEG_OFFLINE", raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def write_release_file(mirror: Path, path: str, size: int = SIZE,
                       model: str = "unet", **fields) -> tuple[WeightsRecord, bytes]:
    """A file of random bytes at ``mirror/path`` and the index record describing it."""
    data = os.urandom(size)
    target = mirror.joinpath(*path.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    record = WeightsRecord(model=model, release=path.split("/")[0], path=path, size=len(data),
                           sha256=hashlib.sha256(data).hexdigest(), **fields)
    return record, data


@pytest.fixture
def mirror(tmp_path) -> Path:
    folder = tmp_path / "mirror"
    folder.mkdir()
    return folder


@pytest.fixture
def release(mirror) -> tuple[WeightsRecord, bytes]:
    """``rel-1/tiny.weights.h5`` (200 kB of random bytes) on the mirror, and its record."""
    return write_release_file(mirror, f"{RELEASE}/{FILE_NAME}")


@pytest.fixture
def server(mirror):
    """An HTTP server of the mirror folder on 127.0.0.1 (a free port), in a daemon thread."""
    with serve_folder(mirror) as running:
        yield running


@pytest.fixture
def http_mirror(server, monkeypatch) -> Server:
    """The test server, named by ``LIVERSEG_WEIGHTS_URL``."""
    monkeypatch.setenv("LIVERSEG_WEIGHTS_URL", server.url)
    return server


def cached_files() -> list[Path]:
    """Every file under the cache folder (hidden ``.partial`` files included)."""
    home = download.liverseg_home()
    return sorted(p for p in home.rglob("*") if p.is_file()) if home.exists() else []


def closed_port() -> int:
    """A port of 127.0.0.1 that nothing listens on."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- downloads ----------------------------------------------------------------------------


def test_download_over_http_fills_the_cache(http_mirror, release):
    record, data = release
    path = download.fetch(record, progress=False)
    assert path == download.cache_path(record)
    assert path == download.liverseg_home() / "weights" / "unet" / RELEASE / FILE_NAME
    assert path.read_bytes() == data
    assert http_mirror.state.count(record.path) == 1
    assert download.is_cached(record)
    assert cached_files() == [path]  # no temporary file left beside it
    assert download.resolve(record, progress=False) == path
    assert http_mirror.state.total() == 1


def test_cached_weights_are_not_downloaded_again(http_mirror, release):
    record, data = release
    path = download.resolve(record, progress=False)
    assert http_mirror.state.count(record.path) == 1
    assert download.resolve(record, progress=False) == path
    assert download.fetch(record, progress=False) == path
    assert http_mirror.state.count(record.path) == 1
    # force downloads it again
    assert download.fetch(record, progress=False, force=True) == path
    assert http_mirror.state.count(record.path) == 2
    assert path.read_bytes() == data


@pytest.mark.parametrize("as_uri", [True, False], ids=["file-url", "folder"])
def test_download_from_a_folder_mirror(mirror, release, monkeypatch, as_uri):
    record, data = release
    monkeypatch.setenv("LIVERSEG_WEIGHTS_URL", mirror.as_uri() if as_uri else str(mirror))
    assert download.weights_url() == mirror.resolve().as_uri()
    path = download.fetch(record, progress=False)
    assert path == download.cache_path(record)
    assert path.read_bytes() == data
    assert cached_files() == [path]
    (mirror / RELEASE / FILE_NAME).unlink()  # the second call reads the cache
    assert download.resolve(record, progress=False) == path


def test_file_missing_from_a_folder_mirror(mirror, release, monkeypatch):
    record, _ = release
    monkeypatch.setenv("LIVERSEG_WEIGHTS_URL", mirror.as_uri())
    missing = dataclasses.replace(record, path=f"{RELEASE}/missing.weights.h5")
    with pytest.raises(DownloadError, match="no such file"):
        download.fetch(missing, progress=False)
    assert cached_files() == []


def test_wrong_hash_is_refused_and_nothing_cached(http_mirror, release):
    record, _ = release
    http_mirror.state.mode = "wrong"
    with pytest.raises(DownloadError, match="SHA-256") as raised:
        download.fetch(record, progress=False)
    assert "nothing was cached" in str(raised.value)
    assert http_mirror.state.count(record.path) == 1
    assert cached_files() == []
    assert not download.is_cached(record)
    # the index's hash is what counts: a record whose hash the file lacks is refused too
    http_mirror.state.mode = "normal"
    other = dataclasses.replace(record, sha256="0" * 64)
    with pytest.raises(DownloadError, match="SHA-256"):
        download.fetch(other, progress=False)
    assert cached_files() == []


def test_failed_download_keeps_the_good_cached_copy(http_mirror, release):
    record, data = release
    path = download.fetch(record, progress=False)
    http_mirror.state.mode = "wrong"
    with pytest.raises(DownloadError, match="SHA-256"):
        download.fetch(record, progress=False, force=True)
    assert path.read_bytes() == data
    assert cached_files() == [path]


def test_truncated_body_is_refused_and_nothing_cached(http_mirror, release, capfd):
    record, _ = release
    http_mirror.state.mode = "truncate"
    with pytest.raises(DownloadError, match="truncated") as raised:
        download.fetch(record, progress=True)
    assert f"{SIZE // 2} of {SIZE} bytes" in str(raised.value)
    progress = capfd.readouterr().err
    assert "failed" in progress and "done" not in progress  # the bar does not say done
    assert cached_files() == []
    with pytest.raises(DownloadError, match="truncated"):
        download.resolve(record, progress=False)
    assert cached_files() == []


def test_longer_file_than_the_index_says_is_refused(http_mirror, release):
    record, _ = release
    short = dataclasses.replace(record, size=record.size - 1000)
    with pytest.raises(DownloadError):
        download.fetch(short, progress=False)
    assert cached_files() == []


def test_http_404(http_mirror, release):
    record, _ = release
    missing = dataclasses.replace(record, path=f"{RELEASE}/missing.weights.h5")
    with pytest.raises(DownloadError, match="404") as raised:
        download.fetch(missing, progress=False)
    assert "LIVERSEG_WEIGHTS_URL" in str(raised.value)
    assert http_mirror.state.count(missing.path) == 1
    assert cached_files() == []


def test_unreachable_server(release, monkeypatch):
    record, _ = release
    monkeypatch.setenv("LIVERSEG_WEIGHTS_URL", f"http://127.0.0.1:{closed_port()}")
    with pytest.raises(DownloadError, match="cannot download") as raised:
        download.fetch(record, progress=False)
    message = str(raised.value)
    assert "no network" in message
    assert "\n" not in message
    assert "LIVERSEG_OFFLINE" in message
    assert cached_files() == []


def test_no_mirror_at_all(release, monkeypatch):
    record, _ = release
    monkeypatch.setattr(download, "_checkout_releases", lambda: None)
    assert download.weights_url() is None
    with pytest.raises(DownloadError, match="LIVERSEG_WEIGHTS_URL"):
        download.fetch(record, progress=False)
    assert cached_files() == []


def test_offline_never_touches_the_network(http_mirror, release, monkeypatch):
    record, data = release
    monkeypatch.setenv("LIVERSEG_OFFLINE", "1")
    assert download.offline()
    for get in (download.fetch, download.resolve):
        with pytest.raises(WeightsOffline) as raised:
            get(record, progress=False)
        message = str(raised.value)
        assert FILE_NAME in message
        assert "liverseg zoo fetch" in message
        assert str(download.cache_path(record)) in message
    assert isinstance(raised.value, zoo.WeightsNotAvailable)
    assert http_mirror.state.total() == 0
    assert cached_files() == []
    # once cached (online), offline resolve finds it without a request
    monkeypatch.delenv("LIVERSEG_OFFLINE")
    path = download.fetch(record, progress=False)
    assert http_mirror.state.total() == 1
    monkeypatch.setenv("LIVERSEG_OFFLINE", "true")
    assert download.resolve(record, progress=False) == path
    assert download.fetch(record, progress=False) == path
    assert path.read_bytes() == data
    assert http_mirror.state.total() == 1


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("TRUE", True),
                                             ("0", False), ("", False), ("no", False)])
def test_offline_values(monkeypatch, value, expected):
    monkeypatch.setenv("LIVERSEG_OFFLINE", value)
    assert download.offline() is expected


@pytest.mark.parametrize("damage", ["overwrite", "truncate"])
def test_corrupt_cached_file_is_downloaded_again(http_mirror, release, monkeypatch, damage):
    record, data = release
    path = download.fetch(record, progress=False)

    def spoil() -> None:
        if damage == "overwrite":
            with open(path, "r+b") as handle:
                handle.seek(1000)
                handle.write(b"\0" * 16 if data[1000:1016] != b"\0" * 16 else b"\1" * 16)
        else:
            path.write_bytes(data[:-1])
        assert path.read_bytes() != data

    spoil()
    with pytest.warns(UserWarning, match="downloading it again"):
        assert download.resolve(record, progress=False) == path
    assert path.read_bytes() == data
    assert http_mirror.state.count(record.path) == 2
    # offline, the spoilt copy is refused and not replaced
    spoil()
    monkeypatch.setenv("LIVERSEG_OFFLINE", "1")
    with pytest.raises(WeightsOffline, match="liverseg zoo fetch"):
        download.resolve(record, progress=False)
    assert http_mirror.state.count(record.path) == 2
    # fetch (not forced) also re-downloads a spoilt copy when online
    monkeypatch.delenv("LIVERSEG_OFFLINE")
    assert download.fetch(record, progress=False) == path
    assert path.read_bytes() == data
    assert http_mirror.state.count(record.path) == 3


def test_disk_full_while_writing(http_mirror, release, monkeypatch):
    record, _ = release
    real_fdopen = os.fdopen

    class FullDisk:
        """A file that takes 50 kB and then reports a full disk."""

        def __init__(self, handle) -> None:
            self.handle = handle
            self.written = 0

        def write(self, chunk: bytes) -> int:
            if self.written + len(chunk) > 50_000:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(chunk)
            return self.handle.write(chunk)

        def __getattr__(self, name):
            return getattr(self.handle, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.handle.close()

    monkeypatch.setattr(download.os, "fdopen",
                        lambda fd, *args, **kwargs: FullDisk(real_fdopen(fd, *args, **kwargs)))
    with pytest.raises(DownloadError, match="disk full") as raised:
        download.fetch(record, progress=False)
    assert "LIVERSEG_HOME" in str(raised.value)
    assert http_mirror.state.count(record.path) == 1
    assert cached_files() == []


def test_disk_full_creating_the_temporary_file(http_mirror, release, monkeypatch):
    record, _ = release

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download.tempfile, "mkstemp", full)
    with pytest.raises(DownloadError, match="disk full"):
        download.fetch(record, progress=False)
    assert http_mirror.state.total() == 0


def test_cache_folder_that_cannot_be_written(http_mirror, release, tmp_path, monkeypatch):
    record, _ = release
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LIVERSEG_HOME", str(blocker / "home"))
    with pytest.raises(DownloadError, match="cannot be written") as raised:
        download.fetch(record, progress=False)
    message = str(raised.value)
    assert "LIVERSEG_HOME" in message
    assert "\n" not in message
    assert blocker.read_text() == "not a folder"
    assert http_mirror.state.total() == 0


def test_progress_is_reported_on_stderr(http_mirror, release, capsys):
    record, _ = release
    download.fetch(record, progress=True)
    err = capsys.readouterr().err
    assert "downloading unet" in err
    assert RELEASE in err
    assert err.rstrip().endswith("done")
    # no progress asked: nothing written
    download.fetch(record, progress=False, force=True)
    assert capsys.readouterr().err == ""


_FETCH_SCRIPT = """
import json, sys
from keras_liverseg.zoo import download
from keras_liverseg.zoo.index import WeightsRecord
record = WeightsRecord(**json.loads(sys.argv[1]))
print(download.fetch(record, progress=False, force=True))
"""


@pytest.mark.slow
def test_two_processes_fetching_at_once(http_mirror, mirror, tmp_path):
    record, data = write_release_file(mirror, f"{RELEASE}/big.weights.h5", size=2_000_000)
    state = http_mirror.state
    state.mode = "slow"
    state.barrier = threading.Barrier(2, timeout=30)  # both bodies are sent at once
    env = {**os.environ, "LIVERSEG_HOME": str(tmp_path / "home"),
           "LIVERSEG_WEIGHTS_URL": http_mirror.url, "KERAS_BACKEND": "numpy",
           "TF_CPP_MIN_LOG_LEVEL": "3", "no_proxy": "127.0.0.1,localhost"}
    env.pop("LIVERSEG_OFFLINE", None)
    argument = json.dumps(dataclasses.asdict(record))
    processes = [subprocess.Popen([sys.executable, "-c", _FETCH_SCRIPT, argument], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    results = [process.communicate(timeout=120) for process in processes]
    for process, (out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err[-2000:]
        assert out.strip() == str(download.cache_path(record))
    assert state.count(record.path) == 2
    assert not state.barrier_broken
    assert state.max_in_flight == 2
    target = download.cache_path(record)
    assert cached_files() == [target]
    assert download.sha256_of(target) == record.sha256
    assert target.read_bytes() == data


# --- the mirror's index -----------------------------------------------------------------


def test_mirror_index_records_join_the_packaged_ones(http_mirror, mirror, release,
                                                     monkeypatch):
    record, data = release
    other, _ = write_release_file(mirror, "rel-2/unet.keras", size=1000, default=True,
                                  card="rel-2/README.md", summary="another release",
                                  config={"filters": [4, 8]}, postprocess={"min_lesion_mm3": 5})
    (mirror / "index.json").write_text(index.write_index([record, other]))
    records = download.mirror_records()
    expected = [dataclasses.replace(r, source=http_mirror.url) for r in (record, other)]
    assert records == expected
    assert http_mirror.state.count("index.json") == 1
    everything = download.all_records()
    assert everything[:2] == expected
    assert everything[2:] == index.packaged_records()
    # cached: read again without a request; refresh downloads it again
    assert download.mirror_records() == expected
    assert http_mirror.state.count("index.json") == 1
    assert download.mirror_records(refresh=True) == expected
    assert http_mirror.state.count("index.json") == 2
    # the mirror's default comes before the package's
    assert index.default_record("unet", everything) == expected[1]
    # a mirror record downloads from its mirror
    assert download.fetch(expected[0], progress=False).read_bytes() == data
    # offline: the cached index, no request
    http_mirror.state.requests.clear()
    monkeypatch.setenv("LIVERSEG_OFFLINE", "1")
    assert download.mirror_records(refresh=True) == expected
    assert http_mirror.state.total() == 0


def test_mirror_index_offline_and_not_cached_is_empty(http_mirror, mirror, release,
                                                        monkeypatch):
    record, _ = release
    (mirror / "index.json").write_text(index.write_index([record]))
    monkeypatch.setenv("LIVERSEG_OFFLINE", "1")
    assert download.mirror_records() == []
    assert http_mirror.state.total() == 0


def test_mirror_index_cannot_write_outside_the_cache(http_mirror, mirror, release):
    """A mirror's release name is a folder of the cache: one with '..' is refused."""
    record, _ = release
    escaping = dataclasses.replace(record, release="../../../outside")
    (mirror / "index.json").write_text(index.write_index([escaping]))
    with pytest.raises(BadIndex, match="'release'"):
        download.mirror_records()
    assert http_mirror.state.count(record.path) == 0


def test_mirror_index_cannot_mark_weights_bundled(http_mirror, mirror, release):
    record, _ = release
    bundled = dataclasses.replace(record, bundled=True)
    (mirror / "index.json").write_text(index.write_index([bundled]))
    with pytest.raises(BadIndex, match="bundled"):
        download.mirror_records()


def test_mirror_index_that_is_not_json(http_mirror, mirror):
    (mirror / "index.json").write_text("<html>not an index</html>")
    with pytest.raises(BadIndex, match="not JSON"):
        download.mirror_records()


def test_mirror_without_index(http_mirror, mirror, monkeypatch):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert download.mirror_records() == []
    assert http_mirror.state.count("index.json") == 1
    assert download.all_records() == index.packaged_records()
    # the same through file://
    monkeypatch.setenv("LIVERSEG_WEIGHTS_URL", mirror.as_uri())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert download.mirror_records() == []


def test_no_mirror_means_no_mirror_records(server):
    assert download.mirror_records() == []
    assert server.state.total() == 0


def test_unreachable_mirror_index_warns_and_gives_none(monkeypatch):
    monkeypatch.setenv("LIVERSEG_WEIGHTS_URL", f"http://127.0.0.1:{closed_port()}")
    with pytest.warns(UserWarning, match="mirror index not read"):
        assert download.mirror_records() == []


# --- the index format -------------------------------------------------------------------


def _item(**changes) -> dict:
    item = {"model": "unet", "release": "r1", "path": "r1/unet.keras", "size": 10,
            "sha256": "a" * 64}
    item.update(changes)
    return {key: value for key, value in item.items() if value is not None}


@pytest.mark.parametrize("data, match", [
    ({"format": 1}, "no 'weights' list"),
    ([], "no 'weights' list"),
    ({"format": 1, "weights": {}}, "no 'weights' list"),
    ({"format": 2, "weights": []}, "format 2"),
    ({"format": "1", "weights": []}, "format"),
    ({"weights": ["unet"]}, "not an object"),
    ({"weights": [_item(model=None)]}, "'model'"),
    ({"weights": [_item(release=None)]}, "'release'"),
    ({"weights": [_item(path=None)]}, "'path'"),
    ({"weights": [_item(size=None)]}, "'size'"),
    ({"weights": [_item(sha256=None)]}, "'sha256'"),
    ({"weights": [_item(size="10")]}, "'size'"),
    ({"weights": [_item(size=True)]}, "'size'"),
    ({"weights": [_item(model=3)]}, "'model'"),
    ({"weights": [_item(sha256="A" * 64)]}, "sha256"),
    ({"weights": [_item(sha256="a" * 63)]}, "sha256"),
    ({"weights": [_item(sha256="g" * 64)]}, "sha256"),
    ({"weights": [_item(release="../../outside")]}, "'release'"),
    ({"weights": [_item(release="..")]}, "'release'"),
    ({"weights": [_item(release="")]}, "'release'"),
    ({"weights": [_item(model="a\\b")]}, "'model'"),
    ({"weights": [_item(path="../unet.keras")]}, "'..'"),
    ({"weights": [_item(path="r1/../../unet.keras")]}, "'..'"),
    ({"weights": [_item(path="/r1/unet.keras")]}, "relative"),
    ({"weights": [_item(path="r1/unet.h5")]}, ".weights.h5"),
    ({"weights": [_item(path="r1/unet.keras.zip")]}, ".keras"),
    ({"weights": [_item(bundled="yes")]}, "'bundled'"),
    ({"weights": [_item(config=[1])]}, "'config'"),
    ({"weights": [_item(parameters=1.5)]}, "'parameters'"),
    ({"weights": [_item(), _item(card=3)]}, r"weights\[1\]: 'card'"),
])
def test_bad_index_is_refused(data, match):
    with pytest.raises(BadIndex, match=match) as raised:
        index.parse_index(data, "somewhere/index.json")
    assert str(raised.value).startswith("somewhere/index.json")


def test_index_round_trip(tmp_path):
    records = [
        WeightsRecord(model="unet", release="r1", path="r1/unet.keras", size=123,
                      sha256="0123456789abcdef" * 4, card="zoo/unet.md", default=True,
                      parameters=1000, summary="a summary", postprocess={"min_lesion_mm3": 10}),
        WeightsRecord(model="unet_sharp", release="r1", path="unet_sharp.weights.h5",
                      size=7, sha256="f" * 64, bundled=True,
                      config={"input_shape": [32, 32, 3], "filters": [4, 8]}),
    ]
    text = index.write_index(records)
    data = json.loads(text)
    assert data["format"] == index.FORMAT
    assert all("source" not in item for item in data["weights"])
    assert index.parse_index(data, "x") == records
    mirrored = index.parse_index(data, "x", source="http://mirror")
    assert [r.source for r in mirrored] == ["http://mirror"] * 2
    assert [dataclasses.replace(r, source="package") for r in mirrored] == records
    (tmp_path / "index.json").write_text(text)
    assert index.read_index(tmp_path / "index.json") == records
    # fields a later version may add are ignored
    data["weights"][0]["added_later"] = 1
    assert index.parse_index(data, "x") == records
    assert records[0].file_name == "unet.keras" and records[0].is_keras_file
    assert records[1].file_name == "unet_sharp.weights.h5" and not records[1].is_keras_file


def test_unreadable_index_file(tmp_path):
    with pytest.raises(BadIndex, match="cannot read"):
        index.read_index(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(BadIndex, match="cannot read"):
        index.read_index(tmp_path / "bad.json")


def test_records_for_puts_defaults_and_mirrors_first():
    def record(release, default=False, source="package"):
        return WeightsRecord(model="unet", release=release, path=f"{release}/u.keras", size=1,
                             sha256="a" * 64, default=default, source=source)

    package_default = record("p1", default=True)
    package_other = record("p2")
    mirror_default = record("m1", default=True, source="http://m")
    mirror_other = record("p2", source="http://m")
    everything = [package_other, package_default, mirror_other, mirror_default]
    assert index.records_for("unet", everything)[:2] == [mirror_default, package_default]
    assert index.default_record("unet", everything) == mirror_default
    assert index.default_record("unet", [package_other, package_default]) == package_default
    assert index.default_record("unet", [package_other]) is None
    assert index.find_record("unet", "p2", everything) == mirror_other
    assert index.find_record("unet", "nope", everything) is None
    assert index.records_for("unet_pp", everything) == []


# --- the packaged index -----------------------------------------------------------------


PACKAGED = index.packaged_records()


def test_packaged_index_is_sound():
    names = {entry.name for entry in zoo.entries()}
    assert PACKAGED
    for record in PACKAGED:
        assert record.source == "package"
        assert record.model in names, record
        if record.card:
            assert (REPO / record.card).is_file(), record.card
    for name in names:
        defaults = [r for r in PACKAGED if r.model == name and r.default]
        assert len(defaults) <= 1, (name, defaults)
    assert len({(r.model, r.release) for r in PACKAGED}) == len(PACKAGED)


@pytest.mark.parametrize("record", [r for r in PACKAGED if r.bundled],
                         ids=lambda r: f"{r.model}-{r.release}")
def test_bundled_weights_are_installed_with_their_hash(record):
    path = index.bundled_file(record)
    assert path is not None, record.path
    assert path.stat().st_size == record.size
    assert download.sha256_of(path) == record.sha256
    assert download.resolve(record, progress=False) == path
    assert download.fetch(record, progress=False) == path
    assert cached_files() == []  # bundled weights are never copied into the cache


@pytest.mark.parametrize("record", [r for r in PACKAGED if not r.bundled],
                         ids=lambda r: f"{r.model}-{r.release}")
def test_released_weights_are_in_the_checkout(record):
    releases = REPO / "releases"
    if not releases.is_dir():
        pytest.skip("no releases/ folder (not a source checkout)")
    assert index.bundled_file(record) is None
    path = releases.joinpath(*record.path.split("/"))
    assert path.is_file(), record.path
    assert path.stat().st_size == record.size
    assert download.sha256_of(path) == record.sha256


def test_checkout_releases_are_the_default_mirror():
    releases = REPO / "releases"
    if not (releases.is_dir() and (REPO / "setup.cfg").is_file()):
        pytest.skip("not a source checkout with releases/")
    assert download.weights_url() == releases.resolve().as_uri()
    record = min((r for r in PACKAGED if not r.bundled), key=lambda r: r.size)
    path = download.fetch(record, progress=False)
    assert path == download.cache_path(record)
    assert download.sha256_of(path) == record.sha256
    assert cached_files() == [path]
