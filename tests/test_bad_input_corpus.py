"""The bad-input corpus (benchmarks/bad_input_corpus.py): its cases, its verdicts, a few runs."""

from __future__ import annotations

import importlib.util
import signal
import sys
from pathlib import Path

import pytest

CORPUS_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bad_input_corpus.py"


@pytest.fixture(scope="module")
def corpus():
    spec = importlib.util.spec_from_file_location("bad_input_corpus", CORPUS_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["bad_input_corpus"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_every_case_builds_and_the_corpus_covers_the_issue(corpus, tmp_path):
    setups = corpus.build_all(tmp_path)
    ids = [c.id for c in corpus.CASES]
    assert len(ids) >= 60 and len(set(ids)) == len(ids)
    assert set(setups) == set(ids)
    for c in corpus.CASES:
        assert c.expect in corpus.EXPECTATIONS, c.id
        setup = setups[c.id]
        assert setup.runs and all(run.args for run in setup.runs), c.id
        if c.expect in ("ok", "race"):
            assert setup.outputs, c.id  # an ok outcome must show what it wrote
    categories = {c.category for c in corpus.CASES}
    assert {"nifti", "gzip", "dims", "values", "dtype", "geometry", "size", "labels-as-ct",
            "dicom", "folders", "outputs", "options", "evaluate", "train", "export",
            "sample-data", "signals", "concurrency"} <= categories
    commands = {c.command for c in corpus.CASES}
    assert {"predict", "evaluate", "train", "export", "sample-data"} <= commands
    # what the issue names, one case each at least
    for wanted in [
        "truncated_nii_data", "truncated_niigz", "corrupt_gzip_stream", "nifti2_nii_good",
        "dim0_is_9", "dims_negative", "values_all_nan", "values_inf", "dims_2d",
        "dims_4d_one_volume", "dims_4d_three_volumes", "huge_declared_nifti2",
        "huge_declared_1024cubed", "dicom_missing_slice", "dicom_duplicate_position",
        "dicom_truncated_first", "dicom_truncated_middle", "dicom_truncated_last",
        "dicom_mixed_series", "dicom_mixed_orientation", "label_map_0_2", "label_map_0_5",
        "values_constant_zero", "one_voxel", "sigint_predict", "sigterm_predict",
        "sigterm_train", "two_writers", "eval_csv_is_gt", "eval_nrrd_gt",
        "eval_multilabel_gt_liver5", "train_config_list", "predict_output_is_input",
        "predict_output_parent_is_file", "predict_batch_size_0", "export_existing_output",
        "lits_folder", "dicom_mr", "dicom_rtdose", "dicom_no_modality", "dicom_bad_is_value",
    ]:
        assert wanted in ids, wanted
    signals = {run.signal for s in setups.values() for run in s.runs}
    assert {signal.SIGINT, signal.SIGTERM} <= signals
    assert any(len(s.runs) == 2 for s in setups.values())  # two writers


def _outcome(corpus, code, stderr, **kw):
    return corpus.Outcome(code, "", stderr, 1.0, **kw)


NOISE = (
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
    "I0000 00:00:1796400443.610617    6078 port.cc:153] oneDNN custom operations are on.\n"
)


def test_verdicts(corpus):
    judge, out = corpus.judge, lambda *a, **k: _outcome(corpus, *a, **k)
    clean = out(2, NOISE + "Error: ct.nii: truncated\n")
    assert judge("error", [clean], [], [], [], [])[0]
    # a traceback, two lines, exit 0, a signal without a handler: FAIL
    traceback = out(1, "Traceback (most recent call last):\n  ...\nValueError: x\n")
    assert judge("error", [traceback], [], [], [], []) [:2] == (False, "traceback on stderr")
    assert not judge("error", [out(2, "Warning: odd\nError: bad\n")], [], [], [], [])[0]
    assert not judge("error", [out(0, "")], [], [], [], [])[0]
    killed = out(-signal.SIGTERM, "")
    assert "SIGTERM" in judge("error", [killed], [], [], [], [])[1]
    # files left behind, or an input changed: FAIL even with a clean message
    passed, reason, left = judge("error", [clean], [".seg.nii.gz.1234.partial.nii.gz"], [], [], [])
    assert not passed and left == [".seg.nii.gz.1234.partial.nii.gz"]
    assert not judge("error", [clean], ["seg.nii.gz"], [], ["seg.nii.gz"], [])[0]
    assert not judge("error", [clean], [], ["gt.nii.gz"], [], [])[0]
    # allowed leftovers (a resumable run folder), never temporary files
    assert judge("error", [clean], ["run/config.json"], [], [], [], ("run/*",))[0]
    assert not judge("error", [clean], ["run/x.tmp"], [], [], [], ("run/*",))[0]
    # ok: exit 0, outputs present and right, nothing else
    fine = out(0, NOISE + "ct.nii.gz\nWarning: constant volume\n", progress=("^ct\\.nii\\.gz$",))
    assert fine.lines() == ["Warning: constant volume"]
    assert judge("ok", [fine], ["seg.nii.gz"], [], ["seg.nii.gz"], [])[0]
    assert not judge("ok", [fine], [], [], ["seg.nii.gz"], ["seg.nii.gz"])[0]
    assert not judge("ok", [fine], ["seg.nii.gz", "stray.nii"], [], ["seg.nii.gz"], [])[0]
    assert not judge("ok", [fine], ["seg.nii.gz"], [], ["seg.nii.gz"], [], (), "bad affine")[0]
    assert not judge("ok", [clean], [], [], ["seg.nii.gz"], ["seg.nii.gz"])[0]
    # either: a clean outcome of either kind; race: one success, the rest clean failures
    assert judge("either", [clean], [], [], ["seg.nii.gz"], ["seg.nii.gz"])[0]
    assert judge("either", [fine], ["seg.nii.gz"], [], ["seg.nii.gz"], [])[0]
    assert judge("race", [fine, clean], ["seg.nii.gz"], [], ["seg.nii.gz"], [])[0]
    assert not judge("race", [fine, fine], ["seg.nii.gz"], [], ["seg.nii.gz"], [])[0]
    # a signal case whose process ended before the signal proves nothing
    early = out(2, "Error: x\n", signalled=False)
    assert not judge("error", [early], [], [], [], [])[0]


def test_table_and_summary_line(corpus):
    case = corpus.CASES[0]
    good = corpus.Result(case, [_outcome(corpus, 0, "")], True, "", [], 1.0)
    bad = corpus.Result(case, [_outcome(corpus, 2, "Error: a | b\n")], False,
                        "files left behind", ["x.partial"], 1.0)
    text = corpus.table([good, bad])
    assert text.count("\n") == 3 and "Error: a \\| b" in text and "**FAIL**" in text
    assert corpus.summary_line([good, bad]) == "1 passed, 1 failed"


def test_selection(corpus, capsys):
    chosen = [c.id for c in corpus.select(["dicom_truncated_*"])]
    assert all(name.startswith("dicom_truncated_") for name in chosen)
    assert {"dicom_truncated_first", "dicom_truncated_middle", "dicom_truncated_last"} <= {
        *chosen}
    assert all("nifti2" in c.id for c in corpus.select(["nifti2"]))
    assert corpus.main(["--list", "--only", "eval_"]) == 0
    assert "cases" in capsys.readouterr().out


@pytest.mark.parametrize("case_id", ["truncated_niigz", "text_named_nii", "dicom_mixed_series"])
def test_read_errors_through_the_cli(corpus, tmp_path, case_id):
    """Inputs that fail while being read: no model is loaded, so these runs are fast."""
    (case,) = [c for c in corpus.CASES if c.id == case_id]
    assets = corpus.Assets(tmp_path / "_assets", create=False)
    result = corpus.run_case(case, tmp_path, assets)
    assert result.passed, (result.reason, [o.stderr for o in result.outcomes])
    (outcome,) = result.outcomes
    assert outcome.returncode == 2 and outcome.lines()[0].startswith("Error: ")
