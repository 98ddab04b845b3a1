"""Abdominal organs other than the liver and the bowel: stomach, duodenum, pancreas,
spleen, kidneys, gallbladder, adrenals and the great vessels (aorta, IVC, portal, splenic,
mesenteric and renal veins).

Each organ is placed relative to the cavity, the spine and the diaphragm of the patient
(:class:`~keras_liverseg.phantom.body.Body`) with random size, tilt and surface
irregularity. :class:`Organs` keeps the signed-distance functions the liver needs to carve
its neighbours' impressions (kidney, stomach).

The gallbladder lies in its fossa on the liver's inferior surface, usually wrapped in a
thin layer of fat (generator 2.0.0) that separates it from the parenchyma; after a
cholecystectomy the empty fossa is often filled with fat (or nothing). Both are
background in the label, as real readers leave them out of the liver.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from keras_liverseg.phantom import fields
from keras_liverseg.phantom.body import Body
from keras_liverseg.phantom.canvas import Box, Canvas

__all__ = ["Organs"]

F32 = np.float32
Sdf = Callable[[Box], np.ndarray]


class Organs:
    """Positions of the organs of one patient and their painting."""

    def __init__(self, canvas: Canvas, body: Body, rng: np.random.Generator) -> None:
        self.cv, self.body, self.p, self.rng = canvas, body, body.p, rng
        p = self.p
        self.wc = p.cavity_half_width
        self.fc = p.cavity_front
        self.sf = p.spine_front
        self.pz = p.pancreas_z
        H = p.liver_height
        self.H = H
        # kidneys: (center, semi, rotation) per side (+1 right, -1 left)
        self.kidneys = {}
        for side, top in ((1.0, p.kidney_top[0]), (-1.0, p.kidney_top[1])):
            a, b, c = (s * rng.uniform(0.92, 1.08) for s in p.kidney_size)
            center = (side * p.kidney_x, p.spine_y + rng.uniform(-8, 10), top - c)
            rot = fields.rotation(yaw=side * rng.uniform(0.3, 0.6),
                                  pitch=side * rng.uniform(0.1, 0.3),
                                  roll=rng.uniform(0.1, 0.3))
            self.kidneys[side] = (center, (a, b, c), rot)
        # stomach centreline (fundus -> pylorus)
        fill = p.stomach_fill
        dl = p.dome_left
        self.stomach_pts = np.array([
            (-0.5 * self.wc, self.sf + rng.uniform(0, 25), dl - 30 * fill),
            (-0.5 * self.wc, 0.15 * self.fc, dl - 55 - 20 * fill),
            (-0.3 * self.wc, 0.45 * self.fc, self.pz - rng.uniform(-10, 20)),
            (0.0, 0.6 * self.fc, self.pz - rng.uniform(5, 30)),
            (0.22 * self.wc, 0.45 * self.fc, self.pz - rng.uniform(-5, 15)),
        ])
        self.stomach_r = np.array([36, 32, 26, 18, 10]) * np.array([fill, fill, fill, 1, 1])
        self.stomach_r = np.maximum(self.stomach_r * rng.uniform(0.85, 1.15, 5), 8)
        # spleen
        a, b, c = p.spleen
        self.spleen = (
            (-(self.wc - 0.9 * a), p.spine_y + rng.uniform(-10, 25), dl - 0.85 * c - 8),
            (a, b, c),
            fields.rotation(yaw=rng.uniform(0.5, 1.0), roll=rng.uniform(-0.2, 0.2)),
        )
        # great vessels
        self.ao_r = p.aorta_r
        self.ivc_x, self.ivc_r = p.ivc
        self.confluence = (8.0, self.sf + 35, self.pz - 12)
        self.porta = (0.22 * self.wc, self.sf + 40 + rng.uniform(0, 15), -0.5 * H)

    # -- signed distances other organs reuse ------------------------------------------------
    def kidney_sdf(self, box: Box, side: float) -> np.ndarray:
        center, semi, rot = self.kidneys[side]
        k = fields.ellipsoid(box.X, box.Y, box.Z, center, semi, rot)
        a = semi[0]
        notch = np.sqrt((box.X - (center[0] - side * 0.95 * a)) ** 2
                        + (box.Y - (center[1] + 0.35 * semi[1])) ** 2
                        + ((box.Z - center[2]) * 0.45) ** 2) - F32(0.5 * a)
        return fields.subtract(k, notch)

    def stomach_sdf(self, box: Box) -> np.ndarray:
        pts = fields.spline(self.stomach_pts, 6)
        rad = np.interp(np.linspace(0, 1, len(pts)), np.linspace(0, 1, len(self.stomach_r)),
                        self.stomach_r)
        return self.cv.tube(box, pts, rad)

    def stomach_box(self) -> Box | None:
        lo = self.stomach_pts.min(0) - self.stomach_r.max() - 5
        hi = self.stomach_pts.max(0) + self.stomach_r.max() + 5
        return self.cv.box(lo, hi)

    def abdomen_clip(self, box: Box, margin: float = 0.0) -> np.ndarray:
        """Inside the cavity and below the diaphragm."""
        return fields.intersect(self.body.cavity_sdf(box) + F32(margin),
                                self.body.below_diaphragm(box, margin))

    # -- painting ---------------------------------------------------------------------------
    def paint_stomach_duodenum(self, liver_core: Sdf | None = None) -> None:
        """Stomach (pushed aside by the liver's right lobe ``liver_core``) and duodenum."""
        cv, p, rng = self.cv, self.p, self.rng
        box = self.stomach_box()
        if box is not None:
            outer = fields.intersect(self.stomach_sdf(box), self.abdomen_clip(box, 3))
            if liver_core is not None:
                outer = fields.subtract(outer, liver_core(box), rng.uniform(1, 4))
            self._hollow(box, outer, p.stomach_content, rng.uniform(3, 6))
        # duodenum: bulb, descending, horizontal, ascending parts
        hx = 0.15 * self.wc + 12
        r = rng.uniform(9, 14)
        pts = fields.spline([
            self.stomach_pts[-1],
            (0.3 * self.wc, 0.3 * self.fc, self.pz - 5),
            (hx + 22 + r, self.sf + 28, self.pz - 20),
            (hx + 24 + r, self.sf + 22, self.pz - 55),
            (10, self.sf + 2 * self.ao_r + 8, self.pz - 70),
            (-30, self.sf + 20, self.pz - 62),
            (-45, self.sf + 35, self.pz - 35),
        ], 6)
        lo, hi = pts.min(0) - r - 5, pts.max(0) + r + 5
        box = cv.box(lo, hi)
        if box is not None:
            outer = fields.intersect(cv.tube(box, pts, r), self.abdomen_clip(box, 2))
            content = str(rng.choice(["fluid", "collapsed", "gas_fluid"], p=[0.4, 0.4, 0.2]))
            self._hollow(box, outer, content, rng.uniform(2, 3.5))

    def _hollow(self, box: Box, outer: np.ndarray, content: str, wall: float) -> None:
        """A hollow viscus: wall, then contents (fluid / gas over fluid / food / collapsed)."""
        cv, rng = self.cv, self.rng
        fluid = "oral_contrast" if self.p.oral_contrast else "bowel_fluid"
        if content == "collapsed":
            cv.paint(box, outer, "bowel_collapsed")
            lumen = outer + wall * 2.5
            cv.paint(box, lumen, "bowel_fluid", texture=1.5)
            return
        cv.paint(box, outer, "bowel_wall")
        lumen = outer + F32(wall)
        if content == "food":
            cv.paint(box, lumen, "bowel_fluid", texture=3.0)
            bubbles = fields.lattice_noise(rng, box.shape, (cv.h, cv.h, cv.hz), 8.0)
            cv.paint(box, fields.intersect(lumen, F32(1.6) - bubbles), "gas")
            return
        cv.paint(box, lumen, fluid)
        if content == "gas_fluid":
            cv.paint_gas_level(box, lumen, rng, 0.4, 0.9)

    def paint_pancreas(self) -> None:
        cv, rng = self.cv, self.rng
        hx = 0.15 * self.wc + 12
        atrophy = rng.uniform(0.6, 1.2)
        pts = fields.spline([
            (hx, self.sf + 30, self.pz - 28),
            (hx - 5, self.sf + 38, self.pz - 12),
            (5, self.sf + 45, self.pz - 4),
            (-0.3 * self.wc, self.sf + 38, self.pz + 5),
            (-0.58 * self.wc, self.sf + 8, self.pz + 20),
        ], 6)
        rad = np.interp(np.linspace(0, 1, len(pts)), [0, 0.2, 0.5, 1], [16, 12, 10, 9]) * atrophy
        box = cv.box(pts.min(0) - 22, pts.max(0) + 22)
        if box is None:
            return
        d = cv.tube(box, pts, rad)
        d = d + F32(2.0) * fields.lattice_noise(rng, box.shape, (cv.h, cv.h, cv.hz), 9.0)
        cv.paint(box, fields.intersect(d, self.abdomen_clip(box)), "pancreas",
                 texture=rng.uniform(0.8, 1.8))
        # splenic vein along its back, to the splenic hilum
        sc = self.spleen[0]
        sv = fields.spline([self.confluence, (-0.3 * self.wc, self.sf + 26, self.pz + 5),
                            (-0.58 * self.wc, self.sf - 2, self.pz + 20),
                            (sc[0] + 25, sc[1] + 10, sc[2] - 5)], 5)
        box = cv.box(sv.min(0) - 10, sv.max(0) + 10)
        if box is not None:
            cv.paint(box, cv.tube(box, sv, rng.uniform(3.5, 5.5)), "portal_vein")

    def paint_spleen(self) -> None:
        cv, rng = self.cv, self.rng
        center, (a, b, c), rot = self.spleen
        m = max(a, b, c) + 10
        box = cv.box(np.subtract(center, m), np.add(center, m))
        if box is None:
            return
        s = fields.ellipsoid(box.X, box.Y, box.Z, center, (a, b, c), rot)
        hollow = fields.ellipsoid(box.X, box.Y, box.Z,
                                  (center[0] + 1.5 * a, center[1] + 0.6 * a, center[2]),
                                  (1.1 * a, 0.9 * b, 0.95 * c), rot)
        s = fields.subtract(s, hollow)
        s = s + F32(2.0) * fields.lattice_noise(rng, box.shape, (cv.h, cv.h, cv.hz), 20.0)
        cv.paint(box, fields.intersect(s, self.abdomen_clip(box)), "spleen")

    def paint_kidneys(self) -> None:
        cv, rng = self.cv, self.rng
        for side, (center, semi, _) in self.kidneys.items():
            m = max(semi) + 8
            box = cv.box(np.subtract(center, m), np.add(center, m))
            if box is None:
                continue
            k = self.kidney_sdf(box, side)
            cv.paint(box, k, "kidney_cortex")
            cortex = rng.uniform(4, 8)
            pyramids = fields.lattice_noise(rng, box.shape, (cv.h, cv.h, cv.hz), 9.0)
            cv.paint(box, fields.intersect(k + F32(cortex), pyramids * F32(-3.0)),
                     "kidney_medulla")
            a, b, c = semi
            sinus_c = (center[0] - side * 0.45 * a, center[1] + 0.2 * b, center[2])
            sinus = fields.ellipsoid(box.X, box.Y, box.Z, sinus_c, (0.45 * a, 0.4 * b, 0.55 * c))
            cv.paint(box, sinus, "visceral_fat")
            pelvis = fields.ellipsoid(box.X, box.Y, box.Z, sinus_c,
                                      (0.3 * a, 0.22 * b, 0.3 * c * rng.uniform(0.5, 1)))
            cv.paint(box, pelvis, "urine")
            # adrenal: a thin limb above and medial to the upper pole
            top = (center[0] - side * 0.3 * a, center[1] + 0.3 * b, center[2] + c + 8)
            limb = np.add(top, (-side * 10, 12, 18))
            abox = cv.box(np.minimum(top, limb) - 6, np.maximum(top, limb) + 6)
            if abox is not None:
                cv.paint(abox, cv.tube(abox, [top, limb], [2.5, 1.5]), "adrenal")

    def paint_gallbladder(self, liver_sdf: Sdf) -> dict:
        """Gallbladder in the fossa under the liver (absent after cholecystectomy)."""
        cv, p, rng = self.cv, self.p, self.rng
        a, b, c = rng.uniform(12, 22), rng.uniform(11, 19), rng.uniform(25, 45)
        center = (0.3 * self.wc * rng.uniform(0.6, 1.3), 0.35 * self.fc * rng.uniform(0.6, 1.2),
                  -0.62 * self.H + rng.uniform(-10, 15))
        rot = fields.rotation(roll=-rng.uniform(0.4, 0.9), pitch=rng.uniform(-0.3, 0.3))
        fat = rng.uniform(1.0, 5.0) if rng.random() < 0.7 else 0.0
        if not p.gallbladder:  # empty fossa: a flat fat-filled notch, or nothing
            a, b, c = 0.5 * a, 0.35 * b, 0.8 * c
            fat = fat and 1.0
        m = max(a, b, c) + 6 + fat
        box = cv.box(np.subtract(center, m), np.add(center, m))
        meta = {"present": bool(p.gallbladder), "fossa_fat_mm": round(float(fat), 1),
                "center_mm": [round(float(v), 1) for v in center]}
        if box is None:
            return meta
        g = fields.intersect(fields.ellipsoid(box.X, box.Y, box.Z, center, (a, b, c), rot),
                             self.abdomen_clip(box, 3))
        if fat > 0:
            cv.paint(box, g - F32(fat), "visceral_fat")
        if not p.gallbladder:
            return meta
        cv.paint(box, g, "bowel_wall")
        cv.paint(box, g + F32(rng.uniform(1.5, 3.0)), "bile")
        if p.gallstones:
            for _ in range(int(rng.integers(1, 5))):
                sc = (center[0] + rng.uniform(-0.4, 0.4) * a,
                      center[1] - 0.5 * b, center[2] + rng.uniform(-0.5, 0.3) * c)
                stone = np.sqrt((box.X - sc[0]) ** 2 + (box.Y - sc[1]) ** 2
                                + (box.Z - sc[2]) ** 2) - F32(rng.uniform(2.5, 7))
                cv.paint(box, fields.intersect(stone, g + 2), "gallstone")
        return meta

    def paint_vessels(self) -> None:
        """Aorta (with calcified plaques), its branches, IVC, renal veins, portal system."""
        cv, p, rng = self.cv, self.p, self.rng
        z_lo, z_hi = float(cv.z.min()) - 10, float(cv.z.max()) + 10
        t = self.body.tendon
        bif = self.pz - rng.uniform(110, 160)
        zz = np.linspace(max(z_lo, bif), z_hi, 12)
        wob = fields.lattice_noise(rng, (len(zz),), (abs(zz[1] - zz[0]) + 1e-3,), 60.0)
        thor = np.clip((zz - (t - 20)) / 60, 0, 1)
        ax = (1 - thor) * (p.aorta_x + 4 * wob) + thor * -(p.vb_half[0] + self.ao_r - 4)
        ay = (1 - thor) * (self.sf + self.ao_r + 1) + thor * (p.spine_y + 6)
        aorta = np.stack([ax, ay, zz], 1)
        rad = self.ao_r * np.where(zz < self.pz - 30, 0.85, 1.0)
        box = cv.box((-90, p.spine_y - 20, z_lo), (90, self.sf + 80, z_hi))
        if box is None:
            return
        d = cv.tube(box, aorta, rad)
        if bif > z_lo:
            for side in (1.0, -1.0):
                il = [(p.aorta_x, self.sf + self.ao_r, bif + 5),
                      (side * 40, self.sf + 5, bif - 80), (side * 60, self.sf - 5, bif - 160)]
                cv.tube(box, il, self.ao_r * 0.6, out=d)
        cv.paint(box, d, "artery")
        if rng.random() < 0.45:  # calcified plaques on the aortic wall
            for _ in range(int(rng.integers(2, 10))):
                i = rng.integers(0, len(aorta))
                ang = rng.uniform(0, 2 * np.pi)
                c = aorta[i] + (self.ao_r * np.cos(ang), self.ao_r * np.sin(ang), 0)
                cv.paint(box, cv.tube(box, [c, c], rng.uniform(1.5, 3.0)), "bone_cortex")
        # SMA
        o = (p.aorta_x, self.sf + 2 * self.ao_r, self.pz + 5)
        sma = fields.spline([o, (o[0] + 3, self.sf + 2 * self.ao_r + 12, self.pz - 15),
                             (-5, self.sf + 60, self.pz - 120)], 5)
        cv.paint(box, cv.tube(box, sma, rng.uniform(3, 4.5)), "artery")
        # IVC: from the iliac confluence into the liver's back and on to the right atrium
        iz = np.array([z_lo, bif - 10, self.pz, -0.25 * self.H, t + 20])
        ivc = np.stack([
            np.array([20, 22, self.ivc_x, self.ivc_x + 5, 12]),
            np.array([self.sf - 2, self.sf + 2, self.sf + 12, self.sf + 22, self.sf + 40]),
            iz,
        ], 1)
        ivc = fields.spline(ivc[np.argsort(iz)], 5)
        vd = cv.tube(box, ivc, self.ivc_r)
        if bif > z_lo:
            for side in (1.0, -1.0):
                cv.tube(box, [(20, self.sf, bif - 5), (side * 45, self.sf - 5, bif - 90)],
                        self.ivc_r * 0.65, out=vd)
        # renal veins (the left crosses in front of the aorta)
        for side, (center, semi, _) in self.kidneys.items():
            hilum = (center[0] - side * 0.8 * semi[0], center[1] + 0.3 * semi[1], center[2] + 5)
            if side > 0:
                pts = [hilum, (self.ivc_x, self.sf + 12, center[2] + 8)]
            else:
                pts = [hilum, (p.aorta_x - 12, self.sf + 2 * self.ao_r + 5, center[2] + 10),
                       (self.ivc_x, self.sf + 12, center[2] + 12)]
            cv.tube(box, pts, rng.uniform(3.5, 5.5), out=vd)
        cv.paint(box, vd, "ivc")
        # portal vein from the confluence to the porta hepatis, and the SMV
        pv = fields.spline([self.confluence,
                            (0.5 * (self.confluence[0] + self.porta[0]), self.sf + 40,
                             0.5 * (self.confluence[2] + self.porta[2])),
                            self.porta], 5)
        smv = [self.confluence, (15, self.sf + 55, self.pz - 35),
               (10, self.sf + 68, self.pz - 120)]
        pts = np.vstack([pv, smv])
        pbox = cv.box(pts.min(0) - 12, pts.max(0) + 12)
        if pbox is not None:
            d = cv.tube(pbox, pv, rng.uniform(6, 8.5))
            cv.tube(pbox, smv, rng.uniform(4, 6), out=d)
            cv.paint(pbox, d, "portal_vein")
