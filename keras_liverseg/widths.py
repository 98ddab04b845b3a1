"""Filter widths the architectures share, in a module that does not import Keras (the zoo's
catalog reads them, and a prediction from a cached ONNX graph never starts Keras)."""

DEFAULT_FILTERS = (32, 64, 128, 256, 512)
"""``nb`` of the UNet# paper's Table 1, used for every model there."""
