"""Small configurations of every architecture, shared by the model tests."""

from __future__ import annotations

TINY = (4, 8, 16, 32, 64)

# name -> builder keywords (besides input_shape / num_classes / filters)
CASES = {
    "unet": {},
    "unet_transpose_weighted": {"upsampling": "transpose", "pooling": "weighted"},
    "unet_pp": {"deep_supervision": True},
    "unet3p": {"deep_supervision": True, "classification_guide": True, "cat_filters": 4},
    "wp_unet": {"cat_filters": 4, "se_ratio": 4},
    "mu_net": {},
    "isc_unet": {"variant": "skip+concat"},
    "isc_unet_skip": {"variant": "skip"},
    "es_unet_pp": {"encoder_features": True},
    "es_unet_pp_encoder": {},
    "unet_sharp": {"deep_supervision": True, "decoder_heads": True, "classification_guide": True},
    "unet_sharp_l2_bottleneck": {"level": 2, "full_scale_from_bottleneck": True},
}


def architecture(case: str) -> str:
    """The builder name of a case (the longest registered name it starts with: the part
    before a variant suffix)."""
    from keras_liverseg import models

    for name in sorted(models.available(), key=len, reverse=True):
        if case.startswith(name):
            return name
    raise KeyError(case)
