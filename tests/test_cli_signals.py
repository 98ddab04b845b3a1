"""Ctrl-C and SIGTERM in real ``liverseg`` processes: exit 130 / 143, nothing half-written.

``predict`` removes its temporary files and output claims (an older output stays as it
was); ``train`` stops with its last checkpoint whole and says how to resume.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from synthetic import write_lits

from keras_liverseg.io.atomic import lock_path

pytestmark = pytest.mark.slow  # real processes, each a few seconds of start-up

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}


def _default_signals() -> None:
    # a test runner started in the background may ignore SIGINT; a shell's liverseg does not
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _start(*args: object) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "keras_liverseg.cli.main", *map(str, args)],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_signals)


def _wait_for_line(process: subprocess.Popen, text: str, timeout: float = 240) -> list[str]:
    """Read stderr until a line holds ``text``; returns the lines read."""
    lines, deadline = [], time.time() + timeout
    while time.time() < deadline:
        line = process.stderr.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    process.kill()
    raise AssertionError(f"{text!r} never came; stderr: {''.join(lines)}")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if ".partial" in p.name
                  or p.name.endswith(".lock"))


@pytest.fixture(scope="module")
def long_scan(tmp_path_factory) -> Path:
    """32x32 slices, 8000 of them: seconds of inference one slice at a time."""
    volume = np.full((32, 32, 8000), -1000, np.int16)
    volume[6:24, 8:26] = 150
    path = tmp_path_factory.mktemp("long") / "long.nii.gz"
    nib.save(nib.Nifti1Image(volume, np.diag([0.8, 0.8, 2.0, 1.0])), str(path))
    return path


@pytest.mark.parametrize(("number", "code", "message"), [
    (signal.SIGTERM, 143, "Terminated."),
    (signal.SIGINT, 130, "Interrupted."),
])
def test_predict_stopped_mid_run_leaves_no_file(tmp_path, long_scan, oracle_model_file,
                                                number, code, message):
    out = tmp_path / "out" / "seg.nii.gz"
    process = _start("predict", long_scan, "-o", out, "--report", tmp_path / "out" / "r.json",
                     "--overlay", tmp_path / "out" / "o.png", "--weights", oracle_model_file,
                     "--batch-size", 1, "--device", "cpu")
    _wait_for_line(process, long_scan.name)  # the progress bar's label: inference under way
    assert lock_path(out).exists()  # the output is claimed while the run lasts
    process.send_signal(number)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr and stderr.strip().splitlines()[-1] == message
    assert not (tmp_path / "out").exists()  # no output, temporary file, lock or folder


def test_predict_terminated_keeps_the_previous_output(tmp_path, long_scan, oracle_model_file):
    out = tmp_path / "seg.nii.gz"
    out.write_bytes(b"the previous result")
    process = _start("predict", long_scan, "-o", out, "--weights", oracle_model_file,
                     "--batch-size", 1, "--device", "cpu", "--overwrite")
    _wait_for_line(process, long_scan.name)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr
    assert out.read_bytes() == b"the previous result"
    assert _leftovers(tmp_path) == []


def test_train_terminated_stops_with_a_whole_checkpoint(tmp_path):
    data = write_lits(tmp_path / "data", count=4, shape=(48, 48, 10))
    config = tmp_path / "train.json"
    config.write_text(json.dumps({
        "model_config": {"input_shape": [32, 32, 3], "filters": [4, 8, 16, 32, 64]},
        "steps_per_epoch": 6, "batch_size": 4, "validation_fraction": 0.25}))
    run = tmp_path / "run"
    process = _start("train", "--data", data, "-o", run, "--config", config, "--epochs", 500)
    _wait_for_line(process, "epoch=1 ")  # the first epoch's line: a checkpoint exists
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=240)
    assert process.returncode == 143, stderr
    last = stderr.strip().splitlines()[-1]
    done = json.loads((run / "state.json").read_text())["epoch"]
    assert last.startswith(f"Terminated after epoch {done} of 500") and "--resume" in last
    # the checkpoint is whole: as many history rows as the state's epoch, no partial file
    rows = (run / "history.csv").read_text().strip().splitlines()[1:]
    assert len(rows) == done >= 1
    assert _leftovers(tmp_path) == []
    assert not (run / "model.keras").exists()
    with np.load(run / "checkpoints" / "last.optimizer.npz") as saved:
        assert len(saved.files) > 0
