"""The zoo's table: every named model and the configuration it is built with.

Which weights each entry has is not written here but in the weights index
(:mod:`keras_liverseg.zoo.index`), so that a release adds weights without a code change.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from keras_liverseg.data.roi import LiverROI
from keras_liverseg.inference.postprocess import PostprocessOptions
from keras_liverseg.widths import DEFAULT_FILTERS


@dataclass(frozen=True)
class ZooEntry:
    """One named model of the zoo.

    Attributes:
        name: the zoo name (``liverseg predict --model NAME``).
        architecture: a builder name of :func:`keras_liverseg.models.build`.
        config: keyword arguments of the builder (input shape, classes, HU window, ...).
        summary: one line for ``liverseg models`` and the README.
        paper: the paper the architecture follows.
        prune_level: build the entry as the pruned head of this level (fast variants).
        second_stage: zoo name of the model that re-segments this one's liver region
            (a cascade: :func:`keras_liverseg.inference.predict_volume` runs both).
        second_stage_share: inside the liver region, the weight of the second stage's
            class probabilities in the average with this model's (1.0: the second stage's
            alone; chosen on validation phantoms, see the entry's model card).
        liver_roi: the framing of the liver region this model reads, for a second stage
            (training crops to it, and so does inference); ``None`` for whole slices.
        postprocess: the post-processing of the entry's bundled weights (other released
            weights carry theirs in the weights index, :mod:`keras_liverseg.zoo.index`): its
            ``min_lesion_mm3`` turns predicted lesions smaller than that into liver, its
            ``lesion_growth_mm`` grows each predicted lesion up to that far into adjacent
            liver of the lesion's density
            (:func:`keras_liverseg.inference.postprocess.grow_lesions`), its
            ``min_lesion_prob`` turns each lesion whose mean tumor probability is below it
            into liver; all chosen on validation phantoms, see the entry's model card.
            Other weights get the default
            :class:`~keras_liverseg.inference.postprocess.PostprocessOptions` (all 0).
    """

    name: str
    architecture: str
    config: dict = field(default_factory=dict)
    summary: str = ""
    paper: str = ""
    prune_level: int | None = None
    second_stage: str | None = None
    second_stage_share: float = 1.0
    liver_roi: LiverROI | None = None
    postprocess: PostprocessOptions = PostprocessOptions()


# Reference configurations: the ones MODELS.md counts parameters in (nb = 32..512), with a
# single CT channel and the LiTS classes. No weights are released for them yet.
_REFERENCE = {"input_shape": (256, 256, 1), "num_classes": 3, "filters": DEFAULT_FILTERS}

# The in-plane spacing the default model reads slices at (any field of view and pixel
# spacing then show the liver at one size in pixels). Not swept: the weights (version 3)
# were trained on phantom slices of 308-511 mm resized to 192 pixels, 2.13 mm on average;
# reading at 2.1 mm keeps held-out phantom Dice (liver +0.001, tumor -0.011) and makes the
# real example's liver agree between the full scan and a crop (zoo/unet_sharp.md, "Field
# of view"). Version 4 was fine-tuned on slices read this way.
PIXEL_SPACING_MM = 2.1

# The default model: UNet# at pruning level L3 with half the paper's widths, on 192x192
# slices with 3 neighbours as channels, so that a 512x512x100 scan is segmented in well
# under a minute on a 2-core laptop CPU (benchmarks/bench_predict.py).
DEFAULT_UNET_SHARP = {
    "input_shape": (192, 192, 3),
    "num_classes": 3,
    "filters": (16, 32, 64, 128, 256),
    "level": 3,
    "deep_supervision": True,
    "hu_window": (-200.0, 300.0),
    "pixel_spacing": PIXEL_SPACING_MM,
}
# The second stage reads the liver's box resized to its input (a cascade's framing). The
# pruned L2 head of the same weights keeps reading whole slices resized to its input: at
# 2.1 mm its tumor Dice per case on the held-out phantoms fell from 0.479 to 0.343
# (zoo/unet_sharp.md, "Field of view").
_RESIZED = {**DEFAULT_UNET_SHARP, "pixel_spacing": None}

# The default weights find no lesion under 1 ml on 28 validation phantoms, and most of the
# lesions under 1 ml they predict are false; 500 is the best size on all 48 validation
# phantoms (zoo/unet_sharp.md, "Smallest lesion").
MIN_LESION_MM3 = 500.0
# The default weights under-segment the lesions they find (relative volume difference about
# -0.5); growing them up to 10 mm into liver of their density is the best of 0-40 mm on the
# 48 validation phantoms (zoo/unet_sharp.md, "Lesion growth").
LESION_GROWTH_MM = 10.0
# A lesion whose mean tumor probability is below this becomes liver. Chosen with weights
# version 4 on 48 generator-1.1.0 and 25 generator-2.0 validation phantoms (tumor-free ones
# included), then passed through the held-out gate (zoo/unet_sharp.md, "Version 4"); kept
# unchanged for version 5, which was gated with it ("Version 5"); for version 3 it was
# off, as every threshold lowered tumor Dice there ("Lesion confidence").
MIN_LESION_PROB = 0.3
# The post-processing of the default weights (also of their fast variant).
DEFAULT_POSTPROCESS = PostprocessOptions(min_lesion_mm3=MIN_LESION_MM3,
                                         lesion_growth_mm=LESION_GROWTH_MM,
                                         min_lesion_prob=MIN_LESION_PROB)

# The 3D family (V-Net encoder, UNet# paper Table 1) at a size a CPU trains: a quarter of
# the paper's widths, patches of 32 x 128 x 128 voxels (D, H, W) of 3 mm, as
# TotalSegmentator's fast (3 mm) models read CT, so one patch spans 96 x 384 x 384 mm, a
# whole abdominal slab. No weights are released for them yet.
VNET_CPU = {
    "input_shape": (32, 128, 128, 1),
    "num_classes": 3,
    "filters": (8, 16, 32, 64, 128),
    "hu_window": (-200.0, 300.0),
    "pixel_spacing": 3.0,
    "slice_spacing": 3.0,
}

_ENTRIES = [
    ZooEntry(
        "unet_sharp", "unet_sharp", DEFAULT_UNET_SHARP,
        "UNet# L3, 2.5D (3 slices), 192x192, liver + tumor; the default model",
        "Qian et al., UNet# (seed 004)",
        second_stage="unet_sharp_roi",
        second_stage_share=0.25,  # chosen on validation phantoms (zoo/unet_sharp.md)
        postprocess=DEFAULT_POSTPROCESS,
    ),
    ZooEntry(
        "unet_sharp_fast", "unet_sharp", _RESIZED,
        "unet_sharp pruned to its L2 head (same weights, about 4x fewer FLOPs); --fast",
        "Qian et al., UNet# (seed 004), Sec. 2.4",
        prune_level=2,
        postprocess=DEFAULT_POSTPROCESS,
    ),
    ZooEntry(
        "unet_sharp_roi", "unet_sharp", _RESIZED,
        "unet_sharp on the liver's region of interest; the second stage of unet_sharp",
        "Qian et al., UNet# (seed 004); cascade as Cui et al. (seed 003), Sec. 4.1",
        liver_roi=LiverROI(margin=0.1, slices=2),
    ),
    ZooEntry("unet", "unet", dict(_REFERENCE), "U-Net baseline", "Ronneberger et al. 2015"),
    ZooEntry("unet_pp", "unet_pp", {**_REFERENCE, "deep_supervision": True},
             "UNet++ with deep supervision", "Zhou et al. 2018"),
    ZooEntry("unet3p", "unet3p", {**_REFERENCE, "filters": (64, 128, 256, 512, 1024)},
             "UNet 3+ full-scale skips", "Huang et al. 2020"),
    ZooEntry("wp_unet", "wp_unet",
             {**_REFERENCE, "filters": (64, 128, 256, 512, 1024), "hu_window": (-200, 250)},
             "weighted pooling + weighted full-scale skips", "Lei et al. 2022 (seed 000)"),
    ZooEntry("mu_net", "mu_net", {**_REFERENCE, "filters": (64, 128, 256, 512, 1024)},
             "mU-Net, object-dependent up-sampling", "Seo et al. 2020 (seed 001)"),
    ZooEntry("isc_unet", "isc_unet", {**_REFERENCE, "variant": "skip+concat"},
             "U-Net with improved skip connections", "Di et al. (seed 002)"),
    ZooEntry("es_unet_pp", "es_unet_pp", dict(_REFERENCE),
             "ES-UNet++ segmentation network", "Cui et al. (seed 003)"),
    ZooEntry("vnet", "vnet", dict(VNET_CPU),
             "3D V-Net, 8..128, 32x128x128 patches of 3 mm", "Qian et al., UNet# (seed 004), "
             "Table 1; Milletari et al. 2016"),
    ZooEntry("vnet_pp", "vnet_pp", {**VNET_CPU, "deep_supervision": True},
             "3D V-Net2+ (nested skips), deep supervision", "Qian et al., UNet# (seed 004)"),
    ZooEntry("vnet3p", "vnet3p", dict(VNET_CPU),
             "3D V-Net3+ (full-scale skips)", "Qian et al., UNet# (seed 004)"),
    ZooEntry("vnet_sharp", "vnet_sharp", {**VNET_CPU, "deep_supervision": True},
             "3D V-Net# (dense + full-scale skips), deep supervision",
             "Qian et al., UNet# (seed 004)"),
]
_BY_NAME = {entry.name: entry for entry in _ENTRIES}


def entries() -> list[ZooEntry]:
    """All zoo entries, in the README's order."""
    return list(_ENTRIES)


def get_entry(name: str) -> ZooEntry:
    """The entry called ``name``; a ``ValueError`` listing the names otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"unknown zoo model {name!r}; available: {', '.join(_BY_NAME)}"
        ) from None
