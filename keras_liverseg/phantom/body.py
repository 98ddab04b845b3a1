"""Body outline, skin, subcutaneous fat, muscle wall, diaphragm, lung bases and heart.

The outline is a superellipse (flatter at the back, where the patient lies on the table)
with random harmonics, scaled along z (taper, anterior belly). Layers are bands of depth
below the skin, so fat and muscle follow the outline. Everything below the diaphragm
surface ``z_dia(x, y)`` (two domes, lower at the periphery and lowest in the posterior
recesses) is abdomen; above it lie the lungs, the mediastinum and the heart.
"""

from __future__ import annotations

import numpy as np

from keras_liverseg.phantom import fields
from keras_liverseg.phantom.canvas import Box, Canvas
from keras_liverseg.phantom.patient import Patient

__all__ = ["Body"]

F32 = np.float32


def _harmonics(rng: np.random.Generator, theta: np.ndarray, amp: float, kmax: int = 6):
    out = np.zeros_like(theta)
    for k in range(2, kmax + 1):
        out += F32(rng.normal(0, amp / k)) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    return out.astype(F32)


class Body:
    """Precomputed 2-D maps of the body (per canvas pixel) and z profiles (per slice)."""

    def __init__(self, canvas: Canvas, patient: Patient, rng: np.random.Generator) -> None:
        self.canvas, self.p = canvas, patient
        self._cache: dict[str, np.ndarray] = {}
        p = patient
        X, Y = canvas.x[:, None], canvas.y[None, :]
        self.r = np.sqrt(X * X + Y * Y).astype(F32)
        theta = np.arctan2(Y, X).astype(F32)
        self.theta = theta
        s, c = np.sin(theta), np.cos(theta)
        front = s > 0
        D = np.where(front, F32(p.front), F32(p.back))
        pw = np.where(front, F32(p.p_front), F32(p.p_back))
        R = (np.abs(c) / F32(p.half_width)) ** pw + (np.abs(s) / D) ** pw
        R = R ** (-1.0 / pw) * (F32(1.0) + _harmonics(rng, theta, 0.03))
        self.R = R.astype(F32)
        self.front2 = (np.maximum(s, 0) ** 2).astype(F32)
        w_front = np.clip(0.5 + 0.5 * s + 0.3 * c * c, 0, 1) + _harmonics(rng, theta, 0.3, 4)
        self.fat = (p.fat_back + (p.fat - p.fat_back) * np.clip(w_front, 0.05, 1.2)).astype(F32)
        side = c * c
        self.wall = (p.wall_side * side + np.where(front, p.wall_front, p.wall_back) * (1 - side))
        self.wall = (self.wall * (1 + _harmonics(rng, theta, 0.4, 5))).astype(F32)
        z = canvas.z / F32(200.0)
        self.scale = (1 + p.taper[0] * z + p.taper[1] * z * z).astype(F32)
        self.scale *= 1 + F32(0.02) * fields.lattice_noise(rng, (len(z),), (canvas.hz,), 80.0)
        self.belly = (p.belly * np.clip((-canvas.z - 60) / 150, 0, 1)).astype(F32)
        self.fat_z = (1 + 0.25 * np.clip((-canvas.z - 60) / 200, 0, 1)).astype(F32)
        self._diaphragm(rng)

    # -- maps over a box ------------------------------------------------------------------
    def _2d(self, box: Box, a: np.ndarray) -> np.ndarray:
        return a[box.sl[0], box.sl[1]][..., None] if isinstance(box.sl[0], slice) else a[
            box.sl[0], box.sl[1]
        ][:, None]

    def _z(self, box: Box, a: np.ndarray) -> np.ndarray:
        return a[box.sl[2]].reshape((1,) * (len(box.shape) - 1) + (-1,))

    def _cached(self, name: str, box: Box, compute) -> np.ndarray:
        """``compute(box)``, served from a whole-canvas array for block boxes."""
        if not all(isinstance(s, slice) for s in box.sl):
            return compute(box)
        full = self._cache.get(name)
        if full is None:
            full = self._cache[name] = compute(self.canvas.full())
        return full[box.sl]

    def depth(self, box: Box) -> np.ndarray:
        """Depth below the skin (mm, > 0 inside the body)."""
        return self._cached("depth", box, self._depth)

    def _depth(self, box: Box) -> np.ndarray:
        R = self._2d(box, self.R) * self._z(box, self.scale)
        R = R * (1 + self._2d(box, self.front2) * self._z(box, self.belly))
        return R - self._2d(box, self.r)

    def fat_depth(self, box: Box) -> np.ndarray:
        """Depth of the fat/muscle boundary below the skin."""
        return self.p.skin + self._2d(box, self.fat) * self._z(box, self.fat_z)

    def cavity_sdf(self, box: Box) -> np.ndarray:
        """Signed distance to the inner surface of the muscle wall (< 0 inside)."""
        return self._cached("cavity", box, self._cavity)

    def _cavity(self, box: Box) -> np.ndarray:
        return self.fat_depth(box) + self._2d(box, self.wall) - self.depth(box)

    def dia_z(self, box: Box) -> np.ndarray:
        """Height of the diaphragm over each pixel of ``box``."""
        return self._2d(box, self.z_dia)

    def below_diaphragm(self, box: Box, margin: float = 0.0) -> np.ndarray:
        """Signed distance to the region under the diaphragm's lower surface."""
        return (box.Z - self._2d(box, self.z_dia) + F32(margin)) * self._2d(box, self.slope)

    # -- construction ---------------------------------------------------------------------
    def _diaphragm(self, rng: np.random.Generator) -> None:
        p, cv = self.p, self.canvas
        X, Y = cv.x[:, None], cv.y[None, :]
        wc = p.cavity_half_width
        ax, ay = 0.75 * wc, 0.9 * (p.cavity_front + p.back) / 2
        out = []
        for sign, apex in ((1.0, 0.0), (-1.0, p.dome_left)):
            xc, yc = sign * 0.45 * wc, rng.uniform(-0.05, 0.15) * p.front
            q = ((X - xc) / ax) ** 2 + ((Y - yc) / ay) ** 2
            post = np.clip(-(Y - yc) / p.back, 0, None) ** 2
            out.append(apex - p.dome_drop * q - p.recess_drop * post)
        tendon = min(p.dome_left, 0.0) - rng.uniform(10, 25)
        z = np.maximum(np.maximum(out[0], out[1]), np.minimum(tendon, out[0]))
        z = z + 3.0 * fields.lattice_noise(rng, z.shape, (cv.h, cv.h), 40.0)
        self.z_dia = z.astype(F32)
        self.tendon = tendon
        gx, gy = np.gradient(self.z_dia, cv.h)
        self.slope = (1.0 / np.sqrt(1 + gx * gx + gy * gy)).astype(F32)

    def paint(self, rng: np.random.Generator) -> None:
        """Skin, fat, muscle wall, visceral fat (abdomen) and lungs (thorax), diaphragm."""
        cv, p = self.canvas, self.p
        box = cv.full()
        depth = self.depth(box)
        cv.paint(box, -depth, "skin")
        fat_depth = self.fat_depth(box)
        cv.paint(box, F32(p.skin) - depth, "subcutaneous_fat")
        cv.paint(box, fat_depth - depth, "muscle")
        cav = self.cavity_sdf(box)
        del fat_depth
        cv.paint(box, cav, "visceral_fat")
        dia = fields.intersect(cav, -self.below_diaphragm(box))
        cv.paint(box, dia, "diaphragm")
        thick = rng.uniform(3, 6)
        lung = fields.intersect(cav + F32(1.0), -self.below_diaphragm(box, -thick))
        cv.paint(box, lung, "lung")
        self._mediastinum(rng, thick)

    def _mediastinum(self, rng: np.random.Generator, thick: float) -> None:
        cv, p = self.canvas, self.p
        top = float(cv.z.max())
        if top < float(self.z_dia.min()):
            return
        box = cv.box((-p.half_width, -p.back, float(self.z_dia.min()) - 5),
                     (p.half_width, p.front, top + 5))
        if box is None:
            return
        lung = fields.intersect(self.cavity_sdf(box) + 1, -self.below_diaphragm(box, -thick))
        # pulmonary vessels: thin tangles, sparse at the bases
        spacing = (cv.h, cv.h, cv.hz)
        scale = rng.uniform(14, 22)
        n1 = fields.lattice_noise(rng, box.shape, spacing, scale)
        n2 = fields.lattice_noise(rng, box.shape, spacing, scale)
        vessels = (np.sqrt(n1 * n1 + n2 * n2) - F32(rng.uniform(0.08, 0.14))) * F32(scale / 1.6)
        del n1, n2
        self.canvas.paint(box, fields.intersect(vessels, lung + 2), "heart_blood", texture=0.5)
        if top < self.tendon - 5:
            return
        # posterior mediastinum (aorta, oesophagus, azygos in fat) in front of the spine
        floor = -self.below_diaphragm(box, -thick)
        post = fields.intersect(np.abs(box.X + 12) - 30, box.Y - (p.spine_front + 40),
                                p.spine_y - box.Y, floor)
        cv.paint(box, post, "visceral_fat")
        oes = np.sqrt((box.X + 8) ** 2 + (box.Y - p.spine_front - 12) ** 2) - F32(8.0)
        cv.paint(box, fields.intersect(oes, floor), "muscle")
        # heart on the central tendon, apex to the left, front, down; pericardial fat
        a, b, c = np.array(p.heart) * 0.9 * (p.half_width / 165) ** 0.5
        center = (-rng.uniform(0.4, 0.8) * a, p.cavity_front - b * rng.uniform(0.9, 1.15),
                  self.tendon + 0.7 * c)
        hbox = cv.box(np.subtract(center, max(a, b, c) + 12), np.add(center, max(a, b, c) + 12))
        if hbox is None:
            return
        rot = fields.rotation(yaw=rng.uniform(0.3, 0.7), pitch=-rng.uniform(0.1, 0.4))
        heart = fields.ellipsoid(hbox.X, hbox.Y, hbox.Z, center, (a, b, c), rot)
        floor = -self.below_diaphragm(hbox, -thick + 2)
        inside = self.cavity_sdf(hbox) + 1
        fat = rng.uniform(2, 10)
        cv.paint(hbox, fields.intersect(heart - F32(fat), floor, inside), "visceral_fat")
        cv.paint(hbox, fields.intersect(heart, floor, inside), "myocardium")
        wall = rng.uniform(7, 12)
        chambers = fields.ellipsoid(hbox.X, hbox.Y, hbox.Z, center,
                                    (a - wall, b - wall, c - wall), rot)
        cv.paint(hbox, fields.intersect(chambers, floor + wall), "heart_blood")
        sept = np.abs((hbox.X - center[0]) + 0.6 * (hbox.Y - center[1])) - F32(5.0)
        cv.paint(hbox, fields.intersect(sept, chambers, floor + wall), "myocardium")
