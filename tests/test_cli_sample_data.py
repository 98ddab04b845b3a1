"""``liverseg sample-data``: LiTS layout, determinism, no silent overwrite, one-line errors."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

from keras_liverseg.cli.sample_data import sample_data
from keras_liverseg.phantom import GENERATOR_VERSION, case_seed

SIZE = ["--size", "48", "48", "16"]


def _run(*args):
    return CliRunner().invoke(sample_data, list(args))


def test_writes_lits_layout(tmp_path):
    result = _run("-o", str(tmp_path / "out"), "--cases", "2", "--seed", "4", *SIZE)
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    names = sorted(p.name for p in out.iterdir())
    assert names == ["phantoms.json", "segmentation-0.nii.gz", "segmentation-1.nii.gz",
                     "volume-0.nii.gz", "volume-1.nii.gz"]
    manifest = json.loads((out / "phantoms.json").read_text())
    assert manifest["generator_version"] == GENERATOR_VERSION
    assert manifest["dataset_seed"] == 4
    assert [c["seed"] for c in manifest["cases"]] == [case_seed(4, 0), case_seed(4, 1)]
    for i in range(2):
        vol = nib.load(out / f"volume-{i}.nii.gz")
        seg = nib.load(out / f"segmentation-{i}.nii.gz")
        assert vol.shape == (48, 48, 16)
        assert np.array_equal(vol.affine, seg.affine)
        assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1, 2}


def test_same_seed_same_files(tmp_path):
    for name in ("a", "b"):
        assert _run("-o", str(tmp_path / name), "--cases", "1", "--seed", "9", *SIZE).exit_code == 0
    a = nib.load(tmp_path / "a" / "volume-0.nii.gz")
    b = nib.load(tmp_path / "b" / "volume-0.nii.gz")
    assert np.array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
    assert np.array_equal(a.affine, b.affine)


def test_refuses_to_overwrite(tmp_path):
    out = tmp_path / "out"
    assert _run("-o", str(out), "--cases", "1", *SIZE).exit_code == 0
    before = (out / "volume-0.nii.gz").read_bytes()
    result = _run("-o", str(out), "--cases", "1", "--seed", "3", *SIZE)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and "--overwrite" in lines[0]
    assert (out / "volume-0.nii.gz").read_bytes() == before
    result = _run("-o", str(out), "--cases", "1", "--seed", "3", "--overwrite", *SIZE)
    assert result.exit_code == 0, result.output
    assert (out / "volume-0.nii.gz").read_bytes() != before


@pytest.mark.parametrize(
    "args",
    [
        ["--cases", "0"],
        ["--cases", "many"],
        ["--seed", "-1"],
        ["--size", "8", "48", "16"],
        ["--size", "48", "48", "x"],
        ["--size", "2048", "2048", "2048"],
    ],
)
def test_bad_arguments_exit_2_with_one_line(tmp_path, args):
    result = _run("-o", str(tmp_path / "out"), *SIZE, *args)
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert not (tmp_path / "out").exists()


def test_output_that_is_a_file_is_an_error(tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("x")
    result = _run("-o", str(target), *SIZE)
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"Error: output is not a folder: {target}"]
