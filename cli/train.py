"""``liverseg train``: train a zoo model on a LiTS / MSD dataset folder."""

from __future__ import annotations

import shlex
from pathlib import Path

import click

from keras_liverseg.cli.errors import UserError
from keras_liverseg.cli.quiet import import_backend


@click.command("train")
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="Dataset folder: LiTS layout (volume-N / segmentation-N) or MSD "
                   "(imagesTr/ labelsTr/).")
@click.option("--model", "model_name", default="unet_sharp", show_default=True,
              help="Zoo model to train (its architecture and configuration).")
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
              help="JSON file of training settings (see keras_liverseg.training.TrainConfig); "
                   "command-line options override it.")
@click.option("--epochs", type=int, help="Epochs [10].")
@click.option("--steps-per-epoch", type=int, help="Batches per epoch [100].")
@click.option("--batch-size", type=int, help="Slices per batch, all replicas together [8].")
@click.option("--lr", "learning_rate", type=float, help="Initial learning rate [1e-3].")
@click.option("--strategy", type=click.Choice(["auto", "one", "mirrored", "multi-worker"]),
              help="tf.distribute strategy [auto].")
@click.option("--mixed-precision", is_flag=True, default=None,
              help="bfloat16 compute (float32 heads and losses).")
@click.option("--init", help="Start from zoo:NAME (its bundled weights) or a weights file.")
@click.option("--task", type=click.Choice(["liver", "tumor", "both"]),
              help="Classes to learn [both].")
@click.option("--loss", type=click.Choice(["paper", "dice_ce"]),
              help="paper: the architecture's own loss; dice_ce: batch Dice + cross-entropy "
                   "[paper].")
@click.option("--liver-fraction", type=float,
              help="Share of training slices drawn from slices with liver [0.5].")
@click.option("--tumor-fraction", type=float,
              help="Share of training slices drawn from slices with tumor [0.15].")
@click.option("--liver-roi/--whole-slices", default=None,
              help="Train on the liver's region of interest (the second stage of a cascade) "
              "or on whole slices [ROI for --task tumor and for zoo entries that read the liver "
              "region, such as unet_sharp_roi; else whole slices].")
@click.option("--seed", type=int, help="Split and sampling seed [0].")
@click.option("--split-file", type=click.Path(path_type=Path, dir_okay=False),
              help='JSON {"train": [...], "validation": [...]} of case ids.')
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="The run folder (checkpoints, model, model card, logs).")
@click.option("--resume", is_flag=True, help="Continue the run in --output after its last "
              "completed epoch.")
@click.option("--quiet", is_flag=True, help="Print nothing but errors.")
def train(data, model_name, config_file, output, resume, quiet, **options) -> None:
    """Train a model on CT volumes with liver / tumor labels."""
    from keras_liverseg.training.config import TrainConfig

    values = {k: v for k, v in options.items() if v is not None}
    for key in ("split_file",):
        if key in values:
            values[key] = str(values[key])
    command = _command_line(click.get_current_context())
    settings = {"data": str(data), "output": str(output), "model": model_name,
                "command": command, **values}
    try:
        if resume and (output / "config.json").is_file():
            config = TrainConfig.from_file(output / "config.json", **settings)
        elif config_file is not None:
            config = TrainConfig.from_file(config_file, **settings)
        else:
            config = TrainConfig(**settings)
    except (ValueError, TypeError, OSError) as error:
        raise UserError(str(error)) from None

    import_backend()
    from keras_liverseg.data.datasets import DatasetError
    from keras_liverseg.training.run import train as run_training

    log = (lambda *_: None) if quiet else (lambda line: click.echo(line, err=True))
    try:
        run = run_training(config, resume=resume, log=log)
    except (DatasetError, FileExistsError, FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None
    if not quiet:
        click.echo(f"run folder: {run}")


def _command_line(ctx: click.Context) -> str:
    """The options given on the command line, as a re-runnable ``liverseg train ...``."""
    words = ["liverseg", "train"]
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name)
        value = ctx.params.get(param.name)
        if source != click.core.ParameterSource.COMMANDLINE or value is None:
            continue
        flag = max(param.opts, key=len)
        if getattr(param, "is_flag", False):
            words.append(flag if value or not param.secondary_opts else param.secondary_opts[0])
        else:
            words += [flag, shlex.quote(str(value))]
    return " ".join(words)
