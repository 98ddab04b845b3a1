"""`liverseg demo`, the README's main job, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from keras_liverseg.cli.main import cli


@pytest.mark.slow
def test_demo_generates_segments_and_scores(tmp_path):
    folder = tmp_path / "demo"
    result = CliRunner().invoke(cli, ["demo", "-o", str(folder)])
    assert result.exit_code == 0, result.output
    for name in ("volume-0.nii.gz", "segmentation-0.nii.gz", "prediction-0.nii.gz",
                 "report.json", "overlay.png"):
        assert (folder / name).is_file(), name
    # a summary of a few lines on stdout, the full report in report.json
    lines = result.stdout.strip().splitlines()
    assert len(lines) < 15, result.stdout
    assert str(folder / "report.json") in result.stdout
    full = json.loads((folder / "report.json").read_text())
    assert full["liver_volume_ml"] > 0 and "lesions" in full and "versions" in full
    scores = full["scores_vs_phantom_truth"]
    assert set(scores) == {"liver", "tumor"} and "hd95" in scores["liver"]
    # the bundled weights find the liver of a phantom seed never used in training (0.885
    # when they were shipped; a broken or swapped weights file scores far lower)
    assert scores["liver"]["dice"] >= 0.8
    liver_line = next(line for line in lines if line.startswith("liver"))
    assert f"{full['liver_volume_ml']:.1f} mL" in liver_line
    assert f"Dice {scores['liver']['dice']:.3f}" in liver_line

    again = CliRunner().invoke(cli, ["demo", "-o", str(folder)])
    assert again.exit_code == 2 and "--overwrite" in again.output


def test_the_demo_folder_is_git_ignored():
    from keras_liverseg.cli.demo import demo

    ignore = Path(__file__).resolve().parents[1] / ".gitignore"
    if not ignore.is_file():
        pytest.skip("not a source checkout")
    default = next(p.default for p in demo.params if p.name == "folder")
    assert f"/{default}/" in ignore.read_text().splitlines()
