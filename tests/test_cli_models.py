"""`liverseg models` and `liverseg export` from the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from keras_liverseg.cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, list(args))


@pytest.mark.slow
def test_models_lists_architectures_and_zoo():
    result = subprocess.run(
        [sys.executable, "-m", "keras_liverseg.cli.main", "models"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "unet_sharp_fast" in result.stdout and "wp_unet" in result.stdout
    assert result.stderr == ""  # TensorFlow's start-up chatter is silenced


def test_the_command_exits_at_once_with_its_code_and_all_its_output(tmp_path):
    """`liverseg` ends with os._exit after main (no TensorFlow shutdown): the exit code and
    every line written before it must survive."""
    assert "keras_liverseg.cli.main:run" in (
        Path(__file__).resolve().parents[1] / "setup.cfg").read_text()
    bad = subprocess.run([sys.executable, "-m", "keras_liverseg.cli.main", "predict",
                          str(tmp_path / "nope.nii.gz"), "-o", str(tmp_path / "s.nii.gz")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and bad.stderr.startswith("Error: ")
    listed = subprocess.run([sys.executable, "-c", "from keras_liverseg.cli.main import run; "
                             "run()", "zoo", "list"], capture_output=True, text=True,
                            timeout=300)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.rstrip().splitlines()[-1].startswith("cache: ")


def test_export_errors_are_one_line(tmp_path):
    existing = tmp_path / "m.onnx"
    existing.write_bytes(b"keep")
    corrupt = tmp_path / "bad.weights.h5"
    corrupt.write_bytes(b"not an HDF5 file")
    for args in (
        ["-o", str(tmp_path / "m.txt")],
        ["-o", str(existing)],
        ["-o", str(existing / "m.onnx")],  # its folder is a file
        ["--model", "nope", "--weights", "none", "-o", str(tmp_path / "n.onnx")],
        ["--weights", str(corrupt), "-o", str(tmp_path / "c.onnx")],  # h5py's OSError
    ):
        result = run("export", *args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.count("\n") == 1 and "Traceback" not in result.output
    assert existing.read_bytes() == b"keep"
    assert not (tmp_path / "c.onnx").exists()


def test_export_writes_onnx(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("tf2onnx")
    out = tmp_path / "fast.onnx"
    result = run("export", "--model", "unet_sharp_fast", "--weights", "none", "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "whole slices resized to it" in result.output  # unet_sharp_fast has no spacing
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = np.zeros((1, *session.get_inputs()[0].shape[1:]), "float32")
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    assert y.shape[:3] == x.shape[:3] and np.allclose(y.sum(-1), 1, atol=1e-4)
    assert not list(tmp_path.glob(".*partial"))


@pytest.mark.slow
def test_export_in_a_real_process_prints_no_backend_chatter(tmp_path):
    """tf2onnx imports TensorFlow and converts through it: absl, oneDNN, CUDA-stub and
    deprecation lines a user cannot act on must not reach stderr."""
    pytest.importorskip("tf2onnx")
    out = tmp_path / "sub" / "fast.onnx"
    result = subprocess.run(
        [sys.executable, "-m", "keras_liverseg.cli.main", "export", "--model",
         "unet_sharp_fast", "--weights", "none", "-o", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(f"wrote {out}") and out.stat().st_size > 0
    assert sorted(p.name for p in out.parent.iterdir()) == ["fast.onnx"]
