"""``liverseg predict``: outputs, geometry on real scans, batch mode and every bad input.

The model is the oracle of conftest.py saved as a ``.keras`` file and passed with
``--weights`` (so the tests do not depend on the bundled weights).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from cli_checks import assert_user_error
from click.testing import CliRunner
from geometry import nifti_geometry, read_nrrd

from keras_liverseg.cli.predict import predict

AFFINE = np.array([[-0.8, 0, 0, 12], [0, -0.8, 0, 9], [0, 0, 2.0, -30], [0, 0, 0, 1.0]])
SHAPE = (32, 32, 8)  # LPS: the canonical slices are 32x32, the oracle's input size


def _volume(shape=SHAPE) -> tuple[np.ndarray, np.ndarray]:
    labels = np.zeros(shape, np.uint8)
    labels[6:24, 8:26, 2:7] = 1
    labels[10:14, 12:15, 3:5] = 2
    return np.choose(labels, [-1000, 150, 400]).astype(np.int16), labels


def _save(path: Path, data: np.ndarray, affine: np.ndarray = AFFINE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(data, affine)
    image.header.set_qform(affine, code=1)
    image.header.set_sform(affine, code=1)
    nib.save(image, str(path))
    return path


def _run(*args: object):
    return CliRunner().invoke(predict, [str(a) for a in args])


def test_single_scan_with_report_and_overlay(tmp_path, oracle_model_file):
    volume, labels = _volume()
    source = _save(tmp_path / "ct.nii.gz", volume)
    out = tmp_path / "out" / "seg.nii.gz"
    result = _run(
        source,
        "-o",
        out,
        "--weights",
        oracle_model_file,
        "--report",
        tmp_path / "r.json",
        "--overlay",
        tmp_path / "o.png",
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert "seg.nii.gz: liver" in result.stdout
    written = nib.load(str(out))
    assert written.get_data_dtype() == np.uint8
    assert np.array_equal(np.asarray(written.dataobj), labels)
    assert np.allclose(written.affine, AFFINE)
    report = json.loads((tmp_path / "r.json").read_text())
    voxel_ml = 0.8 * 0.8 * 2.0 / 1000
    assert report["liver_volume_ml"] == pytest.approx((labels > 0).sum() * voxel_ml, abs=1e-4)
    assert report["tumor_volume_ml"] == pytest.approx((labels == 2).sum() * voxel_ml, abs=1e-4)
    assert report["tumor_burden_percent"] == pytest.approx(
        100 * (labels == 2).sum() / (labels > 0).sum(), abs=1e-3
    )
    assert report["lesion_count"] == 1
    centre = AFFINE @ [*np.argwhere(labels == 2).mean(0), 1.0]
    assert report["lesions"][0]["centroid_mm"] == pytest.approx(centre[:3], abs=1e-3)
    model = report["model"]
    assert model["name"] == "unet_sharp" and model["weights"] == str(oracle_model_file)
    assert model["weights_sha256"] == hashlib.sha256(oracle_model_file.read_bytes()).hexdigest()
    assert model["input_size"] == [32, 32] and model["classes"] == [
        "background",
        "liver",
        "tumor",
    ]
    assert report["versions"]["keras"] and report["versions"]["keras_liverseg"]
    assert report["timing_s"]["total"] > 0 and report["output"] == str(out)
    assert report["input"]["orientation"] == "LPS"
    assert (tmp_path / "o.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in out.parent.iterdir()) == ["seg.nii.gz"]  # no temp files


def test_options_reach_the_report_and_quiet_is_silent(tmp_path, oracle_model_file):
    volume, labels = _volume()
    source = _save(tmp_path / "ct.nii", volume)
    out = tmp_path / "seg.nii"
    result = _run(
        source,
        "-o",
        out,
        "--weights",
        oracle_model_file,
        "--tta",
        "--no-postprocess",
        "--batch-size",
        3,
        "--report",
        tmp_path / "r.json",
        "--quiet",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and result.stderr == ""
    options = json.loads((tmp_path / "r.json").read_text())["options"]
    assert options["tta"] is True and options["batch_size"] == 3
    assert options["postprocess"]["largest_component"] is False
    assert np.array_equal(np.asarray(nib.load(str(out)).dataobj), labels)


def test_real_nifti_comes_back_with_its_geometry(tmp_path, shared_data, oracle_model_file):
    source = shared_data / "totalsegmentator_example" / "example_ct_sm.nii.gz"
    out = tmp_path / "seg.nii.gz"
    result = _run(source, "-o", out, "--weights", oracle_model_file, "--quiet")
    assert result.exit_code == 0, result.output
    written, original = nib.load(str(out)), nib.load(str(source))
    assert written.shape == original.shape == (122, 101, 30)
    assert np.array_equal(written.affine, original.affine)
    assert written.header.get_zooms() == original.header.get_zooms()
    assert nifti_geometry(written.header) == nifti_geometry(original.header)
    assert set(np.unique(np.asarray(written.dataobj))) <= {0, 1, 2}


def test_real_dicom_series_comes_back_on_the_nrrd_mask_grid(tmp_path, shared_data, oracle_model):
    """The 3-slice DICOM series' output lines up with the NRRD liver mask's grid.

    A 512x512 oracle calls 20..100 HU "liver" (no resizing): that must overlap the real
    liver mask far more than the mask flipped left-right or transposed.
    """
    weights = tmp_path / "oracle512.keras"
    oracle_model(input_size=(512, 512), liver_hu=20.0, tumor_hu=100.0).save(weights)
    folder = shared_data / "dcmqi_ct_3slice"
    out = tmp_path / "seg.nii.gz"
    result = _run(folder, "-o", out, "--weights", weights, "--quiet", "--no-postprocess")
    assert result.exit_code == 0, result.output
    written = nib.load(str(out))
    mask, affine = read_nrrd(folder / "liver_seg.nrrd")
    assert written.shape == mask.shape == (512, 512, 3)
    assert np.allclose(written.affine, affine, atol=1e-4)
    assert written.header.get_zooms() == pytest.approx((0.810547, 0.810547, 1.0), abs=1e-5)
    assert int(written.header["qform_code"]) == 1 and int(written.header["sform_code"]) == 1
    predicted = np.asarray(written.dataobj) == 1
    inside = predicted[mask > 0].mean()
    assert inside > 0.5 and inside > 5 * predicted[mask == 0].mean()
    for wrong in (mask[::-1], mask[:, ::-1], mask.transpose(1, 0, 2)):
        assert inside > predicted[wrong > 0].mean() + 0.2


def _batch_folder(tmp_path: Path, write_dicom_series) -> Path:
    folder = tmp_path / "scans"
    volume, _ = _volume()
    _save(folder / "a.nii.gz", volume)
    _save(folder / "b.nii", volume[::-1].copy(), AFFINE @ np.diag([-1, 1, 1, 1.0]))
    slices = [volume[:, :, k].T + 1024 for k in range(SHAPE[2])]
    positions = [(-12.0, -9.0, -30.0 + 2.0 * k) for k in range(SHAPE[2])]
    write_dicom_series(folder / "c_series", slices, positions, pixel_spacing=(0.8, 0.8))
    (folder / "notes.txt").write_text("ignored")
    return folder


def test_batch_mode_loads_the_model_once(
    tmp_path, oracle_model_file, write_dicom_series, monkeypatch
):
    from keras_liverseg.inference import loading

    calls = []
    original = loading.load_model
    monkeypatch.setattr(loading, "load_model", lambda *a, **k: calls.append(a) or original(*a, **k))
    folder = _batch_folder(tmp_path, write_dicom_series)
    out = tmp_path / "out"
    result = _run(
        folder,
        "-o",
        out,
        "--weights",
        oracle_model_file,
        "--report",
        tmp_path / "all.json",
        "--overlay",
        tmp_path / "pngs",
    )
    assert result.exit_code == 0, (result.output, result.exception)
    assert len(calls) == 1
    assert sorted(p.name for p in out.iterdir()) == ["a.nii.gz", "b.nii", "c_series.nii.gz"]
    assert sorted(p.name for p in (tmp_path / "pngs").iterdir()) == [
        "a.png",
        "b.png",
        "c_series.png",
    ]
    _, labels = _volume()
    a = nib.load(str(out / "a.nii.gz"))
    b = nib.load(str(out / "b.nii"))
    c = nib.load(str(out / "c_series.nii.gz"))
    assert np.array_equal(np.asarray(a.dataobj), labels)
    assert np.array_equal(np.asarray(b.dataobj), labels[::-1])
    assert np.allclose(
        c.affine,
        np.diag([-0.8, -0.8, 2.0, 1]) + [[0, 0, 0, 12], [0, 0, 0, 9], [0, 0, 0, -30], [0] * 4],
    )
    assert np.array_equal(np.asarray(c.dataobj), labels)  # same voxels as a.nii.gz
    report = json.loads((tmp_path / "all.json").read_text())
    assert [Path(s["input"]["path"]).name for s in report["scans"]] == [
        "a.nii.gz",
        "b.nii",
        "c_series",
    ]
    assert report["failed"] == []
    assert report["scans"][2]["input"]["kind"] == "dicom"
    assert "[3/3] c_series" in result.stderr


def test_batch_mode_reads_every_scan_first_and_skips_bad_ones_only_when_asked(
        tmp_path, oracle_model_file):
    folder = tmp_path / "scans"
    _save(folder / "a.nii.gz", _volume()[0])
    (folder / "b.nii.gz").write_bytes(b"garbage")
    result = _run(folder, "-o", tmp_path / "out", "--weights", oracle_model_file, "--quiet")
    assert_user_error(result, "b.nii.gz", "1 of 2 scans", "--skip-unreadable")
    assert not (tmp_path / "out").exists()  # nothing segmented, nothing left

    result = _run(folder, "-o", tmp_path / "out", "--weights", oracle_model_file,
                  "--skip-unreadable", "--report", tmp_path / "all.json")
    assert result.exit_code == 0, result.output
    assert "skipping" in result.stderr and "b.nii.gz" in result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.nii.gz"]
    report = json.loads((tmp_path / "all.json").read_text())
    assert [Path(f["input"]).name for f in report["failed"]] == ["b.nii.gz"]
    assert len(report["scans"]) == 1


def test_overwrite(tmp_path, oracle_model_file):
    source = _save(tmp_path / "ct.nii.gz", _volume()[0])
    out = tmp_path / "seg.nii.gz"
    out.write_bytes(b"old")
    assert_user_error(_run(source, "-o", out, "--weights", oracle_model_file), "--overwrite")
    assert out.read_bytes() == b"old"
    result = _run(source, "-o", out, "--weights", oracle_model_file, "--overwrite", "-q")
    assert result.exit_code == 0 and nib.load(str(out)).shape == SHAPE


@pytest.mark.parametrize("kind", ["constant", "nan"])
def test_constant_or_nan_volume_warns_and_still_writes(tmp_path, oracle_model_file, kind):
    data = np.full(SHAPE, np.nan if kind == "nan" else 40.0, np.float32)
    source = _save(tmp_path / "ct.nii.gz", data)
    result = _run(source, "-o", tmp_path / "seg.nii.gz", "--weights", oracle_model_file)
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.stderr
    assert nib.load(str(tmp_path / "seg.nii.gz")).shape == SHAPE


def _bad_inputs(t: Path, oracle: Path, write_dicom_series) -> dict[str, tuple[list, str]]:
    good = _save(t / "good.nii.gz", _volume()[0])
    out = t / "out" / "seg.nii.gz"
    raw = good.read_bytes()
    (t / "cut.nii.gz").write_bytes(raw[: len(raw) // 2])
    (t / "text.txt").write_text("hello")
    (t / "fake.nii.gz").write_text("hello")
    _save(t / "flat.nii.gz", np.zeros((8, 8), np.int16))
    _save(t / "4d.nii.gz", np.zeros((8, 8, 4, 2), np.int16))
    header = nib.Nifti1Header()
    header.set_data_dtype(np.int16)
    header["sform_code"], header["srow_x"], header["srow_y"] = 1, [1, 0, 0, 0], [0, 1, 0, 0]
    header["srow_z"] = [0, 0, 0, 0]  # a zero slice axis: no inverse
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 4), np.int16), None, header), str(t / "sing.nii.gz"))
    (t / "empty").mkdir()
    (t / "only_text").mkdir()
    (t / "only_text" / "a.txt").write_text("x")
    pixels = [np.zeros((4, 4), int)] * 2
    write_dicom_series(
        t / "mixed",
        pixels,
        [(0, 0, 0), (0, 0, 1)],
        series_uid="1.2.826.1",
        names=["a1.dcm", "a2.dcm"],
    )
    write_dicom_series(
        t / "mixed",
        pixels,
        [(0, 0, 0), (0, 0, 1)],
        series_uid="1.2.826.2",
        names=["b1.dcm", "b2.dcm"],
    )
    (t / "exists.nii.gz").write_bytes(b"x")
    w = ["--weights", oracle]
    from keras_liverseg import zoo

    unreleased = next(e.name for e in zoo.entries() if zoo.default_weights(e.name) is None)
    return {
        "missing file": ([t / "nope.nii.gz", "-o", out, *w], "no such file"),
        "truncated nii.gz": ([t / "cut.nii.gz", "-o", out, *w], "cut.nii.gz"),
        "not NIfTI or DICOM": ([t / "text.txt", "-o", out, *w], "not a NIfTI"),
        "fake nii.gz": ([t / "fake.nii.gz", "-o", out, *w], "not a readable NIfTI"),
        "2D image": ([t / "flat.nii.gz", "-o", out, *w], "2D image"),
        "4D image": ([t / "4d.nii.gz", "-o", out, *w], "4D image"),
        "non-invertible affine": ([t / "sing.nii.gz", "-o", out, *w], "not invertible"),
        "empty folder": ([t / "empty", "-o", out, *w], "empty folder"),
        "folder without scans": ([t / "only_text", "-o", out, *w], "no NIfTI"),
        "mixed DICOM series": ([t / "mixed", "-o", out, *w], "1.2.826.1"),
        "single DICOM file": ([t / "mixed" / "a1.dcm", "-o", out, *w], "pass the folder"),
        "output is input": ([good, "-o", good, *w], "is the INPUT"),
        "output exists": ([good, "-o", t / "exists.nii.gz", *w], "--overwrite"),
        "output not NIfTI": ([good, "-o", t / "out" / "seg.png", *w], ".nii.gz"),
        "batch output is input": ([t, "-o", t, *w], "INPUT folder"),
        "overlay not png": ([good, "-o", out, *w, "--overlay", t / "out" / "o.jpg"], ".png"),
        "no weights released": ([good, "-o", out, "--model", unreleased], "--weights PATH"),
        "no such release": ([good, "-o", out, "--model", "unet", "--weights", "v0"],
                            "no release 'v0'"),
        "weights missing": ([good, "-o", out, "--weights", t / "w.keras"], "not found"),
        "weights bad suffix": ([good, "-o", out, "--weights", t / "text.txt"], ".weights.h5"),
        "weights corrupt": ([good, "-o", out, "--weights", t / "fake.weights.h5"], "cannot load"),
        "unknown model": ([good, "-o", out, "--model", "nonet", *w], "nonet"),
        "single stage and second-stage weights": (
            [good, "-o", out, *w, "--single-stage", "--second-stage-weights", oracle],
            "exclude each other"),
        "no second stage": (
            [good, "-o", out, "--model", "unet_sharp_fast", "--second-stage-weights", oracle],
            "no second stage"),
        "second-stage weights missing": (
            [good, "-o", out, *w, "--model", "unet_sharp", "--second-stage-weights",
             t / "w2.weights.h5"], "not found"),
    }


def test_every_bad_input_is_one_line_exit_2_and_writes_nothing(
    tmp_path, oracle_model_file, write_dicom_series
):
    (tmp_path / "fake.weights.h5").write_bytes(b"not hdf5")
    cases = _bad_inputs(tmp_path, oracle_model_file, write_dicom_series)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for name, (args, fragment) in cases.items():
        result = _run(*args)
        try:
            assert_user_error(result, fragment)
        except AssertionError as error:
            raise AssertionError(f"{name}: {error}") from None
        after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
        assert after == before, f"{name}: left {set(after) ^ set(before)}"


def test_gpu_request_without_gpu_is_a_user_error(tmp_path, oracle_model_file):
    from keras_liverseg.cli.quiet import import_backend
    from keras_liverseg.inference.device import gpu_count

    import_backend()
    if gpu_count():
        pytest.skip("this machine has a GPU")
    source = _save(tmp_path / "ct.nii.gz", _volume()[0])
    result = _run(
        source, "-o", tmp_path / "seg.nii.gz", "--weights", oracle_model_file, "--device", "gpu"
    )
    assert_user_error(result, "no GPU")
    assert not (tmp_path / "seg.nii.gz").exists()


def test_smallest_lesion_is_the_models_own_unless_given(tmp_path, oracle_model_file):
    from keras_liverseg import predict_volume, zoo
    from keras_liverseg.inference import PostprocessOptions
    from keras_liverseg.inference.loading import as_loaded, load_model

    # bundled weights carry their zoo entry's size, growth and lesion confidence; other
    # weights keep every lesion as predicted
    entry = zoo.get_entry("unet_sharp")
    own = (entry.postprocess.min_lesion_mm3, entry.postprocess.lesion_growth_mm,
           entry.postprocess.min_lesion_prob)

    def settings(loaded):
        return (loaded.postprocess.min_lesion_mm3, loaded.postprocess.lesion_growth_mm,
                loaded.postprocess.min_lesion_prob)

    assert all(x > 0 for x in own) and settings(load_model("unet_sharp")) == own
    fast_entry = zoo.get_entry("unet_sharp_fast")
    assert settings(load_model("unet_sharp", fast=True)) == settings(fast_entry) == own
    assert settings(load_model("unet_sharp", oracle_model_file)) == (0, 0, 0)
    copy = tmp_path / "copy.weights.h5"  # the bundled file under another name: the same
    shutil.copyfile(zoo.download.resolve(zoo.default_weights("unet_sharp")), copy)
    assert settings(load_model("unet_sharp", copy)) == own
    assert load_model("unet_sharp", copy).postprocess_options() == PostprocessOptions(
        min_lesion_mm3=own[0], lesion_growth_mm=own[1], min_lesion_prob=own[2])
    tuned = tmp_path / "tuned.weights.h5"  # other weights keep every lesion
    zoo.load("unet_sharp", weights=None).save_weights(tuned)
    assert settings(load_model("unet_sharp", tuned)) == (0, 0, 0)

    volume, labels = _volume()  # its lesion: 24 voxels of 1.28 mm3 = 30.72 mm3
    source = _save(tmp_path / "ct.nii", volume)
    for extra, smallest, kept in [((), 0.0, True), (("--min-lesion-mm3", 30), 30.0, True),
                                  (("--min-lesion-mm3", 31), 31.0, False)]:
        out, report = tmp_path / f"seg{smallest}.nii", tmp_path / f"r{smallest}.json"
        result = _run(source, "-o", out, "--weights", oracle_model_file, "--report", report,
                      "--quiet", *extra)
        assert result.exit_code == 0, result.output
        options = json.loads(report.read_text())["options"]["postprocess"]
        assert options["min_lesion_mm3"] == smallest and options["lesion_growth_mm"] == 0
        predicted = np.asarray(nib.load(str(out)).dataobj)
        assert (predicted == 2).any() == kept and ((predicted >= 1) == (labels >= 1)).all()

    # predict_volume: post-processing by default uses the loaded model's size
    loaded = as_loaded(load_model("unet_sharp", oracle_model_file).model)
    loaded.postprocess = PostprocessOptions(min_lesion_mm3=31.0)
    by_default = predict_volume(loaded, source)
    assert not (by_default.labels == 2).any()
    assert by_default.report["options"]["postprocess"]["min_lesion_mm3"] == 31.0
    explicit = predict_volume(loaded, source, postprocess=PostprocessOptions())
    assert (explicit.labels == 2).sum() == (labels == 2).sum()


def test_fast_variant_mapping():
    from keras_liverseg.inference.loading import fast_variant

    assert fast_variant("unet_sharp") == "unet_sharp_fast"
    assert fast_variant("unet_sharp_fast") == "unet_sharp_fast"
    assert fast_variant("unet") == "unet"


def test_second_stage_comes_with_the_bundled_weights_only(tmp_path):
    from keras_liverseg import zoo
    from keras_liverseg.inference.loading import load_model

    own = tmp_path / "own.weights.h5"
    zoo.load("unet_sharp", weights=None).save_weights(own)
    assert load_model("unet_sharp", own).second_stage is None  # a fine-tuned model alone
    both = load_model("unet_sharp", own, second_stage_weights=own)
    assert both.second_stage.name == "unet_sharp_roi"
    assert both.second_stage.liver_roi == zoo.get_entry("unet_sharp_roi").liver_roi
    assert both.describe()["second_stage"]["weights"] == str(own)
    assert load_model("unet_sharp", own, second_stage_weights=None).second_stage is None


def _liverseg_command() -> list[str]:
    from keras_liverseg.cli import main

    script = shutil.which("liverseg")
    if script and "predict" in main.cli.commands:
        return [script, "predict"]
    # until `predict` is registered in cli/main.py: the same command, in a real process
    code = (
        "import sys; from keras_liverseg.cli.predict import predict; "
        "predict.main(sys.argv[1:], prog_name='liverseg predict')"
    )
    return [sys.executable, "-c", code]


@pytest.mark.slow
def test_console_script_in_a_real_process(tmp_path, oracle_model_file):
    command = _liverseg_command()
    source = _save(tmp_path / "ct.nii.gz", _volume()[0])
    bad = subprocess.run(
        [*command, str(tmp_path / "nope.nii.gz"), "-o", str(tmp_path / "x.nii")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        f"Error: {tmp_path / 'nope.nii.gz'}: no such file or folder"
    ]
    out = tmp_path / "seg.nii.gz"
    good = subprocess.run(
        [
            *command,
            str(source),
            "-o",
            str(out),
            "--weights",
            str(oracle_model_file),
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert good.returncode == 0, good.stderr
    assert "Traceback" not in good.stderr and "Error" not in good.stderr
    assert np.array_equal(np.asarray(nib.load(str(out)).dataobj), _volume()[1])


def test_registered_in_the_liverseg_command():
    from keras_liverseg.cli import main

    assert "predict" in main.cli.commands, (
        "register the command in cli/main.py _register(): "
        "from keras_liverseg.cli import predict as predict_cmd; "
        "cli.add_command(predict_cmd.predict)"
    )


def test_the_cli_report_is_the_predictors_with_the_runs_facts(tmp_path, oracle_model_file):
    """One function builds the report (inference.report.scan_report): the CLI's is
    predict_volume's plus its own facts; its progress bar runs to the predictor's total."""
    from keras_liverseg import predict_volume
    from keras_liverseg.inference.loading import load_model

    source = _save(tmp_path / "ct.nii", _volume()[0])
    result = _run(source, "-o", tmp_path / "seg.nii", "--weights", oracle_model_file,
                  "--report", tmp_path / "r.json")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("ct.nii")  # the progress bar's label (not a terminal)
    cli = json.loads((tmp_path / "r.json").read_text())
    python = predict_volume(load_model("unet_sharp", oracle_model_file), source).report
    assert list(cli) == [*python, "output", "overlay"]
    assert list(cli["timing_s"]) == [*python["timing_s"], "model_load"]
    assert cli["options"] == {**python["options"], "fast": False, "device": "auto",
                              "force": False, "skip_unreadable": False}
    assert cli["output"] == str(tmp_path / "seg.nii") and cli["overlay"] is None
    assert cli["model"] == python["model"] and cli["lesions"] == python["lesions"]


# --- issue 20: what the report and stderr say, and the help texts ---------------------------

def test_report_times_the_scan_load(tmp_path, oracle_model_file):
    volume = np.tile(_volume()[0], (4, 4, 25))  # 128x128x200: a load that takes time
    source = _save(tmp_path / "ct.nii.gz", volume)
    result = _run(source, "-o", tmp_path / "seg.nii.gz", "--weights", oracle_model_file,
                  "--report", tmp_path / "r.json", "--quiet")
    assert result.exit_code == 0, result.output
    timing = json.loads((tmp_path / "r.json").read_text())["timing_s"]
    assert timing["load"] > 0
    assert timing["total"] >= timing["load"] + timing["predict"] - 0.002  # rounding


def test_force_lets_a_label_map_through_and_the_report_says_so(tmp_path, oracle_model_file):
    source = _save(tmp_path / "labels.nii.gz", _volume()[1])
    out, report = tmp_path / "seg.nii.gz", tmp_path / "r.json"
    assert_user_error(_run(source, "-o", out, "--weights", oracle_model_file), "--force")
    assert not out.exists()
    result = _run(source, "-o", out, "--weights", oracle_model_file, "--force",
                  "--report", report)
    assert result.exit_code == 0, result.output
    assert "label map" in result.stderr
    written = json.loads(report.read_text())
    assert any("label map" in w for w in written["warnings"])
    assert written["options"]["force"] is True and "skipped_files" not in written["input"]


def test_skip_unreadable_lists_the_skipped_dicom_files(tmp_path, oracle_model_file,
                                                       write_dicom_series):
    volume = _volume()[0]
    slices = [volume[:, :, k].T + 1024 for k in range(SHAPE[2])]
    positions = [(-12.0, -9.0, -30.0 + 2.0 * k) for k in range(SHAPE[2])]
    paths = write_dicom_series(tmp_path / "series", slices, positions, pixel_spacing=(0.8, 0.8))
    broken = tmp_path / "series" / "zz_broken.dcm"
    broken.write_bytes(paths[0].read_bytes()[:132] + b"\xff" * 50)  # the header cut short
    out, report = tmp_path / "seg.nii.gz", tmp_path / "r.json"
    args = (tmp_path / "series", "-o", out, "--weights", oracle_model_file, "--report", report)
    assert_user_error(_run(*args), "zz_broken.dcm")
    result = _run(*args, "--skip-unreadable", "--quiet")
    assert result.exit_code == 0, result.output
    written = json.loads(report.read_text())
    assert written["input"]["skipped_files"] == [str(broken)]
    assert written["options"]["skip_unreadable"] is True
    assert any("zz_broken.dcm" in w for w in written["warnings"])
    assert np.array_equal(np.asarray(nib.load(str(out)).dataobj), _volume()[1])


def test_batch_mode_says_which_label_maps_it_skipped(tmp_path, oracle_model_file):
    folder = tmp_path / "lits"
    _save(folder / "volume-1.nii.gz", _volume()[0])
    _save(folder / "segmentation-1.nii.gz", _volume()[1])
    result = _run(folder, "-o", tmp_path / "out", "--weights", oracle_model_file,
                  "--report", tmp_path / "all.json")
    assert result.exit_code == 0, result.output
    notes = [line for line in result.stderr.splitlines() if "label map" in line]
    assert len(notes) == 1 and "segmentation-1.nii.gz" in notes[0]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["volume-1.nii.gz"]
    written = json.loads((tmp_path / "all.json").read_text())
    assert written["skipped_label_files"] == [str(folder / "segmentation-1.nii.gz")]


def test_a_bad_option_value_is_one_line(capsys):
    from keras_liverseg.cli.main import main

    assert main(["predict", "ct.nii.gz", "-o", "seg.nii.gz", "--batch-size", "0"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "Error: Invalid value for '--batch-size': 0 is not in the range x>=1."]
    assert main(["predict", "ct.nii.gz"]) == 2
    assert capsys.readouterr().err.splitlines() == ["Error: Missing option '-o' / '--output'."]


@pytest.mark.slow
def test_weights_of_another_model_are_one_line(tmp_path, oracle_model):
    """Keras warns once per layer it cannot fill (70 lines); the user gets one."""
    weights = tmp_path / "oracle.weights.h5"
    oracle_model().save_weights(weights)
    source = _save(tmp_path / "ct.nii.gz", _volume()[0])
    completed = subprocess.run(
        [sys.executable, "-m", "keras_liverseg.cli.main", "predict", str(source), "-o",
         str(tmp_path / "seg.nii.gz"), "--weights", str(weights), "--device", "cpu"],
        capture_output=True, text=True, timeout=300)
    assert completed.returncode == 2
    lines = completed.stderr.strip().splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith(f"Error: weights {weights} do not match model 'unet_sharp': layer ")
    assert not (tmp_path / "seg.nii.gz").exists()


def test_help_texts_say_what_the_commands_do():
    from keras_liverseg.cli.main import cli

    runner = CliRunner()
    text = " ".join(runner.invoke(cli, ["predict", "--help"], terminal_width=400).output.split())
    assert "none are released yet" not in text  # the default model ships its weights
    weights = text[text.index("-w, --weights"):text.index("--second-stage-weights")]
    assert "bundled" in weights and "downloaded" in weights and "liverseg zoo list" in weights
    second = text[text.index("--second-stage-weights"):text.index("--single-stage")]
    assert "none are released" in second and "Default: no second stage" in second
    for word in ("--force", "--skip-unreadable", "listed in the report"):
        assert word in text
    for command in cli.commands:
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0 and "not released yet" not in result.output, command


def test_min_lesion_prob_reaches_postprocessing_and_the_report(tmp_path, oracle_model_file):
    # the oracle calls 300.6 HU tumor with probability 0.8 (liver 0.2): a lesion of mean and
    # max 0.8 (the slices are the oracle's input size: nothing is resized)
    volume, labels = _volume()
    volume = np.where(labels == 2, 300.6, volume).astype(np.float32)
    source = _save(tmp_path / "ct.nii", volume)
    for extra, threshold, kept in [((), 0.0, True), (("--min-lesion-prob", 0.75), 0.75, True),
                                   (("--min-lesion-prob", 0.85), 0.85, False)]:
        out, report = tmp_path / f"seg{threshold}.nii", tmp_path / f"r{threshold}.json"
        result = _run(source, "-o", out, "--weights", oracle_model_file, "--report", report,
                      "--quiet", *extra)
        assert result.exit_code == 0, result.output
        found = json.loads(report.read_text())
        assert found["options"]["postprocess"]["min_lesion_prob"] == threshold
        predicted = np.asarray(nib.load(str(out)).dataobj)
        assert (predicted == 2).any() == kept and ((predicted >= 1) == (labels >= 1)).all()
        if kept:
            assert np.array_equal(predicted == 2, labels == 2)
            [lesion] = found["lesions"]
            assert lesion["mean_tumor_prob"] == lesion["max_tumor_prob"] == 0.8
        else:
            assert found["lesions"] == [] and found["lesion_count"] == 0
    result = _run(source, "-o", tmp_path / "bad.nii", "--weights", oracle_model_file,
                  "--min-lesion-prob", "1.5")
    assert result.exit_code == 2 and "--min-lesion-prob" in result.output
    assert not (tmp_path / "bad.nii").exists()


def test_lesion_probabilities_in_the_report_of_predict_volume(tmp_path, oracle_model_file):
    from keras_liverseg import predict_volume
    from keras_liverseg.inference import PostprocessOptions
    from keras_liverseg.inference.loading import load_model

    volume, labels = _volume()
    volume = np.where(labels == 2, 300.6, volume).astype(np.float32)
    source = _save(tmp_path / "ct.nii", volume)
    loaded = load_model("unet_sharp", oracle_model_file)
    # with and without the probabilities returned, the same lesion numbers
    for keep in (False, True):
        seg = predict_volume(loaded, source, return_probabilities=keep)
        [lesion] = seg.report["lesions"]
        assert lesion["mean_tumor_prob"] == lesion["max_tumor_prob"] == 0.8
        assert (seg.probabilities is not None) == keep
    dropped = predict_volume(loaded, source, return_probabilities=True,
                             postprocess=PostprocessOptions(min_lesion_prob=0.9))
    assert not (dropped.labels == 2).any() and dropped.report["lesions"] == []
    assert dropped.report["options"]["postprocess"]["min_lesion_prob"] == 0.9


def test_min_lesion_prob_default_only_for_the_bundled_weights(tmp_path, oracle_model_file):
    from keras_liverseg import zoo
    from keras_liverseg.inference.loading import load_model
    from keras_liverseg.zoo.catalog import MIN_LESION_PROB

    entry = zoo.get_entry("unet_sharp")
    own = entry.postprocess.min_lesion_prob
    assert own == MIN_LESION_PROB == zoo.get_entry("unet_sharp_fast").postprocess.min_lesion_prob
    assert 0.0 <= own < 1.0
    assert load_model("unet_sharp").postprocess_options().min_lesion_prob == own
    assert load_model("unet_sharp", fast=True).postprocess_options().min_lesion_prob == own
    copy = tmp_path / "copy.weights.h5"  # the bundled file under another name: the same
    shutil.copyfile(zoo.download.resolve(zoo.default_weights("unet_sharp")), copy)
    assert load_model("unet_sharp", copy).postprocess_options().min_lesion_prob == own
    tuned = tmp_path / "tuned.weights.h5"  # other weights keep every lesion
    zoo.load("unet_sharp", weights=None).save_weights(tuned)
    assert load_model("unet_sharp", tuned).postprocess_options().min_lesion_prob == 0.0
    assert load_model("unet_sharp", oracle_model_file).postprocess_options() \
        .min_lesion_prob == 0.0
    assert zoo.get_entry("unet").postprocess.min_lesion_prob == 0.0


def test_a_signal_that_c_code_turned_into_another_error_still_exits_143(monkeypatch, capsys):
    """SIGTERM inside NumPy or TensorFlow code can come out as a SystemError ("returned a
    result with an exception set"); the clean-up has run while it unwound, and the exit
    code and the one line are still the signal's."""
    import signal

    from keras_liverseg.cli import main as main_module
    from keras_liverseg.cli import signals

    def interrupted_in_c_code(*_args, **_kwargs):
        signals._RECEIVED.append(signal.SIGTERM)  # what the handler records
        raise SystemError("<built-in method __array__> returned a result with an exception set")

    monkeypatch.setattr(main_module.cli, "main", interrupted_in_c_code)
    assert main_module.main(["predict"]) == 143
    assert capsys.readouterr().err.strip() == "Terminated."

    def plain_bug(*_args, **_kwargs):
        raise SystemError("a bug, no signal")

    monkeypatch.setattr(main_module.cli, "main", plain_bug)
    with pytest.raises(SystemError, match="a bug"):  # not hidden as a signal
        main_module.main(["predict"])


_START_UP = """
import json, sys
from keras_liverseg.cli.quiet import import_backend
import_backend()
seen = {name: name in sys.modules for name in ("jax", "IPython")}
import importlib.util
print(json.dumps({"seen": seen, "importable": importlib.util.find_spec("jax") is not None}))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_the_backend_starts_without_the_packages_no_command_uses(tmp_path, backend):
    """TensorFlow imports JAX (for TFLite's converter of JAX functions) and Keras imports
    IPython (for notebooks) when they are installed: the CLI keeps them out of start-up,
    JAX only under TensorFlow, and they stay importable afterwards."""
    pytest.importorskip("jax")
    env = {**__import__("os").environ, "KERAS_BACKEND": backend}
    completed = subprocess.run([sys.executable, "-c", _START_UP], capture_output=True,
                               text=True, timeout=300, env=env)
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["seen"] == {"jax": backend == "jax", "IPython": False}
    assert result["importable"]


def test_the_configured_backend_is_read_as_keras_reads_it(tmp_path, monkeypatch):
    from keras_liverseg.cli.quiet import configured_backend

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    assert configured_backend() == "tensorflow"
    (tmp_path / "keras.json").write_text(json.dumps({"backend": "jax"}))
    assert configured_backend() == "jax"
    monkeypatch.setenv("KERAS_BACKEND", "torch")
    assert configured_backend() == "torch"
