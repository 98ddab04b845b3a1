"""Contrast-limited adaptive histogram equalisation (CLAHE) of a CT slice, in NumPy.

ES-UNet++ (Cui, Xiao et al., seed 003, Sec. 4.1) enhances slices with CLAHE (clip limit 4,
8x8 tiles) after windowing to [-100, 400] HU. Here it is a training augmentation
(:class:`~keras_liverseg.data.sampler.Augmentation`, ``clahe``): the window is equalised
and mapped back to HU, so the model's own ``HUWindow`` still applies.

Algorithm (Zuiderveld 1994): per tile, a histogram of ``bins`` bins is clipped at
``clip_limit`` times the mean bin count, the excess is spread evenly over all bins, and the
cumulative histogram is the tile's grey-level mapping; every pixel takes the bilinear
interpolation of the mappings of the four nearest tile centres.
"""

from __future__ import annotations

import numpy as np


def clahe(
    image: np.ndarray,
    window: tuple[float, float] = (-100.0, 400.0),
    clip_limit: float = 4.0,
    tiles: tuple[int, int] = (8, 8),
    bins: int = 256,
) -> np.ndarray:
    """Equalise the HU ``window`` of a 2D slice; values outside it are unchanged."""
    low, high = window
    image = np.asarray(image, dtype=np.float32)
    scaled = np.clip((image - low) / (high - low), 0.0, 1.0)
    levels = np.minimum((scaled * bins).astype(np.int64), bins - 1)
    height, width = levels.shape
    ty, tx = tiles
    rows = np.linspace(0, height, ty + 1).astype(int)
    cols = np.linspace(0, width, tx + 1).astype(int)
    mappings = np.empty((ty, tx, bins), dtype=np.float32)
    for i in range(ty):
        for j in range(tx):
            tile = levels[rows[i]:rows[i + 1], cols[j]:cols[j + 1]]
            histogram = np.bincount(tile.ravel(), minlength=bins).astype(np.float64)
            limit = max(clip_limit * tile.size / bins, 1.0)
            excess = np.maximum(histogram - limit, 0).sum()
            histogram = np.minimum(histogram, limit) + excess / bins
            cdf = np.cumsum(histogram)
            mappings[i, j] = (cdf - cdf[0]) / max(cdf[-1] - cdf[0], 1e-12)
    # bilinear interpolation between tile centres
    centre_y = (rows[:-1] + rows[1:] - 1) / 2.0
    centre_x = (cols[:-1] + cols[1:] - 1) / 2.0
    y0, wy = _interpolation(np.arange(height), centre_y)
    x0, wx = _interpolation(np.arange(width), centre_x)
    y1, x1 = np.minimum(y0 + 1, ty - 1), np.minimum(x0 + 1, tx - 1)
    top = (mappings[y0[:, None], x0[None, :], levels] * (1 - wx)[None, :]
           + mappings[y0[:, None], x1[None, :], levels] * wx[None, :])
    bottom = (mappings[y1[:, None], x0[None, :], levels] * (1 - wx)[None, :]
              + mappings[y1[:, None], x1[None, :], levels] * wx[None, :])
    equalised = top * (1 - wy)[:, None] + bottom * wy[:, None]
    inside = (image >= low) & (image <= high)
    return np.where(inside, low + equalised * (high - low), image).astype(np.float32)


def _interpolation(positions: np.ndarray, centres: np.ndarray):
    """Index of the tile centre at or before each position, and the weight of the next."""
    index = np.clip(np.searchsorted(centres, positions, side="right") - 1, 0, len(centres) - 1)
    following = np.minimum(index + 1, len(centres) - 1)
    span = np.where(following > index, centres[following] - centres[index], 1.0)
    weight = np.clip((positions - centres[index]) / span, 0.0, 1.0)
    return index, weight.astype(np.float32)
