"""Phantom anatomy 2.0.0: fat in the liver's clefts, bowel against the liver, vessels, IVC,
and large heterogeneous tumours (the hard negatives and positives real livers have); 2.1.0:
the periportal fat sheath; 2.2.0: large masses under the capsule bulge out of the liver;
2.3.0: a fluid-filled loop against the liver's lower surface; 2.4.0: the hilar fat junction."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import ndimage

from keras_liverseg.phantom import bowel, generate_case, lesions
from keras_liverseg.phantom import liver as liver_module
from keras_liverseg.phantom.intensities import tissue_id
from keras_liverseg.phantom.lesions import KINDS, MIN_CONTRAST_HU
from keras_liverseg.phantom.liver import Liver, _hilar_junction, _tree

FINE = (192, 192, 48)
FINE_SPACING = (1.5, 1.5, 4.0)
SMALL = (128, 128, 40)
COARSE = (3.0, 3.0, 5.0)
BOWEL = [tissue_id(n) for n in ("bowel_wall", "bowel_collapsed", "bowel_fluid", "stool", "gas",
                                "oral_contrast")]
PLANE = np.ones((3, 3, 1), dtype=bool)


@pytest.fixture(scope="module")
def fine_cases():
    return [generate_case(s, FINE, spacing=FINE_SPACING, orientation="RAS") for s in range(8)]


def _interior(mask):
    """The mask without its in-plane boundary (tissue map and labels differ at edges)."""
    return ndimage.binary_erosion(mask, PLANE)


def _outline(liver):
    """The liver's filled outline per axial slice (clefts and notches closed)."""
    closed = ndimage.binary_closing(liver, np.ones((7, 7, 1), dtype=bool))
    return np.stack([ndimage.binary_fill_holes(closed[:, :, k]) for k in range(liver.shape[2])], 2)


def test_fat_fills_clefts_inside_the_liver_outline_and_is_background(fine_cases):
    fat_id = tissue_id("visceral_fat")
    with_fat = 0
    for case in fine_cases:
        liver = case.labels >= 1
        fat = case.tissues == fat_id
        inside = fat & _outline(liver) & ~liver
        if inside.sum() > 200:
            with_fat += 1
        assert not (_interior(fat) & liver).any()  # fat is never labelled liver or tumor
        meta = case.meta["anatomy"]["liver"]
        for key in ("fissure_fat_mm", "venosum_fat_mm", "hilum_fat_mm", "wall_fat_mm",
                    "periportal_fat_mm"):
            assert meta[key] >= 0
    assert with_fat >= 6


def test_bowel_touches_the_liver_and_is_never_labelled(fine_cases):
    touching = checked = 0
    for case in fine_cases:
        liver = case.labels >= 1
        bowel = np.isin(case.tissues, BOWEL)
        assert not (_interior(bowel) & (case.labels > 0)).any()
        zs = np.nonzero(liver.any(axis=(0, 1)))[0]
        if len(zs) == 0 or zs.min() == 0:  # the liver's tip is not in the scan
            continue
        checked += 1
        near = ndimage.binary_dilation(liver, np.ones((3, 3, 1), dtype=bool), iterations=2)
        touching += bool((near & bowel).sum() > 20)
    assert checked >= 3
    assert touching >= 0.7 * checked


def test_bowel_contact_meta_is_drawn_in_most_cases():
    organs = []
    for s in range(20):
        meta = generate_case(s, (48, 48, 12))
        contact = meta.meta["anatomy"]["bowel_contact"]
        organs.append(contact["organ"])
        if contact["organ"] is not None:
            assert contact["organ"] in ("colon", "duodenum", "small_bowel")
            assert contact["gap_mm"] >= 0
    assert 10 <= sum(o is not None for o in organs) <= 19


def test_fluid_loop_touches_the_liver_is_background_and_changes_nothing_else(
    fine_cases, monkeypatch
):
    """2.3.0's fluid-filled loop (its own stream): against the liver in most cases, never
    labelled, and the same seed without it has the same labels and differs only in the
    loop's voxels (fluid or wall beside the liver) and their blur."""
    fluid = [tissue_id(n) for n in ("bowel_fluid", "oral_contrast")]
    drawn = touching = 0
    with monkeypatch.context() as m:
        m.setattr(bowel, "FLUID_CONTACT_P", 0.0)
        flat = [generate_case(s, FINE, spacing=FINE_SPACING, orientation="RAS") for s in range(8)]
    for case, without in zip(fine_cases, flat, strict=True):
        meta = case.meta["anatomy"]["fluid_contact"]
        assert without.meta["anatomy"]["fluid_contact"] == {"organ": None}
        np.testing.assert_array_equal(case.labels, without.labels)
        new = case.tissues != without.tissues
        if meta["organ"] is not None:
            drawn += 1
            assert meta["content"] == "fluid"
            assert meta["organ"] in ("colon", "duodenum", "small_bowel")
        if not new.any():  # not drawn, or no liver where it would lie
            assert np.array_equal(case.volume, without.volume)
            continue
        assert np.isin(case.tissues[new], BOWEL).all()
        assert not (_interior(new) & (case.labels > 0)).any()
        # the volume changes at the loop: all but a few voxels (partial volume on the 3 mm
        # anatomy grid, the PSF, coarse reconstruction) within 15 mm of its tissue
        away = ndimage.distance_transform_edt(~new, sampling=FINE_SPACING)
        assert np.mean(away[case.volume != without.volume] < 15.0) > 0.95
        if meta["touches"]:
            liver = case.labels >= 1
            near = ndimage.binary_dilation(liver, np.ones((3, 3, 1), dtype=bool), iterations=3)
            touching += bool((near & np.isin(case.tissues, fluid) & new).sum() > 10)
    assert drawn >= 3 and touching >= 2


def test_fluid_loop_is_drawn_in_most_cases():
    drawn = [generate_case(s, (48, 48, 12)).meta["anatomy"]["fluid_contact"]["organ"]
             for s in range(30)]
    assert 0.4 * 30 <= sum(o is not None for o in drawn) <= 0.8 * 30


def test_vessels_inside_the_liver_carry_the_liver_label(fine_cases):
    seen = 0
    for case in fine_cases:
        liver = (case.labels >= 1).astype(np.float32)
        # hepatic veins (the extrahepatic portal trunk at the hilum is background by design)
        vessel = case.tissues == tissue_id("hepatic_vein")
        other = (~vessel).astype(np.float32)
        # vessel voxels whose every non-vessel neighbour (7x7 in-plane) is liver
        around = ndimage.uniform_filter(liver * other, (7, 7, 1))
        enclosed = vessel & (around > 0) & (around >= ndimage.uniform_filter(other, (7, 7, 1))
                                            - 1e-6)
        if enclosed.sum() < 10:
            continue
        seen += 1
        assert (case.labels[enclosed] >= 1).mean() > 0.9, case.meta["seed"]
        hv = case.tissues == tissue_id("hepatic_vein")
        if hv.sum() > 20:
            assert (case.labels[hv] >= 1).mean() > 0.8
    assert seen >= 3


def test_vessel_trees_branch_down_to_thin_peripheral_twigs():
    rng = np.random.default_rng(0)
    reach, thin = [], []
    for _ in range(10):
        segs: list = []
        _tree(rng, (0.0, 0.0, 0.0), (1.0, 0.0, 0.0), 6.0, 40.0, 5, segs)
        ends = np.array([b for _, b, _, _ in segs])
        reach.append(float(np.linalg.norm(ends, axis=1).max()))
        thin.append(min(rb for *_, rb in segs))
        assert min(rb for *_, rb in segs) >= 0.5  # still above a voxel's fraction
    assert np.median(reach) > 90  # mm from the hilum
    assert max(thin) < 1.2


def test_ivc_lies_against_the_liver_in_most_cases(fine_cases):
    against = present = 0
    for case in fine_cases:
        liver = case.labels >= 1
        if liver.sum() < 5000:
            continue
        present += 1
        ivc = case.tissues == tissue_id("ivc")
        near = ndimage.binary_dilation(liver, PLANE, iterations=2)
        against += bool((ivc & near).sum() > 20)
    assert present >= 4 and against >= 0.75 * present


def _tumor_spread(case):
    tumor = ndimage.binary_erosion(case.labels == 2, PLANE)
    return float(case.volume[tumor].std()) if tumor.sum() > 30 else None


def test_heterogeneous_lesion_is_large_varied_and_inside_the_liver():
    assert "heterogeneous" in KINDS
    compared = 0
    for s in range(8):
        args = dict(spacing=COARSE, phase="portal_venous", n_lesions=1, orientation="RAS")
        het = generate_case(s, SMALL, lesion_kinds=("heterogeneous",), **args)
        (lesion,) = het.meta["lesions"]
        assert lesion["kind"] == "heterogeneous"
        assert 40 <= lesion["diameter_mm"] <= 100
        assert lesion["volume_ml"] > 15
        assert abs(lesion["hu"] - het.meta["liver_hu_mean"]) >= MIN_CONTRAST_HU - 0.11
        assert abs(lesion["necrosis_hu"] - het.meta["liver_hu_mean"]) >= MIN_CONTRAST_HU - 0.11
        tumor = het.labels == 2
        assert tumor.sum() * np.prod(COARSE) / 1000 > 15
        # tumor only inside the liver: every tumor component borders liver voxels
        comp, n = ndimage.label(tumor)
        grown = ndimage.binary_dilation(tumor, np.ones((3, 3, 3), dtype=bool))
        assert (het.labels[grown & ~tumor] == 1).any() and n >= 1
        cyst = generate_case(s, SMALL, lesion_kinds=("cystic",), **args)
        a, b = _tumor_spread(het), _tumor_spread(cyst)
        if a is not None and b is not None:
            compared += 1
            assert a > b + 8, (s, a, b)
        if compared >= 2:
            break
    assert compared >= 2


def test_about_one_case_in_five_has_a_lesion_over_50_ml():
    big = 0
    for s in range(40):
        case = generate_case(2000 + s, (48, 48, 12))
        big += any(lesion["volume_ml"] > 50 for lesion in case.meta["lesions"])
    assert 3 <= big <= 16


def test_anatomy_1_2_is_deterministic():
    kw = dict(n_lesions=2, lesion_kinds=("heterogeneous", "hypodense"))
    a = generate_case(3, (96, 96, 24), **kw)
    b = generate_case(3, (96, 96, 24), **kw)
    assert np.array_equal(a.volume, b.volume)
    assert np.array_equal(a.labels, b.labels)
    assert np.array_equal(a.tissues, b.tissues)
    assert json.dumps(a.meta, sort_keys=True) == json.dumps(b.meta, sort_keys=True)


def _without_sheath(monkeypatch, seed, shape, **kw):
    with monkeypatch.context() as m:
        m.setattr(Liver, "_sheath", lambda self, box, portal, hull: None)
        return generate_case(seed, shape, **kw)


def test_periportal_sheath_is_fat_along_the_portal_vein_and_changes_nothing_else(monkeypatch):
    """2.1.0 adds only the sheath: the same seed without it differs only next to the portal
    vein, where fat replaces liver and the label turns background. (Without lesions: their
    sites are drawn among the liver's voxels, so the sheath moves them.)"""
    kw = dict(spacing=FINE_SPACING, phase="non_contrast", orientation="RAS", n_lesions=0)
    fat_id, pv_id = tissue_id("visceral_fat"), tissue_id("portal_vein")
    drawn = seen = 0
    for seed in range(8):
        case = generate_case(seed, FINE, **kw)
        plain = _without_sheath(monkeypatch, seed, FINE, **kw)
        mm = case.meta["anatomy"]["liver"]["periportal_fat_mm"]
        assert 0 <= mm <= 2.5
        changed = (case.volume != plain.volume) | (case.labels != plain.labels)
        if mm == 0:
            assert not changed.any()
            continue
        drawn += 1
        vein = (case.tissues == pv_id) | (plain.tissues == pv_id)
        if not changed.any():  # the portal vein's first branches lie outside the scan
            continue
        seen += 1
        # every change lies within 20 mm of the portal vein (slice profile and blur included;
        # a sheath just outside the scan reaches into its end slice)
        far = ndimage.distance_transform_edt(~vein, sampling=FINE_SPACING) > 20.0
        assert not (changed & far).any(), seed
        # fat inside the liver that the sheath took out of the liver label
        new_fat = (case.tissues == fat_id) & (plain.tissues != fat_id) & (plain.labels == 1)
        assert new_fat.sum() > 20, seed
        assert (case.labels[_interior(new_fat)] == 0).all()
    assert drawn >= 3 and seen >= 2


def _without_bulge(monkeypatch, seed, shape, **kw):
    with monkeypatch.context() as m:
        m.setattr(lesions, "BULGE_P", 0.0)
        return generate_case(seed, shape, **kw)


@pytest.mark.slow
def test_large_subcapsular_mass_bulges_out_of_the_liver_and_changes_nothing_else(monkeypatch):
    """2.2.0 lets a large mass under the capsule or dome grow past the liver's outline: the
    same seed without the bulge differs only there, where displaceable tissue touching the
    liver becomes tumor (labelled liver before the tumor is painted); a case without such a
    mass is drawn exactly as before."""
    kw = dict(spacing=FINE_SPACING, orientation="RAS", n_lesions=1, lesion_kinds=("heterogeneous",))
    soft = [tissue_id(n) for n in ("visceral_fat", "bowel_wall", "bowel_collapsed", "bowel_fluid",
                                   "stool", "gas", "bile", "gallstone", "ascites")]
    bulged = unchanged = 0
    for seed in range(10):
        case = generate_case(seed, FINE, **kw)
        flat = _without_bulge(monkeypatch, seed, FINE, **kw)
        mass = case.meta["lesions"][0]
        changed = (case.volume != flat.volume) | (case.labels != flat.labels)
        if not mass.get("bulge_ml"):
            assert mass["site"] in ("deep", "subcapsular", "dome")
            assert not changed.any(), seed
            unchanged += 1
            continue
        assert mass["site"] in ("subcapsular", "dome")
        bulged += 1
        grown = case.labels != flat.labels
        # labels only grow: background (or liver) becomes tumor or liver, never the reverse
        assert (case.labels[grown] > flat.labels[grown]).all(), seed
        new = grown & (flat.labels == 0)
        assert (case.labels[new] == 2).mean() > 0.5, seed
        # on displaceable tissue only (the edge voxels of the tissue map aside)
        assert np.isin(flat.tissues[_interior(new)], soft).all(), seed
        # every new voxel joins the liver label (26-connected)
        parts, _ = ndimage.label(case.labels > 0, np.ones((3, 3, 3)))
        assert np.isin(parts[new], np.unique(parts[flat.labels > 0])).all(), seed
        # and the changes stay within the mass's reach (slice profile and blur included)
        centre = np.argwhere(case.labels == 2).mean(axis=0) * FINE_SPACING
        far = np.linalg.norm(np.argwhere(changed) * FINE_SPACING - centre, axis=1)
        assert far.max() < 0.8 * mass["diameter_mm"] + 20.0, seed
        voxel_ml = np.prod(FINE_SPACING) / 1000
        assert new.sum() * voxel_ml == pytest.approx(mass["bulge_ml"], rel=0.5, abs=2.0), seed
    assert bulged >= 2 and unchanged >= 3


def test_hilar_junction_is_a_fat_pool_with_branching_clefts_near_the_porta():
    """2.4.0's junction: a pool and two to four clefts (with side branches) radiating from
    it, tapering, within reach of the porta; none where no draw lies inside the lobes."""
    porta = np.array([30.0, 40.0, -80.0])
    counts = []
    for s in range(40):
        pieces = _hilar_junction(np.random.default_rng(s), porta, lambda point: -20.0)
        if not pieces:
            continue
        (pool_points, pool_radii), *clefts = pieces
        center = np.mean(pool_points, axis=0)
        offset = center - porta
        assert -30 <= offset[0] <= -5 and 0 <= offset[1] <= 30 and -5 <= offset[2] <= 20
        assert 1.5 <= pool_radii[0] <= 5.0
        starts = [np.asarray(points[0]) for points, _ in clefts]
        primary = [c for c, st in zip(clefts, starts, strict=True) if np.allclose(st, center)]
        assert 2 <= len(primary) <= 4
        counts.append(len(clefts))
        for points, radii in clefts:
            assert len(points) == len(radii) == 4
            assert all(a >= b for a, b in zip(radii, radii[1:], strict=False))  # tapering
            assert radii[0] <= pool_radii[0] and radii[-1] == 0.3
            reach = np.linalg.norm(np.asarray(points) - center, axis=1).max()
            assert reach <= 45.0 + 15.0 + 1e-6
    assert 0.6 * 40 <= len(counts) <= 0.9 * 40  # JUNCTION_P = 0.75
    assert max(counts) > 4  # side branches
    assert _hilar_junction(np.random.default_rng(0), porta, lambda point: 5.0) == []


def test_hilar_junction_is_background_fat_inside_the_liver_and_changes_nothing_else(monkeypatch):
    """Without the junction the same seed differs only around the junction's new fat, where
    liver turns background; no lesions, whose sites the junction would move."""
    kw = dict(spacing=FINE_SPACING, phase="non_contrast", orientation="RAS", n_lesions=0)
    fat_id = tissue_id("visceral_fat")
    seen = drawn = 0
    for seed in range(8):
        case = generate_case(seed, FINE, **kw)
        with monkeypatch.context() as m:
            m.setattr(liver_module, "JUNCTION_P", 0.0)
            plain = generate_case(seed, FINE, **kw)
        assert plain.meta["anatomy"]["liver"]["hilar_junction_clefts"] == 0
        changed = (case.volume != plain.volume) | (case.labels != plain.labels)
        if case.meta["anatomy"]["liver"]["hilar_junction_clefts"] == 0:
            assert not changed.any(), seed
            continue
        drawn += 1
        new_fat = (case.tissues == fat_id) & (plain.tissues != fat_id)
        if not new_fat.any():  # the junction lies outside the scan
            continue
        seen += 1
        assert (plain.tissues[new_fat] == tissue_id("liver")).mean() > 0.8, seed
        assert (case.labels[_interior(new_fat)] == 0).all(), seed
        relabelled = case.labels != plain.labels
        assert (case.labels[relabelled] == 0).all() and (plain.labels[relabelled] == 1).all()
        # the volume changes within the clefts' reach of the fat that became the dominant
        # tissue (thin clefts change only partial volume along their length), in the liver
        near = ndimage.distance_transform_edt(~new_fat, sampling=FINE_SPACING) < 35.0
        assert not (changed & ~near).any(), seed
        to_liver = ndimage.distance_transform_edt(plain.labels == 0, sampling=FINE_SPACING)
        assert np.mean(to_liver[changed] < 10.0) > 0.9, seed
    assert drawn >= 4 and seen >= 3
