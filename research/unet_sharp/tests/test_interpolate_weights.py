"""research/unet_sharp/interpolate_weights.py: weights on the line between two files."""

from __future__ import annotations

import h5py
import keras
import numpy as np
import pytest
from research_scripts import load_script


def _model() -> keras.Model:
    inputs = keras.Input((4,))
    x = keras.layers.Dense(3)(inputs)
    x = keras.layers.BatchNormalization()(x)
    return keras.Model(inputs, keras.layers.Dense(2)(x))


def _saved(path, seed: int) -> list[np.ndarray]:
    model = _model()
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
    model.save_weights(path)
    return model.get_weights()


def test_interpolated_weights_load_as_the_mix(tmp_path, capsys):
    base = _saved(tmp_path / "base.weights.h5", 0)
    tuned = _saved(tmp_path / "tuned.weights.h5", 1)
    script = load_script("interpolate_weights")
    script.main([str(tmp_path / "base.weights.h5"), str(tmp_path / "tuned.weights.h5"),
                 "--alpha", "0", "0.25", "1", "-o", str(tmp_path / "mix")])
    assert len(capsys.readouterr().out.splitlines()) == 3
    for alpha in (0.0, 0.25, 1.0):
        model = _model()
        model.load_weights(tmp_path / "mix" / f"alpha-{alpha:g}.weights.h5")
        for got, a, b in zip(model.get_weights(), base, tuned, strict=True):
            np.testing.assert_allclose(got, (1 - alpha) * a + alpha * b, rtol=1e-6, atol=1e-6)
    with pytest.raises(SystemExit, match="exists"):  # never overwritten
        script.main([str(tmp_path / "base.weights.h5"), str(tmp_path / "tuned.weights.h5"),
                     "--alpha", "0.25", "-o", str(tmp_path / "mix")])


def test_weights_of_another_model_are_refused(tmp_path):
    _saved(tmp_path / "base.weights.h5", 0)
    with h5py.File(tmp_path / "other.weights.h5", "w") as file:
        file["layers/dense/vars/0"] = np.zeros((4, 3), np.float32)
    script = load_script("interpolate_weights")
    with pytest.raises(ValueError, match="different weights"):
        script.interpolate(tmp_path / "base.weights.h5", tmp_path / "other.weights.h5", 0.5,
                           tmp_path / "out.weights.h5")
    assert not (tmp_path / "out.weights.h5").exists()
