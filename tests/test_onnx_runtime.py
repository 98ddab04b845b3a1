"""``--runtime onnx``: ONNX Runtime on the exported float32 graph gives Keras' probabilities,
exports each slice size once, and refuses what it cannot run in one line."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from cli_checks import assert_user_error
from click.testing import CliRunner

from keras_liverseg import models
from keras_liverseg.inference import predict_volume
from keras_liverseg.inference.loading import ModelLoadError, as_loaded, load_model
from keras_liverseg.phantom import generate_case

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")
pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                                reason="the ONNX export needs TensorFlow")

SMALL = {"input_shape": (64, 64, 3), "filters": (4, 8, 16, 32, 64), "num_classes": 3}


@pytest.fixture(scope="module")
def case():
    return generate_case(3, (160, 160, 8))


def small_loaded(runtime: str):
    keras.utils.set_random_seed(4)
    model = models.build("unet", **SMALL)
    rng = np.random.default_rng(4)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):  # far from 0 / 1: a wrong
            gamma, beta, mean, var = layer.get_weights()       # fold would show
            layer.set_weights([gamma * 1.5, beta + 0.2, mean - 0.2, var * 2.0])
        elif isinstance(layer, keras.layers.Conv2D):  # large kernels: outputs that vary
            kernel, *rest = layer.get_weights()
            scale = 1.0 / np.sqrt(np.prod(kernel.shape[:-1]))
            layer.set_weights([rng.normal(0.0, scale, kernel.shape), *rest])
    loaded = as_loaded(models.inference_model(model))
    loaded.runtime = runtime
    return loaded


def test_default_model_on_onnx_gives_keras_probabilities(case, tmp_path, monkeypatch):
    monkeypatch.setenv("LIVERSEG_HOME", str(tmp_path))
    runs = {runtime: predict_volume(load_model("unet_sharp", precision="float32",
                                               runtime=runtime, progress=False),
                                    case.volume, affine=case.affine, all_slices=True,
                                    return_probabilities=True, postprocess=False)
            for runtime in ("keras", "onnx")}
    probs = {runtime: run.probabilities.astype("float32") for runtime, run in runs.items()}
    # the predictor keeps float16 probabilities: their rounding (2**-11 near 1) is what
    # this can resolve; the graphs themselves agree within 1e-4 (the export's own check,
    # and test_the_cached_file_is_run_again below)
    assert np.abs(probs["onnx"] - probs["keras"]).max() <= 1e-3
    assert (runs["onnx"].labels == runs["keras"].labels).all()
    assert (runs["onnx"].labels == 1).sum() > 1000  # a liver was found: not a trivial match
    assert runs["onnx"].report["model"]["runtime"] == "onnx"
    assert runs["keras"].report["model"]["runtime"] == "keras"
    files = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert len(files) == 1 and files[0].name.endswith("x3.onnx")  # the scan's canvas
    assert not list((tmp_path / "onnx").glob("*.partial"))


def test_the_cached_file_is_run_again(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVERSEG_HOME", str(tmp_path))
    first = small_loaded("onnx").runner_at((64, 64))
    files = sorted((tmp_path / "onnx").glob("*.onnx"))
    assert [first.path] == files and "64x64x3" in files[0].name

    # a second model with the same graph and weights runs the cached file: no export
    import keras_liverseg.export as export

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(export, "export_onnx", no_export)
    again = small_loaded("onnx")
    runner = again.runner_at((64, 64))
    assert runner.path == files[0]
    x = np.random.default_rng(0).uniform(-300, 400, (2, 64, 64, 3)).astype("float32")
    expected = np.asarray(again.model.predict_on_batch(x))
    assert np.abs(runner.predict_on_batch(x) - expected).max() <= 1e-4
    assert expected.std() > 0.01  # outputs that vary: not a comparison of constants


def test_a_damaged_cache_file_is_exported_again(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVERSEG_HOME", str(tmp_path))
    (path,) = [small_loaded("onnx").runner_at((64, 64)).path]
    path.write_bytes(path.read_bytes()[:1000])  # truncated
    again = small_loaded("onnx")
    runner = again.runner_at((64, 64))
    assert runner.path == path and path.stat().st_size > 1000
    x = np.random.default_rng(1).uniform(-300, 400, (1, 64, 64, 3)).astype("float32")
    assert np.abs(runner.predict_on_batch(x) - again.model.predict_on_batch(x)).max() <= 1e-4


def test_other_weights_get_their_own_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVERSEG_HOME", str(tmp_path))
    first = small_loaded("onnx")
    second = small_loaded("onnx")
    second.model.set_weights([w * 1.01 for w in second.model.get_weights()])
    assert first.runner_at((64, 64)).path != second.runner_at((64, 64)).path
    assert len(list((tmp_path / "onnx").glob("*.onnx"))) == 2


def test_a_mismatching_export_is_refused_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("LIVERSEG_HOME", str(tmp_path))
    import keras_liverseg.export as export

    real_run = export.run_export
    monkeypatch.setattr(export, "run_export",
                        lambda path, format, x: real_run(path, format, x) + 0.01)
    with pytest.raises(ModelLoadError, match="differs from Keras"):
        small_loaded("onnx").runner_at((64, 64))
    cache = tmp_path / "onnx"  # neither the file nor a temporary nor a lock
    assert not cache.exists() or not list(cache.iterdir())


def test_unwritable_cache_is_one_line(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("LIVERSEG_HOME", str(blocker))
    with pytest.raises(ModelLoadError, match="cannot write the ONNX cache"):
        small_loaded("onnx").runner_at((64, 64))


def test_refusals():
    with pytest.raises(ModelLoadError, match="computes in float32"):
        load_model("unet_sharp", precision="bfloat16", runtime="onnx")
    with pytest.raises(ModelLoadError, match="3D model"):
        load_model("vnet", weights=None, runtime="onnx")
    with pytest.raises(ModelLoadError, match="runtime must be one of"):
        load_model("unet_sharp", runtime="tensorrt")


def test_cli_refuses_bfloat16_with_onnx_in_one_line(tmp_path):
    import nibabel as nib

    from keras_liverseg.cli.predict import predict

    scan = tmp_path / "scan.nii.gz"
    case = generate_case(1, (64, 64, 6))
    nib.save(nib.Nifti1Image(case.volume, case.affine), scan)
    out = tmp_path / "seg.nii.gz"
    result = CliRunner().invoke(predict, [str(scan), "-o", str(out), "--runtime", "onnx",
                                          "--precision", "bfloat16"])
    assert_user_error(result, "--runtime onnx computes in float32")
    assert not out.exists()


def test_a_second_process_waits_for_the_first_export(tmp_path, monkeypatch):
    """Two predictions needing the same file at once: the one that finds the file claimed
    waits for it and runs it, exporting nothing itself."""
    import subprocess
    import sys
    import time

    from keras_liverseg.io.atomic import lock_path

    monkeypatch.setenv("LIVERSEG_HOME", str(tmp_path))
    path = small_loaded("onnx").runner_at((64, 64)).path
    ready = tmp_path / "ready.onnx"
    path.rename(ready)
    other = subprocess.Popen([sys.executable, "-c", (
        "import shutil, sys, time\n"
        "from keras_liverseg.io.atomic import claim_paths\n"
        "with claim_paths([sys.argv[1]], overwrite=True):\n"
        "    print('claimed', flush=True)\n"
        "    time.sleep(2)\n"
        "    shutil.copyfile(sys.argv[2], sys.argv[1])\n"), str(path), str(ready)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "claimed"
        assert lock_path(path).exists()
        import keras_liverseg.export as export

        def no_export(*args, **kwargs):
            raise AssertionError("exported while another process held the claim")

        monkeypatch.setattr(export, "export_onnx", no_export)
        tick = time.monotonic()
        runner = small_loaded("onnx").runner_at((64, 64))
        assert time.monotonic() - tick >= 1.0  # it waited for the other process
        assert runner.path == path
        assert other.wait(timeout=60) == 0
    finally:
        other.kill()
    x = np.random.default_rng(2).uniform(-300, 400, (1, 64, 64, 3)).astype("float32")
    assert np.abs(runner.predict_on_batch(x) - small_loaded("keras").model.predict_on_batch(x)
                  ).max() <= 1e-4
    assert not lock_path(path).exists()


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory):
    """A LIVERSEG_HOME whose ONNX cache holds the default model's facts and the graph for
    one phantom's canvas, written by a first prediction; the phantom and its labels."""
    import os

    import nibabel as nib

    home = tmp_path_factory.mktemp("home")
    scan = home / "scan.nii.gz"
    case = generate_case(5, (200, 200, 12))
    nib.save(nib.Nifti1Image(case.volume, case.affine), scan)
    before = os.environ.get("LIVERSEG_HOME")
    os.environ["LIVERSEG_HOME"] = str(home)
    try:
        loaded = load_model("unet_sharp", runtime="onnx", progress=False)
        labels = predict_volume(loaded, scan).labels
    finally:
        if before is None:
            del os.environ["LIVERSEG_HOME"]
        else:
            os.environ["LIVERSEG_HOME"] = before
    return home, scan, labels


def test_a_cached_zoo_model_predicts_without_keras(warm_cache, tmp_path):
    """From a warm cache, `liverseg predict --runtime onnx` starts neither Keras nor
    TensorFlow (the report's keras_backend is None: no Keras module was imported), says
    nothing on stderr, and writes the labels the first, exporting, run found."""
    import json
    import os
    import subprocess
    import sys

    import nibabel as nib

    home, scan, labels = warm_cache
    out, report = tmp_path / "seg.nii.gz", tmp_path / "report.json"
    run = subprocess.run(
        [sys.executable, "-m", "keras_liverseg.cli.main", "predict", str(scan), "-o",
         str(out), "--runtime", "onnx", "--report", str(report), "--quiet"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "LIVERSEG_HOME": str(home)})
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""
    facts = json.loads(report.read_text())
    assert facts["versions"]["keras_backend"] is None
    assert facts["model"]["runtime"] == "onnx"
    assert facts["model"]["keras_name"] == "unet_sharp_inference"
    assert facts["model"]["pixel_spacing"] == 2.1  # the facts kept beside the graph
    written = np.asarray(nib.load(out).dataobj)
    assert (written == labels).all() and (written == 1).sum() > 1000

    # a scan of another field of view needs a graph of another size: Keras starts, quietly
    image = nib.load(scan)
    wide = tmp_path / "wide.nii.gz"
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), np.diag([2.2, 2.2, 2.5, 1.0])), wide)
    run = subprocess.run(
        [sys.executable, "-m", "keras_liverseg.cli.main", "predict", str(wide), "-o",
         str(tmp_path / "wide-seg.nii.gz"), "--runtime", "onnx", "--report", str(report),
         "--quiet", "--overwrite"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "LIVERSEG_HOME": str(home)})
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # TensorFlow's start-up lines are not shown
    assert json.loads(report.read_text())["versions"]["keras_backend"] == "tensorflow"
    assert list((home / "onnx").glob("*-224x224x3.onnx"))  # 200 x 2.2 mm at 2.1 mm: 210


def test_a_new_slice_size_starts_keras_once(warm_cache, monkeypatch):
    """With the facts cached, the Keras model is built only for a size without a graph:
    the backend starts once, through the caller's hook, and the new graph is cached."""
    home, _, _ = warm_cache
    monkeypatch.setenv("LIVERSEG_HOME", str(home))
    started = []
    loaded = load_model("unet_sharp", runtime="onnx", progress=False,
                        start_backend=lambda: started.append(1))
    assert loaded.model is None and started == []
    assert loaded.describe()["keras_name"] == "unet_sharp_inference"
    cached = sorted((home / "onnx").glob("*.onnx"))
    loaded.runner_at(tuple(int(n) for n in cached[0].stem.split("-")[-1].split("x")[:2]))
    assert loaded.model is None and started == []  # a cached size: still no Keras
    runner = loaded.runner_at((208, 224))
    assert started == [1] and loaded.model is not None
    assert runner.path.name.endswith("-208x224x3.onnx") and runner.path.is_file()
    loaded.runner_at((224, 224))
    assert started == [1]  # built once
    x = np.random.default_rng(3).uniform(-300, 400, (2, 208, 224, 3)).astype("float32")
    expected = np.asarray(loaded.at_input_size((208, 224)).predict_on_batch(x))
    assert np.abs(runner.predict_on_batch(x) - expected).max() <= 1e-4


def test_other_weights_of_a_zoo_model_are_cached_apart(warm_cache, tmp_path, monkeypatch):
    """The cache is keyed by the weights file's SHA-256: a fine-tuned copy of the default
    weights is not served the default's graphs."""
    from keras_liverseg import zoo

    home, _, _ = warm_cache
    monkeypatch.setenv("LIVERSEG_HOME", str(home))
    model = zoo.load("unet_sharp", progress=False)
    model.set_weights([w * 1.01 for w in model.get_weights()])
    path = tmp_path / "tuned.weights.h5"
    model.save_weights(path)
    tuned = load_model("unet_sharp", weights=path, runtime="onnx", progress=False)
    default = load_model("unet_sharp", runtime="onnx", progress=False)
    assert tuned.onnx_stem != default.onnx_stem
    assert tuned.model is not None and default.model is None  # no facts yet / cached


def test_cli_refuses_onnx_on_the_gpu_in_one_line(tmp_path):
    from keras_liverseg.cli.predict import predict

    scan = tmp_path / "scan.nii.gz"
    import nibabel as nib

    case = generate_case(1, (64, 64, 6))
    nib.save(nib.Nifti1Image(case.volume, case.affine), scan)
    out = tmp_path / "seg.nii.gz"
    result = CliRunner().invoke(predict, [str(scan), "-o", str(out), "--runtime", "onnx",
                                          "--device", "gpu"])
    assert_user_error(result, "--runtime onnx runs on the CPU")
    assert not out.exists()
