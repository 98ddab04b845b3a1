"""research/unet_sharp/lesion_sizes.py: lesions counted by size, found and false ones told apart."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
from research_scripts import load_script


def _script():
    return load_script("lesion_sizes")


def _write(path: Path, labels: np.ndarray) -> None:
    nib.save(nib.Nifti1Image(labels, np.diag([2.0, 2.0, 2.0, 1.0])), str(path))


def test_small_false_and_large_found_lesions(tmp_path, capsys):
    truth = np.zeros((20, 20, 10), np.uint8)
    truth[2:18, 2:18, 1:9] = 1
    truth[3:8, 3:8, 2:7] = 2  # 125 voxels of 8 mm3 = 1000 mm3, found
    truth[12, 12, 5] = 2  # 8 mm3, missed
    pred = truth.copy()
    pred[12, 12, 5] = 1
    pred[14:16, 3:5, 4] = 2  # 4 voxels = 32 mm3, false
    (tmp_path / "pred").mkdir()
    (tmp_path / "gt").mkdir()
    _write(tmp_path / "pred" / "segmentation-0.nii.gz", pred)
    _write(tmp_path / "gt" / "segmentation-0.nii.gz", truth)

    script = _script()
    found = script.lesions(truth == 2, pred == 2, 8.0)
    assert sorted(found) == [(8.0, 0.0), (1000.0, 1.0)]
    assert script.main([str(tmp_path / "pred"), str(tmp_path / "gt"),
                        "--bins", "0", "20", "500"]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines()[2:]]
    # volume bin, reference, found, predicted, false
    assert [row[3:] for row in rows] == [["1", "0", "0", "0"], ["0", "0", "1", "1"],
                                         ["1", "1", "1", "0"]]


def test_an_empty_folder_is_an_error(tmp_path, capsys):
    assert _script().main([str(tmp_path), str(tmp_path)]) == 2
    assert "no segmentation" in capsys.readouterr().err
