"""``liverseg evaluate`` on small synthetic NIfTI volumes."""

from __future__ import annotations

import csv
import io
import json
import math
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from cli_checks import assert_user_error
from click.testing import CliRunner

from keras_liverseg.cli.evaluate import evaluate
from keras_liverseg.metrics.overlap import dice

SPACING = (0.8, 0.8, 2.5)
AFFINE = np.diag([*SPACING, 1.0])
SHAPE = (24, 20, 10)


def _labels(shift: int = 0, tumor: bool = True) -> np.ndarray:
    labels = np.zeros(SHAPE, np.uint8)
    labels[4 + shift : 18 + shift, 3:16, 2:8] = 1
    if tumor:
        labels[7 + shift : 11 + shift, 6:10, 3:6] = 2
    return labels


def _save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine), str(path))
    return path


def _run(*args: object):
    result = CliRunner().invoke(evaluate, [str(a) for a in args])
    return result


def _expected_dice(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    return {"liver": dice(pred >= 1, gt >= 1), "tumor": dice(pred == 2, gt == 2)}


def _case_rows(csv_text: str) -> list[dict[str, str]]:
    return [row for row in csv.DictReader(io.StringIO(csv_text)) if row["row"] == "case"]


def test_two_files(tmp_path):
    gt, pred = _labels(), _labels(shift=1)
    _save(tmp_path / "gt.nii.gz", gt)
    _save(tmp_path / "pred.nii", pred)
    result = _run("--pred", tmp_path / "pred.nii", "--gt", tmp_path / "gt.nii.gz")
    assert result.exit_code == 0, result.output
    expected = _expected_dice(pred, gt)
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("gt ")]
    assert [r[1] for r in rows] == ["liver", "tumor"]
    for row in rows:
        assert float(row[2]) == pytest.approx(expected[row[1]], abs=1e-4)
    # One shift of one voxel along an axis of 0.8 mm: the Hausdorff distance is 0.8 mm.
    assert float(rows[0][7]) == pytest.approx(SPACING[0], abs=0.01)
    assert "liver: Dice per case" in result.stdout and "Dice global" in result.stdout


def test_folders_with_identical_names_csv_and_json(tmp_path):
    cases = {"a": (_labels(), _labels(1)), "b": (_labels(), _labels(0, tumor=False))}
    for name, (gt, pred) in cases.items():
        _save(tmp_path / "gt" / f"{name}.nii.gz", gt)
        _save(tmp_path / "pred" / f"{name}.nii.gz", pred)
    out_csv, out_json = tmp_path / "metrics.csv", tmp_path / "metrics.json"
    result = _run(
        "--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--csv", out_csv, "--json", out_json
    )
    assert result.exit_code == 0, result.output

    rows = _case_rows(out_csv.read_text())
    assert [(r["case"], r["class"]) for r in rows] == [
        ("a", "liver"),
        ("a", "tumor"),
        ("b", "liver"),
        ("b", "tumor"),
    ]
    for row in rows:
        gt, pred = cases[row["case"]]
        assert float(row["dice"]) == pytest.approx(_expected_dice(pred, gt)[row["class"]])
    # Case b has no predicted tumor: Dice 0, surface distances undefined (nan).
    tumor_b = rows[3]
    assert float(tumor_b["dice"]) == 0.0 and math.isnan(float(tumor_b["assd_mm"]))
    assert float(tumor_b["surface_dice"]) == 0.0

    report = json.loads(out_json.read_text())
    assert [c["case"] for c in report["cases"]] == ["a", "b"]
    assert report["cases"][1]["classes"]["tumor"]["assd"] is None
    tumor = report["summary"]["tumor"]
    assert tumor["n_cases"] == 2
    assert tumor["metrics"]["assd"]["n"] == 1 and tumor["metrics"]["assd"]["excluded"] == 1
    assert tumor["metrics"]["assd"]["mean"] == pytest.approx(
        report["cases"][0]["classes"]["tumor"]["assd"]
    )
    per_case = [_expected_dice(p, g)["tumor"] for g, p in cases.values()]
    assert tumor["dice_per_case"] == pytest.approx(np.mean(per_case))
    pooled = dice(
        np.concatenate([p == 2 for _, p in cases.values()]),
        np.concatenate([g == 2 for g, _ in cases.values()]),
    )
    assert tumor["dice_global"] == pytest.approx(pooled)
    summary_rows = [r for r in csv.DictReader(io.StringIO(out_csv.read_text())) if not r["case"]]
    global_tumor = [r for r in summary_rows if r["row"] == "global" and r["class"] == "tumor"]
    assert float(global_tumor[0]["dice"]) == pytest.approx(pooled)
    assert not list(tmp_path.glob(".*tmp"))  # no temporary files left behind


def test_lits_names_pair_by_number(tmp_path):
    numbers = [0, 3, 12]
    for n in numbers:
        _save(tmp_path / "gt" / f"segmentation-{n}.nii", _labels(tumor=n != 3))
        _save(tmp_path / "gt" / f"volume-{n}.nii", np.full(SHAPE, -1000, np.int16))  # CT, ignored
    _save(tmp_path / "pred" / "test-segmentation-0.nii", _labels())
    _save(tmp_path / "pred" / "volume-3_seg.nii.gz", _labels(1))
    _save(tmp_path / "pred" / "segmentation-12.nii", _labels(2))
    out_csv = tmp_path / "out.csv"
    result = _run("--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--csv", out_csv)
    assert result.exit_code == 0, result.output
    rows = _case_rows(out_csv.read_text())
    liver = {r["case"]: r for r in rows if r["class"] == "liver"}
    assert list(liver) == ["segmentation-0", "segmentation-3", "segmentation-12"]
    assert Path(liver["segmentation-3"]["pred"]).name == "volume-3_seg.nii.gz"
    assert float(liver["segmentation-0"]["dice"]) == 1.0
    assert float(liver["segmentation-3"]["dice"]) == pytest.approx(dice(_labels(1), _labels()))


def test_classes_option_and_tolerance(tmp_path):
    _save(tmp_path / "gt.nii", _labels())
    _save(tmp_path / "pred.nii", _labels(2))
    out_json = tmp_path / "r.json"
    result = _run(
        "--pred", tmp_path / "pred.nii", "--gt", tmp_path / "gt.nii",
        "--classes", "liver", "--tolerance", "1.6", "--json", out_json,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(out_json.read_text())
    assert list(report["summary"]) == ["liver"]
    assert report["settings"]["tolerance_mm"] == 1.6
    # Shifted by 2 voxels of 0.8 mm along one axis: every surface voxel is within 1.6 mm.
    assert report["cases"][0]["classes"]["liver"]["surface_dice"] == 1.0
    assert report["cases"][0]["classes"]["liver"]["mssd"] == pytest.approx(1.6, abs=1e-5)


def test_geometry_mismatch_is_an_error_unless_resampled(tmp_path):
    gt = _labels()
    gt_path = _save(tmp_path / "gt.nii", gt)
    # The same labels stored with the first axis flipped: another affine, the same anatomy.
    flipped_affine = AFFINE.copy()
    flipped_affine[0, 0] = -SPACING[0]
    flipped_affine[0, 3] = (SHAPE[0] - 1) * SPACING[0]
    pred_path = _save(tmp_path / "pred.nii", gt[::-1].copy(), flipped_affine)

    result = _run("--pred", pred_path, "--gt", gt_path)
    assert_user_error(result, str(pred_path), str(gt_path), "affine", "--resample")

    out_json = tmp_path / "r.json"
    result = _run("--pred", pred_path, "--gt", gt_path, "--resample", "--json", out_json)
    assert result.exit_code == 0, result.output
    case = json.loads(out_json.read_text())["cases"][0]
    assert case["resampled"] is True
    assert case["classes"]["liver"]["dice"] == 1.0 and case["classes"]["tumor"]["dice"] == 1.0


def test_shape_mismatch_names_both_files(tmp_path):
    gt_path = _save(tmp_path / "gt.nii", _labels())
    pred_path = _save(tmp_path / "pred.nii", _labels()[:-2])
    assert_user_error(_run("--pred", pred_path, "--gt", gt_path), str(pred_path), str(gt_path))


def test_resample_to_a_finer_grid(tmp_path):
    gt = np.zeros((20, 20, 12), np.uint8)
    gt[4:16, 6:14, 2:10] = 1
    gt_path = _save(tmp_path / "gt.nii", gt, np.diag([1.0, 1.0, 1.0, 1.0]))
    coarse = gt[::2, ::2, ::2].copy()  # voxel centres 0, 2, 4, ... of the fine grid
    pred_path = _save(tmp_path / "pred.nii", coarse, np.diag([2.0, 2.0, 2.0, 1.0]))
    out_json = tmp_path / "r.json"
    result = _run(
        "--pred", pred_path, "--gt", gt_path, "--resample", "--classes", "liver",
        "--json", out_json,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    liver = json.loads(out_json.read_text())["cases"][0]["classes"]["liver"]
    # Nearest neighbour of the 2x-subsampled mask: the mask [4, 16) x [6, 14) x [2, 10)
    # becomes [3, 15) x [5, 13) x [1, 9) (voxel j takes coarse voxel round(j / 2)).
    expected = np.zeros_like(gt)
    expected[3:15, 5:13, 1:9] = 1
    assert liver["dice"] == pytest.approx(dice(expected, gt))


def test_4d_singleton_volumes_are_accepted(tmp_path):
    _save(tmp_path / "gt.nii", _labels()[..., None])
    _save(tmp_path / "pred.nii", _labels()[..., None])
    result = _run("--pred", tmp_path / "pred.nii", "--gt", tmp_path / "gt.nii")
    assert result.exit_code == 0, result.output


def test_refuses_to_overwrite_outputs_without_overwrite(tmp_path):
    _save(tmp_path / "gt.nii", _labels())
    _save(tmp_path / "pred.nii", _labels(1))
    out_csv = tmp_path / "out.csv"
    out_csv.write_text("keep me")
    args = ("--pred", tmp_path / "pred.nii", "--gt", tmp_path / "gt.nii", "--csv", out_csv)
    assert_user_error(_run(*args), str(out_csv), "--overwrite")
    assert out_csv.read_text() == "keep me"
    result = _run(*args, "--overwrite")
    assert result.exit_code == 0, result.output
    assert _case_rows(out_csv.read_text())


def _bad_inputs(tmp_path: Path) -> dict[str, tuple[list[object], str]]:
    good_gt = _save(tmp_path / "ok" / "gt.nii", _labels())
    good_pred = _save(tmp_path / "ok" / "pred.nii", _labels(1))
    (tmp_path / "text.nii").write_text("not a nifti file")
    (tmp_path / "notes.txt").write_text("hello")
    whole_gz = _save(tmp_path / "whole.nii.gz", _labels()).read_bytes()
    (tmp_path / "garbled.nii.gz").write_bytes(whole_gz[:60])
    (tmp_path / "truncated.nii.gz").write_bytes(whole_gz[: len(whole_gz) * 4 // 5])
    whole = _save(tmp_path / "whole.nii", _labels()).read_bytes()
    (tmp_path / "truncated.nii").write_bytes(whole[:-100])
    (tmp_path / "empty").mkdir()
    label_3 = _labels()
    label_3[0, 0, 0] = 3
    _save(tmp_path / "label3.nii", label_3)
    _save(tmp_path / "float.nii", _labels().astype(np.float32) * 0.5)
    _save(tmp_path / "flat.nii", np.zeros((8, 8), np.uint8))
    _save(tmp_path / "timeseries.nii", np.zeros((*SHAPE, 2), np.uint8))
    _save(tmp_path / "unpaired_gt" / "segmentation-1.nii", _labels())
    _save(tmp_path / "unpaired_gt" / "segmentation-2.nii", _labels())
    _save(tmp_path / "unpaired_pred" / "test-segmentation-1.nii", _labels())
    _save(tmp_path / "unpaired_pred" / "test-segmentation-5.nii", _labels())
    _save(tmp_path / "extra_pred" / "segmentation-1.nii", _labels())
    _save(tmp_path / "extra_pred" / "segmentation-2.nii", _labels())
    _save(tmp_path / "extra_pred" / "segmentation-9.nii", _labels())
    _save(tmp_path / "ambiguous_pred" / "a-1.nii", _labels())
    _save(tmp_path / "ambiguous_pred" / "b-1.nii", _labels())
    _save(tmp_path / "one_gt" / "segmentation-1.nii", _labels())
    existing = tmp_path / "exists.json"
    existing.write_text("{}")
    t = tmp_path
    return {
        "missing pred": (["--pred", t / "nope.nii", "--gt", good_gt], "does not exist"),
        "missing gt": (["--pred", good_pred, "--gt", t / "nope"], "does not exist"),
        "not nifti contents": (["--pred", t / "text.nii", "--gt", good_gt], "not a readable"),
        "not nifti name": (["--pred", t / "notes.txt", "--gt", good_gt], "not a NIfTI"),
        "garbled gzip": (["--pred", t / "garbled.nii.gz", "--gt", good_gt], "not a readable"),
        "truncated gzip": (["--pred", t / "truncated.nii.gz", "--gt", good_gt], "cannot be read"),
        "truncated data": (["--pred", good_pred, "--gt", t / "truncated.nii"], "cannot be read"),
        "empty folder": (["--pred", t / "empty", "--gt", t / "unpaired_gt"], "no .nii"),
        "file and folder": (["--pred", good_pred, "--gt", t / "unpaired_gt"], "folder"),
        "label outside 0-2": (["--pred", t / "label3.nii", "--gt", good_gt], "outside"),
        "label outside 0-2 in gt": (["--pred", good_pred, "--gt", t / "label3.nii"], "label3"),
        "probabilities": (["--pred", t / "float.nii", "--gt", good_gt], "non-integer"),
        "2-D image": (["--pred", t / "flat.nii", "--gt", good_gt], "3-D"),
        "4-D image": (["--pred", t / "timeseries.nii", "--gt", good_gt], "3-D"),
        "unpaired ground truth": (
            ["--pred", t / "unpaired_pred", "--gt", t / "unpaired_gt"],
            "segmentation-2.nii",
        ),
        "unpaired prediction": (
            ["--pred", t / "extra_pred", "--gt", t / "unpaired_gt"],
            "segmentation-9.nii",
        ),
        "ambiguous pairing": (
            ["--pred", t / "ambiguous_pred", "--gt", t / "one_gt"],
            "several predictions",
        ),
        "unknown class": (["--pred", good_pred, "--gt", good_gt, "--classes", "kidney"], "kidney"),
        "negative tolerance": (["--pred", good_pred, "--gt", good_gt, "--tolerance", "-1"], "mm"),
        "gt-liver not a label": (["--pred", good_pred, "--gt", good_gt, "--gt-liver", "x"],
                                 "--gt-liver"),
        "gt-tumor 0": (["--pred", good_pred, "--gt", good_gt, "--gt-tumor", "0"], ">= 1"),
        "existing json": (["--pred", good_pred, "--gt", good_gt, "--json", existing], "exists"),
        "csv is a folder": (["--pred", good_pred, "--gt", good_gt, "--csv", t / "empty"], "folder"),
        "csv folder is a file": (  # a missing folder is created, as for every output
            ["--pred", good_pred, "--gt", good_gt, "--csv", t / "notes.txt" / "x.csv"],
            "not a folder",
        ),
        "csv and json same": (
            ["--pred", good_pred, "--gt", good_gt, "--csv", t / "o", "--json", t / "o"],
            "same file",
        ),
    }


def test_every_bad_input_is_one_line_and_exit_code_2(tmp_path):
    cases = _bad_inputs(tmp_path)
    for name, (args, fragment) in cases.items():
        result = _run(*args)
        try:
            assert_user_error(result, fragment)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None


def test_bad_input_in_a_real_process_prints_no_traceback(tmp_path):
    script = (
        "import sys; from keras_liverseg.cli.evaluate import evaluate; "
        "evaluate.main(sys.argv[1:], prog_name='liverseg evaluate')"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, "--pred", str(tmp_path / "x.nii"), "--gt", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines() == [
        f"Error: prediction {tmp_path / 'x.nii'} does not exist"
    ]


def test_registered_in_the_liverseg_command():
    from keras_liverseg.cli import main

    assert "evaluate" in main.cli.commands, (
        "register the command in cli/main.py _register(): "
        "from keras_liverseg.cli import evaluate as evaluate_cmd; "
        "cli.add_command(evaluate_cmd.evaluate)"
    )


def test_spacing_comes_from_the_header_in_mm(tmp_path):
    from keras_liverseg.metrics.evaluate import read_geometry

    image = nib.Nifti1Image(_labels(), np.diag([0.0008, 0.0008, 0.0025, 1.0]))
    image.header.set_xyzt_units("meter")
    nib.save(image, str(tmp_path / "metres.nii"))
    _save(tmp_path / "plain.nii", _labels())
    assert read_geometry(tmp_path / "metres.nii").spacing == pytest.approx(SPACING)
    assert read_geometry(tmp_path / "plain.nii").spacing == SPACING  # 0.8, not 0.800000011920929


def test_real_totalsegmentator_liver(shared_data, tmp_path):
    """A real label file (3 mm CT, liver = 5 in TotalSegmentator) against a dilated copy."""
    from scipy import ndimage

    source = nib.load(str(shared_data / "totalsegmentator_example" / "example_seg.nii.gz"))
    liver = np.asarray(source.dataobj) == 5
    grown = ndimage.binary_dilation(liver, ndimage.generate_binary_structure(3, 1))
    gt = _save(tmp_path / "gt" / "liver.nii.gz", liver.astype(np.uint8), source.affine)
    pred = _save(tmp_path / "pred" / "liver.nii.gz", grown.astype(np.uint8), source.affine)
    out_json = tmp_path / "r.json"
    result = _run("--pred", pred, "--gt", gt, "--json", out_json)
    assert result.exit_code == 0, result.output
    case = json.loads(out_json.read_text())["cases"][0]
    assert case["spacing_mm"] == [3.0, 3.0, 3.0]
    metrics = case["classes"]["liver"]
    assert metrics["dice"] == pytest.approx(dice(grown, liver))
    assert metrics["rvd"] == pytest.approx((grown.sum() - liver.sum()) / liver.sum())
    # A voxel added by a one-voxel dilation lies 3 mm from the original surface; the liver
    # touches the volume's border, where surfaces coincide (distance 0).
    assert 0.0 < metrics["assd"] < 3.0 <= metrics["mssd"]
    assert metrics["hd95"] <= metrics["mssd"]
    assert case["classes"]["tumor"]["dice"] == 1.0  # no tumor on either side


def test_a_multi_label_ground_truth_is_scored_with_its_liver_label(shared_data, tmp_path):
    """TotalSegmentator's 117-class output (liver = 5, no tumor class) as ground truth."""
    gt = shared_data / "totalsegmentator_example" / "example_seg.nii.gz"
    source = nib.load(str(gt))
    seg = np.asarray(source.dataobj)
    pred = _save(tmp_path / "pred.nii.gz", (seg == 5).astype(np.uint8), source.affine)

    # without --gt-liver: one line that says what to give, not numbers of the wrong classes
    assert_user_error(_run("--pred", pred, "--gt", gt), "outside {0, 1, 2}", "--gt-liver")

    out_json = tmp_path / "r.json"
    result = _run("--pred", pred, "--gt", gt, "--gt-liver", "5", "--json", out_json)
    assert result.exit_code == 0, result.output
    assert "tumor is not scored" in result.stderr
    report = json.loads(out_json.read_text())
    assert report["settings"]["classes"] == ["liver"]
    assert report["settings"]["gt_liver"] == [5] and report["settings"]["gt_tumor"] == []
    case = report["cases"][0]
    assert set(case["classes"]) == {"liver"}
    assert case["classes"]["liver"]["dice"] == 1.0
    assert case["classes"]["liver"]["gt_volume_ml"] == pytest.approx((seg == 5).sum() * 27 / 1000)

    # the wrong organ (6) as liver: a real score, far from perfect
    wrong = _run("--pred", pred, "--gt", gt, "--gt-liver", "6", "--json", out_json, "--overwrite")
    assert wrong.exit_code == 0, wrong.output
    assert json.loads(out_json.read_text())["cases"][0]["classes"]["liver"]["dice"] < 0.5


def test_gt_liver_and_gt_tumor_remap_the_ground_truth(tmp_path):
    lits = _labels()
    own = np.where(lits == 1, 7, np.where(lits == 2, 9, 0)).astype(np.int16)
    own[0, 0, :] = 3  # another organ: background
    gt = _save(tmp_path / "gt.nii.gz", own)
    pred = _save(tmp_path / "pred.nii.gz", _labels(shift=1))
    result = _run("--pred", pred, "--gt", gt, "--gt-liver", "7", "--gt-tumor", "9")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith("gt ")]
    expected = _expected_dice(_labels(shift=1), lits)
    assert [r[1] for r in rows] == ["liver", "tumor"]
    for row in rows:
        assert float(row[2]) == pytest.approx(expected[row[1]], abs=1e-4)
    assert_user_error(_run("--pred", pred, "--gt", gt, "--gt-liver", "7", "--classes", "tumor"),
                      "--gt-tumor")


def test_remap_labels_keeps_lits_labels_and_maps_others():
    from keras_liverseg.metrics.evaluate import remap_labels

    lits = _labels()
    np.testing.assert_array_equal(remap_labels(lits), lits)
    own = np.array([0, 3, 5, 6, 5, 200])
    np.testing.assert_array_equal(remap_labels(own, liver=(5,), tumor=()), [0, 0, 1, 0, 1, 0])
    np.testing.assert_array_equal(remap_labels(own, liver=(5,), tumor=(6,)), [0, 0, 1, 2, 1, 0])


def _colour_pixels(path: Path, colour) -> int:
    from PIL import Image

    return int((np.asarray(Image.open(path).convert("RGB")) == colour).all(-1).sum())


def test_overlay_shows_prediction_and_ground_truth(tmp_path):
    from keras_liverseg.inference.overlay import GT_LIVER_COLOUR, GT_TUMOR_COLOUR, LIVER_COLOUR

    ct = np.where(_labels() > 0, 60, -100).astype(np.int16)
    for n in (1, 2):  # LiTS layout: the CT beside each ground truth
        _save(tmp_path / "gt" / f"segmentation-{n}.nii", _labels())
        _save(tmp_path / "gt" / f"volume-{n}.nii", ct)
        _save(tmp_path / "pred" / f"segmentation-{n}.nii", _labels(shift=n))
    folder = tmp_path / "pngs"
    result = _run("--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--overlay", folder)
    assert result.exit_code == 0, result.output
    assert "contours drawn on black" not in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["segmentation-1.png", "segmentation-2.png"]
    for png in folder.iterdir():
        assert _colour_pixels(png, GT_LIVER_COLOUR) > 0 and _colour_pixels(png, LIVER_COLOUR) > 0
        assert _colour_pixels(png, GT_TUMOR_COLOUR) > 0

    single = tmp_path / "one.png"
    args = ["--pred", tmp_path / "pred" / "segmentation-1.nii",
            "--gt", tmp_path / "gt" / "segmentation-1.nii", "--overlay", single]
    assert _run(*args, "--image", tmp_path / "gt" / "volume-1.nii").exit_code == 0
    assert _colour_pixels(single, GT_LIVER_COLOUR) > 0
    assert_user_error(_run(*args), str(single), "--overwrite")
    assert _run(*args, "--overwrite").exit_code == 0

    _save(tmp_path / "small_ct.nii", ct[:10])
    _save(tmp_path / "cts" / "ct-7.nii", ct)
    cases = {
        "not a png": ([*args[:4], "--overlay", tmp_path / "x.jpg"], ".png"),
        "png for folders": (["--pred", tmp_path / "pred", "--gt", tmp_path / "gt", "--overlay",
                             tmp_path / "x.png"], "must be a folder"),
        "image without overlay": ([*args[:4], "--image", tmp_path / "small_ct.nii"],
                                  "give --overlay"),
        "image on another grid": ([*args[:4], "--overlay", tmp_path / "y.png", "--image",
                                   tmp_path / "small_ct.nii"], "not on the grid"),
        "overlay is the csv": ([*args[:4], "--overlay", tmp_path / "w.png", "--csv",
                                tmp_path / "w.png"], "name the same file"),
        "no image for the case": (["--pred", tmp_path / "pred", "--gt", tmp_path / "gt",
                                   "--overlay", tmp_path / "z", "--image", tmp_path / "cts"],
                                  "no image"),
    }
    for name, (case_args, fragment) in cases.items():
        try:
            assert_user_error(_run(*case_args), fragment)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None
    assert not (tmp_path / "y.png").exists()
