"""Functional Keras models for liver and tumor segmentation, one module per architecture.

``build(name, **config)`` builds any registered architecture; ``available()`` lists them.
"""

# Importing an architecture's module registers its builder.
from keras_liverseg.models.es_unet_pp import es_unet_pp, es_unet_pp_encoder
from keras_liverseg.models.folding import fold_batch_norm
from keras_liverseg.models.inference import (
    Preprocessing,
    class_names,
    inference_model,
    preprocessing_of,
)
from keras_liverseg.models.isc_unet import isc_unet
from keras_liverseg.models.mu_net import mu_net
from keras_liverseg.models.pruning import head_names, prune
from keras_liverseg.models.registry import available, build, get_builder, register
from keras_liverseg.models.unet import unet
from keras_liverseg.models.unet3p import unet3p
from keras_liverseg.models.unet_pp import unet_pp
from keras_liverseg.models.unet_sharp import unet_sharp
from keras_liverseg.models.vnet import vnet
from keras_liverseg.models.vnet3p import vnet3p
from keras_liverseg.models.vnet_pp import vnet_pp
from keras_liverseg.models.vnet_sharp import vnet_sharp
from keras_liverseg.models.wp_unet import wp_unet

__all__ = [
    "Preprocessing",
    "available",
    "build",
    "class_names",
    "es_unet_pp",
    "es_unet_pp_encoder",
    "fold_batch_norm",
    "get_builder",
    "head_names",
    "inference_model",
    "isc_unet",
    "mu_net",
    "preprocessing_of",
    "prune",
    "register",
    "unet",
    "unet3p",
    "unet_pp",
    "unet_sharp",
    "vnet",
    "vnet3p",
    "vnet_pp",
    "vnet_sharp",
    "wp_unet",
]
