"""Synthetic abdominal CT phantoms: determinism, labels, HU per tissue, geometry on disk."""

from __future__ import annotations

import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from keras_liverseg.phantom import (
    GENERATOR_VERSION,
    case_seed,
    generate_case,
    write_lits_dataset,
)
from keras_liverseg.phantom.intensities import TISSUES, liver_range, tissue_id
from keras_liverseg.phantom.lesions import MIN_CONTRAST_HU, visible
from keras_liverseg.phantom.patient import sample_patient
from keras_liverseg.phantom.scanner import sample_acquisition

SMALL = (128, 128, 40)
COARSE = (3.0, 3.0, 5.0)  # 384 mm field of view, 200 mm of z: the whole upper abdomen


@pytest.fixture(scope="module")
def pv_case():
    """Portal-venous case with hypodense lesions only."""
    return generate_case(11, SMALL, spacing=COARSE, phase="portal_venous", n_lesions=3,
                         lesion_kinds=("hypodense",), orientation="RAS")


def _canonical(case):
    """Volume, labels, tissues and affine reoriented to RAS array order."""
    ornt = nib.orientations.io_orientation(case.affine)
    ras = nib.orientations.axcodes2ornt("RAS")
    tr = nib.orientations.ornt_transform(ornt, ras)
    arrays = [nib.orientations.apply_orientation(a, tr)
              for a in (case.volume, case.labels, case.tissues)]
    inv = nib.orientations.inv_ornt_aff(tr, case.volume.shape)
    return (*arrays, case.affine @ inv)


def _world(affine, idx):
    return nib.affines.apply_affine(affine, idx)


# -- determinism ---------------------------------------------------------------------------
def test_same_seed_gives_identical_case():
    a = generate_case(5, (96, 96, 24))
    b = generate_case(5, (96, 96, 24))
    assert np.array_equal(a.volume, b.volume)
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.affine, b.affine)
    assert json.dumps(a.meta, sort_keys=True) == json.dumps(b.meta, sort_keys=True)


def test_different_seeds_give_different_cases():
    a = generate_case(5, (96, 96, 24))
    b = generate_case(6, (96, 96, 24))
    assert not np.array_equal(a.volume, b.volume)
    assert a.meta["patient"] != b.meta["patient"]


def test_case_seeds_of_two_datasets_do_not_overlap():
    train = {case_seed(0, i) for i in range(500)}
    held_out = {case_seed(1, i) for i in range(500)}
    assert len(train) == 500 and len(held_out) == 500
    assert not train & held_out
    assert case_seed(0, 3) == case_seed(0, 3)


# -- labels and HU -------------------------------------------------------------------------
def test_dtypes_shapes_and_label_values(pv_case):
    assert pv_case.volume.dtype == np.int16 and pv_case.labels.dtype == np.uint8
    assert pv_case.volume.shape == pv_case.labels.shape == pv_case.tissues.shape == SMALL
    assert set(np.unique(pv_case.labels)) <= {0, 1, 2}
    assert (pv_case.labels == 1).sum() > 1000
    assert (pv_case.labels == 2).sum() > 0
    assert pv_case.meta["generator_version"] == GENERATOR_VERSION
    assert pv_case.meta["spacing"] == list(COARSE)


def test_tumors_lie_inside_the_liver(pv_case):
    organ = pv_case.labels >= 1
    comp, _ = ndimage.label(organ)
    tumor = pv_case.labels == 2
    # every tumor voxel belongs to a liver component that also holds parenchyma
    for c in np.unique(comp[tumor]):
        assert (pv_case.labels[comp == c] == 1).sum() > (pv_case.labels[comp == c] == 2).sum()
    # lesion centres (world mm) map to liver voxels
    inv = np.linalg.inv(pv_case.affine)
    for lesion in pv_case.meta["lesions"]:
        i, j, k = np.rint(_world(inv, lesion["center_world_mm"])).astype(int)
        assert pv_case.labels[i, j, k] >= 1, lesion


def test_hu_per_tissue(pv_case):
    vol = pv_case.volume.astype(float)
    tis = pv_case.tissues

    def core(name):
        mask = tis == tissue_id(name)
        return ndimage.binary_erosion(mask, np.ones((3, 3, 1)))

    air = core("air") & (vol > -1500)  # inside the reconstruction circle
    assert abs(np.median(vol[air]) + 1000) < 30
    assert np.median(vol[core("subcutaneous_fat")]) < -50
    assert 20 < np.median(vol[core("muscle")]) < 100
    lo, hi = liver_range("portal_venous")
    shift = pv_case.meta["patient"]["steatosis_hu"]
    parenchyma = ndimage.binary_erosion(pv_case.labels == 1, np.ones((3, 3, 1))) & core("liver")
    liver = np.median(vol[parenchyma])
    domain = pv_case.meta["domain"]  # randomised appearance: the table's mean, plus shading
    if domain is None:
        assert lo - shift - 10 < liver < hi + 10
    assert abs(liver - pv_case.meta["liver_hu_mean"]) < 10 + (1.3 * domain["bias_field_hu"]
                                                              if domain else 0)


def test_hypodense_tumors_are_darker_than_surrounding_liver(pv_case):
    vol = pv_case.volume.astype(float)
    comp, n = ndimage.label(pv_case.labels == 2)
    checked = 0
    for c in range(1, n + 1):
        tumor = comp == c
        if tumor.sum() < 20:
            continue
        inner = ndimage.binary_erosion(tumor)
        ring = ndimage.binary_dilation(tumor, iterations=3) & ~ndimage.binary_dilation(tumor)
        ring &= pv_case.labels == 1
        if inner.sum() < 5 or ring.sum() < 20:
            continue
        assert vol[inner].mean() < vol[ring].mean() - 10
        checked += 1
    assert checked >= 1


def test_visible_pushes_near_isodense_values_out_to_the_floor():
    assert visible(105.0, 100.0) == 100.0 + MIN_CONTRAST_HU
    assert visible(95.0, 100.0) == 100.0 - MIN_CONTRAST_HU
    assert visible(100.0, 100.0) == 100.0 + MIN_CONTRAST_HU
    assert visible(130.0, 100.0) == 130.0
    assert visible(12.0, 100.0) == 12.0


@pytest.mark.parametrize("phase", ["non_contrast", "portal_venous"])
def test_no_lesion_is_isodense_to_the_liver(phase):
    """Hyperdense lesions are drawn near the liver's HU in these phases; none may stay within
    MIN_CONTRAST_HU of it, and some must have been pushed out (the floor is doing work)."""
    offsets = []
    for seed in (3, 4):
        case = generate_case(seed, SMALL, spacing=COARSE, phase=phase, n_lesions=6,
                             lesion_kinds=("hyperdense",))
        offsets += [lesion["hu"] - case.meta["liver_hu_mean"] for lesion in case.meta["lesions"]]
    offsets = np.abs(offsets)
    assert len(offsets) >= 8
    assert offsets.min() >= MIN_CONTRAST_HU - 0.11  # meta rounds both to 0.1 HU
    assert np.sum(np.abs(offsets - MIN_CONTRAST_HU) < 0.11) >= 1


def test_liver_absent_in_some_slices_present_in_others():
    with_gaps = 0
    for seed in range(6):
        labels = generate_case(seed, (64, 64, 48), spacing=(6.0, 6.0, 5.0)).labels
        per_slice = labels.any(axis=(0, 1))
        assert per_slice.any(), seed
        with_gaps += int(not per_slice.all())
    assert with_gaps >= 3


def test_liver_touches_the_right_lateral_wall(pv_case):
    vol, lab, tis, _ = _canonical(pv_case)
    wall = {tissue_id(n) for n in ("muscle", "bone_cortex", "bone_marrow", "cartilage",
                                   "diaphragm", "skin")}
    fat = tissue_id("subcutaneous_fat")
    touching = 0
    for k in np.nonzero(lab.any(axis=(0, 1)))[0]:
        xs, ys = np.nonzero(lab[:, :, k])
        i = xs.argmax()  # most lateral liver voxel on the patient's right (+x in RAS)
        row = tis[xs[i] + 1 :, ys[i], k]
        stop = np.nonzero(row == fat)[0]
        if len(stop) and all(t in wall for t in row[: stop[0]]):
            touching += 1
    assert touching >= 1


def test_liver_lies_on_the_patients_right_in_world_coordinates():
    # RAS+ world: x grows towards the patient's right, so the liver has larger x than the
    # body's centre, whichever way the array is stored.
    centroids = []
    for code in ("RAS", "LPS", "LPI"):
        case = generate_case(21, (96, 96, 32), spacing=(4.0, 4.0, 5.0), orientation=code)
        assert nib.aff2axcodes(case.affine) == tuple(code)
        liver = _world(case.affine, np.argwhere(case.labels >= 1)).mean(0)
        body = _world(case.affine, np.argwhere(case.volume > -300)).mean(0)
        assert liver[0] > body[0] + 20, code
        centroids.append(liver)
    assert np.allclose(centroids[0], centroids[1], atol=1e-6)
    assert np.allclose(centroids[0], centroids[2], atol=1e-6)


def test_acquisition_ranges_at_full_size():
    for seed in range(40):
        rng = np.random.default_rng(seed)
        acq = sample_acquisition(rng, (512, 512, 100), sample_patient(rng))
        assert 0.6 <= acq.pixel <= 1.0
        assert acq.thickness <= max(acq.dz, 6.0)
        assert 0.7 <= acq.dz <= 5.0
        assert acq.thickness >= acq.dz - 1e-9
        assert 5 <= acq.noise_sigma <= (45 if acq.domain else 30)
        assert 0.5 <= acq.psf_sigma <= 1.2


def test_tissue_names_cover_the_map(pv_case):
    assert pv_case.tissues.max() < len(TISSUES)
    present = {TISSUES[i] for i in np.unique(pv_case.tissues)}
    for name in ("air", "skin", "subcutaneous_fat", "muscle", "liver", "bone_cortex"):
        assert name in present


# -- files ---------------------------------------------------------------------------------
def test_written_nifti_geometry(tmp_path):
    manifest = write_lits_dataset(tmp_path, 2, seed=7, shape=(64, 64, 20))
    assert manifest["generator_version"] == GENERATOR_VERSION
    on_disk = json.loads((tmp_path / "phantoms.json").read_text())
    assert on_disk == json.loads(json.dumps(manifest))
    for entry in manifest["cases"]:
        i = entry["index"]
        assert entry["seed"] == case_seed(7, i)
        vol = nib.load(tmp_path / f"volume-{i}.nii.gz")
        seg = nib.load(tmp_path / f"segmentation-{i}.nii.gz")
        assert vol.shape == seg.shape == (64, 64, 20)
        assert vol.get_data_dtype() == np.int16 and seg.get_data_dtype() == np.uint8
        assert np.array_equal(vol.affine, seg.affine)
        assert np.allclose(vol.header.get_zooms(), entry["meta"]["spacing"], atol=1e-4)
        case = generate_case(entry["seed"], (64, 64, 20))
        assert np.allclose(vol.affine, case.affine, atol=1e-4)
        assert np.array_equal(np.asarray(vol.dataobj), case.volume)
        assert np.array_equal(np.asarray(seg.dataobj), case.labels)


def test_writer_refuses_to_overwrite(tmp_path):
    write_lits_dataset(tmp_path, 1, seed=1, shape=(48, 48, 12))
    with pytest.raises(FileExistsError):
        write_lits_dataset(tmp_path, 1, seed=2, shape=(48, 48, 12))
    write_lits_dataset(tmp_path, 1, seed=2, shape=(48, 48, 12), overwrite=True)
    assert json.loads((tmp_path / "phantoms.json").read_text())["dataset_seed"] == 2
    assert not [p for p in tmp_path.iterdir() if "partial" in p.name]


# -- the old import path ---------------------------------------------------------------------
_OLD_PATH = """
import warnings
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    import keras_liverseg.data.phantom as old
    from keras_liverseg.data.phantom import generate_case
    from keras_liverseg.data.phantom.scanner import sample_acquisition
    import keras_liverseg.data.phantom.dataset as old_dataset
import keras_liverseg.phantom as new
import keras_liverseg.phantom.dataset
import keras_liverseg.phantom.scanner
assert generate_case is new.generate_case
assert sample_acquisition is new.scanner.sample_acquisition
assert old_dataset is new.dataset and old.intensities is new.intensities
assert old.__all__ == new.__all__ and all(getattr(old, n) is getattr(new, n) for n in new.__all__)
print(*(f"{w.category.__name__}|{w.filename}|{w.message}" for w in caught), sep="\\n")
"""


def test_the_old_import_path_works_and_warns_once():
    """``keras_liverseg.data.phantom``, deprecated, still imports with its submodules, and
    warns once (a fresh interpreter: this one has the modules cached)."""
    run = subprocess.run([sys.executable, "-c", _OLD_PATH], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr
    caught = run.stdout.strip().splitlines()
    assert len(caught) == 1, caught
    category, filename, message = caught[0].split("|")
    assert category == "DeprecationWarning"
    assert filename == "<string>"  # attributed to the importing code, not to importlib
    assert "import keras_liverseg.phantom instead" in message
