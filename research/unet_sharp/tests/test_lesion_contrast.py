"""research/unet_sharp/lesion_contrast.py: each lesion's contrast in the CT, the Dice ceiling."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from research_scripts import load_script


def _script():
    return load_script("lesion_contrast")


def _write_case(folder: Path, number: int, volume: np.ndarray, labels: np.ndarray) -> None:
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    nib.save(nib.Nifti1Image(volume.astype(np.int16), affine),
             str(folder / f"volume-{number}.nii.gz"))
    nib.save(nib.Nifti1Image(labels, affine), str(folder / f"segmentation-{number}.nii.gz"))


def _case(contrasts: list[float]) -> tuple[np.ndarray, np.ndarray]:
    """A liver at 100 HU holding one 4x4x4 lesion per contrast, side by side."""
    volume = np.full((30, 12, 8), -50.0)
    labels = np.zeros(volume.shape, np.uint8)
    volume[1:29, 1:11, 1:7] = 100
    labels[1:29, 1:11, 1:7] = 1
    for k, contrast in enumerate(contrasts):
        box = np.s_[2 + 6 * k: 6 + 6 * k, 3:7, 2:6]
        volume[box] = 100 + contrast
        labels[box] = 2
    return volume, labels


def test_contrast_volume_and_ceiling(tmp_path, capsys):
    script = _script()
    volume, labels = _case([-40, 3])
    liver_hu, noise, lesions = script.case_lesions(volume, labels, 8.0)
    assert liver_hu == 100 and noise == 0
    assert sorted(lesions) == [(512.0, -40.0), (512.0, 3.0)]
    # Only the -40 HU lesion is visible at 5 HU: Dice 2 * 512 / (512 + 1024).
    assert script.dice_ceiling(lesions, 5, 0) == pytest.approx(2 / 3)
    assert script.dice_ceiling(lesions, 2, 0) == 1
    assert script.dice_ceiling(lesions, 2, 1000) == 0
    assert script.dice_ceiling([], 5, 0) == 1

    _write_case(tmp_path, 0, volume, labels)
    _write_case(tmp_path, 1, *_case([]))
    assert script.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "0.51 +3, 0.51 -40  0.667" in out
    assert out.strip().endswith("ceiling 0.833")  # (2/3 + 1) / 2


def test_a_perfect_model_at_a_coarser_input_loses_small_lesions():
    script = _script()
    volume, labels = _case([-40])
    labels[20, 5, 3] = 2  # a one-voxel lesion
    assert script.resolution_dice(labels, 30) == (1.0, 1.0)  # no coarser than the labels
    liver, tumor = script.resolution_dice(labels, 10)
    assert 0.8 < liver < 1 and 0.3 < tumor < 1
    assert script.resolution_dice(labels, 100) == (1.0, 1.0)


def test_bad_folders_are_errors(tmp_path, capsys):
    script = _script()
    assert script.main([str(tmp_path)]) == 2
    assert "no cases in" in capsys.readouterr().err
    volume, labels = _case([-40])
    nib.save(nib.Nifti1Image(volume.astype(np.int16), np.eye(4)), str(tmp_path / "volume-3.nii"))
    assert script.main([str(tmp_path)]) == 2
    assert "segmentation-3.nii[.gz] is missing" in capsys.readouterr().err
