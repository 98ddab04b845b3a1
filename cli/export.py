"""``liverseg export``: a zoo model as ONNX at its fixed input size."""

from __future__ import annotations

import warnings
from pathlib import Path

import click

from keras_liverseg.cli import outputs
from keras_liverseg.cli.errors import UserError
from keras_liverseg.cli.quiet import import_backend, silenced_stderr


@click.command("export")
@click.option("--model", "model_name", default="unet_sharp", show_default=True,
              help="Zoo model name (see `liverseg models`).")
@click.option("--weights", default="default", show_default=True,
              help="'default' (--model's default weights, see `liverseg zoo list`), a "
                   "release name, 'none' (untrained) or a .weights.h5/.keras path.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The .onnx file to write (its folder is created when missing).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def export(model_name: str, weights: str, output: Path, overwrite: bool) -> None:
    """Export a zoo model to ONNX (needs the `export` extra: tf2onnx, onnxruntime).

    The ONNX graph takes raw HU slices at the model's fixed input size (any batch size)
    and returns the class probabilities that `liverseg predict` uses. A model with a pixel
    spacing (unet_sharp: 2.1 mm) expects each slice resampled to it and centred on that
    input, padded with air, as `liverseg predict` does; the message says which.
    """
    if output.suffix != ".onnx":
        raise UserError(f"output must end in .onnx: {output}")
    import_backend()  # before tf2onnx, which imports TensorFlow
    from keras_liverseg.zoo import is_weights_path

    weights_path = Path(weights) if is_weights_path(weights) else None
    outputs.refuse_clashes({"--output": output}, {"--weights": weights_path})
    with outputs.claim({"--output": output}, overwrite):
        _export(model_name, weights, output)


def _export(model_name: str, weights: str, output: Path) -> None:
    with silenced_stderr(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import tf2onnx  # noqa: F401
        except ImportError:
            tf2onnx = None
    if tf2onnx is None:
        raise UserError('ONNX export needs tf2onnx: pip install "keras_liverseg[export]"')
    from keras_liverseg.export import export_onnx
    from keras_liverseg.inference.loading import ModelLoadError, load_model
    from keras_liverseg.io.atomic import atomic_path

    try:  # predict's loader: the same checks and one-line errors (a corrupt file too)
        loaded = load_model(model_name, None if weights == "none" else weights,
                            second_stage_weights=None)
        model = loaded.model
    except ModelLoadError as error:
        raise UserError(str(error)) from None
    # tf2onnx and TensorFlow's converter print absl, oneDNN and deprecation lines a user
    # cannot act on; errors still come as exceptions (LIVERSEG_VERBOSE=1 shows them all)
    try:
        with atomic_path(output) as temp, silenced_stderr(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_onnx(model, temp)
    except OSError as error:
        raise outputs.cannot_write("--output", output, error) from None
    spacing = loaded.preprocessing.pixel_spacing
    reading = (f"slices resampled to {spacing:g} mm pixels and centred, air-padded"
               if spacing else "whole slices resized to it")
    click.echo(f"wrote {output} (input {tuple(model.inputs[0].shape[1:])}, float32 HU; "
               f"{reading})")
