"""``liverseg export``: a zoo model as ONNX, a SavedModel or TFLite, checked after writing."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import click

from keras_liverseg.cli import outputs
from keras_liverseg.cli.errors import UserError
from keras_liverseg.cli.quiet import import_backend, silenced_stderr

_SUFFIXES = {".onnx": "onnx", ".tflite": "tflite", "": "saved_model"}


@click.command("export")
@click.option("--model", "model_name", default="unet_sharp", show_default=True,
              help="Zoo model name (see `liverseg models`).")
@click.option("--weights", default="default", show_default=True,
              help="'default' (--model's default weights, see `liverseg zoo list`), a "
                   "release name, 'none' (untrained) or a .weights.h5/.keras path.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path),
              help="The file to write: NAME.onnx, NAME.tflite, or a folder NAME for a "
                   "SavedModel (its parent folder is created when missing).")
@click.option("--format", "fmt", type=click.Choice(["onnx", "saved_model", "tflite"]),
              default=None, help="Default: from OUTPUT (.onnx, .tflite, no suffix: "
                                 "saved_model).")
@click.option("--quantize", type=click.Choice(["float16", "int8"]), default=None,
              help="TFLite only: float16 weights, or int8 (dynamic-range: int8 weights, "
                   "float activations). Checked by the liver Dice of its labels against "
                   "the float model's (>= 0.99).")
@click.option("--level", type=int, default=None,
              help="Export the model pruned to this deep-supervision level (UNet#, UNet++: "
                   "1 = the smallest head), as seed 004 prunes for scarce compute.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
def export(model_name: str, weights: str, output: Path, fmt: str | None,
           quantize: str | None, level: int | None, overwrite: bool) -> None:
    """Export a zoo model to ONNX (the `export` extra), a TensorFlow SavedModel or TFLite.

    The exported graph takes raw HU slices at the model's fixed input size (any batch size)
    and returns the class probabilities that `liverseg predict` uses. It is checked before
    it is kept: loaded back and run on phantom slices beside the Keras model (float32:
    probabilities within 1e-4; quantised: liver Dice >= 0.99). A model with a pixel spacing
    (unet_sharp: 2.1 mm) expects each slice resampled to it and centred on that input,
    padded with air, as `liverseg predict` does; the message says which.
    """
    fmt = _format_of(output, fmt)
    if quantize and fmt != "tflite":
        raise UserError(f"--quantize is for --format tflite, not {fmt}")
    if level is not None and level < 1:
        raise UserError(f"--level must be 1 or more, got {level}")
    import_backend()  # before tf2onnx, which imports TensorFlow
    from keras_liverseg.zoo import is_weights_path

    weights_path = Path(weights) if is_weights_path(weights) else None
    outputs.refuse_clashes({"--output": output}, {"--weights": weights_path})
    if fmt == "saved_model":  # a folder: replaced only when it is a SavedModel
        _check_saved_model_target(output, overwrite)
        output.parent.mkdir(parents=True, exist_ok=True)
        _export(model_name, weights, output, fmt, quantize, level)
        return
    with outputs.claim({"--output": output}, overwrite):
        _export(model_name, weights, output, fmt, quantize, level)


def _check_saved_model_target(output: Path, overwrite: bool) -> None:
    if not output.exists():
        if output.parent.exists() and not output.parent.is_dir():
            raise UserError(f"cannot write --output {output}: {output.parent} is a file")
        return
    if not output.is_dir() or not (output / "saved_model.pb").is_file():
        raise UserError(f"--output {output} exists and is not a SavedModel folder; choose "
                        "another name")
    if not overwrite:
        raise UserError(f"--output {output} exists; pass --overwrite to replace it")


def _format_of(output: Path, fmt: str | None) -> str:
    suffix = output.suffix.lower()
    implied = _SUFFIXES.get(suffix)
    if fmt is None:
        if implied is None:
            raise UserError(f"output must end in .onnx or .tflite, or name a folder for a "
                            f"SavedModel (or pass --format): {output}")
        return implied
    expected = {"onnx": ".onnx", "tflite": ".tflite", "saved_model": "no suffix"}[fmt]
    if implied != fmt:
        raise UserError(f"--format {fmt} writes a {'folder with ' if fmt == 'saved_model' else ''}"
                        f"{expected} output, not {output}")
    return fmt


def _model(model_name: str, weights: str, level: int | None):
    """The Keras model to export (pruned to ``level`` when given); one-line errors."""
    from keras_liverseg.inference.loading import ModelLoadError, load_model

    try:  # predict's loader: the same checks and one-line errors (a corrupt file too)
        loaded = load_model(model_name, None if weights == "none" else weights,
                            second_stage_weights=None, precision="float32")
    except ModelLoadError as error:
        raise UserError(str(error)) from None
    if level is None:
        return loaded, loaded.model
    from keras_liverseg import models, zoo

    try:
        full = zoo.load(model_name, None if weights == "none" else weights, progress=False)
        return loaded, models.prune(full, level)
    except ValueError as error:
        raise UserError(f"--level {level}: {error}") from None


def _export(model_name: str, weights: str, output: Path, fmt: str, quantize: str | None,
            level: int | None) -> None:
    if fmt == "onnx":
        with silenced_stderr(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                import tf2onnx  # noqa: F401
            except ImportError:
                tf2onnx = None
        if tf2onnx is None:
            raise UserError('ONNX export needs tf2onnx: pip install "keras_liverseg[export]"')
    from keras_liverseg.export import ExportMismatch, check_export, export_model

    loaded, model = _model(model_name, weights, level)
    # the converters print absl, oneDNN and deprecation lines a user cannot act on; errors
    # still come as exceptions (LIVERSEG_VERBOSE=1 shows them all)
    try:
        work = Path(tempfile.mkdtemp(dir=output.parent, prefix=f".{output.name}.",
                                     suffix=".partial"))
    except OSError as error:
        raise outputs.cannot_write("--output", output, error) from None
    try:
        temp = work / (output.name or "export")
        with silenced_stderr(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exported = export_model(model, temp, fmt, quantize)
            facts = check_export(temp, fmt, exported, quantize)
        _move_into_place(temp, output)
    except ExportMismatch as error:
        raise UserError(f"{error}; nothing was written") from None
    except OSError as error:
        raise outputs.cannot_write("--output", output, error) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    spacing = loaded.preprocessing.pixel_spacing
    reading = (f"slices resampled to {spacing:g} mm pixels and centred, air-padded"
               if spacing else "whole slices resized to it")
    check = (f"liver Dice {facts['liver_dice']:.4f} vs Keras" if quantize else
             f"max difference {facts['max_abs_difference']:.1g} vs Keras")
    what = fmt + (f" {quantize}" if quantize else "") + (f", level {level}" if level else "")
    click.echo(f"wrote {output} ({what}, {_size(output) / 1e6:.1f} MB; input "
               f"{tuple(model.inputs[0].shape[1:])}, float32 HU; {reading}; checked: {check})")


def _move_into_place(temp: Path, output: Path) -> None:
    """Rename ``temp`` (a file or a folder) onto ``output``; an existing output (claimed
    with --overwrite) is moved aside first and removed only once the new one is there."""
    aside = None
    if output.exists():
        aside = output.with_name(f".{output.name}.{os.getpid()}.old")
        os.replace(output, aside)
    try:
        os.replace(temp, output)
    except OSError:
        if aside is not None:
            os.replace(aside, output)
        raise
    if aside is not None:
        with contextlib.suppress(OSError):
            shutil.rmtree(aside) if aside.is_dir() else aside.unlink()


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    return path.stat().st_size
