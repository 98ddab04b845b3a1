"""The scanner: acquisition geometry, CT table, slice profile, PSF, artefacts, noise, orientation.

Geometry. The field of view is drawn in millimetres (the body fits, mostly) and the pixel
spacing is FOV / matrix, so a 512 matrix gives 0.6-1.0 mm pixels and a small test matrix
gives a proportionally coarser image of the same anatomy. Slice spacing 0.7-5 mm, slice
thickness >= spacing and at most 6 mm (overlapping reconstructions happen, including thick
slices at a finer spacing), the z range placed so that the liver is seen, usually with
slices above (lung bases, heart) and/or below it (bowel).

Image formation. Anatomy is painted on a coarse grid (``factor`` x coarser in-plane and, for
thin slices, along z); the scanner blurs it along z with the slice profile (Gaussian, FWHM =
thickness) and in-plane with the PSF, interpolates it linearly to the output grid (which is
part of the PSF), then adds correlated Gaussian noise and rounds to int16. Pixels outside
the reconstruction circle get a padding value on some scans, as on real scanners.

Scanner variation (generator 2.0.0), so that a model trained on phantoms meets on them how
real scanners differ; every choice is in :meth:`Acquisition.as_meta`. After the PSF and
before the noise:

* streaks (``streaks``, ~35 % of scans): beam-hardening / photon-starvation streaks at dense
  bone (``bone_cortex`` of ribs and spine): dark bands along lines joining two bones and
  bright or dark rays leaving one, tens to ~150 HU, fading away from the bone; one set of
  lines per slab of 10-40 mm, its strength varying slice to slice.
* coarse reconstruction (``effective_pixel_mm``, ~25 %): the image is blurred and sampled
  at :data:`EFFECTIVE_PIXEL_MM` (1.5-9 mm pixels, log-uniform), noise is added there, and
  the result is interpolated linearly to the output grid: a 40-256 matrix resampled to 512.
  Labels stay sharp on the output grid. Real scans reach about 6 mm (a whole abdomen stored
  at 64x64); generator 2.3.0 draws to 9 mm (2.0.0-2.2.0: to 6 mm) so that 6 mm lies inside
  the trained range rather than at its edge, wider than real scans as SynthSeg's
  randomisation is.
* domain randomisation (``domain_randomised``, ~35 %), after SynthSeg (Billot et al.,
  Medical Image Analysis 2023): wider per-tissue means, a global gain and texture scale
  (drawn here, applied by :func:`~keras_liverseg.phantom.intensities.sample_table`, which
  takes :attr:`Acquisition.domain`), a smooth low-frequency bias field (cupping or
  beam-hardening shading, 10-40 HU, mostly on tissue, not on air) and noise up to 45 HU.

Every parameter of these is drawn on every scan, whether the feature is on or not, and the
streak and bias-field geometry come from their own seeds, so forcing one feature on or off
(the keyword arguments of :func:`sample_acquisition`) changes nothing else in the case.

Orientation. The output array is stored either "RAS-style" (array axes increasing towards
the patient's right, anterior, superior: affine diagonal +, +, +) or "LPS-style" (first two
axes flipped: -, -, +), sometimes with z flipped too. The array is flipped together with the
affine, so world (RAS+) coordinates of every organ are unchanged: only the header differs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from keras_liverseg.phantom.canvas import Canvas
from keras_liverseg.phantom.intensities import tissue_id
from keras_liverseg.phantom.patient import Patient

__all__ = [
    "EFFECTIVE_PIXEL_MM",
    "MAX_THICKNESS_MM",
    "Acquisition",
    "acquire",
    "flips_from_code",
    "orient",
    "paint_table",
    "sample_acquisition",
]

F32 = np.float32
MAX_THICKNESS_MM = 6.0
EFFECTIVE_PIXEL_MM = (1.5, 9.0)
"""Range of the coarse reconstruction's pixel (log-uniform; 2.3.0, was 1.5-6 mm)."""
_P_STREAKS, _P_COARSE, _P_DOMAIN = 0.35, 0.25, 0.35
_MAX_NOISE_HU = 45.0
_CORTEX_ID = tissue_id("bone_cortex")


@dataclass
class Acquisition:
    """How one synthetic scan was taken (all lengths in mm)."""

    shape: tuple[int, int, int]
    pixel: float
    dz: float
    thickness: float
    factor: int  # in-plane coarse factor of the anatomy grid
    x0: float  # patient-frame position of voxel (0, 0, 0) of the RAS-ordered array
    y0: float
    z_slices: np.ndarray
    z_grid: np.ndarray  # anatomy-grid z positions
    psf_sigma: float  # in-plane PSF sigma, output pixels
    noise_sigma: float  # HU
    noise_corr: float  # in-plane noise correlation (Gaussian sigma, output pixels)
    flips: tuple[bool, bool, bool]
    offset: tuple[float, float, float]  # world = patient frame + offset
    pad_value: int | None  # outside the reconstruction circle (None: no circle)
    table: bool
    streaks: dict | None = None  # streak parameters (None: no streaks)
    effective_pixel: float | None = None  # mm; coarser in-plane reconstruction (None: off)
    domain: dict | None = None  # domain-randomisation parameters (None: off)
    streak_seed: int = 0
    bias_seed: int = 0

    @property
    def orientation(self) -> str:
        """Axis codes of the stored array, e.g. ``"RAS"`` or ``"LPS"``."""
        codes = ("RL", "AP", "SI")
        return "".join(c[int(f)] for c, f in zip(codes, self.flips, strict=False))

    def as_meta(self) -> dict:
        return {
            "shape": list(self.shape),
            "spacing": [round(self.pixel, 4), round(self.pixel, 4), round(self.dz, 4)],
            "slice_thickness": round(self.thickness, 3),
            "orientation": self.orientation,
            "psf_sigma_px": round(self.psf_sigma, 3),
            "noise_sigma_hu": round(self.noise_sigma, 2),
            "noise_corr_px": round(self.noise_corr, 3),
            "fov_mm": [round(self.pixel * self.shape[0], 1), round(self.pixel * self.shape[1], 1)],
            "z_range_patient_mm": [round(float(self.z_slices[0]), 1),
                                   round(float(self.z_slices[-1]), 1)],
            "pad_value": self.pad_value,
            "table": self.table,
            "anatomy_grid_factor": self.factor,
            "streaks": dict(self.streaks) if self.streaks else None,
            "effective_pixel_mm": (round(self.effective_pixel, 3)
                                   if self.effective_pixel else None),
            "domain_randomised": bool(self.domain),
            "domain": dict(self.domain) if self.domain else None,
        }


def flips_from_code(code: str) -> tuple[bool, bool, bool]:
    """Axis flips of an orientation code such as ``"RAS"``, ``"LPS"`` or ``"LPI"``."""
    code = str(code).upper()
    pairs = ("RL", "AP", "SI")
    if len(code) != 3 or any(c not in pair for c, pair in zip(code, pairs, strict=True)):
        raise ValueError(f"orientation must be like 'RAS' or 'LPS' (axes in order), got {code!r}")
    return tuple(c == pair[1] for c, pair in zip(code, pairs, strict=True))


def sample_acquisition(
    rng: np.random.Generator,
    shape: tuple[int, int, int],
    patient: Patient,
    spacing: tuple[float, float, float] | None = None,
    *,
    streaks: bool | None = None,
    effective_pixel: bool | float | None = None,
    domain: bool | None = None,
) -> Acquisition:
    """Draw FOV, spacing, slice thickness, z range, PSF, noise, artefacts and orientation.

    ``streaks``, ``effective_pixel`` and ``domain`` force the scanner variations (module
    docstring) on (True) or off (False); None draws them. ``effective_pixel`` may also be
    the reconstruction pixel in mm. An effective pixel not coarser than 1.25 output pixels
    is dropped (it would change nothing).
    """
    nx, ny, nz = shape
    width = 2 * patient.half_width * 1.04
    if spacing is None:
        # 0.6-1.0 mm pixels on a 512 matrix; sometimes the body is cropped at the edges
        fov_min = max(width * rng.uniform(0.92, 1.08) if rng.random() < 0.15 else width, 308.0)
        fov = min(rng.uniform(fov_min, fov_min + 130), max(fov_min, 511.0))
        pixel = fov / max(nx, ny)
        if rng.random() < 0.75:
            dz = float(np.clip(rng.uniform(150, 420) / nz, 0.7, 5.0))
        else:
            dz = float(np.exp(rng.uniform(np.log(0.7), np.log(5.0))))
        dz = round(dz * 20) / 20
    else:
        pixel, dz = float(spacing[0]), float(spacing[2])
    u = rng.random()
    thickness = dz * rng.uniform(1.0, 1.6) if u < 0.5 else dz
    if u < 0.15 and dz >= 1.25:  # thick slices at a finer spacing (e.g. 5 mm every 2.5 mm)
        thickness = rng.uniform(max(dz, 3.0), min(MAX_THICKNESS_MM, 2.5 * dz))
    thickness = float(np.clip(thickness, dz, max(dz, MAX_THICKNESS_MM)))
    cover = (nz - 1) * dz
    lb = patient.liver_bottom
    overlap = min(30.0, cover / 2)
    if cover >= -lb + 25 and rng.random() < 0.7:  # whole liver, with margins
        lo, hi = 10 - cover, lb - 10
    else:  # part of the liver, the window anywhere along it
        lo, hi = lb + overlap - cover, -overlap
    z_start = rng.uniform(min(lo, hi), max(lo, hi))
    z_slices = (z_start + np.arange(nz) * dz).astype(np.float64)
    factor = 2 if (nx % 2 == 0 and ny % 2 == 0 and min(nx, ny) >= 192) else 1
    hc = pixel * factor
    if dz > 4.0:  # two anatomy samples per slice, the slice centre half-way between
        g = dz / 2
        z_grid = z_slices[0] - g / 2 + np.arange(2 * nz) * g
    elif dz < 0.8 * hc:
        k = max(1, int(round(hc / dz)))
        z_grid = z_slices[0] + np.arange(int(np.ceil((nz - 1) / k)) + 1) * dz * k
    else:
        z_grid = z_slices.copy()
    ox, oy = rng.normal(0, 15), rng.normal(0, 18)
    x0 = -(nx - 1) / 2 * pixel - ox
    y0 = -(ny - 1) / 2 * pixel - oy
    lps = bool(rng.random() < 0.5)
    flips = (lps, lps, bool(rng.random() < 0.2))
    pad = None
    if rng.random() < 0.6:
        pad = int(rng.choice([-1024, -2048, -3024], p=[0.75, 0.1, 0.15]))
    size = (patient.half_width / 160) ** 1.2
    noise = float(np.clip(rng.uniform(5, 22) * size * np.sqrt(2.5 / thickness), 5, 30))
    psf_sigma = float(rng.uniform(0.5, 1.2))
    noise_corr = float(rng.uniform(0.45, 1.0))
    offset = (
        round(float(rng.normal(0, 20)), 2),
        round(float(rng.normal(0, 30)), 2),
        round(float(rng.uniform(-600, 200)), 2),
    )
    on_table = bool(rng.random() < 0.55)
    # scanner variations: every parameter drawn always, then each switched on or off
    streak_seed, bias_seed = (int(v) for v in rng.integers(0, 2**31 - 1, 2))
    u_streaks, u_coarse, u_domain = rng.random(3)
    streak = {
        "amplitude_hu": round(float(rng.uniform(30, 150)), 1),
        "lines_per_slab": int(rng.integers(3, 9)),
        "slab_mm": round(float(rng.uniform(10, 40)), 1),
        "width_mm": round(float(rng.uniform(0.8, 2.5)), 2),
        "decay_mm": round(float(rng.uniform(15, 60)), 1),
    }
    eff = float(np.exp(rng.uniform(*np.log(EFFECTIVE_PIXEL_MM))))
    dom = {
        "tissue_jitter_hu": round(float(rng.uniform(10, 30)), 1),
        "gain": round(float(np.exp(rng.uniform(np.log(0.8), np.log(1.25)))), 3),
        "texture_scale": round(float(rng.uniform(0.7, 1.8)), 3),
        "bias_field_hu": round(float(rng.uniform(10, 40)), 1),
        "noise_factor": round(float(rng.uniform(1.0, 2.2)), 3),
    }
    if streaks is None:
        streaks = bool(u_streaks < _P_STREAKS)
    if effective_pixel is None:
        effective_pixel = bool(u_coarse < _P_COARSE)
    if effective_pixel is True:
        effective_pixel = eff
    effective_pixel = float(effective_pixel) if effective_pixel else None
    if effective_pixel is not None and effective_pixel < 1.25 * pixel:
        effective_pixel = None
    if domain is None:
        domain = bool(u_domain < _P_DOMAIN)
    if domain:
        noise = float(np.clip(noise * dom["noise_factor"], 5, _MAX_NOISE_HU))
    return Acquisition(
        shape=(nx, ny, nz),
        pixel=float(pixel),
        dz=float(dz),
        thickness=thickness,
        factor=factor,
        x0=float(x0),
        y0=float(y0),
        z_slices=z_slices,
        z_grid=z_grid,
        psf_sigma=psf_sigma,
        noise_sigma=noise,
        noise_corr=noise_corr,
        flips=flips,
        offset=offset,
        pad_value=pad,
        table=on_table,
        streaks=streak if streaks else None,
        effective_pixel=effective_pixel,
        domain=dom if domain else None,
        streak_seed=streak_seed,
        bias_seed=bias_seed,
    )


def coarse_axes(acq: Acquisition) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Patient-frame coordinates of the anatomy grid (x, y every ``factor`` output pixels)."""
    f, (nx, ny, _) = acq.factor, acq.shape
    x = acq.x0 + np.arange(0, nx, f) * acq.pixel
    y = acq.y0 + np.arange(0, ny, f) * acq.pixel
    return x, y, acq.z_grid


def paint_table(canvas: Canvas, patient: Patient, rng: np.random.Generator) -> None:
    """A curved CT table (dense shells, foam core) and sometimes a pad, under the back."""
    top = -patient.back * rng.uniform(0.98, 1.06) - rng.uniform(0, 5)
    pad = rng.uniform(0, 30) if rng.random() < 0.4 else 0.0
    thick = rng.uniform(10, 35)
    half = rng.uniform(190, 260)
    curve = rng.uniform(0, 0.0006)
    box = canvas.box((-half - 5, top - pad - thick - 30, canvas.z.min()),
                     (half + 5, top + 5, canvas.z.max()))
    if box is None:
        return
    surf = top - pad + curve * box.X**2  # upper surface of the table
    side = np.abs(box.X) - half
    if pad > 0:
        cv_pad = np.maximum(np.maximum(box.Y - top - curve * box.X**2, surf - box.Y), side)
        canvas.paint(box, cv_pad, "pad")
    slab = np.maximum(np.maximum(box.Y - surf, surf - thick - box.Y), side)
    canvas.paint(box, slab, "table")
    shell = rng.uniform(1.5, 3.5)
    canvas.paint(box, slab + shell, "table_core")


def _upsample(a: np.ndarray, f: int, axis: int, n: int) -> np.ndarray:
    """Linear interpolation by the integer ``f`` along ``axis`` to length ``n`` (aligned)."""
    if f == 1:
        return a
    a = np.moveaxis(a, axis, 0)
    out = np.empty((n,) + a.shape[1:], dtype=a.dtype)
    m = a.shape[0]
    for r in range(f):
        w = F32(r / f)
        dst = out[r::f]
        k = dst.shape[0]
        src0 = a[:k]
        if r == 0:
            dst[...] = src0
            continue
        nxt = a[1 : k + 1] if k + 1 <= m else np.concatenate([a[1:k], a[-1:]], axis=0)
        dst[...] = src0 + (nxt - src0) * w
    return np.moveaxis(out, 0, axis)


def _resample_z(a: np.ndarray, z_grid: np.ndarray, z_out: np.ndarray) -> np.ndarray:
    """Linear interpolation along the last axis from ``z_grid`` to ``z_out``."""
    if len(z_grid) == len(z_out) and np.allclose(z_grid, z_out):
        return a
    g = z_grid[1] - z_grid[0]
    pos = (z_out - z_grid[0]) / g
    i0 = np.clip(np.floor(pos + 1e-6).astype(int), 0, len(z_grid) - 1)
    w = np.clip(pos - i0, 0, 1).astype(F32)
    i1 = np.clip(i0 + 1, 0, len(z_grid) - 1)
    if np.all(w < 1e-4):
        return np.ascontiguousarray(a[..., i0])
    return a[..., i0] * (1 - w) + a[..., i1] * w


def _taps(sigma: float) -> tuple[int, float]:
    """Passes and weight of a 3-tap kernel ``[w, 1-2w, w]`` whose repeats blur by ``sigma``."""
    if sigma <= 0.05:
        return 0, 0.0
    n = int(np.ceil(sigma**2 / 0.5))
    return n, sigma**2 / (2 * n)


def _smooth(a: np.ndarray, sigma: float, axes=(0, 1)) -> np.ndarray:
    """Approximate Gaussian blur along ``axes`` by repeated 3-tap passes (in place, fast)."""
    n, w = _taps(sigma)
    w = F32(w)
    for axis in axes:
        for _ in range(n):
            lo = [slice(None)] * a.ndim
            mid, hi = list(lo), list(lo)
            lo[axis], mid[axis], hi[axis] = slice(None, -2), slice(1, -1), slice(2, None)
            tmp = a[tuple(lo)] + a[tuple(hi)]
            tmp *= w
            centre = a[tuple(mid)]
            centre *= F32(1 - 2 * w)
            centre += tmp
    return a


def _gain(sigma: float) -> float:
    """Standard deviation of unit white noise after :func:`_smooth` along one axis."""
    n, w = _taps(sigma)
    k = np.array([1.0])
    for _ in range(n):
        k = np.convolve(k, [w, 1 - 2 * w, w])
    return float(np.sqrt((k * k).sum()))


def acquire(
    canvas: Canvas, acq: Acquisition, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Image the painted canvas: ``(volume int16, labels uint8, tissues uint8)``, RAS order."""
    nx, ny, nz = acq.shape
    f = acq.factor
    g = float(acq.z_grid[1] - acq.z_grid[0]) if len(acq.z_grid) > 1 else acq.dz
    hu = canvas.finish(rng)
    sz = acq.thickness / 2.355 / g
    if sz > 0.3:
        hu = ndimage.gaussian_filter1d(hu, sz, axis=2, mode="nearest", truncate=2.5)
    hu = _resample_z(hu, acq.z_grid, acq.z_slices)
    hu = np.ascontiguousarray(hu)
    inherent = 0.85 if f > 1 else 0.45
    if acq.psf_sigma > inherent:
        _smooth(hu, np.sqrt(acq.psf_sigma**2 - inherent**2) / f)
    elif f > 1:  # sharp kernel: pre-emphasise before the interpolation blurs
        amount = F32((inherent - acq.psf_sigma) / inherent * 1.2)
        hu += amount * (hu - _smooth(hu.copy(), 0.8))
    if acq.streaks:
        _add_streaks(hu, canvas, acq)
    if acq.domain:
        _add_bias_field(hu, acq)
    if acq.effective_pixel:  # coarse reconstruction: blur, sample, noise there, interpolate
        low, pos = _coarse_reconstruction(hu, acq)
        del hu
        low += _noise(low.shape, acq, rng)
        vol = _interp(_interp(low, pos[0], 0), pos[1], 1)
        del low
    else:
        vol = _upsample(_upsample(hu, f, 0, nx), f, 1, ny)
        del hu
        vol += _noise(vol.shape, acq, rng)
    np.clip(vol, -1024, 3071, out=vol)
    if acq.pad_value is not None:
        X = (np.arange(nx) - (nx - 1) / 2)[:, None] / (nx / 2)
        Y = (np.arange(ny) - (ny - 1) / 2)[None, :] / (ny / 2)
        vol[(X * X + Y * Y) > 1.0] = acq.pad_value
    volume = np.rint(vol).astype(np.int16)
    del vol
    labels = _labels(canvas, acq)
    return volume, labels, _tissues(canvas, acq)


def _noise(shape: tuple[int, ...], acq: Acquisition, rng: np.random.Generator) -> np.ndarray:
    """Correlated Gaussian noise of standard deviation ``noise_sigma`` (3-tap passes
    in-plane; along z when slices overlap)."""
    noise = rng.standard_normal(shape, dtype=F32)
    _smooth(noise, acq.noise_corr)
    gain = _gain(acq.noise_corr) ** 2
    if acq.thickness > acq.dz * 1.3:
        sz_n = 0.5 * (acq.thickness / acq.dz - 1)
        _smooth(noise, sz_n, axes=(2,))
        gain *= _gain(sz_n)
    noise *= F32(acq.noise_sigma / gain)
    return noise


def _interp(a: np.ndarray, pos: np.ndarray, axis: int) -> np.ndarray:
    """Linear interpolation of ``a`` along ``axis`` at the fractional indices ``pos``."""
    n = a.shape[axis]
    pos = np.clip(pos, 0, n - 1)
    i0 = np.minimum(np.floor(pos).astype(int), max(n - 2, 0))
    i1 = np.minimum(i0 + 1, n - 1)
    shape = [1] * a.ndim
    shape[axis] = len(pos)
    w = (pos - i0).astype(F32).reshape(shape)
    lo = np.take(a, i0, axis=axis)
    hi = np.take(a, i1, axis=axis)
    hi -= lo
    hi *= w
    lo += hi
    return lo


def _coarse_reconstruction(
    hu: np.ndarray, acq: Acquisition
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """``hu`` (anatomy grid in-plane) blurred and sampled at ``effective_pixel`` mm over the
    same field of view; also the fractional low-resolution indices of the output pixels."""
    f, (nx, ny, _) = acq.factor, acq.shape
    hc = acq.pixel * f
    sigma = 0.45 * acq.effective_pixel / hc  # anti-aliasing of the coarse reconstruction
    low = hu
    out_pos = []
    for axis, n in enumerate((nx, ny)):
        m = max(2, int(round(n * acq.pixel / acq.effective_pixel)))
        if sigma > 0.3:
            low = ndimage.gaussian_filter1d(low, sigma, axis=axis, mode="nearest", truncate=2.5)
        step = n / m  # output pixels per low-resolution pixel, centres aligned
        low = _interp(low, ((np.arange(m) + 0.5) * step - 0.5) / f, axis)
        out_pos.append((np.arange(n) + 0.5) / step - 0.5)
    return np.ascontiguousarray(low), (out_pos[0], out_pos[1])


def _slice_tissue_index(acq: Acquisition) -> np.ndarray:
    """Anatomy-grid z index nearest to each output slice."""
    g = float(acq.z_grid[1] - acq.z_grid[0]) if len(acq.z_grid) > 1 else acq.dz
    return np.clip(np.rint((acq.z_slices - acq.z_grid[0]) / g).astype(int), 0,
                   len(acq.z_grid) - 1)


def _add_streaks(hu: np.ndarray, canvas: Canvas, acq: Acquisition) -> None:
    """Streaks at dense bone, added in place to ``hu`` (anatomy grid in-plane, output z).

    Per slab of ``slab_mm``: a few lines, each either joining two cortical-bone pixels of
    the slab (a dark band between them, as photon starvation between ribs and spine gives)
    or leaving one bone pixel in a random direction (a bright or dark ray). A line's profile
    is Gaussian across it (``width_mm``) and fades by ``exp(-d / decay_mm)`` with the
    distance ``d`` past its end points (rays: from the bone). All lines of a slab are
    evaluated at once on the 2-D grid; each slice gets the slab's pattern times a factor.
    """
    p = acq.streaks
    rng = np.random.default_rng(acq.streak_seed)
    hc = acq.pixel * acq.factor
    nxc, nyc, nz = hu.shape
    k_tis = _slice_tissue_index(acq)
    cortex = canvas.tissue == np.uint8(_CORTEX_ID)
    X = (np.arange(nxc, dtype=F32) * F32(hc))[None, :, None]
    Y = (np.arange(nyc, dtype=F32) * F32(hc))[None, None, :]
    width = float(np.hypot(p["width_mm"], 0.5 * hc))
    decay = F32(p["decay_mm"])
    slab = np.floor((acq.z_slices - acq.z_slices[0]) / p["slab_mm"]).astype(int)
    for s in np.unique(slab):
        ks = np.nonzero(slab == s)[0]
        bone = cortex[:, :, np.unique(k_tis[ks])].any(axis=2)
        pts = np.argwhere(bone)
        if len(pts) < 2:
            continue
        n = p["lines_per_slab"]
        a = pts[rng.integers(len(pts), size=n)] * hc + rng.uniform(-0.5, 0.5, (n, 2)) * hc
        cand = pts[rng.integers(len(pts), size=(n, 4))] * hc  # the farthest of 4 bone pixels
        b = cand[np.arange(n), np.argmax(np.hypot(*(cand - a[:, None]).transpose(2, 0, 1)), 1)]
        ray = (rng.random(n) < 0.4) | (np.hypot(*(b - a).T) < 20.0)
        ang = rng.uniform(0, 2 * np.pi, n)
        ray_len = rng.uniform(20, 120, n)
        b = np.where(ray[:, None], a + ray_len[:, None] * np.stack([np.cos(ang), np.sin(ang)], 1),
                     b)
        sign = np.where(ray, rng.choice([-1.0, 1.0], n, p=[0.4, 0.6]), -1.0)
        amp = sign * p["amplitude_hu"] * rng.uniform(0.4, 1.0, n)
        length = np.maximum(np.hypot(*(b - a).T), 1e-3)
        u = (b - a) / length[:, None]
        ax, ay = (a[:, 0][:, None, None].astype(F32), a[:, 1][:, None, None].astype(F32))
        ux, uy = (u[:, 0][:, None, None].astype(F32), u[:, 1][:, None, None].astype(F32))
        dx, dy = X - ax, Y - ay
        t = dx * ux + dy * uy
        perp = dx * uy - dy * ux
        past = np.maximum(t - length[:, None, None].astype(F32), -t)
        np.maximum(past, 0, out=past)
        # rays fade from the bone along their whole length; bands only past their ends
        past += np.where(ray[:, None, None], np.maximum(t, 0), 0).astype(F32)
        prof = np.exp(-(perp * perp) / F32(2 * width**2) - past / decay)
        pattern = np.tensordot(amp.astype(F32), prof, axes=1)
        scale = rng.uniform(0.6, 1.2, len(ks)).astype(F32)
        hu[:, :, ks] += pattern[:, :, None] * scale[None, None, :]


def _add_bias_field(hu: np.ndarray, acq: Acquisition) -> None:
    """A smooth low-frequency shading (cupping or capping plus a few long waves, peak
    ``bias_field_hu``), added in place; weighted to tissue, so air stays near -1000."""
    rng = np.random.default_rng(acq.bias_seed)
    hc = acq.pixel * acq.factor
    nxc, nyc, nz = hu.shape
    x = ((np.arange(nxc) - (nxc - 1) / 2) * hc)[:, None]
    y = ((np.arange(nyc) - (nyc - 1) / 2) * hc)[None, :]
    r2 = (x * x + y * y) / 200.0**2
    field = rng.choice([-1.0, 1.0], p=[0.3, 0.7]) * (r2 - r2.mean()) * rng.uniform(0.5, 1.0)
    for _ in range(3):
        lam = rng.uniform(150, 500)
        th = rng.uniform(0, 2 * np.pi)
        field = field + rng.uniform(0.2, 0.6) * np.cos(
            2 * np.pi * (x * np.cos(th) + y * np.sin(th)) / lam + rng.uniform(0, 2 * np.pi))
    field *= acq.domain["bias_field_hu"] / max(float(np.abs(field).max()), 1e-6)
    z = acq.z_slices - acq.z_slices[0]
    zprof = 1 + 0.3 * np.sin(2 * np.pi * z / rng.uniform(200, 600) + rng.uniform(0, 2 * np.pi))
    weight = np.clip((hu + F32(900)) / F32(400), 0, 1)  # tissue, not air or lung
    weight *= field.astype(F32)[:, :, None]
    weight *= zprof.astype(F32)[None, None, :]
    hu += weight


def _tissues(canvas: Canvas, acq: Acquisition) -> np.ndarray:
    """Dominant tissue per output voxel (nearest neighbour of the anatomy grid)."""
    nx, ny, _ = acq.shape
    t = canvas.tissue[:, :, _slice_tissue_index(acq)]
    f = acq.factor
    if f > 1:
        t = np.repeat(np.repeat(t, f, axis=0)[:nx], f, axis=1)[:, :ny]
    return np.ascontiguousarray(t)


def _labels(canvas: Canvas, acq: Acquisition) -> np.ndarray:
    """Label map (0/1/2) at the slice centres from the painted liver and tumor fractions."""
    nx, ny, nz = acq.shape
    f = acq.factor
    labels = np.zeros(acq.shape, dtype=np.uint8)
    any_liver = canvas.liver.max(axis=(1, 2)) > 0.01
    if not any_liver.any():
        return labels
    ys = np.nonzero(canvas.liver.max(axis=(0, 2)) > 0.01)[0]
    xs = np.nonzero(any_liver)[0]
    i0, i1 = max(xs[0] - 1, 0), min(xs[-1] + 2, canvas.shape[0])
    j0, j1 = max(ys[0] - 1, 0), min(ys[-1] + 2, canvas.shape[1])
    sub = (slice(i0, i1), slice(j0, j1))
    ox, oy = i0 * f, j0 * f
    wx, wy = min((i1 - i0) * f, nx - ox), min((j1 - j0) * f, ny - oy)
    for frac, value in ((canvas.liver, 1), (canvas.tumor, 2)):
        a = _resample_z(frac[sub], acq.z_grid, acq.z_slices)
        a = _upsample(_upsample(a, f, 0, wx), f, 1, wy)
        labels[ox : ox + wx, oy : oy + wy][a > 0.5] = value
    return labels


def orient(
    arrays: list[np.ndarray], acq: Acquisition
) -> tuple[list[np.ndarray], np.ndarray]:
    """Flip the RAS-ordered arrays as the header says; returns ``(arrays, affine)``."""
    affine = np.eye(4)
    affine[0, 0] = affine[1, 1] = acq.pixel
    affine[2, 2] = acq.dz
    affine[:3, 3] = (
        acq.x0 + acq.offset[0],
        acq.y0 + acq.offset[1],
        acq.z_slices[0] + acq.offset[2],
    )
    for axis, flip in enumerate(acq.flips):
        if flip:
            arrays = [np.flip(a, axis) for a in arrays]
            n = acq.shape[axis]
            affine[:3, 3] += (n - 1) * affine[:3, axis]
            affine[:3, axis] *= -1
    affine += 0.0  # no negative zeros in the header
    return [np.ascontiguousarray(a) for a in arrays], affine
