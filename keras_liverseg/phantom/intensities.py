"""Hounsfield units of every tissue in each contrast phase, and how much texture it has.

Ranges follow typical adult abdominal CT (120 kVp). They deliberately overlap: spleen,
pancreas, kidney, bowel wall, muscle and vessels reach the liver's range in some phase, so
brightness alone never identifies the liver. Each case draws one mean per tissue from its
phase range; ``texture`` is the standard deviation (HU) of the correlated in-organ
variation (fine texture at a few mm, plus half as much at a few cm).

Domain randomisation (generator 2.0.0). On a share of scans (the scanner draws which, and
passes its ``domain`` dict in) the table is pushed beyond what real scans show, as SynthSeg
does (Billot et al., Medical Image Analysis 2023: random contrasts teach a model shapes, not
one scanner's grey values), but only as far as keeps the image CT-like: every tissue's mean
gets its own offset (soft tissues, fluids and vessels by tens of HU, fat by about half as
much, lung and gas a little, bone widely; air stays -1000), then a global gain about 0 HU
stretches or squeezes the contrast (0.8-1.25), and textures are scaled. Orders that a model
may rely on survive: fat stays below every soft tissue and fluid, soft tissue below bone,
lung and gas stay air-like. Lesions are drawn after this, relative to the jittered liver
mean, so their contrast floor (:data:`~keras_liverseg.phantom.lesions.MIN_CONTRAST_HU`)
holds on randomised scans too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

__all__ = ["PHASES", "TISSUES", "TissueHU", "liver_range", "sample_table", "tissue_id"]

PHASES: tuple[str, ...] = ("non_contrast", "arterial", "portal_venous")

# name: ((lo, hi) non-contrast, (lo, hi) arterial, (lo, hi) portal venous, texture HU)
_RANGES: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float], float]] = {
    "air": ((-1000, -1000), (-1000, -1000), (-1000, -1000), 0.0),
    "lung": ((-900, -800), (-890, -790), (-890, -790), 25.0),
    "skin": ((10, 50), (15, 60), (20, 70), 6.0),
    "subcutaneous_fat": ((-120, -90), (-120, -90), (-118, -85), 7.0),
    "visceral_fat": ((-115, -75), (-112, -70), (-110, -65), 12.0),
    "muscle": ((38, 58), (42, 62), (48, 70), 6.0),
    "diaphragm": ((38, 58), (45, 70), (55, 80), 5.0),
    "liver": ((50, 65), (60, 80), (90, 130), 5.0),
    "spleen": ((40, 55), (80, 140), (95, 135), 5.0),
    "kidney_cortex": ((28, 42), (140, 220), (140, 200), 5.0),
    "kidney_medulla": ((28, 42), (50, 100), (125, 190), 6.0),
    "urine": ((0, 15), (0, 15), (0, 20), 3.0),
    "pancreas": ((35, 50), (90, 140), (75, 115), 10.0),
    "bowel_wall": ((35, 55), (60, 110), (70, 120), 8.0),
    "bowel_collapsed": ((35, 60), (55, 100), (65, 110), 10.0),
    "bowel_fluid": ((0, 25), (0, 25), (5, 30), 5.0),
    "stool": ((-150, 20), (-150, 20), (-150, 20), 60.0),
    "gas": ((-1000, -900), (-1000, -900), (-1000, -900), 15.0),
    "oral_contrast": ((150, 450), (150, 450), (150, 450), 30.0),
    "bile": ((-5, 20), (-5, 20), (-5, 20), 3.0),
    "gallstone": ((100, 600), (100, 600), (100, 600), 30.0),
    "artery": ((35, 50), (200, 400), (130, 200), 6.0),
    "portal_vein": ((35, 50), (90, 170), (140, 210), 6.0),
    "hepatic_vein": ((35, 50), (40, 80), (130, 200), 6.0),
    "ivc": ((35, 50), (50, 120), (110, 180), 8.0),
    "heart_blood": ((35, 50), (200, 350), (120, 180), 8.0),
    "myocardium": ((35, 55), (90, 140), (90, 130), 6.0),
    "bone_cortex": ((500, 1000), (500, 1000), (500, 1000), 60.0),
    "bone_marrow": ((120, 300), (125, 305), (130, 310), 40.0),
    "cartilage": ((80, 200), (80, 200), (80, 200), 30.0),
    "disc": ((60, 110), (60, 110), (60, 110), 10.0),
    "csf": ((0, 20), (0, 20), (0, 25), 4.0),
    "adrenal": ((20, 40), (50, 90), (60, 90), 6.0),
    "ascites": ((0, 20), (0, 20), (0, 25), 3.0),
    "table": ((200, 500), (200, 500), (200, 500), 20.0),
    "table_core": ((-950, -700), (-950, -700), (-950, -700), 20.0),
    "pad": ((-950, -800), (-950, -800), (-950, -800), 20.0),
    "tumor": ((0, 0), (0, 0), (0, 0), 8.0),  # placeholder: lesions set their own HU
}

TISSUES: tuple[str, ...] = tuple(_RANGES)

# Domain randomisation: jitter scale (times the case's ``tissue_jitter_hu``) and the band a
# jittered mean is kept in, per tissue class; tissues not listed are soft tissue or fluid.
_FAT = ("subcutaneous_fat", "visceral_fat")
_AIRLIKE = ("lung", "gas", "table_core", "pad")
_DENSE = ("bone_cortex", "bone_marrow", "cartilage", "oral_contrast", "gallstone", "table")
_FIXED = ("air", "tumor")
_JITTER_SCALE = {**{n: 0.5 for n in _FAT}, **{n: 0.6 for n in _AIRLIKE},
                 "bone_cortex": 4.0, "bone_marrow": 2.0, "cartilage": 1.5, "oral_contrast": 3.0,
                 "gallstone": 3.0, "table": 2.0}
_BAND = {**{n: (-170.0, -45.0) for n in _FAT}, **{n: (-1000.0, -600.0) for n in _AIRLIKE},
         "bone_cortex": (350.0, 1600.0), "bone_marrow": (90.0, 500.0), "stool": (-250.0, 60.0)}
_SOFT_BAND = (-25.0, 450.0)  # soft tissue, fluid and vessels, above fat and below cortex
_GAIN_FLOOR = -500.0  # the gain acts on tissues brighter than this (not on lung, gas, air)
_IDS = {name: i for i, name in enumerate(TISSUES)}


def tissue_id(name: str) -> int:
    """Integer id of a tissue in tissue maps (index into :data:`TISSUES`)."""
    return _IDS[name]


@dataclass(frozen=True)
class TissueHU:
    """Mean HU and texture (HU standard deviation) of one tissue in one case."""

    mean: float
    texture: float


def liver_range(phase: str) -> tuple[float, float]:
    """The range liver parenchyma means are drawn from in ``phase`` (before steatosis)."""
    lo, hi = _RANGES["liver"][PHASES.index(phase)]
    return float(lo), float(hi)


def sample_table(
    rng: np.random.Generator,
    phase: str,
    steatosis_hu: float = 0.0,
    domain: Mapping[str, float] | None = None,
) -> dict[str, TissueHU]:
    """Draw one case's tissue HU table for ``phase``.

    ``steatosis_hu`` (>= 0) darkens the liver (fatty liver). Enhancement is correlated
    within a case: a single "bolus strength" factor places every enhancing tissue near the
    same relative position of its range, with independent jitter. ``domain`` (the
    acquisition's ``domain`` dict, None on ordinary scans) randomises the table further
    (module docstring): keys ``tissue_jitter_hu``, ``gain`` and ``texture_scale``. The draws
    of an ordinary table come first, so ``domain`` only adds to them.
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    p = PHASES.index(phase)
    bolus = rng.uniform(0.0, 1.0)
    table: dict[str, TissueHU] = {}
    for name, ranges in _RANGES.items():
        lo, hi = ranges[p]
        t = float(np.clip(0.5 * bolus + 0.5 * rng.uniform(), 0.0, 1.0))
        texture = ranges[3] * rng.uniform(0.6, 1.5)
        table[name] = TissueHU(mean=lo + t * (hi - lo), texture=texture)
    liver = table["liver"]
    table["liver"] = TissueHU(liver.mean - steatosis_hu, liver.texture)
    if phase == "arterial":  # arciform "zebra" enhancement of the spleen
        table["spleen"] = TissueHU(table["spleen"].mean, rng.uniform(12.0, 30.0))
    if domain:
        table = _randomise(rng, table, domain)
    return table


def _randomise(
    rng: np.random.Generator, table: dict[str, TissueHU], domain: Mapping[str, float]
) -> dict[str, TissueHU]:
    """Per-tissue offsets, a global gain about 0 HU and a texture scale, kept in bands."""
    scale = float(domain.get("tissue_jitter_hu", 0.0))
    gain = float(domain.get("gain", 1.0))
    tex = float(domain.get("texture_scale", 1.0))
    offsets = rng.normal(0.0, 1.0, len(TISSUES))  # one draw per tissue, always all of them
    out: dict[str, TissueHU] = {}
    for name, z in zip(TISSUES, offsets, strict=True):
        t = table[name]
        if name in _FIXED:
            out[name] = t
            continue
        mean = t.mean + float(np.clip(z, -2.5, 2.5)) * scale * _JITTER_SCALE.get(name, 1.0)
        if mean > _GAIN_FLOOR:
            mean *= gain
        lo, hi = _BAND.get(name, _SOFT_BAND if name not in _DENSE else (60.0, 3000.0))
        out[name] = TissueHU(float(np.clip(mean, lo, hi)), t.texture * tex)
    return out
