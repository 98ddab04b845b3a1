"""Clean up a predicted label map (NumPy/SciPy, no Keras).

Steps, each switchable with :class:`PostprocessOptions` and run in this order:

0. ``bridge_mm``: a thick region (5 ml or more) joined to the organ's main body only through
   a neck narrower than this (in every direction across it) is cut off (:func:`cut_bridges`;
   needs the spacing). Network false positives in bowel touching the
   liver's tip otherwise stay in the largest component. 0 (the default) disables it: on
   phantoms it also cuts off real liver (see :data:`BRIDGE_MM`).
1. ``largest_component``: the liver is the largest 3D connected component (6-connectivity)
   of liver-or-tumor; everything outside it becomes background.
2. ``fill_holes``: background enclosed by liver-or-tumor in 3D becomes liver. (Not slice
   by slice: on an axial slice the liver encloses the gallbladder, the IVC and hilar
   structures, which are not liver; filling them cost 0.005-0.009 liver Dice per case on
   validation phantoms, zoo/unet_sharp.md.)
3. ``tumor_inside_liver``: tumor is kept only inside the liver of steps 1-2 (tumor outside
   it becomes background). Without step 1 every tumor voxel is inside, so it is a no-op.
4. ``min_lesion_mm3``: tumor lesions (26-connected components) smaller than this become
   liver. 0 disables it.
5. ``lesion_growth_mm``: each remaining lesion grows into the adjacent liver that looks like
   it in the CT, up to this distance (:func:`grow_lesions`; needs the image). 0 disables it.
6. ``min_lesion_prob``: each lesion whose mean tumor probability (the network's, before the
   argmax, over the lesion's voxels) is below this becomes liver
   (:func:`drop_unsure_lesions`; needs the probabilities). 0 disables it. Last, so that it
   judges each lesion as the report lists it, grown (before growth, the voxels the argmax
   made tumor have a mean of 0.8-0.9 for true and false lesions alike; zoo/unet_sharp.md,
   "Lesion confidence").

All work happens inside the bounding box of the foreground, so memory stays small even for
large volumes. Labels follow the LiTS convention: 0 background, 1 liver, 2 tumor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse import csgraph

__all__ = [
    "GROWTH_MIN_CONTRAST_HU",
    "GROWTH_SMOOTHING_MM",
    "LESION_CONNECTIVITY",
    "LIVER_CONNECTIVITY",
    "PostprocessOptions",
    "BRIDGE_MIN_BODY_ML",
    "BRIDGE_MM",
    "bounding_box",
    "component_sizes",
    "cut_bridges",
    "drop_unsure_lesions",
    "grow_lesions",
    "label_components",
    "lesion_probabilities",
    "postprocess_labels",
]

LIVER_CONNECTIVITY = ndimage.generate_binary_structure(3, 1)
"""Face (6-)connectivity for the liver component: thin diagonal bridges do not join organs."""
LESION_CONNECTIVITY = ndimage.generate_binary_structure(3, 3)
"""Full (26-)connectivity for lesions: a lesion is not split by a diagonal step."""
BRIDGE_MM = 6.0
"""The ``bridge_mm`` to use when switching the step on (it is off by default). On the
largest liver component of the reference labels of 30 phantoms (seeds 0-29, 1.5 mm pixels,
1, 2.5 and 5 mm slices) 4, 6 and 8 mm change no voxel, 10 mm cuts 6.3 % off one liver. But
at 0.8 mm pixels (512x512, seeds 0-10) seed 1 loses 3.8 % at 2.5 and 5 mm slices whatever
the width (4-8 mm), and seed 9 1.5 % at 1 mm slices: an 18 ml (15 ml) part of the liver
hangs on a neck of 5-9 mm² (17 mm²), as thin as the bridges the step cuts, so no shape rule
tells them apart and the step stays off unless asked for. (Those were generator 1.1.0's
phantoms; on generator 2.0's, seeds 0-11 at 0.8 x 0.8 x 2.5 mm, it cuts no voxel: whether
to turn it on is for weights trained on generator 2.0, issue 22.)"""
BRIDGE_MIN_BODY_ML = 5.0
"""Smallest region :func:`cut_bridges` cuts off: bowel loops are larger; the liver's own
pieces that an opening of 4-8 mm separates on phantoms are 1-3 ml."""
GROWTH_SMOOTHING_MM = 2.0
"""Gaussian smoothing (sigma, mm) of the CT before :func:`grow_lesions` compares HU."""
GROWTH_MIN_CONTRAST_HU = 10.0
"""A lesion whose median HU is closer than this to the liver's does not grow."""


@dataclass(frozen=True)
class PostprocessOptions:
    """Which post-processing steps to run (see the module docstring)."""

    largest_component: bool = True
    fill_holes: bool = True
    tumor_inside_liver: bool = True
    min_lesion_mm3: float = 0.0
    lesion_growth_mm: float = 0.0
    min_lesion_prob: float = 0.0
    bridge_mm: float = 0.0

    @classmethod
    def off(cls) -> PostprocessOptions:
        """No post-processing at all."""
        return cls(False, False, False, 0.0, 0.0, bridge_mm=0.0)

    @property
    def enabled(self) -> bool:
        return (
            self.largest_component
            or self.fill_holes
            or self.tumor_inside_liver
            or self.min_lesion_mm3 > 0
            or self.lesion_growth_mm > 0
            or self.min_lesion_prob > 0
            or self.bridge_mm > 0
        )


def bounding_box(mask: np.ndarray, margin: int = 0) -> tuple[slice, ...] | None:
    """Slices of the smallest box holding every True voxel, grown by ``margin`` voxels and
    clipped to the array; None for an empty mask."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        if hits.size == 0:
            return None
        box.append(slice(int(hits[0]), int(hits[-1]) + 1))
    return widen_box(tuple(box), [margin] * mask.ndim, mask.shape)


def widen_box(
    box: tuple[slice, ...], margins: list[int], shape: tuple[int, ...]
) -> tuple[slice, ...]:
    """``box`` grown by ``margins[axis]`` voxels on both sides, clipped to ``shape``."""
    return tuple(
        slice(max(b.start - m, 0), min(b.stop + m, n))
        for b, m, n in zip(box, margins, shape, strict=True)
    )


def component_sizes(components: np.ndarray, count: int) -> np.ndarray:
    """Voxel count of each label ``0..count`` of a label image, slab by slab (``bincount``
    on the whole image would first copy it as int64)."""
    sizes = np.zeros(count + 1, dtype=np.int64)
    step = max(1, (1 << 22) // max(1, components[0].size))
    for start in range(0, components.shape[0], step):
        sizes += np.bincount(components[start : start + step].ravel(), minlength=count + 1)
    return sizes


def label_components(mask: np.ndarray, structure: np.ndarray) -> tuple[np.ndarray, int]:
    """``ndimage.label``: int32 component ids and their count.

    (A uint16 output would halve the memory, but SciPy then labels twice into int32 when
    the components do not fit, which costs more than it saves.)
    """
    return ndimage.label(mask, structure=structure)


def _largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest component of ``mask``, written into ``mask`` itself (saves memory)."""
    components, count = label_components(mask, LIVER_CONNECTIVITY)
    if count <= 1:
        return mask
    sizes = component_sizes(components, count)
    sizes[0] = 0
    np.equal(components, int(np.argmax(sizes)), out=mask)
    return mask


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill the holes of ``mask`` in 3D (a new array)."""
    return ndimage.binary_fill_holes(mask)


def postprocess_labels(
    labels: np.ndarray,
    voxel_volume_mm3: float,
    options: PostprocessOptions | None = None,
    *,
    inplace: bool = False,
    image: np.ndarray | None = None,
    spacing: tuple[float, float, float] | None = None,
    tumor_prob: np.ndarray | None = None,
) -> np.ndarray:
    """Apply the post-processing steps to a 3D label map.

    Args:
        labels: uint8 ``(X, Y, Z)`` map, axial slices along the last axis.
        voxel_volume_mm3: volume of one voxel, for ``min_lesion_mm3``.
        options: steps to run; defaults to all but the lesion-size filter and growth.
        inplace: modify ``labels`` (a uint8 array) instead of a copy, to save memory.
        image: the CT in HU on the labels' grid, for ``lesion_growth_mm``.
        spacing: voxel size in mm along the three axes, for ``lesion_growth_mm`` and
            ``bridge_mm``.
        tumor_prob: the tumor probability of every voxel on the labels' grid (any float
            dtype), for ``min_lesion_prob``.

    Returns:
        The post-processed labels (``labels`` itself when ``inplace``).

    Raises:
        ValueError: ``lesion_growth_mm`` without ``image`` and ``spacing``,
            ``min_lesion_prob`` without ``tumor_prob`` (when there is a lesion to judge),
            or either of another shape; ``bridge_mm`` without ``spacing``.
    """
    options = options or PostprocessOptions()
    if options.bridge_mm > 0 and spacing is None:
        raise ValueError("bridge_mm needs the spacing")
    if options.lesion_growth_mm > 0:
        if image is None or spacing is None:
            raise ValueError("lesion_growth_mm needs the image and its spacing")
        if image.shape != labels.shape:
            raise ValueError(f"image shape {image.shape} differs from labels {labels.shape}")
    if options.min_lesion_prob > 0 and tumor_prob is not None:
        if tumor_prob.shape != labels.shape:
            raise ValueError(f"tumor_prob shape {tumor_prob.shape} differs from labels "
                             f"{labels.shape}")
    if inplace:
        if not isinstance(labels, np.ndarray) or labels.dtype != np.uint8:
            raise TypeError("inplace post-processing needs a uint8 NumPy array")
        out = labels
    else:
        out = np.array(labels, dtype=np.uint8, copy=True)
    if not options.enabled:
        return out
    box = bounding_box(out > 0, margin=1)
    if box is None:
        return out
    crop = out[box]  # a view: written back in place below
    organ = crop > 0
    if options.bridge_mm > 0:
        organ = cut_bridges(organ, spacing, options.bridge_mm)
    if options.largest_component:
        organ = _largest_component(organ)
    if options.fill_holes:
        organ = _fill_holes(organ)
    tumor = crop == 2
    if options.tumor_inside_liver:
        tumor &= organ
    if options.min_lesion_mm3 > 0 and tumor.any():
        lesions, count = label_components(tumor, LESION_CONNECTIVITY)
        sizes = component_sizes(lesions, count) * float(voxel_volume_mm3)
        small = sizes < options.min_lesion_mm3
        small[0] = False
        tumor &= ~small[lesions]
        del lesions
    np.copyto(crop, organ, casting="unsafe")
    del organ
    crop[tumor] = 2
    if options.lesion_growth_mm > 0 and tumor.any():
        grow_lesions(crop, image[box], spacing, options.lesion_growth_mm)
    if options.min_lesion_prob > 0 and tumor.any():
        if tumor_prob is None:
            raise ValueError("min_lesion_prob needs the tumor probabilities")
        drop_unsure_lesions(crop, tumor_prob[box], options.min_lesion_prob)
    return out


def lesion_probabilities(
    components: np.ndarray, count: int, tumor_prob: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Mean and max of ``tumor_prob`` over each lesion ``1..count`` of ``components``
    (a label image of the same shape), as two float64 arrays of length ``count``. Only
    lesion voxels are read, so the arrays may be large."""
    inside = components > 0
    ids = components[inside]
    values = np.asarray(tumor_prob[inside], dtype=np.float64)
    sizes = np.bincount(ids, minlength=count + 1)[1:]
    means = np.bincount(ids, weights=values, minlength=count + 1)[1:] / np.maximum(sizes, 1)
    peaks = np.zeros(count + 1)
    np.maximum.at(peaks, ids, values)
    return means, peaks[1:]


def drop_unsure_lesions(
    labels: np.ndarray, tumor_prob: np.ndarray, min_mean: float
) -> np.ndarray:
    """Turn each lesion the network is unsure of into liver, in place.

    A lesion is a 26-connected component of label 2, as the report counts them; it
    becomes liver (label 1) when its voxels' mean ``tumor_prob`` is below ``min_mean``.
    The mean, not the maximum: false lesions of the default weights on real scans peak
    at probability 1.00 as true ones do, but their mean is lower (zoo/unet_sharp.md,
    "Lesion confidence"). Nothing else changes.

    Args:
        labels: uint8 ``(X, Y, Z)`` map (0 background, 1 liver, 2 tumor), changed in place.
        tumor_prob: the tumor probability of each voxel (before the argmax), same shape.
        min_mean: the smallest mean probability of a kept lesion; 0 keeps all.

    Returns:
        ``labels``.
    """
    tumor = labels == 2
    box = bounding_box(tumor)
    if min_mean <= 0 or box is None:
        return labels
    lesions, count = label_components(tumor[box], LESION_CONNECTIVITY)
    means, _ = lesion_probabilities(lesions, count, tumor_prob[box])
    unsure = np.concatenate([[False], means < min_mean])
    view = labels[box]
    view[unsure[lesions]] = 1
    return labels


def grow_lesions(
    labels: np.ndarray,
    image: np.ndarray,
    spacing: tuple[float, float, float],
    max_mm: float,
    *,
    smoothing_mm: float = GROWTH_SMOOTHING_MM,
    min_contrast_hu: float = GROWTH_MIN_CONTRAST_HU,
) -> np.ndarray:
    """Grow each tumor lesion into the adjacent liver that looks like it (in place).

    Region growing from the network's lesions, bounded by intensity and distance: the CT
    is smoothed (Gaussian, ``smoothing_mm``); for each lesion (26-connected tumor
    component) the threshold is halfway between its median HU and the median HU of the
    liver (label 1); liver voxels on the lesion's side of that threshold that connect to
    the lesion (6-connectivity) and lie within ``max_mm`` of it become tumor. Lesions
    within ``min_contrast_hu`` of the liver do not grow. Every lesion grows from the
    labels as given (one lesion's growth does not seed another's), and only into liver.

    This corrects the default weights' under-segmentation of the lesions they find
    (relative volume difference about -0.5 on phantoms); the distance is chosen on
    validation phantoms (``research/unet_sharp/postprocess_sweep.py``, zoo/unet_sharp.md).

    Args:
        labels: uint8 ``(X, Y, Z)`` map (0 background, 1 liver, 2 tumor), changed in place.
        image: CT in HU on the same grid.
        spacing: voxel size in mm along the three axes.
        max_mm: the farthest a lesion grows, mm.
        smoothing_mm: sigma of the Gaussian smoothing, mm (0: none).
        min_contrast_hu: smallest difference of medians for a lesion to grow.

    Returns:
        ``labels``.
    """
    spacing = tuple(float(s) for s in spacing)
    organ_box = bounding_box(labels > 0)
    if max_mm <= 0 or organ_box is None:
        return labels
    # Work inside the organ's box, widened by the Gaussian's reach (scipy's default
    # truncation, 4 sigma) so that every organ voxel is smoothed as in the whole image.
    pads = [int(4 * smoothing_mm / s + 0.5) + 1 for s in spacing]
    box = widen_box(organ_box, pads, labels.shape)
    _grow_in_box(labels[box], np.asarray(image[box], dtype=np.float32), spacing, max_mm,
                 smoothing_mm, min_contrast_hu)
    return labels


def _grow_in_box(labels, hu, spacing, max_mm, smoothing_mm, min_contrast_hu) -> None:
    """:func:`grow_lesions` on a box holding the whole organ (``labels`` is a view)."""
    tumor = labels == 2
    liver = labels == 1
    if not tumor.any() or not liver.any():
        return
    if smoothing_mm > 0:
        hu = ndimage.gaussian_filter(hu, [smoothing_mm / s for s in spacing])
    liver_hu = float(np.median(hu[liver]))
    lesions, _ = label_components(tumor, LESION_CONNECTIVITY)
    del tumor
    reach = [int(np.ceil(max_mm / s)) + 1 for s in spacing]
    grown = np.zeros_like(liver)
    for number, found in enumerate(ndimage.find_objects(lesions), start=1):
        if found is None:
            continue
        sub = widen_box(found, reach, labels.shape)
        seed = lesions[sub] == number
        contrast = float(np.median(hu[sub][seed])) - liver_hu
        if abs(contrast) < min_contrast_hu:
            continue
        threshold = liver_hu + 0.5 * contrast
        alike = hu[sub] < threshold if contrast < 0 else hu[sub] > threshold
        near = ndimage.distance_transform_edt(~seed, sampling=spacing) <= max_mm
        region = ndimage.binary_propagation(seed, mask=(alike & near & liver[sub]) | seed)
        grown[sub] |= region & ~seed
    labels[grown] = 2


def cut_bridges(
    mask: np.ndarray, spacing: tuple[float, float, float], bridge_mm: float
) -> np.ndarray:
    """``mask`` without the thick regions joined to its main body only through a thin neck.

    The organ is opened with a ball of radius ``bridge_mm / 2`` (through distance
    transforms, so in millimetres whatever the voxel size): its 6-connected components are
    the organ's thick bodies, the largest its core. The voxels the opening removed (thin
    parts: bridges, the liver's tip and edges) go to the body nearest to them along paths
    inside the organ (Dijkstra over face neighbours, each step weighted by how shallow it
    is: :func:`_owners`), so a bridge splits in its narrowest part. A body of at least
    :data:`BRIDGE_MIN_BODY_ML` that touches the rest of its organ component through a cut
    of at most ``max(bridge_mm**2, 2 faces)`` mm² (a neck narrow in every direction across
    it, not a thin sheet) is removed with its thin voxels. Thin parts owned by the core, and
    everything not joined to the core, stay. Cost: about 0.7-1.3 s on a 512x512x100 scan
    on a 2-core CPU, mostly two distance transforms of the organ's box.

    Args:
        mask: boolean ``(X, Y, Z)`` organ mask.
        spacing: voxel size in mm along the three axes.
        bridge_mm: the widest neck that is cut, mm (0: nothing is cut).

    Returns:
        A new boolean mask (``mask`` itself when nothing is cut).
    """
    spacing = tuple(float(s) for s in spacing)
    box = bounding_box(mask, margin=1) if bridge_mm > 0 else None
    if box is None:
        return mask
    organ = np.asarray(mask[box], dtype=bool)
    radius = 0.5 * float(bridge_mm)
    depth = ndimage.distance_transform_edt(organ, sampling=spacing)
    eroded = depth > radius
    # Each ball of the opening holds its centre and, when the radius spans the diagonal of
    # the two finest voxel sides, meets the balls of 26-neighbouring centres: one eroded
    # piece then makes one body, and the second distance transform is not needed.
    finest = sorted(spacing)[:2]
    if label_components(eroded, LESION_CONNECTIVITY)[1] <= 1 and radius >= np.hypot(*finest):
        return mask
    opened = ndimage.distance_transform_edt(~eroded, sampling=spacing) <= radius
    del eroded
    opened &= organ
    bodies, count = label_components(opened, LIVER_CONNECTIVITY)
    if count <= 1:
        return mask
    sizes = component_sizes(bodies, count)
    sizes[0] = 0
    core = int(np.argmax(sizes))
    owner = _owners(organ, opened, bodies, spacing, depth, radius)
    del depth
    face_area = np.array([spacing[1] * spacing[2], spacing[0] * spacing[2],
                          spacing[0] * spacing[1]])
    cut = np.zeros(count + 1)
    for axis in range(3):
        low = [slice(None)] * 3
        high = [slice(None)] * 3
        low[axis], high[axis] = slice(None, -1), slice(1, None)
        a, b = owner[tuple(low)], owner[tuple(high)]
        border = (a != b) & (a >= 0) & (b >= 0)
        for side in (a[border], b[border]):
            cut += np.bincount(side, minlength=count + 1)[: count + 1] * face_area[axis]
    components, _ = label_components(organ, LIVER_CONNECTIVITY)
    joined = np.zeros(count + 1, bool)
    joined[np.unique(bodies[components == components[bodies == core][0]])] = True
    voxel_ml = float(np.prod(spacing)) / 1000.0
    drop = ((sizes * voxel_ml >= BRIDGE_MIN_BODY_ML)
            & (cut <= max(float(bridge_mm) ** 2, 2 * float(face_area.max())))
            & joined)
    drop[0] = drop[core] = False
    if not drop.any():
        return mask
    out = np.array(mask, dtype=bool, copy=True)
    gone = np.zeros(count + 2, bool)
    gone[:-1] = drop
    out[box] &= ~gone[owner]  # owner -1 (background) reads gone[-1], False
    return out


def _owners(organ: np.ndarray, opened: np.ndarray, bodies: np.ndarray,
            spacing: tuple[float, ...], depth: np.ndarray, radius: float) -> np.ndarray:
    """Body id of every organ voxel (-1 outside the organ): the opened voxels' own body,
    the thin voxels' nearest body along paths inside the organ, where a step costs its
    length times ``(radius / depth)**2`` (``depth``: distance to the background, mm), so
    that shallow necks cost most and the split falls in the neck, not in the thin but
    deeper tip of the liver beside it (0 when they reach none)."""
    owner = np.where(organ, bodies, -1).astype(np.int32)
    thin = organ & ~opened
    if not thin.any():
        return owner
    seeds = opened & ndimage.binary_dilation(thin, LIVER_CONNECTIVITY)
    nodes = thin | seeds
    index = np.full(organ.shape, -1, np.int32)
    n = int(np.count_nonzero(nodes))
    index[nodes] = np.arange(n, dtype=np.int32)
    floor = 0.5 * min(spacing)
    cost = (radius / np.maximum(depth[nodes], floor)) ** 2
    rows, cols, weights = [], [], []
    for axis in range(3):
        low = [slice(None)] * 3
        high = [slice(None)] * 3
        low[axis], high[axis] = slice(None, -1), slice(1, None)
        a, b = index[tuple(low)], index[tuple(high)]
        pair = (a >= 0) & (b >= 0)
        rows.append(a[pair])
        cols.append(b[pair])
        weights.append((0.5 * spacing[axis]) * (cost[rows[-1]] + cost[cols[-1]]))
    graph = sparse.csr_matrix(
        (np.concatenate(weights), (np.concatenate(rows), np.concatenate(cols))),
        shape=(n, n))
    seed_nodes = index[seeds]
    _, _, sources = csgraph.dijkstra(graph, directed=False, indices=seed_nodes,
                                     min_only=True, return_predecessors=True)
    body_of_node = np.zeros(n, np.int32)
    body_of_node[seed_nodes] = bodies[seeds]
    thin_nodes = index[thin]
    found = sources[thin_nodes]
    owner[thin] = np.where(found >= 0, body_of_node[np.maximum(found, 0)], 0)
    return owner
