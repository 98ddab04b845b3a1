"""The same models on the JAX backend, and exported to ONNX."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from jax_subprocess import jax_env
from model_cases import CASES, TINY, architecture, forward

from keras_liverseg import models

HERE = Path(__file__).parent


@pytest.mark.slow
def test_every_model_gives_the_same_forward_pass_on_jax(tmp_path):
    pytest.importorskip("jax")
    x = np.random.default_rng(2).uniform(-400, 400, (2, 32, 32, 1)).astype("float32")
    np.save(tmp_path / "input.npy", x)
    expected = {}
    for case, config in CASES.items():
        channels = 3 if case == "es_unet_pp_encoder" else 1
        model = models.build(
            architecture(case),
            input_shape=(32, 32, channels),
            num_classes=3,
            filters=TINY,
            **config,
        )
        model.save_weights(tmp_path / f"{case}.weights.h5")
        out = forward(model, x.repeat(channels, -1))
        expected[case] = out if isinstance(out, dict) else {"mask": out}
    env = jax_env()
    run = subprocess.run(
        [sys.executable, str(HERE / "jax_forward.py"), str(tmp_path), *CASES],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    for case, outputs in expected.items():
        actual = np.load(tmp_path / f"{case}.jax.npz")
        assert set(actual.files) == set(outputs), case
        for name, value in outputs.items():
            np.testing.assert_allclose(actual[name], value, atol=1e-4, rtol=1e-5,
                                       err_msg=f"{case}/{name}")


@pytest.mark.slow
def test_unet_sharp_onnx_export_matches_keras(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    from keras_liverseg.export import export_onnx

    model = models.unet_sharp(
        input_shape=(64, 64, 3),
        num_classes=3,
        filters=(8, 16, 32, 64, 128),
        deep_supervision=True,
        classification_guide=True,
    )
    path = tmp_path / "unet_sharp.onnx"
    exported = export_onnx(model, path)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(3).uniform(-400, 400, (3, 64, 64, 3)).astype("float32")
    (onnx_out,) = session.run(None, {session.get_inputs()[0].name: x})
    keras_out = exported.predict(x, verbose=0)
    assert onnx_out.shape == (3, 64, 64, 3)
    np.testing.assert_allclose(onnx_out, keras_out, atol=1e-4)
