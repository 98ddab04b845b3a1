"""scripts/lesion_growth_sweep.py: tumor Dice of saved predictions after lesion growth."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import nibabel as nib
import numpy as np

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "lesion_growth_sweep.py"


def _script():
    spec = importlib.util.spec_from_file_location("lesion_growth_sweep", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _write(path: Path, array: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(array, np.diag([1.0, 1.0, 1.0, 1.0])), str(path))


def test_growth_raises_the_dice_of_an_under_segmented_lesion(tmp_path, capsys):
    x, y, z = np.indices((40, 40, 20))
    ball = (x - 20) ** 2 + (y - 20) ** 2 + (z - 10) ** 2 <= 6**2
    core = (x - 20) ** 2 + (y - 20) ** 2 + (z - 10) ** 2 <= 3**2
    image = np.where(ball, 40.0, 100.0).astype(np.float32)
    truth = np.ones(ball.shape, np.uint8) + ball
    pred = np.ones(ball.shape, np.uint8) + core
    for folder in ("pred", "gt", "ct"):
        (tmp_path / folder).mkdir()
    _write(tmp_path / "pred" / "segmentation-3.nii.gz", pred)
    _write(tmp_path / "gt" / "segmentation-3.nii.gz", truth)
    _write(tmp_path / "ct" / "volume-3.nii.gz", image)

    folders = [str(tmp_path / name) for name in ("pred", "gt", "ct")]
    assert _script().main([*folders, "--growth-mm", "0", "1", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    case = [float(value) for value in lines[1].split()[1:]]
    mean = [float(value) for value in lines[-1].split()[1:]]
    before = 2 * core.sum() / (core.sum() + ball.sum())
    assert np.allclose(case, mean, atol=1e-3) and abs(case[0] - before) < 1e-3
    assert case[0] < case[1] < case[2] and case[2] > 0.85


def test_missing_predictions_or_volumes_are_errors(tmp_path, capsys):
    script = _script()
    assert script.main([str(tmp_path)] * 3) == 2
    assert "no segmentation" in capsys.readouterr().err
    _write(tmp_path / "segmentation-1.nii.gz", np.ones((4, 4, 4), np.uint8))
    assert script.main([str(tmp_path)] * 3) == 2
    assert "no volume-1" in capsys.readouterr().err
