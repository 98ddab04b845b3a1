"""Spine (vertebral bodies, discs, posterior elements), ribs, sternum and the back muscles.

Vertebrae repeat along z with the patient's vertebral period; the neural arch, spinous and
transverse processes appear in part of each period, as in real axial slices. Ribs are
oblique bony arcs inside the muscle wall that fall from the spine towards the front, so an
axial slice cuts several of them as ovals; the lower ones end laterally (floating ribs)
and the costal cartilages close the front. Paraspinal muscles are thick masses behind the
spine; the psoas starts near the upper poles of the kidneys and grows downwards.
"""

from __future__ import annotations

import numpy as np

from keras_liverseg.phantom import fields
from keras_liverseg.phantom.body import Body
from keras_liverseg.phantom.canvas import Box, Canvas

__all__ = ["paint_skeleton"]

F32 = np.float32


def _ellipse2(dx, dy, a, b):
    """Approximate signed distance to an axis-aligned ellipse (broadcasting)."""
    qx, qy = dx / a, dy / b
    k0 = np.sqrt(qx * qx + qy * qy)
    k1 = np.sqrt((qx / a) ** 2 + (qy / b) ** 2) + F32(1e-6)
    return (k0 * (k0 - 1) / k1).astype(F32)


def spine_center(body: Body, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the vertebral body centre at heights ``z`` (lumbar lordosis, slight scoliosis)."""
    p = body.p
    y = p.spine_y + p.lordosis * np.clip((-z - 100) / 200, 0, 1)
    x = body.scoliosis_amp * np.sin(z / F32(body.scoliosis_len) + F32(body.scoliosis_phase))
    return x.astype(F32), y.astype(F32)


def paint_skeleton(canvas: Canvas, body: Body, rng: np.random.Generator) -> None:
    """Paint paraspinal muscles, psoas, quadratus lumborum, spine, ribs and sternum."""
    body.scoliosis_amp = float(rng.uniform(0, 6))
    body.scoliosis_len = float(rng.uniform(60, 150))
    body.scoliosis_phase = float(rng.uniform(0, 2 * np.pi))
    _muscles(canvas, body, rng)
    _spine(canvas, body, rng)
    _ribs(canvas, body, rng)


def _muscles(cv: Canvas, body: Body, rng: np.random.Generator) -> None:
    p = body.p
    a, b = p.paraspinal
    box = cv.box((-a * 2 - 20, -p.back * 1.3, cv.z.min()), (a * 2 + 20, p.spine_y, cv.z.max()))
    if box is None:
        return
    sx, sy = spine_center(body, box.Z)
    back = -p.back * body._z(box, body.scale)
    inner = body.fat_depth(box) - body.depth(box)
    front = sy - p.vb_half[1] - 2 - p.canal_r  # level of the transverse processes
    rear = back + p.skin + p.fat_back
    cy = 0.5 * (front + rear)
    b = 0.5 * (front - rear) + 3
    pw = F32(rng.uniform(2.2, 3.0))
    for side in (1.0, -1.0):
        cx = sx + side * (a + 4)
        q = (np.abs((box.X - cx) / a) ** pw + np.abs((box.Y - cy) / b) ** pw) ** (1 / pw)
        m = fields.intersect((q - 1) * np.minimum(a, b), inner)
        cv.paint(box, m, "muscle", texture=1.3)
    # psoas and quadratus lumborum
    top = p.kidney_top[0] - rng.uniform(5, 30)
    box = cv.box((-120, p.spine_y - 60, cv.z.min()), (120, p.spine_front + 40, top))
    if box is None:
        return
    sx, sy = spine_center(body, box.Z)
    grow = np.clip((top - box.Z) / 130.0, 0, 1) ** 0.7
    r = F32(p.psoas_r) * grow + F32(0.5)
    drift = np.clip((top - box.Z) / 250.0, 0, 1) * 15
    ql_r = F32(rng.uniform(12, 22)) * np.clip((top - 25 - box.Z) / 60.0, 0, 1) + F32(0.3)
    for side in (1.0, -1.0):
        cx = sx + side * (p.vb_half[0] + 0.6 * r + drift)
        cy = sy + 0.2 * p.vb_half[1]
        d = np.sqrt(((box.X - cx) / 1.0) ** 2 + ((box.Y - cy) / 0.85) ** 2) - r
        cv.paint(box, d, "muscle")
        qx = sx + side * (p.vb_half[0] + 1.3 * r + 18)
        ql = _ellipse2(box.X - qx, box.Y - (sy - p.vb_half[1] - 5), ql_r, ql_r * 0.45 + 0.2)
        cv.paint(box, ql, "muscle")


def _spine(cv: Canvas, body: Body, rng: np.random.Generator) -> None:
    p = body.p
    box = cv.box((-80, p.spine_y - 110, cv.z.min()), (80, p.spine_front + 5, cv.z.max()))
    if box is None:
        return
    sx, sy = spine_center(body, box.Z)
    a = F32(p.vb_half[0]) * (1 + F32(0.15) * np.clip(-box.Z / 250.0, 0, 1))
    b = F32(p.vb_half[1])
    period = F32(p.vertebra_period)
    z0 = F32(p.vertebra_phase * p.vertebra_period)
    phase = np.mod(box.Z - z0, period)  # 0 = centre of a disc
    disc_d = np.abs(np.mod(box.Z - z0 + period / 2, period) - period / 2)
    hd = F32(rng.uniform(3.5, 5.5))
    # posterior elements
    rc = F32(p.canal_r)
    cy = sy - b - 2 - rc
    t = F32(rng.uniform(4.5, 7.0))
    rho = np.sqrt((box.X - sx) ** 2 + (box.Y - cy) ** 2)
    vert = phase - period / 2  # 0 at the middle of a vertebral body
    arch_z = np.abs(vert + 0.1 * period) - 0.38 * period
    arch = fields.intersect(np.abs(rho - rc - t / 2) - t / 2, arch_z, box.Y - (cy + rc * 0.6))
    sp_len = rng.uniform(30, 48)
    sp_top = cy - rc - t / 2
    dy_sp = np.clip(sp_top - box.Y, 0, sp_len)
    spinous = fields.intersect(
        np.abs(box.X - sx) - 3.5,
        box.Y - sp_top,
        sp_top - sp_len - box.Y,
        np.abs(vert + 0.12 * period + 0.35 * dy_sp) - 0.2 * period,
    )
    tp_len = F32(rng.uniform(12, 26)) * (0.5 + 0.5 * np.clip(-(box.Z - p.kidney_top[0]) / 60, 0, 1))
    tp = fields.intersect(
        np.abs(np.abs(box.X - sx) - (rc + t + tp_len / 2)) - tp_len / 2,
        np.abs(box.Y - cy - 2 + 0.25 * np.abs(box.X - sx)) - 2.5,
        np.abs(vert + 0.05 * period) - 0.1 * period,
    )
    post = fields.union(arch, spinous, tp)
    cv.paint(box, post, "bone_cortex")
    cv.paint(box, post + 2.0, "bone_marrow")
    cv.paint(box, rho - rc, "csf")
    vb = _ellipse2(box.X - sx, box.Y - sy, a, b)
    cv.paint(box, vb, "bone_cortex")
    cv.paint(box, fields.intersect(vb + 2.0, hd + 1.5 - disc_d), "bone_marrow")
    cv.paint(box, fields.intersect(vb - 1.0, disc_d - hd), "disc")


def _ribs(cv: Canvas, body: Body, rng: np.random.Generator) -> None:
    p = body.p
    period = p.vertebra_period * rng.uniform(0.85, 1.0)
    z12 = p.kidney_top[0] + rng.uniform(-5, 25)
    zmax = float(cv.z.max())
    ribs = []  # (z0, drop, phi_end, phi_cart, z_cart_end, hz, hr)
    xiphoid = body.tendon - rng.uniform(15, 45)
    for k in range(12, 0, -1):
        z0 = z12 + (12 - k) * period + rng.normal(0, 3)
        if k >= 11:
            phi_end, phi_cart = (0.38 if k == 12 else 0.52) * np.pi, 0.0
            drop = rng.uniform(35, 70)
        else:
            phi_end = min(0.62 + 0.03 * (10 - k), 0.8) * np.pi
            phi_cart = (0.92 if k >= 7 else 0.97) * np.pi
            drop = rng.uniform(110, 170)
        if z0 - drop - 60 > zmax:
            break
        ribs.append((z0, drop, phi_end, phi_cart, rng.uniform(4, 6.5), rng.uniform(3.5, 5.5)))
    # candidate voxels: a band around the rib line inside the muscle wall
    mid = body.fat + 0.55 * body.wall
    depth2 = body.R * float(np.median(body.scale)) - body.r
    ix, iy = np.nonzero(np.abs(depth2 - mid) < 0.12 * p.half_width + 10)
    z_lo = min(r[0] - r[1] for r in ribs) - 40 if ribs else zmax
    zsel = np.nonzero(cv.z >= z_lo)[0]
    if len(ix) == 0 or len(zsel) == 0:
        return
    zs = slice(int(zsel.min()), int(zsel.max()) + 1)
    box = Box((ix, iy, zs), cv.x[ix][:, None], cv.y[iy][:, None], cv.z[zs][None, :])
    u = body.depth(box) - (body.fat_depth(box) + body._2d(box, body.wall) * 0.55)
    pi, zi = np.nonzero(np.abs(u) < 8.0)
    u = u[pi, zi]
    ix, iy, iz = ix[pi], iy[pi], zi + zs.start
    X, Y, Z = cv.x[ix], cv.y[iy], cv.z[iz]
    r = np.sqrt(X * X + Y * Y)
    phi = np.arccos(np.clip(-Y / np.maximum(r, 1e-3), -1, 1)).astype(F32)
    bone = np.full(u.shape, 1e3, dtype=F32)
    cart = bone.copy()
    for side in (1.0, -1.0):
        on_side = np.nonzero(X * side > 0)[0]
        for z0, drop, phi_end, phi_cart, hz, hr in ribs:
            z0 += rng.normal(0, 2)
            sel = on_side[(Z[on_side] <= z0 + hz + 3) & (Z[on_side] >= z0 - drop - 60)]
            if len(sel) == 0:
                continue
            ph, zz, uu, rr = phi[sel], Z[sel], u[sel], r[sel]
            zr = z0 - drop * (np.minimum(ph, phi_end) / np.pi) ** 1.5
            if phi_cart > 0:
                z_end = z0 - drop * (phi_end / np.pi) ** 1.5
                target = max(z_end, xiphoid - 10) if phi_cart < 0.95 * np.pi else z_end
                zr = zr + np.clip((ph - phi_end) / (phi_cart - phi_end), 0, 1) * (target - z_end)
            m = min(hz, hr)
            cross = np.sqrt(((zz - zr) / hz) ** 2 + (uu / hr) ** 2) * m - m
            bone_d = fields.intersect(cross, (0.1 * np.pi - ph) * rr, (ph - phi_end) * rr)
            bone[sel] = np.minimum(bone[sel], bone_d)
            if phi_cart > 0:
                cart_d = fields.intersect(cross + 1, (phi_end - ph) * rr, (ph - phi_cart) * rr)
                cart[sel] = np.minimum(cart[sel], cart_d)
    # sternum (body above the xiphoid level, xiphoid a thin tongue)
    ster = fields.intersect(np.abs(X) - 9, np.abs(u) - 4, xiphoid - Z, -Y)
    np.minimum(bone, ster, out=bone)
    pts = Box((ix, iy, iz), X, Y, Z)
    cv.paint(pts, cart, "cartilage")
    cv.paint(pts, bone, "bone_cortex")
    cv.paint(pts, bone + 1.5, "bone_marrow")
