"""research/unet_sharp/rule_check.py: a retraining rule's steps applied to stored scores."""

from __future__ import annotations

import json

from research_scripts import load_script


def _folder(path, *, liver=0.92, tumor=0.53, false_ml=32.0, real=0.938, real_ml=8.4,
            dcmqi=0.898):
    """A ``data/stepA-NAME`` folder as ``default_weights.sh stepa`` writes it."""
    (path / "real").mkdir(parents=True)
    row = {"liver_dice": liver, "tumor_dice": tumor, "false_lesions_tumor_free_ml": false_ml}
    other = {"liver_dice": 0.5, "tumor_dice": 0.9, "false_lesions_tumor_free_ml": 0.0}
    (path / "validation.json").write_text(json.dumps({"thresholds": {"0": other, "0.3": row}}))
    (path / "real.json").write_text(json.dumps({
        "totalsegmentator_example": {"liver_dice": real},
        "dcmqi_ct_3slice": {"liver_dice": dcmqi}}))
    (path / "real" / "totalsegmentator_example.json").write_text(
        json.dumps({"tumor_volume_ml": real_ml}))
    return path


def test_step_a_holds_for_the_baseline_itself_and_names_each_failure(tmp_path, capsys):
    script = load_script("rule_check")
    base = _folder(tmp_path / "base")
    assert script.main(["stepa", str(base), str(base)]) == 0
    out = capsys.readouterr().out
    assert out.count("holds:") == 6 and out.rstrip().endswith("qualifies")
    # within the margins: 0.004 less liver, 0.009 less real liver, the same tumor
    ok = _folder(tmp_path / "ok", liver=0.916, real=0.929, dcmqi=0.889)
    assert script.main(["stepa", str(base), str(ok)]) == 0
    capsys.readouterr()
    # any fall of tumor Dice, or more false-lesion volume, fails (only the 0.3 row counts)
    worse = _folder(tmp_path / "worse", tumor=0.5299, false_ml=32.1, real_ml=8.3)
    assert script.main(["stepa", str(base), str(worse)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines[:6]] == [
        "holds", "FAILS", "FAILS", "holds", "holds", "holds"]
    assert lines[-1] == "does not qualify"
    dcmqi = _folder(tmp_path / "dcmqi", dcmqi=0.874)
    assert script.main(["stepa", str(base), str(dcmqi)]) == 1
    assert "FAILS: real dcmqi liver Dice 0.8740 >= 0.8880" in capsys.readouterr().out


def test_step_b_is_issue_22s_gate_and_missing_input_is_an_error(tmp_path, capsys):
    script = load_script("rule_check")
    metrics = tmp_path / "metrics.json"
    for liver, tumor, code in ((0.9515, 0.5193, 0), (0.9485, 0.4136, 1), (0.9419, 0.6, 1)):
        metrics.write_text(json.dumps({"summary": {"liver": {"dice_per_case": liver},
                                                   "tumor": {"dice_per_case": tumor}}}))
        assert script.main(["stepb", str(metrics)]) == code
    capsys.readouterr()
    assert script.main(["stepb", str(tmp_path / "absent.json")]) == 2
    assert script.main(["stepa", str(tmp_path), str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("Error: FileNotFoundError")
