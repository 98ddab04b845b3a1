"""Liver tumors: how many, which kind, where, how big, and how they enhance.

Kinds (HU relative to the case's liver mean ``L``, per phase):

* ``hypodense`` (metastasis, HCC with washout): darker than liver in every phase, most in
  the portal-venous phase; heterogeneous, soft margin.
* ``hyperdense`` (hypervascular HCC or metastasis): slightly dark without contrast, bright in
  the arterial phase, near-isodense to slightly bright in the portal-venous phase.
* ``rim`` (rim-enhancing, necrotic centre): a 2-6 mm enhancing rim around 10-40 HU necrosis.
* ``cystic``: -5..20 HU, homogeneous, sharp margin, never enhances.

Every lesion differs from the liver mean by at least :data:`MIN_CONTRAST_HU` (the core of a
rim lesion included): LiTS labels what its readers saw on the scan itself, so a label on
a lesion that is isodense in the drawn phase would be label noise, teaching a model to call
tumor on normal-looking liver. A draw closer to the liver mean is pushed out to that
distance on its own side (generator 1.1.0; 1.0.0 let 44 of 799 lesions of a 240-case set,
mostly ``hyperdense`` ones in the portal-venous phase, sit within 8 HU of the liver).

A case has 0 to ~20 lesions (often one kind per case, as with metastases), diameters
log-uniform from 3 mm to 10 cm, lobulated ellipsoids centred in the liver. Tumor voxels are
only ever painted inside the liver (label 2 replaces 1); lesions at or below the voxel
size may leave no label, which the meta records.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from keras_liverseg.phantom import fields
from keras_liverseg.phantom.canvas import Canvas

__all__ = ["KINDS", "MIN_CONTRAST_HU", "paint_lesions", "visible"]

F32 = np.float32
KINDS: tuple[str, ...] = ("hypodense", "hyperdense", "rim", "cystic")
_KIND_P = (0.45, 0.15, 0.2, 0.2)
MIN_CONTRAST_HU = 8.0
"""Smallest difference between a lesion's (core) HU and the liver mean."""


def visible(value: float, liver_mean: float) -> float:
    """``value`` moved, if needed, to at least :data:`MIN_CONTRAST_HU` from ``liver_mean``
    on its own side (brighter when exactly equal); no random draw, so the rest of the
    case is unchanged."""
    offset = value - liver_mean
    if abs(offset) >= MIN_CONTRAST_HU:
        return value
    return liver_mean + (MIN_CONTRAST_HU if offset >= 0 else -MIN_CONTRAST_HU)


def _contrast(rng: np.random.Generator, kind: str, phase: str) -> tuple[float, float]:
    """(lesion HU offset from liver or absolute HU for cysts/necrosis, rim offset)."""
    if kind == "hypodense":
        lo, hi = {"non_contrast": (8, 30), "arterial": (10, 40), "portal_venous": (20, 70)}[phase]
        return -rng.uniform(lo, hi), 0.0
    if kind == "hyperdense":
        lo, hi = {"non_contrast": (-15, 0), "arterial": (20, 80),
                  "portal_venous": (-10, 30)}[phase]
        return rng.uniform(lo, hi), 0.0
    if kind == "rim":
        lo, hi = {"non_contrast": (-15, 0), "arterial": (10, 60), "portal_venous": (0, 40)}[phase]
        return rng.uniform(10, 40), rng.uniform(lo, hi)
    return rng.uniform(-5, 20), 0.0


def paint_lesions(
    canvas: Canvas,
    rng: np.random.Generator,
    phase: str,
    offset: Sequence[float],
    count: int | None = None,
    kinds: Sequence[str] | None = None,
) -> list[dict]:
    """Paint tumors into the liver of ``canvas``; returns one meta dict per lesion.

    ``count`` forces the number of lesions and ``kinds`` restricts their kinds (tests,
    curated sets); ``offset`` converts patient-frame centres to world (RAS) millimetres.
    """
    if count is None:
        u = rng.random()
        count = 0 if u < 0.25 else 1 if u < 0.55 else int(rng.integers(2, 5)) if u < 0.82 else (
            int(rng.integers(5, 21)))
    allowed = tuple(kinds) if kinds else KINDS
    for k in allowed:
        if k not in KINDS:
            raise ValueError(f"unknown lesion kind {k!r}; expected one of {KINDS}")
    p = np.array([_KIND_P[KINDS.index(k)] for k in allowed])
    p /= p.sum()
    case_kind = str(rng.choice(allowed, p=p))
    core = np.argwhere(canvas.liver > 0.95)
    if count == 0 or len(core) == 0:
        return []
    liver_mean = canvas.table["liver"].mean
    out: list[dict] = []
    big_done = False
    for _ in range(count):
        kind = case_kind if rng.random() < 0.7 else str(rng.choice(allowed, p=p))
        diameter = float(np.exp(rng.uniform(np.log(3.0), np.log(100.0))))
        if diameter > 50:
            if big_done:
                diameter = float(rng.uniform(3, 30))
            big_done = True
        r = diameter / 2
        i, j, k = core[rng.integers(len(core))]
        center = (float(canvas.x[i]), float(canvas.y[j]), float(canvas.z[k]))
        semi = tuple(r * rng.uniform(0.75, 1.25, 3))
        m = max(semi) * 1.3 + 2 * canvas.h
        box = canvas.box(np.subtract(center, m), np.add(center, m))
        if box is None:
            continue
        rot = fields.rotation(*rng.uniform(0, np.pi, 3))
        d = fields.ellipsoid(box.X, box.Y, box.Z, center, semi, rot)
        if kind != "cystic" and r > 4:
            lob = fields.lattice_noise(rng, box.shape, (canvas.h, canvas.h, canvas.hz), r)
            d = d + F32(0.12 * r) * lob
        soft = 1.0 if kind == "cystic" else rng.uniform(1.0, 3.0)
        occ = fields.occupancy(d, canvas.h * soft)
        hu, rim = _contrast(rng, kind, phase)
        texture = 0.3 if kind == "cystic" else rng.uniform(0.8, 2.5)
        value = visible(hu if kind in ("rim", "cystic") else liver_mean + hu, liver_mean)
        if kind == "rim":
            canvas.paint(box, occ=occ, tissue="tumor", value=F32(liver_mean + rim),
                         texture=texture, label="tumor")
            t = min(rng.uniform(2, 6), 0.4 * r)
            occ = fields.occupancy(d + F32(t), canvas.h * soft)
        canvas.paint(box, occ=occ, tissue="tumor", value=F32(value), texture=texture,
                     label="tumor")
        out.append({
            "kind": kind,
            "center_world_mm": [round(c + o, 1) for c, o in zip(center, offset, strict=False)],
            "diameter_mm": round(diameter, 1),
            "hu": round(float(value), 1),
            "rim_hu": round(float(liver_mean + rim), 1) if kind == "rim" else None,
        })
    return out
