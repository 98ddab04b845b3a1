"""Fully connected CRF on the network's probabilities, slice by slice (NumPy/SciPy only).

ES-UNet++ (seed 003, section 4.1.4, Eq. 3-5) refines its output with the fully connected
CRF of Kraehenbuehl and Koltun (2011): the Gibbs energy

    E(x) = sum_i psi_u(x_i) + sum_{i<j} mu(x_i, x_j) k(f_i, f_j),
    k(f_i, f_j) = w1 exp(-|p_i - p_j|^2 / 2 theta_a^2 - |I_i - I_j|^2 / 2 theta_b^2)
                + w2 exp(-|p_i - p_j|^2 / 2 theta_g^2),

with the unary ``psi_u = -log P`` of the network's probabilities, the Potts compatibility
``mu(l, l') = [l != l']``, positions ``p`` in mm and intensities ``I`` in HU. Mean-field
inference (their Algorithm 1) updates ``Q_i(l) ~ exp(-psi_u(l) + sum_m w_m
sum_{j != i} k_m(f_i, f_j) Q_j(l))`` (with Potts the other labels' messages are the same for
every label and cancel in the normalisation).

The paper runs two-label CRFs (liver against background, then, in the cascade, tumor
against liver); here one CRF runs over all the model's classes at once with Potts, which is
the same thing for two labels and couples liver and tumor for three.

The message passing is computed as filtering, as Kraehenbuehl and Koltun do, but without a
permutohedral lattice (no compiled extension is needed; no maintained dense-CRF package
installs from a wheel on Python 3.10-3.13):

- the smoothness kernel is a separable Gaussian over the pixels (exact up to the 4-sigma
  truncation);
- the appearance kernel, over (row, column, HU), is filtered on a bilateral grid (Paris and
  Durand 2006): probabilities are splatted with multilinear weights onto a grid whose
  spacing is half the kernel's width along each of the three axes, blurred there with a
  Gaussian, and read back with the same weights. Splatting and reading back each widen the
  kernel by a tent, so the grid's Gaussian is narrowed and scaled to keep the kernel's
  width and height (``tests/test_crf.py`` checks the result against a brute-force dense CRF).

HU outside the model's window (its :class:`~keras_liverseg.layers.HUWindow`) are clipped
to it: the network sees them as equal, and a narrow grid keeps the filtering cheap.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage, sparse

__all__ = [
    "CRFOptions",
    "dense_crf",
    "refine_volume",
]

PROBABILITY_FLOOR = 1e-5
"""Probabilities are clipped to at least this before ``-log``: a class the network ruled
out costs 11.5, so a strong enough neighbourhood can still bring it back."""
SEED_PROBABILITY = 0.01
"""A slice is refined inside the box of the pixels whose background probability is below
``1 - SEED_PROBABILITY``, grown by the appearance kernel's width; outside it every pixel
stays background (its probability of anything else is below 1 %)."""
_TRUNCATE = 4.0


@dataclass(frozen=True)
class CRFOptions:
    """Kernel weights and widths of the fully connected CRF (Eq. 5 of seed 003).

    Attributes:
        appearance_weight: ``w1``, the weight of the appearance (bilateral) kernel.
        appearance_mm: ``theta_alpha``, its width in position (mm).
        appearance_hu: ``theta_beta``, its width in intensity (HU).
        smoothness_weight: ``w2``, the weight of the smoothness kernel.
        smoothness_mm: ``theta_gamma``, its width (mm).
        iterations: mean-field updates.

    The defaults were chosen on validation phantoms (``research/crf/sweep.py``; the model
    card ``zoo/unet_sharp.md`` gives the sweep).
    """

    appearance_weight: float = 0.01
    appearance_mm: float = 10.0
    appearance_hu: float = 10.0
    smoothness_weight: float = 0.03
    smoothness_mm: float = 2.0
    iterations: int = 5

    def __post_init__(self) -> None:
        for name in ("appearance_weight", "smoothness_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"CRF {name} must be a number >= 0, got {value}")
        for name in ("appearance_mm", "appearance_hu", "smoothness_mm"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"CRF {name} must be a number > 0, got {value}")
        if int(self.iterations) != self.iterations or self.iterations < 1:
            raise ValueError(f"CRF iterations must be an integer >= 1, got {self.iterations}")

    def to_dict(self) -> dict:
        return asdict(self)


def _gaussian_taps(sigma: float) -> np.ndarray:
    """The unnormalised Gaussian ``exp(-k^2 / 2 sigma^2)`` at ``scipy.ndimage``'s taps."""
    radius = int(_TRUNCATE * sigma + 0.5)
    k = np.arange(-radius, radius + 1, dtype=np.float64)
    return np.exp(-0.5 * (k / sigma) ** 2)


def _blur(values: np.ndarray, sigmas: tuple[float, ...]) -> np.ndarray:
    """``values`` (spatial axes, then a class axis) convolved with the unnormalised
    Gaussian of ``sigmas`` (grid units) along each spatial axis, zero outside."""
    out = values
    for axis, sigma in enumerate(sigmas):
        taps = _gaussian_taps(sigma)
        out = ndimage.correlate1d(out, taps.astype(values.dtype), axis=axis,
                                  mode="constant", cval=0.0)
    return out


class _BilateralGrid:
    """Filters per-pixel values with ``exp(-|dp|^2 / 2 theta_p^2 - dI^2 / 2 theta_I^2)``
    (unnormalised, self included) on a 3D (row, column, intensity) grid;
    :attr:`self_weight` is the weight each pixel gets from itself there."""

    def __init__(self, image: np.ndarray, spacing: tuple[float, float], theta_mm: float,
                 theta_hu: float):
        rows, cols = image.shape
        widths = (theta_mm / spacing[0], theta_mm / spacing[1], theta_hu)  # in px, px, HU
        steps = [max(w / 2.0, 0.5) if axis < 2 else w / 2.0 for axis, w in enumerate(widths)]
        # a tent (multilinear splat, then the same read-back) has variance 1/6 grid cells:
        # the grid's Gaussian is narrowed by both and scaled to keep the kernel's integral
        self.sigmas = []
        self.scale = 1.0
        for width, step in zip(widths, steps, strict=True):
            target = width / step
            sigma = math.sqrt(max(target**2 - 1.0 / 3.0, 0.01))
            self.sigmas.append(sigma)
            self.scale *= target / sigma
        coords = [
            np.arange(rows, dtype=np.float64)[:, None].repeat(cols, 1).ravel() / steps[0],
            np.arange(cols, dtype=np.float64)[None, :].repeat(rows, 0).ravel() / steps[1],
            (image.ravel().astype(np.float64) - float(image.min())) / steps[2],
        ]
        self.shape = tuple(int(np.floor(c.max())) + 2 for c in coords)
        base = [np.floor(c).astype(np.int64) for c in coords]
        frac = [c - b for c, b in zip(coords, base, strict=True)]
        # each pixel's weight on itself through the grid (the kernel leaves it out): per
        # axis, its two splat weights f and 1 - f against the blur at offsets 0 and 1
        self.self_weight = np.full(image.size, self.scale)
        for f, sigma in zip(frac, self.sigmas, strict=True):
            self.self_weight *= f**2 + (1 - f) ** 2 + 2 * f * (1 - f) * math.exp(
                -0.5 / sigma**2)
        self.self_weight = self.self_weight.astype(np.float32)[:, None]
        n = image.size
        indices = np.empty((n, 8), np.int64)
        weights = np.empty((n, 8), np.float32)
        for corner in range(8):
            offs = [(corner >> axis) & 1 for axis in range(3)]
            indices[:, corner] = np.ravel_multi_index(
                tuple(b + o for b, o in zip(base, offs, strict=True)), self.shape
            )
            weight = np.ones(n)
            for f, o in zip(frac, offs, strict=True):
                weight *= f if o else 1.0 - f
            weights[:, corner] = weight
        # reading back: a row per pixel, its 8 corners; splatting is the transpose
        self.slice = sparse.csr_matrix(
            (weights.ravel(), indices.ravel(), np.arange(0, 8 * n + 1, 8)),
            shape=(n, int(np.prod(self.shape))),
        )
        self.splat = self.slice.T

    def __call__(self, values: np.ndarray) -> np.ndarray:
        """``values``: ``(N, K)``; returns the filtered ``(N, K)``."""
        grid = (self.splat @ values).reshape(*self.shape, values.shape[1])
        grid = _blur(grid, tuple(self.sigmas)) * np.float32(self.scale)
        return self.slice @ grid.reshape(-1, values.shape[1])


def dense_crf(
    probabilities: np.ndarray,
    image: np.ndarray,
    spacing: tuple[float, float],
    options: CRFOptions | None = None,
    hu_window: tuple[float, float] | None = None,
) -> np.ndarray:
    """Mean-field marginals of the fully connected CRF on one slice.

    Args:
        probabilities: ``(rows, cols, K)`` class probabilities of the network (K >= 2).
        image: ``(rows, cols)`` CT in HU.
        spacing: pixel size (mm) along rows and columns.
        options: kernel weights and widths (default :class:`CRFOptions`).
        hu_window: HU are clipped to it before the appearance kernel compares them.

    Returns:
        float32 ``(rows, cols, K)`` marginals ``Q`` (each pixel sums to 1).
    """
    options = options or CRFOptions()
    rows, cols, classes = probabilities.shape
    if image.shape != (rows, cols):
        raise ValueError(f"image {image.shape} and probabilities {probabilities.shape} "
                         "differ in shape")
    image = np.asarray(image, dtype=np.float32)
    if hu_window is not None:
        image = np.clip(image, *hu_window)
    unary = np.log(np.clip(probabilities.reshape(-1, classes).astype(np.float32),
                           PROBABILITY_FLOOR, None))  # -psi_u
    appearance = _BilateralGrid(image, spacing, options.appearance_mm,
                                options.appearance_hu)
    smooth_sigmas = (options.smoothness_mm / spacing[0], options.smoothness_mm / spacing[1])
    q = _softmax(unary)
    for _ in range(int(options.iterations)):
        message = options.appearance_weight * (appearance(q) - appearance.self_weight * q)
        smooth = _blur(q.reshape(rows, cols, classes), smooth_sigmas).reshape(-1, classes)
        message += options.smoothness_weight * (smooth - q)
        q = _softmax(unary + message)
    return q.reshape(rows, cols, classes)


def _softmax(logits: np.ndarray) -> np.ndarray:
    out = logits - logits.max(axis=1, keepdims=True)
    np.exp(out, out=out)
    out /= out.sum(axis=1, keepdims=True)
    return out


def _refine_box(background: np.ndarray, margin: tuple[int, int]) -> tuple[slice, slice] | None:
    seeds = background < 1.0 - SEED_PROBABILITY
    rows = np.flatnonzero(seeds.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(seeds.any(axis=0))
    return (
        slice(max(int(rows[0]) - margin[0], 0), min(int(rows[-1]) + 1 + margin[0],
                                                     background.shape[0])),
        slice(max(int(cols[0]) - margin[1], 0), min(int(cols[-1]) + 1 + margin[1],
                                                     background.shape[1])),
    )


def refine_volume(
    probabilities: np.ndarray,
    volume: np.ndarray,
    spacing: tuple[float, float],
    options: CRFOptions | None = None,
    hu_window: tuple[float, float] | None = None,
) -> list[int]:
    """Replace a canonical volume's class probabilities by the CRF's marginals, in place,
    slice by slice along the last spatial axis.

    Each slice is refined inside the box of its pixels that are not surely background
    (:data:`SEED_PROBABILITY`), grown by the appearance width; slices and pixels outside
    keep their probabilities.

    Args:
        probabilities: ``(rows, cols, depth, K)`` (float16 or float32), modified in place.
            ``K = 1`` is one foreground probability (background is ``1 - p``); else
            class 0 is background.
        volume: ``(rows, cols, depth)`` CT in HU.
        spacing: in-plane pixel size (mm) of rows and columns.
        options, hu_window: as for :func:`dense_crf`.

    Returns:
        The indices of the slices refined.
    """
    options = options or CRFOptions()
    if probabilities.shape[:3] != volume.shape:
        raise ValueError(f"probabilities {probabilities.shape} do not match the volume "
                         f"{volume.shape}")
    margin = tuple(int(math.ceil(options.appearance_mm / s)) for s in spacing)
    binary = probabilities.shape[3] == 1
    refined = []
    for k in range(probabilities.shape[2]):
        probs = probabilities[:, :, k]
        box = _refine_box(1.0 - probs[..., 0] if binary else probs[..., 0], margin)
        if box is None:
            continue
        cut = probs[box].astype(np.float32)
        if binary:
            cut = np.concatenate([1.0 - cut, cut], axis=-1)
        q = dense_crf(cut, volume[box + (k,)], spacing, options, hu_window)
        probs[box] = q[..., 1:] if binary else q
        refined.append(k)
    return refined
