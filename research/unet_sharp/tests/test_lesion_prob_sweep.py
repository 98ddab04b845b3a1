"""research/unet_sharp/lesion_prob_sweep.py: lesion-confidence thresholds scored per case."""

from __future__ import annotations

import numpy as np
from research_scripts import load_script

from keras_liverseg.inference.postprocess import PostprocessOptions


def _script():
    return load_script("lesion_prob_sweep")


def _case():
    """A liver with a true lesion (mean tumor probability 0.8) and a false one (0.4)."""
    labels = np.zeros((30, 30, 12), np.uint8)
    labels[2:28, 2:28, 1:11] = 1
    truth = labels.copy()
    labels[4:8, 4:8, 2:6] = 2  # 64 voxels, true
    truth[4:8, 4:8, 2:6] = 2
    labels[18:21, 18:21, 6:9] = 2  # 27 voxels, false
    prob = np.zeros(labels.shape, np.float16)
    prob[4:8, 4:8, 2:6] = 0.8
    prob[18:21, 18:21, 6:9] = 0.4
    return labels, prob, truth


def test_thresholds_drop_the_false_lesion_and_count_it():
    script = _script()
    labels, prob, truth = _case()
    image = np.zeros(labels.shape, np.float32)
    spacing = (1.0, 1.0, 2.0)  # 2 mm3 a voxel
    thresholds = [0.0, 0.5, 0.9]
    scores = {t: script.Scores() for t in thresholds}
    line = script.score_case(labels, prob, truth, image, spacing, PostprocessOptions(),
                             thresholds, scores)
    assert line == [2 * 64 / (91 + 64), 1.0, 0.0]
    assert [scores[t].false_all for t in thresholds] == [1, 0, 0]
    assert scores[0.0].false_all_ml == 27 * 2 / 1000 and scores[0.0].false_free == 0
    # a tumor-free case: every predicted lesion is false
    free = np.minimum(truth, 1)
    script.score_case(labels, prob, free, image, spacing, PostprocessOptions(), thresholds,
                      scores)
    assert [scores[t].false_free for t in thresholds] == [2, 1, 0]
    assert scores[0.5].false_free_ml == 64 * 2 / 1000
    assert [scores[t].tumor[-1] for t in thresholds] == [0.0, 0.0, 1.0]
    lines = script.describe_lesions("7", labels, prob, truth, image, spacing,
                                    PostprocessOptions())
    assert lines == ["  7 lesion 1:     0.13 ml, mean 0.800, max 0.800, true",
                     "  7 lesion 2:     0.05 ml, mean 0.400, max 0.400, FALSE"]
    # weights whose own options keep only confident lesions (version 4: 0.3) still get
    # every lesion described, the unsure one too
    assert script.describe_lesions("7", labels, prob, truth, image, spacing,
                                   PostprocessOptions(min_lesion_prob=0.5)) == lines
    table = script.summary(scores)
    assert table[2].startswith("| 0 | 1.0000 | 0.4129 | 2 (0.2) | 3 (0.2) |")
    assert len(table) == 2 + len(thresholds)
    # --json's record holds the same means and counts as the table's row
    record = script.summary_record(scores[0.0])
    assert record["false_lesions_tumor_free"] == 2 and record["false_lesions_all"] == 3
    assert round(record["tumor_dice"], 4) == 0.4129 and record["liver_dice"] == 1.0
    assert record["tumor_dice_per_case"] == [2 * 64 / (91 + 64), 0.0]
    assert round(record["false_lesions_tumor_free_ml"], 3) == round((64 + 27) * 2 / 1000, 3)


def test_a_missing_case_is_an_error_before_the_model_loads(tmp_path, capsys):
    script = _script()
    assert script.main([str(tmp_path), "5", "--weights", str(tmp_path / "absent.h5")]) == 2
    assert "no volume-5.nii*" in capsys.readouterr().err
    (tmp_path / "volume-5.nii.gz").write_bytes(b"")
    assert script.main([str(tmp_path), "5", "--weights", str(tmp_path / "absent.h5")]) == 2
    assert "no segmentation-5.nii*" in capsys.readouterr().err
