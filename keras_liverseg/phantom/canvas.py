"""The coarse anatomy grid that organs are painted onto, with partial-volume painting.

Patient frame (used by every anatomy module): millimetres, ``x`` towards the patient's
right, ``y`` anterior, ``z`` superior (RAS), origin on the body midline at the apex of the
right diaphragm dome. The canvas samples that frame on a grid that is coarser than the
final image in-plane (by the integer ``factor``) and, for thin slices, along z.

Painting is ordered and soft: a shape's voxel occupancy ``occ`` (0..1, from its signed
distance) blends its HU over what was painted before, so later shapes carve earlier ones
and boundaries keep sub-voxel positions. Two fractions travel with the HU: ``liver`` (the
voxel belongs to the liver label) and ``tumor``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_liverseg.phantom import fields
from keras_liverseg.phantom.intensities import TissueHU, tissue_id

__all__ = ["Box", "Canvas"]

F32 = np.float32


@dataclass
class Box:
    """Part of the canvas: an index (slices, or index arrays) and broadcastable coordinates.

    For a block, ``sl`` holds three slices; for scattered pixels (ribs), ``sl`` is
    ``(ix, iy, zslice)`` with 1-D index arrays and ``X``, ``Y`` of shape ``(n, 1)``.
    """

    sl: tuple[slice, slice, slice]
    X: np.ndarray
    Y: np.ndarray
    Z: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return np.broadcast_shapes(self.X.shape, self.Y.shape, self.Z.shape)


class Canvas:
    """HU, liver/tumor fractions and a tissue map on the coarse patient grid."""

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        z: np.ndarray,
        table: dict[str, TissueHU],
    ) -> None:
        self.x = np.asarray(x, dtype=F32)
        self.y = np.asarray(y, dtype=F32)
        self.z = np.asarray(z, dtype=F32)
        self.h = float(self.x[1] - self.x[0])
        self.hz = float(abs(self.z[1] - self.z[0])) if len(self.z) > 1 else self.h
        self.shape = (len(self.x), len(self.y), len(self.z))
        self.table = table
        self.hu = np.full(self.shape, -1000.0, dtype=F32)
        self.liver = np.zeros(self.shape, dtype=F32)
        self.tumor = np.zeros(self.shape, dtype=F32)
        self.tissue = np.zeros(self.shape, dtype=np.uint8)
        self.amp = np.zeros(self.shape, dtype=F32)
        self.has_labels = False  # nothing painted as liver/tumor yet: skip label updates

    # -- geometry -------------------------------------------------------------------------
    def box(self, lo, hi) -> Box | None:
        """The block covering the patient-frame box ``lo..hi`` (mm), or None if empty."""
        sl = []
        for axis, (a, b) in zip((self.x, self.y, self.z), zip(lo, hi, strict=False), strict=False):
            step = float(axis[1] - axis[0]) if len(axis) > 1 else 1.0
            i0 = int(np.floor((min(a, b) - axis[0]) / step)) if step > 0 else 0
            i1 = int(np.ceil((max(a, b) - axis[0]) / step)) + 1
            i0, i1 = max(i0, 0), min(i1, len(axis))
            if i1 <= i0:
                return None
            sl.append(slice(i0, i1))
        s = tuple(sl)
        return Box(
            s,
            self.x[s[0]].reshape(-1, 1, 1),
            self.y[s[1]].reshape(1, -1, 1),
            self.z[s[2]].reshape(1, 1, -1),
        )

    def full(self) -> Box:
        """The whole canvas as a box."""
        return Box(
            (slice(None), slice(None), slice(None)),
            self.x.reshape(-1, 1, 1),
            self.y.reshape(1, -1, 1),
            self.z.reshape(1, 1, -1),
        )

    def sub(self, box: Box, lo, hi) -> Box | None:
        """The part of block ``box`` inside the patient-frame box ``lo..hi``, relative to it.

        The returned box's ``sl`` indexes arrays of ``box.shape``.
        """
        inner = self.box(lo, hi)
        if inner is None:
            return None
        sl = []
        for outer, part in zip(box.sl, inner.sl, strict=False):
            o0, o1 = outer.start or 0, outer.stop
            o1 = o1 if o1 is not None else 1 << 30
            a, b = max(part.start, o0), min(part.stop, o1)
            if b <= a:
                return None
            sl.append(slice(a - o0, b - o0))
        s = tuple(sl)
        return Box(s, box.X[s[0]], box.Y[:, s[1]], box.Z[:, :, s[2]])

    def tube(self, box: Box, points, radii, out: np.ndarray | None = None) -> np.ndarray:
        """Signed distance to a tube along the polyline ``points`` (radii per point) on ``box``.

        Each segment is evaluated only on the sub-block it can reach; the result is the
        union (minimum), accumulated into ``out`` when given.
        """
        if out is None:
            out = np.full(box.shape, 1e3, dtype=F32)
        pts = np.asarray(points, dtype=np.float64)
        rad = np.broadcast_to(np.asarray(radii, dtype=np.float64), (len(pts),))
        for a, b, ra, rb in zip(pts[:-1], pts[1:], rad[:-1], rad[1:], strict=False):
            m = max(ra, rb) + 2 * self.h
            sub = self.sub(box, np.minimum(a, b) - m, np.maximum(a, b) + m)
            if sub is None:
                continue
            d = fields.capsule(sub.X, sub.Y, sub.Z, a, b, ra, rb)
            view = out[sub.sl]
            np.minimum(view, d, out=view)
        return out

    def occupancy(self, sdf: np.ndarray) -> np.ndarray:
        """Voxel occupancy of the shape ``sdf < 0`` at this canvas's in-plane resolution."""
        return fields.occupancy(sdf, self.h)

    # -- painting -------------------------------------------------------------------------
    def paint_gas_level(self, box: Box, lumen: np.ndarray, rng: np.random.Generator,
                        low: float, high: float) -> None:
        """Gas above an air-fluid level inside ``lumen`` (a hollow organ lying supine).

        The level lies at a random quantile in ``[low, high]`` of the lumen's y range; gas
        rises to the anterior (smaller y) side.
        """
        inside = lumen < 0
        if not inside.any():
            return
        ys = np.broadcast_to(box.Y, lumen.shape)[inside]
        level = np.quantile(ys, rng.uniform(low, high))
        self.paint(box, fields.intersect(lumen, np.float32(level) - box.Y), "gas")

    def paint(
        self,
        box: Box | None,
        sdf: np.ndarray | None = None,
        tissue: str = "muscle",
        *,
        occ: np.ndarray | None = None,
        value: np.ndarray | float | None = None,
        texture: float = 1.0,
        label: str = "clear",
    ) -> None:
        """Blend ``tissue`` into ``box`` where ``sdf < 0`` (or with occupancy ``occ``).

        The tissue's mean HU (or ``value``) is blended into :attr:`hu` and its texture
        amplitude (times ``texture``) into :attr:`amp`; :meth:`finish` adds the texture.
        ``label``: ``"liver"`` marks the voxels as liver, ``"keep"`` leaves the liver/tumor
        fractions alone (vessels inside the liver), ``"tumor"`` marks tumor (occupancy is
        then limited to the liver), ``"clear"`` removes them (any other organ).
        """
        if box is None:
            return
        if occ is None:
            occ = self.occupancy(sdf)
        occ = np.broadcast_to(occ, box.shape)
        sl = box.sl
        block = all(isinstance(s, slice) for s in sl)
        if block:  # work only on the bounding block of the shape
            nz = occ > 0
            ranges = []
            for axis in range(3):
                hit = np.flatnonzero(nz.any(axis=tuple(a for a in range(3) if a != axis)))
                if len(hit) == 0:
                    return
                ranges.append(slice(int(hit[0]), int(hit[-1]) + 1))
            crop = tuple(ranges)
            occ = occ[crop]
            if isinstance(value, np.ndarray) and value.ndim == 3:
                value = np.broadcast_to(value, box.shape)[crop]
            sl = tuple(
                slice((s.start or 0) + c.start, (s.start or 0) + c.stop)
                for s, c in zip(sl, crop, strict=True)
            )
        elif not occ.any():
            return
        if label == "tumor":
            occ = occ * self.liver[sl]
        t = self.table[tissue]
        hu = self.hu[sl]
        hu += occ * (F32(t.mean) - hu if value is None else value - hu)
        amp = self.amp[sl]
        amp += occ * (F32(t.texture * texture) - amp)
        tis = self.tissue[sl]
        np.copyto(tis, tissue_id(tissue), where=occ > 0.5)
        if not block:  # fancy indexing gave copies: write them back
            self.hu[sl], self.amp[sl], self.tissue[sl] = hu, amp, tis
        if label == "keep" or (label == "clear" and not self.has_labels):
            return
        self.has_labels = True
        liv, tum = self.liver[sl], self.tumor[sl]
        if label == "liver":
            liv += occ * (F32(1.0) - liv)
            tum -= occ * tum
        elif label == "tumor":
            tum += occ * (F32(1.0) - tum)
        elif label == "clear":
            liv -= occ * liv
            tum -= occ * tum
        else:
            raise ValueError(f"unknown label mode {label!r}")
        if not block:
            self.liver[sl], self.tumor[sl] = liv, tum

    def finish(self, rng: np.random.Generator) -> np.ndarray:
        """The final HU: painted means plus each tissue's correlated texture."""
        spacing = (self.h, self.h, self.hz)
        tex = fields.lattice_noise(rng, self.shape, spacing, max(3.0, 1.5 * self.h))
        tex += F32(0.5) * fields.lattice_noise(rng, self.shape, spacing, 25.0)
        tex *= self.amp
        tex += self.hu
        return tex
