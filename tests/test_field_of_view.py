"""The default model on a full scan, on a crop to the liver's box plus 10 mm, and on a copy
at twice the in-plane pixel spacing (issue 22, "Must show"), each scored against its own
label cut or coarsened the same way (``research/unet_sharp/field_of_view.py`` prints the
same figures for more scans and spacings)."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from geometry import coarsen_in_plane, crop_to_mask_box

from keras_liverseg import predict_volume
from keras_liverseg.inference.loading import load_model
from keras_liverseg.metrics import dice

pytestmark = pytest.mark.slow


def _real_example(shared: object):
    folder = shared / "totalsegmentator_example"
    ct = nib.load(folder / "example_ct_sm.nii.gz")
    seg = nib.load(folder / "example_seg.nii.gz")
    labels = (np.asarray(seg.dataobj) == 5).astype(np.uint8)  # liver; no tumor label
    return np.asarray(ct.dataobj, np.float32), labels, ct.affine


def _phantom():
    from keras_liverseg.phantom import generate_case

    case = generate_case(7, (512, 512, 40), n_lesions=0, phase="portal_venous")
    return case.volume, case.labels, case.affine


def _scores(volume, labels, affine) -> dict:
    model = load_model("unet_sharp")
    out = {}
    for name, (v, lab, aff) in {
        "full": (volume, labels, affine),
        "crop": crop_to_mask_box(volume, labels, affine, labels >= 1, 10.0),
        "coarse": coarsen_in_plane(volume, labels, affine, 2),
    }.items():
        seg = predict_volume(model, v, aff)
        false = [] if (lab == 2).any() else [x["volume_ml"] for x in seg.report["lesions"]
                                            if x["volume_ml"] > 1.0]
        out[name] = (dice(seg.labels >= 1, lab >= 1), false)
    return out


@pytest.fixture(scope="module")
def scores(shared_data):
    return {"real": _scores(*_real_example(shared_data)), "phantom": _scores(*_phantom())}


@pytest.mark.parametrize("scan", ["real", "phantom"])
def test_full_crop_and_coarse_give_the_same_liver(scores, scan):
    assert scores[scan]["full"][0] > 0.85
    dices = [d for d, _ in scores[scan].values()]
    assert max(dices) - min(dices) <= 0.02


@pytest.mark.parametrize("scan", [
    pytest.param("real", marks=pytest.mark.xfail(strict=True, reason=(
        "default weights v5 keep one false lesion on the real example, at the portal "
        "bifurcation: 8.5 / 9.6 / 7.9 ml (full / crop / coarse; v4: 10.9 / 10.2 / 5.1 + "
        "1.3 ml); every candidate since marks the 6 mm copy: issue 22 part 5 is not "
        "finished"))),
    "phantom",
])
def test_full_crop_and_coarse_have_no_false_lesions(scores, scan):
    assert all(not false for _, false in scores[scan].values())
