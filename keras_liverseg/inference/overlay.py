"""A PNG of axial slices through the liver with the label contours, for a quick check.

Slices are shown in the canonical orientation (anterior at the top, the patient's right on
the image's left, as radiology viewers do), with square pixels, a soft-tissue window
(-160..240 HU), liver contours in green and tumor contours in red. Uses Pillow only.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from nibabel.affines import voxel_sizes
from PIL import Image, ImageDraw
from scipy import ndimage

from keras_liverseg.io.atomic import atomic_path
from keras_liverseg.io.orientation import to_canonical

__all__ = ["LIVER_COLOUR", "TUMOR_COLOUR", "overlay_slices", "render_overlay", "write_overlay"]

LIVER_COLOUR = (0, 220, 0)
TUMOR_COLOUR = (255, 40, 40)
_CAPTION = 14


def overlay_slices(labels_canonical: np.ndarray, count: int) -> list[int]:
    """Indices of up to ``count`` axial slices spread over the liver's extent (over the
    whole volume when the liver is empty), in increasing order."""
    depth = labels_canonical.shape[2]
    hits = np.flatnonzero(np.any(labels_canonical > 0, axis=(0, 1)))
    lo, hi = (int(hits[0]), int(hits[-1])) if hits.size else (0, depth - 1)
    if count <= 1:
        return [(lo + hi) // 2]
    picks = np.linspace(lo, hi, count + 2)[1:-1] if hi - lo + 1 > count else np.arange(lo, hi + 1)
    return sorted({int(round(v)) for v in picks})


def _tile(
    ct: np.ndarray, labels: np.ndarray, spacing: tuple[float, float], size: int, window
) -> Image.Image:
    rows, cols = ct.shape
    height, width = rows * spacing[0], cols * spacing[1]
    scale = size / max(height, width)
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))  # PIL: (w, h)
    low, high = window
    grey = np.nan_to_num(ct.astype(np.float32), nan=low)
    grey = ((np.clip(grey, low, high) - low) / (high - low) * 255).astype(np.uint8)
    image = Image.fromarray(grey).resize(shape, Image.Resampling.BILINEAR).convert("RGB")
    label_image = Image.fromarray(labels.astype(np.uint8)).resize(shape, Image.Resampling.NEAREST)
    big = np.asarray(label_image)
    pixels = np.array(image)
    for mask, colour in ((big > 0, LIVER_COLOUR), (big == 2, TUMOR_COLOUR)):
        edge = mask & ~ndimage.binary_erosion(mask, border_value=0)
        pixels[edge] = colour
    return Image.fromarray(pixels)


def render_overlay(
    volume: np.ndarray,
    labels: np.ndarray,
    affine: np.ndarray,
    *,
    max_slices: int = 6,
    columns: int = 3,
    tile_size: int = 256,
    window: tuple[float, float] = (-160.0, 240.0),
) -> Image.Image:
    """Render the overlay image.

    Args:
        volume: CT in HU, on the same grid as ``labels`` (any orientation; the first three
            axes are spatial).
        labels: uint8 label map (0/1/2).
        affine: voxel-to-world affine of both.
        max_slices: number of axial slices shown.
        columns: tiles per row.
        tile_size: longest side of a tile, in pixels.
        window: HU display window.
    """
    volume = np.asanyarray(volume).reshape(np.shape(volume)[:3])
    labels = np.asanyarray(labels).reshape(np.shape(labels)[:3])
    ct, canonical_affine, _ = to_canonical(volume, affine)
    lab, _, _ = to_canonical(labels, affine)
    spacing = voxel_sizes(canonical_affine)
    picks = overlay_slices(lab, max_slices)
    tiles = []
    for k in picks:
        tile = _tile(ct[:, :, k], lab[:, :, k], (spacing[0], spacing[1]), tile_size, window)
        z = float((canonical_affine @ [0, 0, k, 1])[2])
        tiles.append((tile, f"slice {k}  z={z:.1f} mm"))
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    cell_w = max(t.width for t, _ in tiles)
    cell_h = max(t.height for t, _ in tiles) + _CAPTION
    sheet = Image.new("RGB", (columns * cell_w, rows * cell_h), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    for n, (tile, caption) in enumerate(tiles):
        x, y = (n % columns) * cell_w, (n // columns) * cell_h
        sheet.paste(tile, (x, y + _CAPTION))
        draw.text((x + 2, y + 1), caption, fill=(255, 255, 255))
    return sheet


def write_overlay(
    volume: np.ndarray, labels: np.ndarray, affine: np.ndarray, path: str | os.PathLike, **kwargs
) -> Path:
    """Render (see :func:`render_overlay`) and save as PNG atomically."""
    image = render_overlay(volume, labels, affine, **kwargs)
    with atomic_path(path) as temp:
        image.save(temp, format="PNG")
    return Path(path)
