"""Phantom appearance: streaks at bone, coarse reconstructions, thick slices, domain
randomisation of the HU table (SynthSeg-style), and the meta that records them."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from scipy import ndimage

from keras_liverseg.phantom import generate_case, scanner
from keras_liverseg.phantom.intensities import PHASES, TISSUES, sample_table, tissue_id
from keras_liverseg.phantom.lesions import MIN_CONTRAST_HU
from keras_liverseg.phantom.patient import sample_patient

SHAPE = (128, 128, 16)
SPACING = (3.0, 3.0, 5.0)
OFF = {"streaks": False, "effective_pixel": False, "domain": False}


def _case(monkeypatch, seed=3, shape=SHAPE, spacing=SPACING, case_options=None, **forced):
    """``generate_case`` with the scanner variations forced (the rest off)."""
    kw = {**OFF, **forced}
    monkeypatch.setattr(scanner, "sample_acquisition",
                        functools.partial(_ORIGINAL_SAMPLE, **kw))
    return generate_case(seed, shape, spacing=spacing, orientation="RAS",
                         **(case_options or {}))


_ORIGINAL_SAMPLE = scanner.sample_acquisition


def _domain(jitter=30.0, gain=1.25, texture=1.8):
    return {"tissue_jitter_hu": jitter, "gain": gain, "texture_scale": texture,
            "bias_field_hu": 40.0, "noise_factor": 2.2}


# -- determinism and meta --------------------------------------------------------------------
def test_same_seed_identical_with_every_variation_on(monkeypatch):
    on = {"streaks": True, "effective_pixel": 6.0, "domain": True}
    a = _case(monkeypatch, **on)
    b = _case(monkeypatch, **on)
    assert np.array_equal(a.volume, b.volume) and np.array_equal(a.labels, b.labels)
    assert json.dumps(a.meta, sort_keys=True) == json.dumps(b.meta, sort_keys=True)
    plain = _case(monkeypatch)
    assert not np.array_equal(a.volume, plain.volume)


def test_meta_records_the_choices(monkeypatch):
    off = _case(monkeypatch)
    assert off.meta["streaks"] is None and off.meta["effective_pixel_mm"] is None
    assert off.meta["domain_randomised"] is False and off.meta["domain"] is None
    on = _case(monkeypatch, streaks=True, effective_pixel=4.5, domain=True)
    assert set(on.meta["streaks"]) == {"amplitude_hu", "lines_per_slab", "slab_mm",
                                       "width_mm", "decay_mm"}
    assert 30 <= on.meta["streaks"]["amplitude_hu"] <= 150
    assert on.meta["effective_pixel_mm"] == 4.5
    assert on.meta["domain_randomised"] is True
    assert set(on.meta["domain"]) == set(_domain())
    json.dumps(on.meta)  # JSON-ready


def test_variations_are_drawn_at_their_rates():
    counts = {"streaks": 0, "effective_pixel": 0, "domain": 0}
    coarse = []
    n = 200
    for seed in range(n):
        rng = np.random.default_rng(seed)
        acq = scanner.sample_acquisition(rng, (512, 512, 100), sample_patient(rng))
        counts["streaks"] += acq.streaks is not None
        counts["effective_pixel"] += acq.effective_pixel is not None
        counts["domain"] += acq.domain is not None
        if acq.effective_pixel is not None:
            coarse.append(acq.effective_pixel)
            lo, hi = scanner.EFFECTIVE_PIXEL_MM
            assert lo <= acq.effective_pixel <= hi and acq.effective_pixel > acq.pixel
        assert acq.noise_sigma <= (45.0 if acq.domain else 30.0)
    assert 0.25 * n < counts["streaks"] < 0.45 * n
    assert 0.15 * n < counts["effective_pixel"] < 0.35 * n
    assert 0.25 * n < counts["domain"] < 0.45 * n
    # 2.3.0 reaches 9 mm pixels: real scans' 6 mm lies inside the drawn range, not at its edge
    assert scanner.EFFECTIVE_PIXEL_MM == (1.5, 9.0)
    assert max(coarse) > 6.0 and min(coarse) < 3.0


def test_forcing_one_variation_leaves_the_other_draws_alone():
    patient = sample_patient(np.random.default_rng(0))
    a = scanner.sample_acquisition(np.random.default_rng(9), (64, 64, 20), patient,
                                   streaks=True, effective_pixel=False, domain=False)
    b = scanner.sample_acquisition(np.random.default_rng(9), (64, 64, 20), patient,
                                   streaks=False, effective_pixel=False, domain=False)
    ma, mb = a.as_meta(), b.as_meta()
    assert ma.pop("streaks") is not None and mb.pop("streaks") is None
    assert ma == mb


# -- slice thickness -------------------------------------------------------------------------
def test_thickness_reaches_six_mm_and_never_more():
    thick = []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        acq = scanner.sample_acquisition(rng, (512, 512, 100), sample_patient(rng))
        assert acq.dz - 1e-9 <= acq.thickness <= scanner.MAX_THICKNESS_MM + 1e-9
        thick.append(acq.thickness)
    thick = np.array(thick)
    assert np.sum((thick > 5.0) & (thick <= 6.0)) >= 3
    assert thick.max() > 5.5


# -- streaks ---------------------------------------------------------------------------------
def test_streaks_lie_near_bone_and_along_lines(monkeypatch):
    seed = 4
    off = _case(monkeypatch, seed)
    on = _case(monkeypatch, seed, streaks=True)
    assert np.array_equal(off.labels, on.labels)
    diff = on.volume.astype(float) - off.volume.astype(float)
    changed = np.abs(diff) > 5
    assert changed.any()
    assert changed.mean() < 0.25  # lines, not the whole image
    bone = on.tissues == tissue_id("bone_cortex")
    # distance (mm) of every voxel to the cortical bone of its slice
    dist = np.stack([ndimage.distance_transform_edt(~bone[:, :, k]) if bone[:, :, k].any()
                     else np.full(bone.shape[:2], np.inf) for k in range(bone.shape[2])], 2)
    dist *= SPACING[0]
    near, far = dist < 20, dist > 80
    assert np.abs(diff[near]).mean() > 4 * np.abs(diff[far]).mean()
    assert diff[near].var() > 20 * diff[far].var()
    # within one tissue (eroded muscle) near bone, the image varies more than without
    muscle = ndimage.binary_erosion(on.tissues == tissue_id("muscle"), np.ones((3, 3, 1)))
    muscle &= dist < 30
    assert muscle.sum() > 100
    assert on.volume[muscle].astype(float).var() > 1.05 * off.volume[muscle].astype(float).var()


def test_streak_difference_is_line_shaped(monkeypatch):
    """Thin: in each slice, the changed pixels are a small share of their bounding box."""
    seed = 4
    off = _case(monkeypatch, seed)
    on = _case(monkeypatch, seed, streaks=True)
    diff = np.abs(on.volume.astype(float) - off.volume.astype(float)) > 20
    fills = []
    for k in range(diff.shape[2]):
        if diff[:, :, k].sum() < 10:
            continue
        xs, ys = np.nonzero(diff[:, :, k])
        box = (xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1)
        fills.append(diff[:, :, k].sum() / box)
    assert fills and np.median(fills) < 0.4


# -- coarse reconstruction -------------------------------------------------------------------
def _gradient_energy(vol):
    v = vol.astype(float)
    return float((np.diff(v, axis=0) ** 2).mean() + (np.diff(v, axis=1) ** 2).mean())


def test_effective_resolution_removes_high_frequencies(monkeypatch):
    shape, spacing = (192, 192, 8), (1.5, 1.5, 5.0)
    sharp = _case(monkeypatch, 2, shape, spacing)
    coarse = _case(monkeypatch, 2, shape, spacing, effective_pixel=6.0)
    assert coarse.meta["effective_pixel_mm"] == 6.0
    assert np.array_equal(sharp.labels, coarse.labels)  # labels stay on the output grid
    assert _gradient_energy(coarse.volume) < 0.35 * _gradient_energy(sharp.volume)
    # same anatomy, same place: the body mean is kept
    body = sharp.volume > -500
    assert abs(coarse.volume[body].mean() - sharp.volume[body].mean()) < 40


def test_effective_pixel_not_coarser_than_the_grid_is_dropped():
    rng = np.random.default_rng(0)
    acq = scanner.sample_acquisition(rng, (64, 64, 10), sample_patient(rng), (6.0, 6.0, 5.0),
                                     effective_pixel=3.0)
    assert acq.effective_pixel is None


# -- domain randomisation --------------------------------------------------------------------
@pytest.mark.parametrize("phase", PHASES)
def test_randomised_tables_keep_the_order_of_tissues(phase):
    fats = ("subcutaneous_fat", "visceral_fat")
    soft = ("muscle", "liver", "spleen", "kidney_cortex", "pancreas", "bowel_wall", "urine",
            "bile", "artery", "portal_vein", "diaphragm")
    spread = []
    for seed in range(60):
        for gain in (0.8, 1.25):
            rng = np.random.default_rng(seed)
            t = sample_table(rng, phase, 40.0 * (seed % 2), domain=_domain(gain=gain))
            assert t["air"].mean == -1000.0
            assert max(t[f].mean for f in fats) < min(t[s].mean for s in soft)
            assert t["muscle"].mean < t["bone_cortex"].mean
            assert t["bone_marrow"].mean < t["bone_cortex"].mean
            assert t["lung"].mean < -550 and t["gas"].mean < -550
            spread.append(t["liver"].mean)
    plain = [sample_table(np.random.default_rng(s), phase)["liver"].mean for s in range(60)]
    assert np.std(spread) > 1.3 * np.std(plain)  # wider than real scans vary


def test_randomised_table_starts_from_the_plain_draws():
    plain = sample_table(np.random.default_rng(1), "arterial")
    rand = sample_table(np.random.default_rng(1), "arterial", domain=_domain(jitter=0.0,
                                                                             gain=1.0))
    assert all(plain[n].mean == pytest.approx(rand[n].mean) for n in TISSUES)
    assert rand["liver"].texture == pytest.approx(1.8 * plain["liver"].texture)


def test_generate_case_randomises_the_table_it_paints_with(monkeypatch):
    plain = _case(monkeypatch, 3)
    rand = _case(monkeypatch, 3, domain=True)
    assert rand.meta["liver_hu_mean"] != plain.meta["liver_hu_mean"]


def test_lesions_keep_their_contrast_on_randomised_scans(monkeypatch):
    """Lesions are drawn relative to the randomised liver mean, so the floor holds."""
    offsets = []
    for seed in (3, 4):
        for phase in ("non_contrast", "portal_venous"):
            case = _case(monkeypatch, seed, domain=True, case_options={
                "phase": phase, "n_lesions": 6, "lesion_kinds": ("hyperdense",)})
            assert case.meta["domain_randomised"]
            liver = case.meta["liver_hu_mean"]
            offsets += [les["hu"] - liver for les in case.meta["lesions"]]
    assert len(offsets) >= 16
    assert np.abs(offsets).min() >= MIN_CONTRAST_HU - 0.11


def test_bias_field_shades_tissue_smoothly_and_leaves_air():
    rng = np.random.default_rng(0)
    acq = scanner.sample_acquisition(rng, (96, 96, 6), sample_patient(rng), (4.0, 4.0, 5.0),
                                     domain=True)
    hu = np.full((96, 96, 6), 50.0, dtype=np.float32)
    hu[:20] = -1000.0
    before = hu.copy()
    scanner._add_bias_field(hu, acq)
    change = hu - before
    assert np.abs(change[:20]).max() == 0  # air
    peak = np.abs(change[20:]).max()
    assert 0.4 * acq.domain["bias_field_hu"] < peak <= 1.31 * acq.domain["bias_field_hu"]
    assert np.abs(np.diff(change[20:], axis=0)).max() < 0.1 * peak  # low frequency
