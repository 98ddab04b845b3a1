"""research/unet_sharp/postprocess_sweep.py: raw predictions scored under post-processing."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from research_scripts import load_script


def _script():
    return load_script("postprocess_sweep")


def _write(path: Path, array: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(array, np.diag([1.0, 1.0, 1.0, 1.0])), str(path))


def test_growth_and_hole_filling_settings(tmp_path, capsys):
    x, y, z = np.indices((40, 40, 20))
    ball = (x - 20) ** 2 + (y - 20) ** 2 + (z - 10) ** 2 <= 6**2
    core = (x - 20) ** 2 + (y - 20) ** 2 + (z - 10) ** 2 <= 3**2
    liver = (x >= 4) & (x < 36) & (y >= 4) & (y < 36) & (z >= 2) & (z < 18)
    channel = (x >= 8) & (x < 10) & (y >= 8) & (y < 10)  # open in 3D, like the IVC
    image = np.where(ball, 40.0, 100.0).astype(np.float32)
    truth = (liver & ~channel).astype(np.uint8) + ball
    raw = (liver & ~channel).astype(np.uint8) + core
    raw[30:32, 30:32, 5:7] = 0  # a cavity enclosed in 3D: liver in the reference
    for folder in ("raw", "gt", "ct"):
        (tmp_path / folder).mkdir()
    _write(tmp_path / "raw" / "segmentation-3.nii.gz", raw)
    _write(tmp_path / "gt" / "segmentation-3.nii.gz", truth)
    _write(tmp_path / "ct" / "volume-3.nii.gz", image)

    folders = [str(tmp_path / name) for name in ("raw", "gt", "ct")]
    assert _script().main([*folders, "--fill", "3d", "slices", "none", "--min-lesion-mm3",
                           "0", "--growth-mm", "0", "1", "8"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "setting 0: fill 3d, min_lesion_mm3 0, growth_mm 0"
    cells = [cell.split("/") for cell in lines[10].split()[1:]]
    liver_dice = [float(cell[0]) for cell in cells]
    tumor_dice = [float(cell[1]) for cell in cells]
    before = 2 * core.sum() / (core.sum() + ball.sum())
    assert abs(tumor_dice[0] - before) < 1e-3
    assert tumor_dice[0] < tumor_dice[1] < tumor_dice[2] and tumor_dice[2] > 0.85
    assert tumor_dice[:3] == tumor_dice[3:6] == tumor_dice[6:]
    # 3D filling closes the cavity and leaves the channel open; slice-by-slice filling
    # closes both, no filling neither
    assert liver_dice[:3] == [1.0] * 3
    assert max(liver_dice[3:6]) < 1.0 and max(liver_dice[6:]) < 1.0
    mean = lines[-1].split()[1:]
    assert mean[0].startswith("1.0000/")


def test_missing_predictions_or_volumes_are_errors(tmp_path, capsys):
    script = _script()
    assert script.main([str(tmp_path)] * 3) == 2
    assert "no segmentation" in capsys.readouterr().err
    _write(tmp_path / "segmentation-1.nii.gz", np.ones((4, 4, 4), np.uint8))
    assert script.main([str(tmp_path)] * 3) == 2
    assert "no volume-1" in capsys.readouterr().err
