"""The liver: lobes as implicit shapes, clipped by the body wall and the diaphragm, with
portal and hepatic vein trees.

Shape. A large right lobe (tilted so that its lower surface is lower laterally), a left lobe
reaching across the midline in front of the stomach (small to very large), a caudate lobe
next to the IVC, and a thin crescent "tip" that runs down along the right lateral wall
below the right lobe (sometimes a long Riedel's lobe). The union is cut by the cavity wall
(so the liver touches the right ribs and lateral wall), by the diaphragm (so its dome
follows the right hemidiaphragm, with lung in the posterior recess around it) and by the
impressions of the right kidney, stomach and spine; low-frequency noise displaces the
surface (nodular in cirrhosis).

Fat where real livers have it (generator 2.0.0; label background, painted as visceral fat
so that a model sees fat-density clefts inside the liver's outline that are not tumor):
the fissure of the ligamentum teres (often, 2-8 mm wide, splitting the left lobe from the
right anteriorly), the fissure of the ligamentum venosum (a thin sheet between the caudate
and the left lobe), the porta hepatis (fat around the portal vein where it enters the
hilum and along its left branch), and a thin extraperitoneal fat layer (0-6 mm, varying
along the surface, absent in some patients) between the liver and the anterior and lateral
abdominal wall and ribs, so the liver edge there shows partial volume with fat and muscle.
Generator 2.1.0 adds the periportal fat sheath: a thin sleeve of fat (0.5-2.5 mm, absent in
a fifth of patients) around the portal vein's trunk and first branches inside the liver, so
that near the hilum thin branching fat lines and, at 3-5 mm slices, faint hypodense smudges
run through the parenchyma with the vein inside them (isodense without contrast). The real
TotalSegmentator example shows them, and version 4 of the default weights took them for a
lesion; the sheath and the vein within it are background, as TotalSegmentator labels them.
Generator 2.4.0 adds the hilar fat junction (:func:`_hilar_junction`): in most livers a small
pool of fat where the fissures meet the left portal vein's umbilical portion, with thin,
bent, branching clefts radiating from it, the hypodense star that version 5 of the default
weights still took for a lesion on the real example.

Vessels. Random branching trees of tapered tubes: the portal vein enters at the hilum and
branches into right and left systems; three hepatic veins fan out from the IVC below the
dome. The trees branch down to sub-millimetre radii (0.6-0.8 mm) near the periphery and
start in the hilar fat. Their HU follows the contrast phase; inside the parenchyma they
stay in the liver label (as in LiTS), in the hilar fat they are background.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from keras_liverseg.phantom import fields
from keras_liverseg.phantom.body import Body
from keras_liverseg.phantom.canvas import Box, Canvas
from keras_liverseg.phantom.organs import Organs

__all__ = ["Liver"]

F32 = np.float32


class _Point(NamedTuple):
    """One point as a 1x1x1 box (what :meth:`Liver.core_sdf` reads: X, Y, Z)."""

    X: np.ndarray
    Y: np.ndarray
    Z: np.ndarray


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / max(np.linalg.norm(v), 1e-9)


def _tree(rng, start, direction, radius, length, depth, out, min_radius=0.7) -> None:
    """Append tapered segments ``(a, b, ra, rb)`` of a random branching tree to ``out``."""
    start = np.asarray(start, dtype=np.float64)
    direction = _unit(direction)
    n = max(2, int(length // 12))
    pts = [start]
    d = direction
    for _ in range(n):  # a gently curving branch
        d = _unit(d + rng.normal(0, 0.15, 3))
        pts.append(pts[-1] + d * length / n)
    r_end = radius * 0.85
    for i in range(n):
        ra = radius + (r_end - radius) * i / n
        rb = radius + (r_end - radius) * (i + 1) / n
        out.append((pts[i], pts[i + 1], ra, rb))
    if depth <= 0 or r_end * 0.7 < min_radius:
        return
    for _ in range(2 if rng.random() < 0.8 else 3):
        axis = _unit(np.cross(d, rng.normal(size=3)))
        ang = rng.uniform(0.35, 0.9)
        child = d * np.cos(ang) + np.cross(axis, d) * np.sin(ang)
        _tree(rng, pts[-1], child, r_end * rng.uniform(0.6, 0.8), length * rng.uniform(0.6, 0.85),
              depth - 1, out, min_radius)


JUNCTION_P = 0.75  # share of livers with a fat junction at the umbilical portion (2.4.0)


def _wander(rng: np.random.Generator, start: np.ndarray, angle: float,
            length: float) -> list:
    """Three bent segments of ``length`` mm in all from ``start``, heading ``angle`` (radians,
    in the axial plane) with a little tilt: the path of one cleft."""
    points = [np.asarray(start, dtype=np.float64)]
    for _ in range(3):
        angle += rng.uniform(-0.5, 0.5)
        step = _unit((np.cos(angle), np.sin(angle), rng.uniform(-0.3, 0.3))) * length / 3
        points.append(points[-1] + step)
    return points


def _hilar_junction(rng: np.random.Generator, porta: np.ndarray,
                    lobes: Callable[[np.ndarray], float]) -> list:
    """Fat where the fissures meet the left portal vein's umbilical portion (2.4.0).

    In a real liver the fissure of the ligamentum teres, the fissure of the ligamentum
    venosum and the hilar plate meet at the umbilical portion of the left portal vein, in
    front of and to the left of the porta, inside the parenchyma: a small pool of fat (3-10
    mm across) from which two to four thin clefts (2-5 mm wide, tapering to 0.6 mm over
    20-45 mm, bent, most with a side branch) radiate. At 3 mm slices it is a hypodense star
    with a blurred centre; the default weights version 5 took the real TotalSegmentator
    example's for an 8 ml lesion. The pool's centre is the deepest inside the lobes of 12
    draws around the porta (``lobes``: their signed distance at a point, mm), and there is
    none unless it lies 3 mm inside. Returns the pieces as ``(points, radii)`` tubes, the
    pool first; empty in a quarter of livers (and where no draw lies inside). All are
    background (visceral fat) inside the liver's outline, like the other clefts.
    """
    if rng.random() >= JUNCTION_P:
        return []
    sites = porta + np.column_stack([-rng.uniform(5, 30, 12), rng.uniform(0, 30, 12),
                                     rng.uniform(-5, 20, 12)])
    depth = [lobes(site) for site in sites]
    if min(depth) > -3.0:
        return []
    center = sites[int(np.argmin(depth))]
    pool = rng.uniform(1.5, 5.0)
    tilt = _unit(rng.normal(size=3))
    pieces = [([center - tilt * pool * 0.5, center + tilt * pool * 0.5], [pool, pool])]
    start = rng.uniform(0, 2 * np.pi)
    for k in range(int(rng.integers(2, 5))):
        angle = start + k * 2 * np.pi / 4 + rng.uniform(-0.5, 0.5)
        width = rng.uniform(1.0, min(2.5, pool))
        points = _wander(rng, center, angle, rng.uniform(20.0, 45.0))
        pieces.append((points, [width, 0.8 * width, 0.6 * width, 0.3]))
        if rng.random() < 0.7:  # a side branch from the first bend
            side = angle + rng.choice([-1.0, 1.0]) * rng.uniform(0.6, 1.2)
            pieces.append((_wander(rng, points[1], side, rng.uniform(8.0, 20.0)),
                           [0.7 * width, 0.6 * width, 0.4 * width, 0.3]))
    return pieces


class Liver:
    """One patient's liver shape and vessels."""

    def __init__(self, canvas: Canvas, body: Body, organs: Organs, rng: np.random.Generator):
        self.cv, self.body, self.organs, self.p, self.rng = canvas, body, organs, body.p, rng
        p = self.p
        wc, fc = organs.wc, organs.fc
        bc = p.back - p.skin - p.fat_back - p.wall_back
        H = p.liver_height
        ls = p.liver_scale
        self.right = (
            (0.42 * wc, (fc - bc) / 2 - rng.uniform(0, 15), -0.42 * H),
            (0.7 * wc * ls[0], 0.58 * (fc + bc) * ls[1], 0.58 * H),
            fields.rotation(pitch=rng.uniform(0.15, 0.45), yaw=rng.uniform(-0.15, 0.15)),
        )
        self.boxiness = rng.uniform(2.0, 3.5)  # 2: ellipsoid; larger: more prismatic
        if p.cirrhosis:  # shrunken right lobe
            c, s, r = self.right
            self.right = (c, (s[0] * 0.85, s[1] * 0.85, s[2] * 0.9), r)
        ll = p.left_lobe
        self.left = (
            (-(0.05 + 0.25 * ll) * wc, 0.5 * fc + rng.uniform(-8, 8), -0.22 * H),
            ((0.22 + 0.38 * ll) * wc, rng.uniform(0.22, 0.32) * (fc + bc), 0.24 * H),
            fields.rotation(yaw=rng.uniform(-0.3, 0.2), roll=rng.uniform(-0.2, 0.2)),
        )
        caud = 1.5 if p.cirrhosis else 1.0
        self.caudate = (
            (organs.ivc_x - 8, p.spine_front + 22, -0.3 * H),
            (20 * caud, 16 * caud, 0.22 * H),
        )
        self.tip_top = -0.35 * H
        self.bottom = p.liver_bottom
        self.tip_angles = (-rng.uniform(0.3, 0.8), rng.uniform(0.4, 1.0))
        self.fissure = rng.random() < 0.7
        self.fissure_x = -rng.uniform(0.0, 0.15) * wc
        self.lo = (-wc * (0.35 + 0.45 * ll) - 20, -bc - 10, self.bottom - 10)
        self.hi = (p.half_width * 1.3, p.front * 1.3, 15.0)
        self.noise_seed = int(rng.integers(2**31))
        # fat in the fissures, at the hilum and between the liver and the wall (2.0.0)
        self.fissure_half = rng.uniform(1.0, 4.0)
        self.venosum = rng.random() < 0.75
        self.venosum_half = rng.uniform(0.8, 2.5)
        self.venosum_tilt = rng.uniform(0.1, 0.6)
        self.hilum = rng.random() < 0.85
        self.hilum_r = rng.uniform(7.0, 14.0)
        self.hilum_len = rng.uniform(20.0, 45.0)
        self.wall_fat = 0.0 if rng.random() < 0.25 else rng.uniform(0.5, 6.0)
        self.wall_seed = int(rng.integers(2**31))
        # periportal fat sheath (2.1.0), drawn apart so that the anatomy around it stays 2.0.0's
        # (lesion sites, drawn among liver voxels, move)
        srng = np.random.default_rng((self.noise_seed, 21))
        self.sheath = 0.0 if srng.random() < 0.2 else srng.uniform(0.5, 2.5)
        self.sheath_min_r = srng.uniform(1.6, 2.6)  # portal branches thinner than this: none
        # the hilar fat junction (2.4.0), from its own stream for the same reason
        self.junction = _hilar_junction(np.random.default_rng((self.noise_seed, 24)),
                                        np.asarray(organs.porta, dtype=np.float64),
                                        self._lobes_at)

    def _lobes(self, box: Box | _Point) -> np.ndarray:
        """The union of the three lobes: right (:meth:`core_sdf`), left and caudate (no
        surface noise, no cuts by the wall and the neighbours)."""
        X, Y, Z = box.X, box.Y, box.Z
        d = self.core_sdf(box)
        c, s, r = self.left
        d = fields.smooth_union(d, fields.ellipsoid(X, Y, Z, c, s, r), 25.0)
        c, s = self.caudate
        return fields.smooth_union(d, fields.ellipsoid(X, Y, Z, c, s), 10.0)

    def _lobes_at(self, point: np.ndarray) -> float:
        """Signed distance (mm) of ``point`` to :meth:`_lobes`."""
        X, Y, Z = (np.full((1, 1, 1), v, dtype=F32) for v in point)
        return float(self._lobes(_Point(X, Y, Z)).ravel()[0])

    def box(self) -> Box | None:
        return self.cv.box(self.lo, self.hi)

    def core_sdf(self, box: Box) -> np.ndarray:
        """The right lobe alone (no noise, not clipped): what pushes the stomach aside."""
        c, s, r = self.right
        return fields.superellipsoid(box.X, box.Y, box.Z, c, s, self.boxiness, r)

    def sdf(self, box: Box) -> np.ndarray:
        """Signed distance to the liver parenchyma (vessels and tumors included)."""
        hull, cut = self._shape(box)
        return fields.subtract(hull, cut)

    def _shape(self, box: Box) -> tuple[np.ndarray, np.ndarray]:
        """(outline of the liver, fat clefts that it excludes): parenchyma is ``hull - cut``."""
        cv, p, body = self.cv, self.p, self.body
        X, Y, Z = box.X, box.Y, box.Z
        rng = np.random.default_rng(self.noise_seed)  # same surface on every call
        d = self._lobes(box)
        cav = body.cavity_sdf(box)
        # crescent tip along the right lateral wall
        theta = np.arctan2(Y, X)
        rad = np.sqrt(X * X + Y * Y)
        span = max(self.tip_top - self.bottom, 1.0)
        thick = F32(p.tip_thickness) * np.clip((Z - self.bottom) / span, 0, 1) ** 0.6
        a0, a1 = self.tip_angles
        tip = fields.intersect(-cav - thick, (theta - a1) * rad, (a0 - theta) * rad,
                               Z - self.tip_top - 20, F32(self.bottom) - Z)
        d = fields.smooth_union(d, tip, 12.0)
        spacing = (cv.h, cv.h, cv.hz)
        d = d + F32(p.liver_bumpiness) * fields.lattice_noise(rng, box.shape, spacing, 55.0)
        if p.cirrhosis:
            d = d + F32(2.0) * fields.lattice_noise(rng, box.shape, spacing, 12.0)
        if self.wall_fat > 0:  # extraperitoneal fat, anterior and lateral only
            wr = np.random.default_rng(self.wall_seed)
            vary = fields.lattice_noise(wr, (box.shape[0], box.shape[1], 1), spacing, 35.0)
            front = np.clip((Y - F32(p.spine_y)) / F32(40.0), 0, 1)
            fat = F32(self.wall_fat) * front * np.clip(F32(1.0) + F32(0.7) * vary, 0, 2)
            cav = cav + fat
        d = fields.intersect(d, cav, body.below_diaphragm(box, 0.5))
        d = fields.subtract(d, self.organs.kidney_sdf(box, 1.0), 3.0)
        kc, (ka, kb, kc_), krot = self.organs.kidneys[1.0]
        shadow = fields.ellipsoid(X, Y, Z, (kc[0] - 0.6 * ka, kc[1] - 35, kc[2] + 5),
                                  (ka * 1.6, kb * 1.8, kc_ * 1.05), krot)
        d = fields.subtract(d, shadow, 2.0)
        sbox = self.organs.stomach_box()
        if sbox is not None:
            d = fields.subtract(d, self.organs.stomach_sdf(box), 2.0)
        # nothing behind and medial to the IVC (a round-cornered column; crus, aorta)
        sf, rad_c = p.spine_front, 60.0
        cx, cy = self.organs.ivc_x + 4 - rad_c, sf + 12 - rad_c
        behind_ivc = np.sqrt((X - F32(cx)) ** 2 + (Y - F32(cy)) ** 2) - F32(rad_c)
        d = fields.subtract(d, behind_ivc + Z * 0)
        guard = fields.ellipsoid(X, Y, Z * 0, (0.0, p.spine_y - 30, 0.0),
                                 (p.vb_half[0] + 14, p.vb_half[1] + 45, 1e4))
        d = fields.subtract(d, guard)
        return d.astype(F32, copy=False), self._clefts(box)

    def _clefts(self, box: Box) -> np.ndarray:
        """Fat-filled clefts: ligamentum teres and venosum fissures, porta hepatis."""
        p, o = self.p, self.organs
        X, Y, Z = box.X, box.Y, box.Z
        cut = np.full(box.shape, 1e3, dtype=F32)
        if self.fissure:
            plane = np.abs(X - F32(self.fissure_x) - F32(0.25) * Y) - F32(self.fissure_half)
            cleft = fields.intersect(plane, F32(0.15 * o.fc) - Y,
                                     Z - F32(-0.25 * p.liver_height))
            cut = np.minimum(cut, cleft)
        if self.venosum:  # a thin oblique sheet in front of the caudate lobe
            c, s = self.caudate
            c0 = np.array((c[0] - 10, c[1] + 0.9 * s[1], c[2]))
            n = _unit((-self.venosum_tilt, 1.0, 0.0))
            t = _unit((1.0, self.venosum_tilt, 0.0))
            dx, dy, dz = X - F32(c0[0]), Y - F32(c0[1]), Z - F32(c0[2])
            sheet = fields.intersect(
                np.abs(F32(n[0]) * dx + F32(n[1]) * dy) - F32(self.venosum_half),
                np.abs(F32(t[0]) * dx + F32(t[1]) * dy) - F32(1.3 * s[0]),
                np.abs(dz) - F32(0.8 * s[2]))
            cut = np.minimum(cut, sheet)
        if self.hilum:  # fat around the portal vein at the porta and its left branch
            porta = np.asarray(o.porta, dtype=np.float64)
            conf = np.asarray(o.confluence, dtype=np.float64)
            r = self.hilum_r
            self.cv.tube(box, [porta, porta + _unit(conf - porta) * self.hilum_len],
                         [r, 1.2 * r], out=cut)
            self.cv.tube(box, [porta, porta + _unit((-1.0, 0.5, 0.1)) * 0.7 * self.hilum_len],
                         [0.7 * r, 0.4 * r], out=cut)
        for points, radii in self.junction:
            self.cv.tube(box, points, radii, out=cut)
        return cut

    def paint(self) -> dict:
        """Paint (perihepatic ascites,) parenchyma and vessels; returns meta."""
        cv, p, rng = self.cv, self.p, self.rng
        box = self.box()
        if box is None:
            return {}
        hull, cut = self._shape(box)
        d = fields.subtract(hull, cut)
        if p.ascites:
            shell = fields.intersect(hull - F32(rng.uniform(5, 20)),
                                     self.organs.abdomen_clip(box))
            cv.paint(box, shell, "ascites")
        cv.paint(box, fields.intersect(cut, hull), "visceral_fat")
        del cut
        cv.paint(box, d, "liver", label="liver")
        self._vessels(box, d, hull)
        return {"right_lobe_semi_mm": [round(float(v), 1) for v in self.right[1]],
                "left_lobe": round(float(p.left_lobe), 2), "fissure": bool(self.fissure),
                "fissure_fat_mm": round(2 * self.fissure_half, 1) if self.fissure else 0.0,
                "venosum_fat_mm": round(2 * self.venosum_half, 1) if self.venosum else 0.0,
                "hilum_fat_mm": round(self.hilum_r, 1) if self.hilum else 0.0,
                "wall_fat_mm": round(self.wall_fat, 1),
                "periportal_fat_mm": round(self.sheath, 1),
                "hilar_junction_clefts": max(len(self.junction) - 1, 0)}

    def _vessels(self, box: Box, liver: np.ndarray, hull: np.ndarray) -> None:
        cv, rng, o = self.cv, self.rng, self.organs
        porta = np.asarray(o.porta)
        portal: list = []
        _tree(rng, porta, (1.0, -0.3, 0.35), rng.uniform(5, 6.5), rng.uniform(28, 45), 5, portal)
        _tree(rng, porta, (-1.0, 0.6, 0.2), rng.uniform(4, 5.5), rng.uniform(32, 50), 5, portal)
        hv0 = np.array((o.ivc_x + 4, self.p.spine_front + 22, -0.12 * self.p.liver_height - 10))
        hepatic: list = []
        for direction, r in (((1.0, 0.1, -0.35), 5.0), ((0.25, 1.0, -0.35), 4.5),
                             ((-0.8, 0.8, -0.2), 4.0)):
            _tree(rng, hv0, direction, r * rng.uniform(0.8, 1.15), rng.uniform(40, 65), 4,
                  hepatic)
        if self.sheath > 0:
            self._sheath(box, portal, hull)
        for segs, tissue, inside in ((portal, "portal_vein", hull + F32(2.0)),
                                     (hepatic, "hepatic_vein", liver + F32(2.0))):
            v = np.full(box.shape, 1e3, dtype=F32)
            for a, b, ra, rb in segs:
                cv.tube(box, [a, b], [ra, rb], out=v)
            cv.paint(box, fields.intersect(v, inside), tissue, label="keep")

    def _sheath(self, box: Box, portal: list, hull: np.ndarray) -> None:
        """Fat around the portal branches at least ``sheath_min_r`` thick, background.

        The sleeve thins with the branch (full thickness at 4 mm radius and above); the vein
        painted afterwards keeps the background label inside it.
        """
        sheath = np.full(box.shape, 1e3, dtype=F32)
        for a, b, ra, rb in portal:
            if ra < self.sheath_min_r:
                continue
            grow = [self.sheath * min(1.0, r / 4.0) for r in (ra, rb)]
            self.cv.tube(box, [a, b], [ra + grow[0], rb + grow[1]], out=sheath)
        self.cv.paint(box, fields.intersect(sheath, hull), "visceral_fat")
