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


def forward(model, x):
    """``model(x)`` in inference mode as NumPy, a dict for several outputs (what predict
    returns), without predict's graph tracing: for these tiny models that took longer than
    the forward pass itself."""
    import keras

    out = model(x, training=False)
    if isinstance(out, dict):
        return {name: keras.ops.convert_to_numpy(value) for name, value in out.items()}
    return keras.ops.convert_to_numpy(out)


def architecture(case: str) -> str:
    """The builder name of a case (the longest registered name it starts with: the part
    before a variant suffix)."""
    from keras_liverseg import models

    for name in sorted(models.available(), key=len, reverse=True):
        if case.startswith(name):
            return name
    raise KeyError(case)
