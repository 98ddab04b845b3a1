"""Liver tumors: how many, which kind, where, how big, and how they enhance.

Kinds (HU relative to the case's liver mean ``L``, per phase):

* ``hypodense`` (metastasis, HCC with washout): darker than liver in every phase, most in
  the portal-venous phase; heterogeneous, soft margin.
* ``hyperdense`` (hypervascular HCC or metastasis): slightly dark without contrast, bright in
  the arterial phase, near-isodense to slightly bright in the portal-venous phase.
* ``rim`` (rim-enhancing, necrotic centre): a 2-6 mm enhancing rim around 10-40 HU necrosis.
* ``cystic``: -5..20 HU, homogeneous, sharp margin, never enhances.
* ``heterogeneous`` (large HCC or metastasis, generator 2.0.0): a 40-100 mm mass with a
  viable, irregular enhancing rim of varying thickness (4-14 mm), necrotic or cystic
  patches mixed with viable hypodense tissue inside (a smooth random mixture, so the HU
  spread is wide), and an ill-defined, infiltrative margin (soft and ragged edge).

Every lesion differs from the liver mean by at least :data:`MIN_CONTRAST_HU` (the core of a
rim lesion included): LiTS labels what its readers saw on the scan itself, so a label on
a lesion that is isodense in the drawn phase would be label noise, teaching a model to call
tumor on normal-looking liver. A draw closer to the liver mean is pushed out to that
distance on its own side (generator 1.1.0; 1.0.0 let 44 of 799 lesions of a 240-case set,
mostly ``hyperdense`` ones in the portal-venous phase, sit within 8 HU of the liver).

The core of a ``heterogeneous`` mass (necrosis and viable interior) lies on one side of the
liver mean, at least that far from it, so the mixture never crosses the liver's HU; its
rim may approach the liver, as a rim lesion's does.

A case has 0 to ~20 lesions (often one kind per case, as with metastases), lobulated
ellipsoids in the liver with diameters log-uniform from 3 to 45 mm. About one case in
five (a quarter of those with lesions) also carries one large mass of 50-100 mm (over
~50 ml; ``heterogeneous`` in most, else rim or hypodense), placed deep, under the capsule
or under the dome. Tumor voxels are only ever painted inside the liver (label 2 replaces
1); lesions at or below the voxel size may leave no label, which the meta records
(``volume_ml`` is the labelled volume).

Generator 2.2.0: a large mass under the capsule or under the dome usually bulges out of
the liver's outline (exophytic growth, as large HCCs and metastases do), instead of being
cut flat at the capsule. The part of the mass outside the liver becomes liver first (so
the tumor label covers the whole mass, and a thin rim of compressed parenchyma may remain
around it), where the mass meets soft, displaceable neighbours (visceral fat, bowel,
gallbladder, fluid; never muscle, diaphragm, bone or lung), and only where that part
touches the liver. Whether a mass bulges is drawn from its own stream, so every other draw
of a seed stays 2.1.0's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from keras_liverseg.phantom import fields
from keras_liverseg.phantom.canvas import Canvas
from keras_liverseg.phantom.intensities import tissue_id

__all__ = ["KINDS", "MIN_CONTRAST_HU", "paint_lesions", "visible"]

F32 = np.float32
KINDS: tuple[str, ...] = ("hypodense", "hyperdense", "rim", "cystic", "heterogeneous")
_KIND_P = (0.45, 0.15, 0.2, 0.2, 0.0)  # heterogeneous: the large mass (or when asked for)
BIG_CASE_P = 0.27
"""Probability that a case with lesions carries one large (50-100 mm) mass."""
MIN_CONTRAST_HU = 8.0
"""Smallest difference between a lesion's (core) HU and the liver mean."""
BULGE_P = 0.8
"""Probability that a large subcapsular or dome mass bulges out of the liver (2.2.0)."""
_DISPLACEABLE = ("visceral_fat", "bowel_wall", "bowel_collapsed", "bowel_fluid", "stool", "gas",
                 "bile", "gallstone", "ascites")
"""Tissues a bulging mass pushes aside (it is painted over them)."""


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
    if kind == "heterogeneous":  # (necrosis HU, viable rim offset)
        lo, hi = {"non_contrast": (-20, -5), "arterial": (15, 70),
                  "portal_venous": (-10, 35)}[phase]
        return rng.uniform(5, 35), rng.uniform(lo, hi)
    return rng.uniform(-5, 20), 0.0


def paint_lesions(
    canvas: Canvas,
    rng: np.random.Generator,
    phase: str,
    offset: Sequence[float],
    count: int | None = None,
    kinds: Sequence[str] | None = None,
    bulge_rng: np.random.Generator | None = None,
) -> list[dict]:
    """Paint tumors into the liver of ``canvas``; returns one meta dict per lesion.

    ``count`` forces the number of lesions and ``kinds`` restricts their kinds (tests,
    curated sets); ``offset`` converts patient-frame centres to world (RAS) millimetres.
    ``bulge_rng`` draws whether a large subcapsular or dome mass bulges out of the liver
    (none bulges without it, as in generator 2.1.0).
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
    p = p / p.sum() if p.sum() > 0 else np.full(len(allowed), 1.0 / len(allowed))
    case_kind = str(rng.choice(allowed, p=p))
    big = rng.random() < BIG_CASE_P
    core = np.argwhere(canvas.liver > 0.95)
    if count == 0 or len(core) == 0:
        return []
    liver_mean = canvas.table["liver"].mean
    out: list[dict] = []
    for n in range(count):
        kind = case_kind if rng.random() < 0.7 else str(rng.choice(allowed, p=p))
        site = "random"
        if n == 0 and big:
            large = [k for k in ("heterogeneous", "rim", "hypodense") if k in allowed]
            if large:
                kind = large[0] if rng.random() < 0.7 else str(rng.choice(large))
            diameter = rng.uniform(50, 100)
        elif kind == "heterogeneous":
            diameter = rng.uniform(40, 100)
        else:
            diameter = float(np.exp(rng.uniform(np.log(3.0), np.log(45.0))))
        r = diameter / 2
        if diameter >= 40:
            site = str(rng.choice(["deep", "subcapsular", "dome"], p=[0.5, 0.3, 0.2]))
            center = _large_site(canvas, rng, site, r)
        else:
            i, j, k = core[rng.integers(len(core))]
            center = (float(canvas.x[i]), float(canvas.y[j]), float(canvas.z[k]))
        semi = tuple(r * rng.uniform(0.75, 1.25, 3))
        m = max(semi) * 1.3 + 2 * canvas.h
        box = canvas.box(np.subtract(center, m), np.add(center, m))
        if box is None:
            continue
        rot = fields.rotation(*rng.uniform(0, np.pi, 3))
        d = fields.ellipsoid(box.X, box.Y, box.Z, center, semi, rot)
        spacing = (canvas.h, canvas.h, canvas.hz)
        if kind != "cystic" and r > 4:
            lob = fields.lattice_noise(rng, box.shape, spacing, r)
            d = d + F32(0.12 * r) * lob
        entry = {"kind": kind, "site": site}
        if site in ("subcapsular", "dome") and bulge_rng is not None \
                and bulge_rng.random() < BULGE_P:
            entry["bulge_ml"] = _bulge(canvas, box, d)
        if kind == "heterogeneous":
            value, occ = _heterogeneous(canvas, rng, phase, box, d, r, liver_mean, entry)
        else:
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
            entry["rim_hu"] = round(float(liver_mean + rim), 1) if kind == "rim" else None
            occ = fields.occupancy(d, canvas.h * soft)
        labelled = occ * canvas.liver[box.sl] > 0.5
        out.append({
            **entry,
            "center_world_mm": [round(c + o, 1) for c, o in zip(center, offset, strict=False)],
            "diameter_mm": round(diameter, 1),
            "hu": round(float(value), 1),
            "volume_ml": round(float(labelled.sum()) * canvas.h**2 * canvas.hz / 1000, 1),
        })
    return out


def _bulge(canvas: Canvas, box, d: np.ndarray) -> float:
    """Grow the liver over the part of the mass ``d < 0`` that lies outside it, on
    displaceable tissue and connected to the liver; returns that part's volume (ml)."""
    soft = np.isin(canvas.tissue[box.sl], [tissue_id(t) for t in _DISPLACEABLE])
    occ = fields.occupancy(d, canvas.h) * soft
    liver = canvas.liver[box.sl]
    inside = liver > 0.5
    parts, _ = ndimage.label((occ > 0.5) | inside)
    touching = np.unique(parts[inside])
    occ *= np.isin(parts, touching[touching > 0])
    occ *= F32(1.0) - liver
    if not (occ > 0.5).any():
        return 0.0
    canvas.paint(box, occ=occ, tissue="liver", label="liver")
    return round(float(occ.sum()) * canvas.h**2 * canvas.hz / 1000, 1)


def _large_site(canvas: Canvas, rng: np.random.Generator, site: str, r: float) -> tuple:
    """Centre of a large mass: ``deep`` (mostly inside), ``subcapsular`` (its edge at the
    capsule) or ``dome`` (in the upper fifth of the liver)."""
    inside = canvas.liver > 0.5
    idx = np.nonzero(inside.any(axis=(1, 2)))[0], np.nonzero(inside.any(axis=(0, 2)))[0]
    kz = np.nonzero(inside.any(axis=(0, 1)))[0]
    crop = (slice(idx[0][0], idx[0][-1] + 1), slice(idx[1][0], idx[1][-1] + 1),
            slice(kz[0], kz[-1] + 1))
    depth = ndimage.distance_transform_edt(np.pad(inside[crop], 1),
                                           sampling=(canvas.h, canvas.h, canvas.hz))[
        1:-1, 1:-1, 1:-1]
    if site == "subcapsular":
        want = (depth > 0.25 * r) & (depth < 0.6 * r)
    else:
        want = depth > min(0.7 * r, 0.8 * float(depth.max()))
    if site == "dome":
        zs = canvas.z[crop[2]]
        want &= (zs > zs.min() + 0.8 * (zs.max() - zs.min()) - r)[None, None, :]
    cand = np.argwhere(want)
    if len(cand) == 0:
        cand = np.argwhere(depth >= 0.8 * float(depth.max()))
    i, j, k = cand[rng.integers(len(cand))]
    return (float(canvas.x[crop[0]][i]), float(canvas.y[crop[1]][j]), float(canvas.z[crop[2]][k]))


def _heterogeneous(canvas: Canvas, rng: np.random.Generator, phase: str, box, d: np.ndarray,
                   r: float, liver_mean: float, entry: dict) -> tuple[float, np.ndarray]:
    """Paint a large mass: ragged soft margin, irregular enhancing rim, necrotic/viable core.

    Returns the viable interior HU and the whole mass's occupancy; fills ``entry``.
    """
    spacing = (canvas.h, canvas.h, canvas.hz)
    necrosis, rim = _contrast(rng, "heterogeneous", phase)
    necrosis = visible(necrosis, liver_mean)
    side = 1.0 if necrosis > liver_mean else -1.0
    viable = liver_mean + side * rng.uniform(15, 45)
    # infiltrative margin: a ragged edge, blurred over a few millimetres
    d = d + F32(rng.uniform(1.5, 4.0)) * fields.lattice_noise(rng, box.shape, spacing, 6.0)
    occ = fields.occupancy(d, max(canvas.h, rng.uniform(3.0, 7.0)))
    canvas.paint(box, occ=occ, tissue="tumor", value=F32(liver_mean + rim),
                 texture=rng.uniform(1.5, 3.0), label="tumor")
    # the viable rim: 4-14 mm, thicker and thinner around the mass
    t0 = min(rng.uniform(4, 14), 0.35 * r)
    thick = F32(t0) * np.clip(F32(1.0) + F32(0.6) * fields.lattice_noise(
        rng, box.shape, spacing, max(r / 2, 8.0)), 0.3, 2.0)
    inner = fields.occupancy(d + thick, canvas.h * 1.5)
    # necrotic patches mixed into viable tumour (smooth mixture, sharper with a bigger gain)
    mix = fields.lattice_noise(rng, box.shape, spacing, max(r / 3, 6.0))
    frac = 1.0 / (1.0 + np.exp(-F32(rng.uniform(1.5, 4.0)) * (mix - F32(rng.uniform(-0.8, 0.5)))))
    value = (F32(viable) + (F32(necrosis) - F32(viable)) * frac).astype(F32)
    canvas.paint(box, occ=inner, tissue="tumor", value=value, texture=rng.uniform(1.0, 2.5),
                 label="tumor")
    entry.update(rim_hu=round(float(liver_mean + rim), 1),
                 necrosis_hu=round(float(necrosis), 1),
                 necrotic_fraction=round(float((frac * inner).sum() / max(inner.sum(), 1)), 2),
                 rim_mm=round(float(t0), 1))
    return viable, occ
