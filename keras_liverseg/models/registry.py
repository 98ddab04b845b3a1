"""Architectures by name: ``build(name, **config)`` and ``available()``.

A new architecture is one module in ``keras_liverseg/models/`` whose builder is decorated
with :func:`register` (with its paper's training loss, and whether it trains in two
stages), plus its import in ``keras_liverseg/models/__init__.py``; the training loop finds
both here (:func:`paper_loss`, :func:`trains_in_two_stages`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras

from keras_liverseg.layers.hu_window import check_pixel_spacing
from keras_liverseg.losses import SegLoss
from keras_liverseg.models.inference import hu_window_of


@dataclass(frozen=True)
class Architecture:
    """A registered architecture.

    Attributes:
        name: the name of :func:`build`.
        builder: the function that builds it (keyword arguments: its configuration).
        loss: makes the loss of its paper, for every segmentation head (``liverseg train
            --loss paper``).
        two_stage: it trains in two stages (ES-UNet++: an encoding UNet++ first, whose
            features then supervise the segmentation network's encoder).
        volumetric: it reads 3D volumes ``(batch, D, H, W, C)`` (the V-Net family)
            instead of axial slices ``(batch, H, W, C)``.
    """

    name: str
    builder: Callable[..., keras.Model]
    loss: Callable[[], keras.losses.Loss] = SegLoss
    two_stage: bool = False
    volumetric: bool = False


_ARCHITECTURES: dict[str, Architecture] = {}


def register(name: str, *, loss: Callable[[], keras.losses.Loss] = SegLoss,
             two_stage: bool = False, volumetric: bool = False):
    """Decorator: make a builder available as ``build(name, ...)``.

    Args:
        name: the architecture's name.
        loss: a callable without arguments that makes its paper's loss (a loss class of
            :mod:`keras_liverseg.losses`); default Dice + cross-entropy (``SegLoss``).
        two_stage: it trains in two stages (see :class:`Architecture`).
        volumetric: it reads 3D volumes (see :class:`Architecture`).
    """

    def decorator(builder: Callable[..., keras.Model]):
        if name in _ARCHITECTURES:
            raise ValueError(f"architecture {name!r} is registered twice")
        _ARCHITECTURES[name] = Architecture(name, builder, loss, two_stage, volumetric)
        return builder

    return decorator


def available(volumetric: bool | None = None) -> list[str]:
    """Names of the registered architectures, sorted: all of them, or only the 3D
    (``volumetric=True``) or the slice (``False``) ones."""
    return sorted(name for name, arch in _ARCHITECTURES.items()
                  if volumetric is None or arch.volumetric == volumetric)


def architecture(name: str) -> Architecture:
    """The registered :class:`Architecture` ``name``; a ``ValueError`` listing the names
    otherwise."""
    try:
        return _ARCHITECTURES[name]
    except KeyError:
        raise ValueError(
            f"unknown architecture {name!r}; available: {', '.join(available())}"
        ) from None


def get_builder(name: str) -> Callable[..., keras.Model]:
    return architecture(name).builder


def paper_loss(name: str) -> keras.losses.Loss:
    """A new instance of the loss of architecture ``name``'s paper."""
    return architecture(name).loss()


def trains_in_two_stages(name: str) -> bool:
    """Whether architecture ``name`` trains in two stages (ES-UNet++)."""
    return architecture(name).two_stage


def build(name: str, *, pixel_spacing: float | None = None,
          slice_spacing: float | None = None, **config) -> keras.Model:
    """Build the architecture ``name`` with the builder's keyword arguments ``config``.

    ``pixel_spacing`` (mm) is the in-plane spacing the model reads slices at; it is stored
    on the model's :class:`~keras_liverseg.layers.HUWindow` (the preprocessing that travels
    with the model), for every architecture alike. ``slice_spacing`` (mm), for a 3D
    architecture only, is the spacing between the axial slices of the volumes it reads,
    stored there too.
    """
    model = get_builder(name)(**config)
    if pixel_spacing is not None:
        hu_window_of(model).pixel_spacing = check_pixel_spacing(pixel_spacing)
    if slice_spacing is not None:
        if not architecture(name).volumetric:
            raise ValueError(f"slice_spacing is for 3D architectures; {name!r} reads slices")
        hu_window_of(model).slice_spacing = check_pixel_spacing(slice_spacing,
                                                                "slice_spacing")
    return model
