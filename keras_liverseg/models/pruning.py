"""Pruning a deeply supervised model to one of its heads (UNet++ Sec. 3; UNet# Sec. 2.4)."""

from __future__ import annotations

import keras


def head_names(model: keras.Model) -> list[str]:
    """Names of the model's full-size heads ordered by level: ``ds_0_1``, ..., ``mask``."""
    names = sorted(n for n in model.output_names if n.startswith("ds_0_"))
    return [*names, "mask"] if "mask" in model.output_names else names


def prune(model: keras.Model, level: int) -> keras.Model:
    """A standalone model for the full-size head at ``level`` of a deeply supervised model.

    The sub-network that ``X^{0,level}`` needs is a functional model of its own that shares
    the trained layers (and so the weights) of ``model``: its output equals the full
    model's output for that head, with far fewer parameters and FLOPs. The pruned model's
    output is named ``"mask"`` (with ``"cls_mask"`` when the head has a classification
    guide), so it can be used like any other model of the package.

    Args:
        model: a model built with ``deep_supervision=True`` (unet_pp, unet_sharp,
            es_unet_pp); its heads ``ds_0_1, ds_0_2, ...`` and ``mask`` are levels 1, 2, ...
        level: 1 .. number of levels.
    """
    heads = head_names(model)
    if len(heads) < 2:
        raise ValueError(
            f"model {model.name!r} has no deep-supervision heads to prune to; "
            "build it with deep_supervision=True"
        )
    if not 1 <= level <= len(heads):
        raise ValueError(f"level must be in 1..{len(heads)} for {model.name!r}, got {level!r}")
    name = heads[level - 1]
    outputs = {"mask": _output_as(model, name, "mask")}
    if f"cls_{name}" in model.output_names:
        outputs["cls_mask"] = _output_as(model, f"cls_{name}", "cls_mask")
    if len(outputs) == 1:
        outputs = outputs["mask"]
    return keras.Model(model.inputs, outputs, name=f"{model.name}_L{level}")


def _output_as(model: keras.Model, layer_name: str, output_name: str):
    """The output of ``layer_name``, passed through an identity layer named ``output_name``."""
    tensor = model.get_layer(layer_name).output
    if layer_name == output_name:
        return tensor
    return keras.layers.Identity(name=output_name)(tensor)
