"""Pieces every architecture shares: the input stem, heads, checks and output naming.

Output naming (see docs/CONTRACTS.md): the final segmentation is the output ``"mask"``.
Deep-supervision heads are named after the node they read, ``"ds_<i>_<j>"`` for full-size
heads on ``X^{i,j}`` and ``"de_<i>_<j>"`` for UNet#'s decoder-side heads at their own
resolution; a classification-guided module on a head is ``"cls_<head name>"``. A model with
one output returns a tensor; with several it returns a dict keyed by these names. Labels
for ``model.fit`` are passed as a dict with the same keys.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_liverseg.layers import HUWindow
from keras_liverseg.layers.conv_blocks import conv_class, spatial_rank
from keras_liverseg.widths import DEFAULT_FILTERS as DEFAULT_FILTERS  # re-exported


def check_input_shape(
    input_shape: Sequence[int], multiple: int = 16, rank: int = 2
) -> tuple[int, ...]:
    """Validate ``(H, W, C)`` (``rank=2``) or a volume's ``(D, H, W, C)`` (``rank=3``):
    positive ints with every spatial size divisible by ``multiple``."""
    shape = tuple(input_shape)
    layout = "(H, W, C)" if rank == 2 else "(D, H, W, C)"
    if len(shape) != rank + 1 or not all(isinstance(v, int) and v > 0 for v in shape):
        raise ValueError(f"input_shape must be {layout} of positive ints, got {input_shape!r}")
    spatial = shape[:-1]
    if any(size % multiple for size in spatial):
        names = "H and W" if rank == 2 else "D, H and W"
        rounded = "x".join(str(_round_up(size, multiple)) for size in spatial)
        raise ValueError(
            f"input_shape {shape}: {names} must be divisible by {multiple} "
            f"(four 2x poolings); try {rounded}"
        )
    return shape


def check_filters(filters: Sequence[int], count: int = 5) -> tuple[int, ...]:
    """Validate the per-level channel list (five ints by default)."""
    filters = tuple(int(f) for f in filters)
    if len(filters) != count or min(filters) < 1:
        raise ValueError(f"filters must be {count} positive ints, got {filters!r}")
    return filters


def check_num_classes(num_classes: int) -> int:
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes!r}")
    return int(num_classes)


def stem(input_shape: Sequence[int], hu_window: Sequence[float] | None, multiple: int = 16,
         rank: int = 2):
    """The model input (raw HU) and its windowed, [0, 1]-scaled version.

    ``hu_window=None`` is for networks whose input is not CT (ES-UNet++'s encoding UNet++
    reads label maps): the input then passes unchanged. ``rank=3``: the input is a volume
    ``(D, H, W, C)`` (the V-Net family).
    """
    inputs = keras.Input(check_input_shape(input_shape, multiple, rank), name="ct")
    if hu_window is None:
        return inputs, inputs
    return inputs, HUWindow(tuple(hu_window), name="hu_window")(inputs)


def head(x, num_classes: int, *, name: str, kernel_size: int = 1):
    """A segmentation head: conv to ``num_classes`` then sigmoid (1) or softmax (>= 2).

    The activation is its own float32 layer named ``name``, so heads stay stable under
    mixed precision and the output takes the head's name. A volume ``(batch, D, H, W, C)``
    gets a ``Conv3D`` head.
    """
    conv = conv_class(spatial_rank(x))
    x = conv(num_classes, kernel_size, padding="same", name=f"{name}_conv")(x)
    activation = "sigmoid" if num_classes == 1 else "softmax"
    return keras.layers.Activation(activation, dtype="float32", name=name)(x)


def finish(inputs, outputs: dict, name: str) -> keras.Model:
    """Build the functional model: a tensor for one output, else a dict keyed by name."""
    if "mask" not in outputs:
        raise ValueError("a model needs an output named 'mask'")
    if len(outputs) == 1:
        return keras.Model(inputs, outputs["mask"], name=name)
    return keras.Model(inputs, outputs, name=name)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple
