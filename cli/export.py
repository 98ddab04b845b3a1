"""``liverseg export``: a zoo model as ONNX at its fixed input size."""

from __future__ import annotations

from pathlib import Path

import click

from keras_liverseg.cli.errors import UserError
from keras_liverseg.cli.quiet import import_backend


@click.command("export")
@click.option("--model", "model_name", default="unet_sharp", show_default=True,
              help="Zoo model name (see `liverseg models`).")
@click.option("--weights", default="default", show_default=True,
              help="'default' (bundled), 'none' (untrained) or a .weights.h5/.keras path.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The .onnx file to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output file.")
def export(model_name: str, weights: str, output: Path, overwrite: bool) -> None:
    """Export a zoo model to ONNX (needs the `export` extra: tf2onnx, onnxruntime)."""
    if output.suffix != ".onnx":
        raise UserError(f"output must end in .onnx: {output}")
    if output.exists() and not overwrite:
        raise UserError(f"{output} exists; pass --overwrite to replace it")
    if not output.parent.is_dir():
        raise UserError(f"output folder does not exist: {output.parent}")
    try:
        import tf2onnx  # noqa: F401
    except ImportError:
        raise UserError('ONNX export needs tf2onnx: pip install "keras_liverseg[export]"') from None
    import_backend()
    from keras_liverseg import zoo
    from keras_liverseg.export import export_onnx

    try:
        model = zoo.load(model_name, weights=None if weights == "none" else weights)
    except (ValueError, FileNotFoundError, zoo.WeightsNotAvailable) as error:
        raise UserError(str(error)) from None
    partial = output.with_name(f".{output.name}.partial")
    try:
        export_onnx(model, partial)
        partial.replace(output)
    finally:
        partial.unlink(missing_ok=True)
    click.echo(f"wrote {output} (input {tuple(model.inputs[0].shape[1:])}, float32 HU)")
