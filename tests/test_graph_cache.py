"""The graph ``liverseg predict`` runs, kept per zoo model, weights and precision and loaded
again instead of made again (:mod:`keras_liverseg.inference.graph_cache`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from keras_liverseg.inference import graph_cache
from keras_liverseg.inference.loading import load_model


@pytest.fixture()
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVERSEG_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _slices() -> np.ndarray:
    return np.random.default_rng(3).uniform(-300, 400, (2, 192, 192, 3)).astype("float32")


def _kept(home):
    return sorted((home / "graphs").glob("*.keras")) if (home / "graphs").is_dir() else []


def _load(monkeypatch, precision: str = "float32"):
    """``load_model`` of the default weights, and whether the graph came from the cache."""
    made = []
    real = graph_cache.keep_graph
    monkeypatch.setattr(graph_cache, "keep_graph",
                        lambda *args, **kwargs: made.append(1) or real(*args, **kwargs))
    loaded = load_model("unet_sharp", second_stage_weights=None, precision=precision)
    return loaded, not made


def test_the_graph_is_kept_and_loaded_again_the_same(home, monkeypatch):
    first, cached = _load(monkeypatch)
    assert not cached and len(_kept(home)) == 1
    again, cached = _load(monkeypatch)
    assert cached
    assert again.preprocessing == first.preprocessing
    assert again.model.name == first.model.name and again.precision == "float32"
    x = _slices()
    np.testing.assert_array_equal(np.asarray(again.model.predict_on_batch(x)),
                                  np.asarray(first.model.predict_on_batch(x)))
    # another slice size is rebuilt from the cached graph as from the made one
    assert again.at_input_size((208, 224)).inputs[0].shape[1:3] == (208, 224)


def test_each_precision_has_its_own_graph(home, monkeypatch):
    _load(monkeypatch, "float32")
    halves, cached = _load(monkeypatch, "bfloat16")
    assert not cached and len(_kept(home)) == 2
    assert {layer.compute_dtype for layer in halves.model.layers
            if layer.weights} == {"bfloat16"}


@pytest.mark.parametrize("damage", ["append", "truncate", "facts"])
def test_a_damaged_graph_is_made_again_and_replaced(home, monkeypatch, damage):
    first, _ = _load(monkeypatch)
    (path,) = _kept(home)
    facts = path.with_suffix(".json")
    if damage == "append":  # no longer the file its SHA-256 names
        path.write_bytes(path.read_bytes() + b"\0")
    elif damage == "truncate":  # and its SHA-256 updated: Keras cannot load it
        path.write_bytes(path.read_bytes()[:1000])
        from keras_liverseg.zoo.download import sha256_of

        facts.write_text(json.dumps({"sha256": sha256_of(path)}))
    else:
        facts.write_text("{")
    again, cached = _load(monkeypatch)
    assert not cached
    from keras_liverseg.zoo.download import sha256_of

    assert json.loads(facts.read_text())["sha256"] == sha256_of(path)
    x = _slices()
    np.testing.assert_array_equal(np.asarray(again.model.predict_on_batch(x)),
                                  np.asarray(first.model.predict_on_batch(x)))


def test_a_cache_that_cannot_be_written_is_left_alone(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LIVERSEG_HOME", str(blocker / "home"))
    loaded, cached = _load(monkeypatch)
    assert not cached and loaded.model is not None
    assert not (blocker / "home").exists()


def test_an_untrained_model_is_not_kept(home):
    load_model("unet_sharp", weights=None, second_stage_weights=None, precision="float32")
    assert _kept(home) == []


def test_a_new_process_loads_the_kept_graph(home, monkeypatch):
    """The kept graph holds this package's layers: a process that has not imported them yet
    (a prediction's) registers them before loading it."""
    import subprocess
    import sys

    first, _ = _load(monkeypatch)
    code = ("import sys; from keras_liverseg.inference.loading import load_model; "
            "from keras_liverseg.inference import graph_cache; "
            "graph_cache.keep_graph = lambda *a, **k: sys.exit('the graph was made again'); "
            "loaded = load_model('unet_sharp', second_stage_weights=None, precision='float32'); "
            "print(loaded.model.name)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == first.model.name
