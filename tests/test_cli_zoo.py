"""`liverseg zoo`: list, fetch, path, verify, clear, and publish -> serve -> fetch -> load."""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from mirror_server import serve_folder
from synthetic import write_lits

from keras_liverseg import zoo
from keras_liverseg.cli.main import cli
from keras_liverseg.zoo import download
from keras_liverseg.zoo.index import packaged_records, read_index

TINY = {"input_shape": [32, 32, 3], "filters": [4, 8, 16, 32, 64]}


def run_cli(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    """Every test starts with an empty cache and the package's index only."""
    monkeypatch.setenv("LIVERSEG_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LIVERSEG_WEIGHTS_URL", raising=False)
    monkeypatch.delenv("LIVERSEG_OFFLINE", raising=False)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A finished `liverseg train` run of a tiny U-Net (two epochs of a few steps)."""
    folder = tmp_path_factory.mktemp("zoo_run")
    data = write_lits(folder / "data", count=3, shape=(32, 32, 6))
    config = folder / "train.json"
    config.write_text(json.dumps({"model_config": TINY, "steps_per_epoch": 2, "batch_size": 2,
                                  "validation_fraction": 0.34}))
    run = folder / "unet-tiny"
    result = run_cli("train", "--data", data, "-o", run, "--config", config, "--model", "unet",
                     "--epochs", "1")
    assert result.exit_code == 0, result.output
    return run


def test_list_on_a_fresh_install_shows_every_entry_and_its_weights():
    result = run_cli("zoo", "list")
    assert result.exit_code == 0, result.output
    rows = result.output.splitlines()
    for entry in zoo.entries():
        own = [row for row in rows if row.split()[0] == entry.name]
        records = [r for r in packaged_records() if r.model == entry.name]
        assert len(own) == max(1, len(records)), (entry.name, own)
        if not records:
            assert "none" in own[0]
        for record in records:
            row = next(row for row in own if record.release in row)
            assert ("bundled" if record.bundled else "remote") in row
            assert f"{record.size / 1e6:.1f} MB" in row
            assert record.card in row
    assert "mirror:" in rows[-1]


def test_fetch_path_verify_and_clear_the_cache(tmp_path):
    record = next(r for r in packaged_records() if not r.bundled)
    missing = run_cli("zoo", "path", record.model, "--release", record.release)
    assert missing.exit_code == 2 and "liverseg zoo fetch" in missing.output
    fetched = run_cli("zoo", "fetch", record.model, "--release", record.release, "--quiet")
    assert fetched.exit_code == 0, fetched.output
    cached = download.cache_path(record)
    assert zoo.sha256_of(cached) == record.sha256
    found = run_cli("zoo", "path", record.model, "--release", record.release)
    assert found.exit_code == 0 and found.output.strip() == str(cached)
    assert "cached" in next(row for row in run_cli("zoo", "list").output.splitlines()
                            if record.release in row and row.startswith(record.model + " "))
    good = run_cli("zoo", "verify")
    assert good.exit_code == 0 and ", 0 bad" in good.output
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    bad = run_cli("zoo", "verify")
    assert bad.exit_code == 1 and "CORRUPT" in bad.output and "--force" in bad.output
    cleared = run_cli("zoo", "clear")
    assert cleared.exit_code == 0 and not cached.exists()
    assert run_cli("zoo", "verify").exit_code == 0


def test_fetch_refuses_unknown_names_and_releases_and_respects_offline(monkeypatch):
    for args, expected in [(("nope",), "unknown zoo model"),
                           (("unet", "--release", "nope"), "no release 'nope'"),
                           ((), "pass --all")]:
        result = run_cli("zoo", "fetch", *args)
        assert result.exit_code == 2 and expected in result.output, result.output
        assert "Traceback" not in result.output
    monkeypatch.setenv("LIVERSEG_OFFLINE", "1")
    result = run_cli("zoo", "fetch", "unet", "--quiet")
    assert result.exit_code == 2 and "LIVERSEG_OFFLINE" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_publish_then_serve_then_fetch_round_trip(trained_run, tmp_path, monkeypatch):
    releases = tmp_path / "releases"
    result = run_cli("zoo", "publish", trained_run, "-o", releases, "--release", "site-1")
    assert result.exit_code == 0, result.output
    (record,) = read_index(releases / "index.json")
    assert (record.model, record.release, record.default) == ("unet", "site-1", True)
    assert (releases / record.path).read_bytes() == (trained_run / "model.keras").read_bytes()
    card = (releases / record.card).read_text()
    assert record.sha256 in card and "LIVERSEG_WEIGHTS_URL" in card
    again = run_cli("zoo", "publish", trained_run, "-o", releases, "--release", "site-1")
    assert again.exit_code == 0 and read_index(releases / "index.json") == [record]

    with serve_folder(releases) as server:
        monkeypatch.setenv("LIVERSEG_WEIGHTS_URL", server.url)
        listed = run_cli("zoo", "list")
        assert "site-1 (default)" in listed.output and "remote" in listed.output
        fetched = run_cli("zoo", "fetch", "unet", "--quiet")
        assert fetched.exit_code == 0, fetched.output
        assert server.state.count(record.path) == 1
        model = zoo.load("unet", progress=False)  # the mirror's default: from the cache
        assert server.state.count(record.path) == 1
    x = np.random.default_rng(0).uniform(-200, 300, (1, 32, 32, 3)).astype("float32")
    original = keras.saving.load_model(trained_run / "model.keras", safe_mode=True)
    np.testing.assert_allclose(model.predict(x, verbose=0), original.predict(x, verbose=0))
    assert model.count_params() == record.parameters


def test_publish_keeps_releases_apart_and_refuses_bad_runs(trained_run, tmp_path):
    releases = tmp_path / "releases"
    assert run_cli("zoo", "publish", trained_run, "-o", releases).exit_code == 0
    first = read_index(releases / "index.json")[0]
    assert first.release == "unet-tiny"  # the run folder's name
    other = tmp_path / "other-run"
    other.mkdir()
    for name in ("model_card.json", "model_card.md"):
        (other / name).write_bytes((trained_run / name).read_bytes())
    zoo.load("unet", weights=None, **TINY).save(other / "model.keras")
    clash = run_cli("zoo", "publish", other, "-o", releases, "--release", "unet-tiny")
    assert clash.exit_code == 2 and "already has other weights" in clash.output
    added = run_cli("zoo", "publish", other, "-o", releases, "--release", "site-2",
                    "--not-default")
    assert added.exit_code == 0, added.output
    records = {r.release: r for r in read_index(releases / "index.json")}
    assert records["unet-tiny"].default and not records["site-2"].default
    newest = run_cli("zoo", "publish", other, "-o", releases, "--release", "site-3")
    assert newest.exit_code == 0
    records = {r.release: r for r in read_index(releases / "index.json")}
    assert [name for name, r in records.items() if r.default] == ["site-3"]

    (other / "model.keras").write_bytes(b"not a model")
    broken = run_cli("zoo", "publish", other, "-o", releases, "--release", "site-4")
    assert broken.exit_code == 2 and "does not load" in broken.output
    assert not (releases / "site-4").exists()
    for args, expected in [((tmp_path / "nowhere",), "no such run folder"),
                           ((tmp_path,), "not a finished `liverseg train` run"),
                           ((trained_run, "--release", "../x"), "release name")]:
        result = run_cli("zoo", "publish", *args, "-o", releases)
        assert result.exit_code == 2 and expected in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
