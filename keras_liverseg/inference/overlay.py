"""A PNG of axial slices through the liver with the label contours, for a quick check.

Slices are shown in the canonical orientation (anterior at the top, the patient's right on
the image's left, as radiology viewers do), with square pixels, a soft-tissue window
(-160..240 HU), liver contours in green and tumor contours in red. Given a reference
(``liverseg evaluate --overlay``), its contours are drawn dashed over them, liver in white and
tumor in yellow. A legend under the slices gives each colour's meaning with the volume it
outlines (and the number of lesions). Uses Pillow only (its default font).
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

__all__ = [
    "GT_LIVER_COLOUR",
    "GT_TUMOR_COLOUR",
    "LIVER_COLOUR",
    "TUMOR_COLOUR",
    "legend_entries",
    "overlay_slices",
    "render_overlay",
    "write_overlay",
]

LIVER_COLOUR = (0, 220, 0)
TUMOR_COLOUR = (255, 40, 40)
GT_LIVER_COLOUR = (255, 255, 255)
"""The reference's liver contour (dashed), with ``gt``."""
GT_TUMOR_COLOUR = (255, 230, 0)
"""The reference's tumor contour (dashed), with ``gt``."""
_CAPTION = 14
_LEGEND_ROW = 14
_SWATCH = 10
_DASH = 3
"""Dashes of the reference's contours: blocks of this many pixels, every other one drawn."""


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


def _edges(labels: np.ndarray, shape: tuple[int, int]) -> list[np.ndarray]:
    """The liver and tumor contours of a label slice, resized to ``shape`` (PIL's (w, h))."""
    big = np.asarray(Image.fromarray(labels.astype(np.uint8)).resize(shape,
                                                                     Image.Resampling.NEAREST))
    return [mask & ~ndimage.binary_erosion(mask, border_value=0) for mask in (big > 0, big == 2)]


def _tile(
    ct: np.ndarray, labels: np.ndarray, spacing: tuple[float, float], size: int, window,
    gt: np.ndarray | None = None,
) -> Image.Image:
    rows, cols = ct.shape
    height, width = rows * spacing[0], cols * spacing[1]
    scale = size / max(height, width)
    shape = (max(1, round(width * scale)), max(1, round(height * scale)))  # PIL: (w, h)
    low, high = window
    grey = np.nan_to_num(ct.astype(np.float32), nan=low)
    grey = ((np.clip(grey, low, high) - low) / (high - low) * 255).astype(np.uint8)
    image = Image.fromarray(grey).resize(shape, Image.Resampling.BILINEAR).convert("RGB")
    pixels = np.array(image)
    for edge, colour in zip(_edges(labels, shape), (LIVER_COLOUR, TUMOR_COLOUR), strict=True):
        pixels[edge] = colour
    if gt is not None:  # dashed on top, so that both show where the contours coincide
        y, x = np.indices(pixels.shape[:2])
        dashes = (y // _DASH + x // _DASH) % 2 == 0
        for edge, colour in zip(_edges(gt, shape), (GT_LIVER_COLOUR, GT_TUMOR_COLOUR),
                                strict=True):
            pixels[edge & dashes] = colour
    return Image.fromarray(pixels)


def _ml(value: float) -> str:
    return f"{value:.0f} mL" if value >= 100 else f"{value:.1f} mL"


def legend_entries(
    labels: np.ndarray, affine: np.ndarray, gt: np.ndarray | None = None
) -> list[tuple[tuple[int, int, int], bool, str]]:
    """The legend's rows: ``(colour, dashed, text)``, e.g. ``"liver 1234 mL"`` and
    ``"tumor 12.3 mL, 2 lesions"`` (lesions as in the report: 26-connected components);
    with ``gt``, the prediction's and the reference's."""
    from keras_liverseg.inference.report import lesions, volume_summary

    def rows(volume, colours, dashed, prefix):
        summary = volume_summary(volume, affine)
        count = len(lesions(volume, affine))
        return [(colours[0], dashed, f"{prefix}liver {_ml(summary['liver_volume_ml'])}"),
                (colours[1], dashed, f"{prefix}tumor {_ml(summary['tumor_volume_ml'])}, "
                                     f"{count} lesion{'' if count == 1 else 's'}")]

    if gt is None:
        return rows(labels, (LIVER_COLOUR, TUMOR_COLOUR), False, "")
    return (rows(labels, (LIVER_COLOUR, TUMOR_COLOUR), False, "predicted ")
            + rows(gt, (GT_LIVER_COLOUR, GT_TUMOR_COLOUR), True, "reference "))


def _legend_rows(entries, width: int) -> list[list[tuple]]:
    """The legend laid out in rows of ``(x, colour or None, dashed, text)``: the entries of
    the prediction on one row and the reference's on the next where they fit in ``width``,
    else one per row; a text still too wide goes on after its comma on the next row."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    rows, row, x = [], [], 0
    for n, (colour, dashed, text) in enumerate(entries):
        size = _SWATCH + 6 + draw.textlength(text) + 12
        if row and (n % 2 == 0 or x + size > width):
            rows.append(row)
            row, x = [], 0
        first, _, rest = text.partition(", ")
        if not row and rest and size > width:
            rows.append([(0, colour, dashed, first + ",")])
            colour, text = None, rest
        row.append((x, colour, dashed, text))
        x += size
    return rows + [row] if row else rows


def _draw_legend(sheet: Image.Image, top: int, rows) -> None:
    draw = ImageDraw.Draw(sheet)
    for n, row in enumerate(rows):
        y = top + n * _LEGEND_ROW + 2
        for x, colour, dashed, text in row:
            x += 3
            if colour is not None:
                box = (x, y + 1, x + _SWATCH - 1, y + _SWATCH)
                if dashed:  # a dashed contour's swatch: an outline in its colour, broken
                    draw.rectangle(box, outline=colour, width=2)
                    draw.rectangle((x + 3, y + 1, x + _SWATCH - 4, y + _SWATCH), fill=(0, 0, 0))
                else:
                    draw.rectangle(box, fill=colour)
            draw.text((x + _SWATCH + 4, y), text, fill=(255, 255, 255))


def render_overlay(
    volume: np.ndarray | None,
    labels: np.ndarray,
    affine: np.ndarray,
    *,
    gt: np.ndarray | None = None,
    legend: bool = True,
    max_slices: int = 6,
    columns: int = 3,
    tile_size: int = 256,
    window: tuple[float, float] = (-160.0, 240.0),
) -> Image.Image:
    """Render the overlay image.

    Args:
        volume: CT in HU, on the same grid as ``labels`` (any orientation; the first three
            axes are spatial); ``None``: contours on black.
        labels: uint8 label map (0/1/2).
        affine: voxel-to-world affine of both.
        gt: a reference label map (0/1/2) on the same grid: its contours are drawn dashed
            (liver white, tumor yellow), and the slices span both label maps' liver.
        legend: a legend under the slices (colours, volumes, lesion counts); the slices
            above it are the same with or without it.
        max_slices: number of axial slices shown.
        columns: tiles per row.
        tile_size: longest side of a tile, in pixels.
        window: HU display window.
    """
    labels = np.asanyarray(labels).reshape(np.shape(labels)[:3])
    if volume is None:
        volume = np.full(labels.shape, window[0], np.float32)
    volume = np.asanyarray(volume).reshape(np.shape(volume)[:3])
    ct, canonical_affine, _ = to_canonical(volume, affine)
    lab, _, _ = to_canonical(labels, affine)
    ref = None
    if gt is not None:
        gt = np.asanyarray(gt).reshape(np.shape(gt)[:3])
        if gt.shape != labels.shape:
            raise ValueError(f"reference shape {gt.shape} differs from labels {labels.shape}")
        ref, _, _ = to_canonical(gt, affine)
    spacing = voxel_sizes(canonical_affine)
    picks = overlay_slices(lab if ref is None else np.maximum(lab, ref), max_slices)
    tiles = []
    for k in picks:
        tile = _tile(ct[:, :, k], lab[:, :, k], (spacing[0], spacing[1]), tile_size, window,
                     None if ref is None else ref[:, :, k])
        z = float((canonical_affine @ [0, 0, k, 1])[2])
        tiles.append((tile, f"slice {k}  z={z:.1f} mm"))
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    cell_w = max(t.width for t, _ in tiles)
    cell_h = max(t.height for t, _ in tiles) + _CAPTION
    lines = _legend_rows(legend_entries(labels, affine, gt), columns * cell_w) if legend else []
    height = rows * cell_h + (len(lines) * _LEGEND_ROW + 4 if lines else 0)
    sheet = Image.new("RGB", (columns * cell_w, height), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    for n, (tile, caption) in enumerate(tiles):
        x, y = (n % columns) * cell_w, (n // columns) * cell_h
        sheet.paste(tile, (x, y + _CAPTION))
        draw.text((x + 2, y + 1), caption, fill=(255, 255, 255))
    if lines:
        _draw_legend(sheet, rows * cell_h, lines)
    return sheet


def write_overlay(
    volume: np.ndarray, labels: np.ndarray, affine: np.ndarray, path: str | os.PathLike, **kwargs
) -> Path:
    """Render (see :func:`render_overlay`) and save as PNG atomically."""
    image = render_overlay(volume, labels, affine, **kwargs)
    with atomic_path(path) as temp:
        image.save(temp, format="PNG")
    return Path(path)
