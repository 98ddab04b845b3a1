"""Output files of every command: never an input, claimed at the start, one-line errors.

The checks live in ``cli/outputs.py`` (on top of ``keras_liverseg.io.atomic``); these tests
drive them through the commands (evaluate, predict, export, train, sample-data) and directly.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from cli_checks import assert_user_error
from click.testing import CliRunner

from keras_liverseg.cli.errors import UserError
from keras_liverseg.cli.main import cli
from keras_liverseg.cli.outputs import claim, refuse_clashes
from keras_liverseg.io.atomic import (
    OutputBusy,
    OutputExists,
    atomic_write_text,
    claim_paths,
    lock_path,
    uninterrupted,
)


def _labels() -> np.ndarray:
    labels = np.zeros((12, 12, 6), np.uint8)
    labels[3:9, 3:9, 1:5] = 1
    labels[4:6, 4:6, 2:4] = 2
    return labels


def _save(path: Path, data: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([0.8, 0.8, 2.0, 1.0])), str(path))
    return path


def _run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _listing(folder: Path) -> list[Path]:
    return sorted(p.relative_to(folder) for p in folder.rglob("*"))


# --- an output is never an input ------------------------------------------------------------

def test_evaluate_refuses_an_output_that_is_an_input_even_with_overwrite(tmp_path):
    pred = _save(tmp_path / "pred.nii.gz", _labels())
    gt = _save(tmp_path / "gt.nii.gz", _labels())
    before = {p: p.read_bytes() for p in (pred, gt)}
    (tmp_path / "link.nii.gz").symlink_to(gt)
    os.link(pred, tmp_path / "hard.csv")
    for option, target, fragment in [
        ("--csv", pred, "is the --pred"),
        ("--json", gt, "is the --gt"),
        ("--json", tmp_path / "link.nii.gz", "same file as --gt"),
        ("--csv", tmp_path / "hard.csv", "same file as --pred"),
    ]:
        result = _run("evaluate", "--pred", pred, "--gt", gt, option, target, "--overwrite")
        assert_user_error(result, option, fragment)
    assert {p: p.read_bytes() for p in (pred, gt)} == before


def test_evaluate_refuses_an_output_inside_an_input_folder(tmp_path):
    _save(tmp_path / "preds" / "segmentation-1.nii", _labels())
    _save(tmp_path / "gts" / "segmentation-1.nii", _labels())
    before = _listing(tmp_path)
    for option, target in [("--csv", tmp_path / "preds" / "m.csv"),
                           ("--json", tmp_path / "gts" / "sub" / "m.json"),
                           ("--json", tmp_path / "gts")]:
        result = _run("evaluate", "--pred", tmp_path / "preds", "--gt", tmp_path / "gts",
                      option, target)
        assert_user_error(result, option, "folder")
    assert _listing(tmp_path) == before


def test_two_outputs_naming_one_file_are_refused(tmp_path):
    pred = _save(tmp_path / "pred.nii.gz", _labels())
    (tmp_path / "sub").mkdir()
    result = _run("evaluate", "--pred", pred, "--gt", pred, "--csv", tmp_path / "m.out",
                  "--json", tmp_path / "sub" / ".." / "m.out")
    assert_user_error(result, "--csv and --json name the same file")
    assert not (tmp_path / "m.out").exists()


def test_refuse_clashes_directly(tmp_path):
    scan = _save(tmp_path / "ct.nii.gz", _labels())
    folder = tmp_path / "series"
    folder.mkdir()
    refuse_clashes({"-o": tmp_path / "seg.nii.gz", "--report": None}, {"INPUT": scan})
    for outputs, inputs, fragment in [
        ({"-o": scan}, {"INPUT": scan}, "is the INPUT"),
        ({"-o": tmp_path / "x" / ".." / "ct.nii.gz"}, {"INPUT": scan}, "same file as INPUT"),
        ({"-o": folder / "seg.nii.gz"}, {"INPUT": folder}, "inside the INPUT folder"),
        ({"-o": folder}, {"INPUT": folder}, "is the INPUT folder"),
        ({"-o": tmp_path / "a", "--report": tmp_path / "a"}, {}, "name the same file"),
    ]:
        with pytest.raises(UserError, match=fragment):
            refuse_clashes(outputs, inputs)


def test_predict_report_or_overlay_may_not_be_an_input(tmp_path, oracle_model_file):
    scan = _save(tmp_path / "ct.nii.gz", _labels().astype(np.int16) * 200)
    weights = tmp_path / "w.keras"
    weights.write_bytes(oracle_model_file.read_bytes())
    before = {p: p.read_bytes() for p in (scan, weights)}
    out = tmp_path / "seg.nii.gz"
    for extra, fragment in [(("--report", scan), "--report"),
                            (("--report", weights), "--weights"),
                            (("--overlay", out.with_suffix(".png"), "--report",
                              out.with_suffix(".png")), "name the same file")]:
        result = _run("predict", scan, "-o", out, "--weights", weights, "--overwrite", *extra)
        assert_user_error(result, fragment)
    assert {p: p.read_bytes() for p in (scan, weights)} == before
    assert not out.exists()


def test_train_output_inside_the_data_folder_is_refused(tmp_path):
    data = tmp_path / "data"
    _save(data / "volume-0.nii", _labels().astype(np.int16))
    _save(data / "segmentation-0.nii", _labels())
    before = _listing(tmp_path)
    result = _run("train", "--data", data, "-o", data / "run")
    assert_user_error(result, "--output", "inside the --data folder")
    result = _run("train", "--data", data, "-o", data)
    assert_user_error(result, "is the --data folder")
    assert _listing(tmp_path) == before


# --- claims: at the start, exclusive, writable, never left behind -------------------------------

def test_claim_refuses_existing_files_and_removes_what_it_made(tmp_path):
    existing = tmp_path / "old.csv"
    existing.write_text("keep")
    target = tmp_path / "new" / "deeper" / "out.json"
    with pytest.raises(OutputExists):
        with claim_paths([target, existing]):
            pass
    assert existing.read_text() == "keep"
    assert _listing(tmp_path) == [Path("old.csv")]  # no lock, no folder left
    with claim_paths([target, existing], overwrite=True):
        assert lock_path(target).exists() and lock_path(existing).exists()
        atomic_write_text(target, "new")  # a writer inside the claim
    assert target.read_text() == "new" and existing.read_text() == "keep"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_a_folder_another_process_creates_meanwhile_is_used_and_kept(tmp_path, monkeypatch):
    """Two workers writing into one new cache folder: the one whose mkdir loses the race
    uses the folder, and on its own failure leaves it (it is not the one that made it)."""
    target = tmp_path / "cache" / "volume-1.image.npy"
    original = Path.mkdir

    def raced_mkdir(self, *args, **kwargs):
        if self == target.parent and not self.exists():
            original(self)  # the other worker wins
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", raced_mkdir)
    with claim_paths([target]):
        atomic_write_text(target, "decoded")
    assert target.read_text() == "decoded"
    target.unlink()
    with pytest.raises(RuntimeError):
        with claim_paths([target]):
            raise RuntimeError("decode failed")
    assert target.parent.is_dir()


def test_claim_is_removed_on_error_and_interrupt(tmp_path):
    target = tmp_path / "out" / "seg.nii.gz"
    for error in (RuntimeError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with claim_paths([target]):
                assert lock_path(target).exists()
                raise error
        assert not (tmp_path / "out").exists()


def _hold_lock(target: Path) -> int:
    """Take ``target``'s lock as another liverseg run does."""
    fd = os.open(lock_path(target), os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"4242\n")
    return fd


def test_a_file_another_run_is_writing_is_refused_at_once(tmp_path, oracle_model_file):
    scan = _save(tmp_path / "ct.nii.gz", _labels().astype(np.int16) * 200)
    out = tmp_path / "seg.nii.gz"
    fd = _hold_lock(out)
    try:
        with pytest.raises(OutputBusy):
            with claim_paths([out], overwrite=True):
                pass
        for extra in ((), ("--overwrite",)):
            result = _run("predict", scan, "-o", out, "--weights", oracle_model_file, *extra)
            assert_user_error(result, str(out), "pid 4242", "is writing it")
        assert not out.exists()
    finally:
        os.close(fd)
    # a lock file whose process has gone (killed) does not block the next run
    assert lock_path(out).exists()
    result = _run("predict", scan, "-o", out, "--weights", oracle_model_file, "-q")
    assert result.exit_code == 0, result.output
    assert out.is_file() and not lock_path(out).exists()


def test_a_claim_held_by_another_process_blocks_this_one(tmp_path):
    target = tmp_path / "seg.nii.gz"
    code = ("import sys, time; from keras_liverseg.io.atomic import claim_paths\n"
            "with claim_paths([sys.argv[1]]):\n"
            "    print('held', flush=True); sys.stdin.readline()\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(target)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(OutputBusy, match=f"pid {holder.pid}"):
            with claim_paths([target]):
                pass
        with pytest.raises(UserError, match="is writing it"):
            with claim({"OUTPUT": target}, overwrite=True):
                pass
    finally:
        holder.communicate("\n", timeout=60)
    assert holder.returncode == 0 and not lock_path(target).exists()
    with claim_paths([target]):
        pass


def test_an_output_folder_that_is_a_file_fails_before_any_work(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    pred = _save(tmp_path / "pred.nii.gz", _labels())
    before = _listing(tmp_path)
    results = {
        "evaluate": _run("evaluate", "--pred", pred, "--gt", pred, "--csv", blocker / "m.csv"),
        "predict": _run("predict", pred, "-o", blocker / "seg.nii.gz"),
        "sample-data": _run("sample-data", "-o", blocker / "sub", "--size", "16", "16", "16"),
        "export": _run("export", "-o", blocker / "m.onnx"),
    }
    for name, result in results.items():
        try:
            assert_user_error(result, "cannot write", "not a folder")
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None
    assert _listing(tmp_path) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_fails_before_any_work(tmp_path, oracle_model_file):
    scan = _save(tmp_path / "ct.nii.gz", _labels().astype(np.int16) * 200)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = _run("predict", scan, "-o", locked / "seg.nii.gz", "--weights",
                      oracle_model_file)
        assert_user_error(result, "cannot write", "ermission denied")
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_an_unwritable_folder_fails_before_the_model_loads(tmp_path, monkeypatch):
    """Works as root too: /proc refuses new files to everyone."""
    from keras_liverseg.inference import loading

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(loading, "load_model", never)
    scan = _save(tmp_path / "ct.nii.gz", _labels().astype(np.int16) * 200)
    result = _run("predict", scan, "-o", "/proc/liverseg-test/seg.nii.gz")
    assert_user_error(result, "cannot write OUTPUT /proc/liverseg-test/seg.nii.gz")


# --- signals held while files that belong together are written ---------------------------------

def test_uninterrupted_delivers_ctrl_c_after_the_block():
    import signal

    written = []
    # Python's own Ctrl-C handler, whatever the launcher left: a shell without job control
    # starts background commands with SIGINT ignored, which uninterrupted() respects
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            with uninterrupted():
                signal.raise_signal(signal.SIGINT)
                written.append("weights")
                written.append("optimizer")
    finally:
        signal.signal(signal.SIGINT, before)
    assert written == ["weights", "optimizer"]
