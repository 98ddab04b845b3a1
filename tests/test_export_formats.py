"""`liverseg export` to a SavedModel and TFLite (float32, float16, int8), full and pruned:
each file is checked against Keras before it is kept."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from keras_liverseg import export as export_module
from keras_liverseg import models, zoo
from keras_liverseg.cli.main import cli
from keras_liverseg.export import run_export, sample_slices


def run(*args):
    return CliRunner().invoke(cli, ["export", *[str(a) for a in args]])


@pytest.fixture(scope="module")
def fast_model():
    return models.inference_model(zoo.load("unet_sharp_fast"))


@pytest.mark.parametrize("name, fmt, quantize", [
    ("fast_sm", "saved_model", None), ("fast.tflite", "tflite", None),
    ("fast16.tflite", "tflite", "float16"), ("fast8.tflite", "tflite", "int8")])
def test_each_format_is_written_checked_and_runs_like_keras(tmp_path, fast_model, name, fmt,
                                                            quantize):
    out = tmp_path / name
    args = ["--model", "unet_sharp_fast", "-o", out]
    result = run(*args, *(["--quantize", quantize] if quantize else []))
    assert result.exit_code == 0, result.output
    assert f"wrote {out} ({fmt}" in result.output and "checked:" in result.output
    x = sample_slices(fast_model)
    expected = fast_model.predict(x, verbose=0)
    actual = run_export(out, fmt, x)
    if quantize is None:
        np.testing.assert_allclose(actual, expected, atol=1e-4)
    else:
        liver = (np.argmax(actual, -1) >= 1), (np.argmax(expected, -1) >= 1)
        assert liver[1].sum() > 1000, "the sample should show liver"
        dice = 2 * (liver[0] & liver[1]).sum() / (liver[0].sum() + liver[1].sum())
        assert dice >= 0.99
        assert not np.array_equal(actual, expected)
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.slow
def test_quantised_files_are_smaller_and_a_pruned_model_smaller_still(tmp_path):
    sizes = {}
    for name, extra in [("full.tflite", []), ("half.tflite", ["--quantize", "float16"]),
                        ("int8.tflite", ["--quantize", "int8"]),
                        ("l1.tflite", ["--level", "1"])]:
        result = run("--model", "unet_sharp", "-o", tmp_path / name, *extra)
        assert result.exit_code == 0, result.output
        sizes[name] = (tmp_path / name).stat().st_size
    assert sizes["int8.tflite"] < sizes["half.tflite"] < sizes["full.tflite"]
    assert sizes["l1.tflite"] < sizes["full.tflite"] / 4
    assert "level 1" in result.output


def test_a_file_that_does_not_match_keras_is_not_kept(tmp_path, monkeypatch):
    real = export_module.run_export
    monkeypatch.setattr(export_module, "run_export",
                        lambda path, fmt, x: real(path, fmt, x) + 0.01)
    out = tmp_path / "bad.tflite"
    result = run("--model", "unet_sharp_fast", "--weights", "none", "-o", out)
    assert result.exit_code == 2 and "differs from Keras" in result.output
    assert "nothing was written" in result.output and not out.exists()
    assert not list(tmp_path.iterdir())


def test_an_existing_saved_model_is_replaced_only_with_overwrite(tmp_path):
    """... and a folder that is not a SavedModel never is (`-o ~ --overwrite`)."""
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "keep.txt").write_text("mine")
    refused = run("--model", "unet_sharp_fast", "--weights", "none", "-o", mine, "--overwrite")
    assert refused.exit_code == 2 and "not a SavedModel" in refused.output
    assert (mine / "keep.txt").read_text() == "mine"
    out = tmp_path / "sm"
    first = run("--model", "unet_sharp_fast", "--weights", "none", "-o", out)
    assert first.exit_code == 0, first.output
    (out / "old.txt").write_text("from the first export")
    again = run("--model", "unet_sharp_fast", "--weights", "none", "-o", out)
    assert again.exit_code == 2 and "--overwrite" in again.output and (out / "old.txt").exists()
    done = run("--model", "unet_sharp_fast", "--weights", "none", "-o", out, "--overwrite")
    assert done.exit_code == 0, done.output
    assert (out / "saved_model.pb").is_file() and not (out / "old.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "sm"]


@pytest.mark.parametrize("args, expected", [
    (["-o", "m.onnx", "--quantize", "int8"], "--quantize is for --format tflite"),
    (["-o", "m.onnx", "--format", "tflite"], "--format tflite writes"),
    (["-o", "m.txt"], "must end in .onnx or .tflite"),
    (["-o", "m.tflite", "--model", "unet", "--weights", "none", "--level", "1"],
     "no deep-supervision heads"),
    (["-o", "m.tflite", "--model", "unet_sharp", "--level", "9"], "level must be in"),
    (["-o", "m.tflite", "--level", "0"], "--level must be 1 or more"),
])
def test_bad_export_options_are_one_line(tmp_path, monkeypatch, args, expected):
    monkeypatch.chdir(tmp_path)
    result = run(*args)
    assert result.exit_code == 2 and expected in result.output, result.output
    assert result.output.count("\n") == 1
    assert not [p for p in tmp_path.iterdir() if not p.name.startswith(".")]


@pytest.fixture(scope="module")
def tiny_v_net_file(tmp_path_factory):
    """A tiny V-Net# (with deep supervision and the voxel spacing) saved as .keras."""
    model = models.build("vnet_sharp", input_shape=(16, 32, 32, 1), num_classes=3,
                         filters=(2, 4, 8, 16, 32), deep_supervision=True,
                         pixel_spacing=3.0, slice_spacing=3.0)
    path = tmp_path_factory.mktemp("vnet") / "vnet_sharp.keras"
    model.save(path)
    return path, models.inference_model(model)


@pytest.mark.slow
@pytest.mark.parametrize("name, fmt", [("v.onnx", "onnx"), ("v_sm", "saved_model")])
def test_a_3d_model_exports_at_its_patch_size(tmp_path, tiny_v_net_file, name, fmt):
    pytest.importorskip("tf2onnx") if fmt == "onnx" else None
    path, model = tiny_v_net_file
    out = tmp_path / name
    result = run("--weights", path, "-o", out)
    assert result.exit_code == 0, result.output
    x = sample_slices(model)
    assert x.shape == (1, 16, 32, 32, 1)
    np.testing.assert_allclose(run_export(out, fmt, x), model.predict(x, verbose=0),
                               atol=1e-4)


def test_a_3d_model_to_tflite_is_one_line(tmp_path, tiny_v_net_file):
    from cli_checks import assert_user_error

    out = tmp_path / "v.tflite"
    result = run("--weights", tiny_v_net_file[0], "-o", out)
    assert_user_error(result, "onnx or saved_model", "nothing was written")
    assert not out.exists() and not list(tmp_path.glob(".*partial"))
