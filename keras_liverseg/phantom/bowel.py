"""Small bowel, colon and mesentery: the soft-tissue clutter of the slices below the liver.

Small-bowel loops are the level set ``n1^2 + n2^2 < w^2`` of two smooth random fields: the
intersection of two random surfaces is a tangle of curves, so its neighbourhood is a
packed tangle of tubes, which in an axial slice looks like round and elongated loops.
How tightly they pack depends on the patient's visceral fat. A third field decides what
each stretch holds: mostly collapsed loops (soft tissue at liver-like HU), fluid or gas.
The colon is an explicit haustrated tube framing the abdomen (caecum, ascending colon up
to the hepatic flexure under the liver tip, transverse, splenic flexure, descending,
sigmoid) holding stool and gas. Thin mesenteric vessels run in the fat between the loops.

Bowel against the liver (generator 2.0.0, :func:`paint_liver_contact`, painted after the
liver): in about 70 % of patients a stretch of the hepatic flexure of the colon, of the
duodenum or of a small-bowel loop lies directly under the liver's inferior surface or tip,
found on the painted liver itself so that it touches it (no fat gap in most, a thin one in
the rest). Its contents are often of liver-like density (collapsed wall, soft stool of
20-60 HU, fluid). It fills only what is not liver, so the liver label stops at the contact
and the bowel is background. Generator 2.3.0 adds, in 60 % of patients and from its own
random stream, a fluid-filled loop anywhere under the lower part of the liver's inferior
surface (:func:`paint_fluid_contact`): fluid against the liver's edge reads as a hypodense
lesion, and that is where false lesions stayed.
"""

from __future__ import annotations

import numpy as np

from keras_liverseg.phantom import fields
from keras_liverseg.phantom.organs import Organs

__all__ = ["FLUID_CONTACT_P", "paint_bowel", "paint_fluid_contact", "paint_liver_contact"]

F32 = np.float32


def paint_bowel(organs: Organs, rng: np.random.Generator) -> dict:
    """Paint ascites in the gutters (if any), mesenteric vessels, small bowel and colon."""
    cv, p, _body = organs.cv, organs.p, organs.body
    wc, fc, sf = organs.wc, organs.fc, organs.sf
    top = organs.pz + rng.uniform(0, 25)
    box = cv.box((-wc - 5, organs.p.spine_y - 40, cv.z.min()), (wc + 5, fc + 40, top + 40))
    meta = {"small_bowel_top_mm": round(float(top), 1)}
    if box is None:
        return meta
    X, Y, Z = box.X, box.Y, box.Z
    floor = sf - 5 - 35 * np.clip((np.abs(X) - 40) / 60, 0, 1)
    left_high = top + 30 * np.clip(-X / wc, 0, 1)
    region = fields.intersect(organs.abdomen_clip(box), floor - Y, Z - left_high)
    spacing = (cv.h, cv.h, cv.hz)
    if p.ascites:
        cv.paint(box, region, "ascites")
    # mesenteric vessels: thin tangled tubes in the fat
    scale_v = rng.uniform(18, 30)
    v1 = fields.lattice_noise(rng, box.shape, spacing, scale_v)
    v2 = fields.lattice_noise(rng, box.shape, spacing, scale_v)
    vessel = (np.sqrt(v1 * v1 + v2 * v2) - F32(0.12)) * F32(scale_v / 1.6)
    del v1, v2
    cv.paint(box, fields.intersect(vessel, region + 3), "portal_vein")
    # small bowel: random-walk loops packed into the region
    packing = float(np.clip(1.0 - 0.55 * p.visceral_fat + rng.normal(0, 0.1), 0.3, 1.0))
    loops = _walks(organs, box, region, packing, rng)
    fluid = "oral_contrast" if p.oral_contrast and rng.random() < 0.8 else "bowel_fluid"
    kinds = {"collapsed": 0, "fluid": 0, "gas": 0}
    for path, radius in loops:
        u = rng.random()
        kind = "gas" if u < p.bowel_gas else "fluid" if u < p.bowel_gas + p.bowel_fluid else (
            "collapsed")
        kinds[kind] += 1
        if kind == "collapsed":
            radius = radius * rng.uniform(0.45, 0.7)
        _paint_loop(organs, box, region, path, radius, kind, fluid, rng)
    meta.update(small_bowel_packing=round(packing, 2), bowel_fluid=fluid, small_bowel_loops=kinds)
    _colon(organs, rng)
    return meta


def _walks(organs: Organs, box, region: np.ndarray, packing: float, rng: np.random.Generator):
    """Random-walk centrelines (mm) that wander through ``region`` (sdf on ``box``)."""
    cv = organs.cv
    inside = region < -6.0
    idx = np.argwhere(inside)
    if len(idx) == 0:
        return []
    origin = np.array([box.X.ravel()[0], box.Y.ravel()[0], box.Z.ravel()[0]])
    step_vox = np.array([cv.h, cv.h, cv.hz])
    volume = len(idx) * cv.h * cv.h * cv.hz
    mean_r = rng.uniform(9, 14)
    total = packing * 0.9 * volume / (np.pi * mean_r**2)  # mm of bowel to place
    centre = origin + idx.mean(0) * step_vox
    loops, placed, step = [], 0.0, 9.0

    def ok(q):
        i = np.round((q - origin) / step_vox).astype(int)
        if np.any(i < 0) or np.any(i >= inside.shape):
            return False
        return bool(inside[tuple(i)])

    while placed < total and len(loops) < 60:
        p = origin + idx[rng.integers(len(idx))] * step_vox
        d = rng.normal(size=3)
        d[2] *= 0.5
        d /= np.linalg.norm(d)
        pts = [p]
        for _ in range(int(rng.integers(15, 60))):
            for _attempt in range(4):
                nd = d * 2.0 + rng.normal(size=3) * 1.2
                nd[2] *= 0.6
                nd /= np.linalg.norm(nd)
                q = pts[-1] + nd * step
                if ok(q):
                    break
                d = (centre - pts[-1]) / max(np.linalg.norm(centre - pts[-1]), 1e-6)
            else:
                break
            d = nd
            pts.append(q)
        if len(pts) >= 4:
            path = fields.spline(np.array(pts), 3)
            loops.append((path, mean_r * rng.uniform(0.8, 1.25)))
            placed += step * (len(pts) - 1)
    return loops


def _paint_loop(organs: Organs, box, region, path, radius, kind, fluid, rng) -> None:
    """Wall of the whole loop, then its contents chunk by chunk (no septa at the joins)."""
    cv = organs.cv
    wall = rng.uniform(1.5, 3.0)
    chunks = [path[i : i + 16] for i in range(0, len(path) - 1, 15)]
    boxes = []
    for chunk in chunks:
        sub = cv.sub(box, chunk.min(0) - radius - 4, chunk.max(0) + radius + 4)
        if sub is None:
            continue
        b = _shift(box, sub)
        d = fields.intersect(cv.tube(b, chunk, radius), region[sub.sl])
        boxes.append((b, d))
        cv.paint(b, d, "bowel_wall" if kind != "collapsed" else "bowel_collapsed")
    for b, d in boxes:
        lumen = d + F32(wall if kind != "collapsed" else radius * 0.6)
        if kind == "collapsed":
            cv.paint(b, lumen, "bowel_fluid", texture=1.5)
            continue
        cv.paint(b, lumen, fluid)
        if kind == "gas":
            cv.paint_gas_level(b, lumen, rng, 0.2, 0.8)


def _shift(outer, sub):
    """A sub-box of ``outer`` (relative slices) as an absolute canvas box."""
    from keras_liverseg.phantom.canvas import Box

    sl = tuple(slice((o.start or 0) + s.start, (o.start or 0) + s.stop)
               for o, s in zip(outer.sl, sub.sl, strict=False))
    return Box(sl, sub.X, sub.Y, sub.Z)


def _colon(organs: Organs, rng: np.random.Generator) -> None:
    cv, p = organs.cv, organs.p
    wc, fc, sy, pz, H = organs.wc, organs.fc, p.spine_y, organs.pz, organs.H
    sc = organs.spleen[0]
    flex_z = max(p.liver_bottom, -0.8 * H) - rng.uniform(0, 15)
    pts = [
        (0.45 * wc, 0.25 * fc, pz - 170),
        (0.62 * wc, sy + 25, pz - 100),
        (0.6 * wc, sy + 30, flex_z - 25),
        (0.45 * wc, 0.15 * fc, flex_z),
        (0.1 * wc, 0.7 * fc, pz - rng.uniform(20, 90)),
        (-0.35 * wc, 0.65 * fc, pz - rng.uniform(0, 50)),
        (-0.68 * wc, 0.1 * fc, sc[2] - 40),
        (-0.7 * wc, sy + 25, pz - 60),
        (-0.65 * wc, sy + 25, pz - 170),
        (-0.25 * wc, 0.35 * fc, pz - 230),
    ]
    path = fields.spline(pts, 10)
    seg = np.linalg.norm(np.diff(path, axis=0), axis=1)
    s = np.concatenate([[0], np.cumsum(seg)])
    r0 = rng.uniform(15, 26)
    rad = r0 * (1 + 0.15 * np.cos(2 * np.pi * s / rng.uniform(20, 35)))
    m = rad.max() + 6
    box = cv.box(path.min(0) - m, path.max(0) + m)
    if box is None:
        return
    d = fields.intersect(cv.tube(box, path, rad), organs.abdomen_clip(box, 2))
    cv.paint(box, d, "bowel_wall")
    lumen = d + F32(rng.uniform(1.5, 3))
    cv.paint(box, lumen, "stool", texture=1.0)
    bubbles = fields.lattice_noise(rng, box.shape, (cv.h, cv.h, cv.hz), 6.0)
    cv.paint(box, fields.intersect(lumen, F32(rng.uniform(0.6, 1.4)) - bubbles), "gas")
    gassy = fields.lattice_noise(rng, box.shape, (cv.h, cv.h, cv.hz), 70.0)
    cv.paint(box, fields.intersect(lumen, (F32(rng.uniform(-0.5, 0.8)) - gassy) * 20), "gas")


_CONTACT = {  # organ: (probability, x range / cavity half width, radius range, contents)
    "colon": (0.5, (0.3, 0.9), (14.0, 24.0),
              {"soft_stool": 0.4, "collapsed": 0.25, "stool": 0.2, "fluid": 0.15}),
    "duodenum": (0.25, (0.05, 0.45), (9.0, 14.0),
                 {"collapsed": 0.5, "fluid": 0.35, "soft_stool": 0.15}),
    "small_bowel": (0.25, (0.1, 0.8), (8.0, 13.0),
                    {"collapsed": 0.5, "fluid": 0.35, "soft_stool": 0.15}),
}


def paint_liver_contact(organs: Organs, rng: np.random.Generator) -> dict:
    """A bowel segment against the painted liver's inferior surface; returns meta."""
    if rng.random() >= 0.7:
        return {"organ": None}
    names = list(_CONTACT)
    organ = str(rng.choice(names, p=[_CONTACT[n][0] for n in names]))
    _, x_range, radii, contents = _CONTACT[organ]
    content = str(rng.choice(list(contents), p=list(contents.values())))
    return _contact_segment(organs, rng, organ, content, x_range, radii, 0.25)


FLUID_CONTACT_P = 0.6
"""Probability of 2.3.0's fluid-filled loop against the liver (:func:`paint_fluid_contact`)."""

_FLUID_ORGANS = {"small_bowel": 0.5, "duodenum": 0.3, "colon": 0.2}


def paint_fluid_contact(organs: Organs, rng: np.random.Generator) -> dict:
    """Generator 2.3.0: a fluid-filled loop against the liver's lower surface; returns meta.

    Fluid-filled bowel (0-30 HU) pressed against the liver reads as a hypodense lesion at
    the liver's edge: the false lesions left on held-out phantoms sat there (bowel against
    the edge, the gallbladder and the bowel beside it). :func:`paint_liver_contact` puts one
    segment near the inferior tip, fluid-filled in about a quarter of cases; this one, drawn
    from its own stream ``rng`` so that every other draw stays 2.2.0's, lies anywhere under
    the lower 60 % of the inferior surface, across the whole right upper quadrant (the
    gallbladder fossa and the hilum included), in :data:`FLUID_CONTACT_P` of cases. It fills
    only what is not liver and is background, as the first segment.
    """
    if rng.random() >= FLUID_CONTACT_P:
        return {"organ": None}
    organ = str(rng.choice(list(_FLUID_ORGANS), p=list(_FLUID_ORGANS.values())))
    radii = _CONTACT[organ][2]
    return _contact_segment(organs, rng, organ, "fluid", (0.0, 0.95), radii, 0.6)


def _contact_segment(
    organs: Organs,
    rng: np.random.Generator,
    organ: str,
    content: str,
    x_range: tuple[float, float],
    radii: tuple[float, float],
    low_quantile: float,
) -> dict:
    """Paint one bowel segment of ``organ`` holding ``content`` under the liver.

    Its top touches the liver's inferior surface (or lies 1-4 mm below it) at a column
    drawn among the lowest ``low_quantile`` of the liver's columns between ``x_range`` (a
    fraction of the cavity's half width) and the front of the cavity."""
    cv, p = organs.cv, organs.p
    wc, fc = organs.wc, organs.fc
    x0, x1 = x_range
    r = rng.uniform(*radii)
    gap = 0.0 if rng.random() < 0.6 else rng.uniform(1.0, 4.0)
    bend = rng.uniform(3.0, 20.0)
    length = rng.uniform(50, 100)
    heading = rng.uniform(-0.6, 0.6) + (2.6 if organ == "colon" else rng.uniform(0, np.pi))
    meta = {"organ": organ, "content": content, "radius_mm": round(float(r), 1),
            "gap_mm": round(float(gap), 1), "touches": False}
    box = cv.box((x0 * wc, p.spine_y + 15, cv.z.min()), (x1 * wc, 0.85 * fc, cv.z.max()))
    if box is None:
        return meta
    liv = cv.liver[box.sl] > 0.5
    zlow = np.where(liv, box.Z, np.float32(np.inf)).min(axis=2)
    cols = np.argwhere(np.isfinite(zlow) & (zlow > cv.z.min() + 1.5 * cv.hz))
    if len(cols) == 0:  # no liver here, or it runs out of the scan below
        return meta
    zc = zlow[cols[:, 0], cols[:, 1]]
    low = cols[zc <= np.quantile(zc, low_quantile)]
    i, j = low[rng.integers(len(low))]
    top = np.array((box.X.ravel()[i], box.Y.ravel()[j], zlow[i, j] - 0.5 * cv.hz))
    d = np.array((np.cos(heading), np.sin(heading), rng.uniform(-0.2, 0.2)))
    d /= np.linalg.norm(d)
    s = np.linspace(-1.0, 1.0, 5)[:, None]
    pts = top + np.array((0, 0, -r - gap)) + s * d * length / 2
    pts[:, 2] -= bend * s[:, 0] ** 2
    path = fields.spline(pts, 6)
    m = r + 6
    box = cv.box(path.min(0) - m, path.max(0) + m)
    if box is None:
        return meta
    outer = fields.intersect(cv.tube(box, path, r), organs.abdomen_clip(box, 2))
    outer = fields.subtract(outer, organs.kidney_sdf(box, 1.0), 2.0)
    free = np.float32(1.0) - cv.liver[box.sl]

    def paint(sdf, tissue, **kw):
        cv.paint(box, occ=cv.occupancy(sdf) * free, tissue=tissue, label="keep", **kw)

    wall = rng.uniform(1.5, 3.0)
    if content == "collapsed":
        paint(outer, "bowel_collapsed")
        paint(outer + F32(0.6 * r), "bowel_fluid", texture=1.5)
    else:
        paint(outer, "bowel_wall")
        lumen = outer + F32(wall)
        if content == "soft_stool":
            hu = rng.uniform(20, 60)
            meta["content_hu"] = round(float(hu), 1)
            paint(lumen, "stool", value=F32(hu), texture=0.25)
        elif content == "stool":
            paint(lumen, "stool")
            bubbles = fields.lattice_noise(rng, box.shape, (cv.h, cv.h, cv.hz), 6.0)
            paint(fields.intersect(lumen, F32(1.2) - bubbles), "gas")
        else:
            fluid = "oral_contrast" if p.oral_contrast and rng.random() < 0.5 else "bowel_fluid"
            paint(lumen, fluid)
    # contact: bowel voxels next to liver voxels
    near = cv.occupancy(outer - F32(max(cv.h, gap) + 1.0)) > 0.5
    meta["touches"] = bool(np.any(near & (cv.liver[box.sl] > 0.5)))
    return meta
