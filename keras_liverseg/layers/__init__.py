"""Custom Keras layers of keras_liverseg; every one is registered and serialisable."""

from keras_liverseg.layers.bilinear_upsampling import BilinearUpSampling2D
from keras_liverseg.layers.classification_guide import ClassificationGate, ClassificationGuide
from keras_liverseg.layers.conv_blocks import conv_bn_act, upsample, vgg_block
from keras_liverseg.layers.full_scale_concat import FullScaleConcat
from keras_liverseg.layers.hu_window import HUWindow
from keras_liverseg.layers.initializers import BilinearUpsampling
from keras_liverseg.layers.object_dependent_upsample import ObjectDependentUpsample
from keras_liverseg.layers.squeeze_excite import SqueezeExcite
from keras_liverseg.layers.trilinear_upsampling import TrilinearUpSampling3D
from keras_liverseg.layers.weighted_pooling import WeightedPooling2D

__all__ = [
    "BilinearUpSampling2D",
    "BilinearUpsampling",
    "ClassificationGate",
    "ClassificationGuide",
    "FullScaleConcat",
    "HUWindow",
    "ObjectDependentUpsample",
    "SqueezeExcite",
    "TrilinearUpSampling3D",
    "WeightedPooling2D",
    "conv_bn_act",
    "upsample",
    "vgg_block",
]
