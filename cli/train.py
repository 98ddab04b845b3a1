"""``liverseg train``: train a zoo model on a LiTS / MSD dataset folder."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import click

from keras_liverseg.cli import outputs
from keras_liverseg.cli.errors import UserError
from keras_liverseg.cli.quiet import import_backend
from keras_liverseg.cli.signals import Terminated, raise_pending


@click.command("train")
@click.option("--data", required=True, type=click.Path(path_type=Path),
              help="Dataset folder: LiTS layout (volume-N / segmentation-N) or MSD "
                   "(imagesTr/ labelsTr/).")
@click.option("--model", "model_name", default=None,
              help="Zoo model to train (its architecture and configuration) [unet_sharp; "
              "with --resume, the run's own; else the --config file's].")
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
    from keras_liverseg.training.config import ConfigError, TrainConfig

    values = {k: v for k, v in options.items() if v is not None}
    for key in ("split_file",):
        if key in values:
            values[key] = str(values[key])
    command = _command_line(click.get_current_context())
    settings = {"data": str(data), "output": str(output), "command": command, **values}
    if model_name is not None:  # else the resumed run's, the --config file's, or the default
        settings["model"] = model_name
    try:
        if resume and (output / "config.json").is_file():
            config = TrainConfig.from_file(output / "config.json", **settings)
        elif config_file is not None:
            try:
                config = TrainConfig.from_file(config_file, **settings)
            except ConfigError as error:  # it names the file and the key
                raise UserError(f"--config {error}") from None
        else:
            config = TrainConfig(**settings)
    except (ValueError, TypeError, OSError) as error:
        raise UserError(str(error)) from None

    init = options.get("init")
    outputs.refuse_clashes({"--output": output}, {
        "--data": data, "--config": config_file, "--split-file": options.get("split_file"),
        "--init": None if init is None or init.startswith("zoo:") else Path(init)})

    import_backend()
    from keras_liverseg.data.datasets import DatasetError
    from keras_liverseg.training.run import train as run_training

    def log(line: str) -> None:  # after each epoch's checkpoint: a lost signal stops here
        raise_pending()
        if not quiet:
            click.echo(line, err=True)

    # a new run that stops before its first checkpoint leaves nothing behind (the folder was
    # empty or missing: a folder with files in it is refused without --resume)
    existed = output.is_dir()
    fresh = not resume and (not existed or not any(output.iterdir()))
    try:
        with outputs.claim_run_folder("--output", output):
            try:
                run = run_training(config, resume=resume, log=log)
            except BaseException:
                if fresh and _epochs_done(output) < 1:
                    _clear(output, keep_folder=existed)
                raise
    except (DatasetError, FileExistsError, FileNotFoundError, ValueError) as error:
        raise UserError(str(error)) from None
    except (KeyboardInterrupt, Terminated) as error:
        raise type(error)(_stopped(config, error)) from None
    if not quiet:
        click.echo(f"run folder: {run}")


def _stopped(config, error: BaseException) -> str:
    """What an interrupted run left: the epoch its last checkpoint holds, how to go on."""
    how = "Interrupted" if isinstance(error, KeyboardInterrupt) else "Terminated"
    run = Path(config.output)
    done = _epochs_done(run)
    if done < 1:
        return f"{how} before the first checkpoint; nothing was kept."
    again = " ".join(shlex.quote(str(word)) for word in (
        "liverseg", "train", "--data", config.data, "--model", config.model, "--output", run))
    return (f"{how} after epoch {done} of {config.epochs}, whose checkpoint is complete; "
            f"continue with: {again} --resume")


def _epochs_done(run: Path) -> int:
    """The epochs whose checkpoint the run folder holds (0: none, or no run there)."""
    try:
        return int(json.loads((run / "state.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def _clear(run: Path, keep_folder: bool) -> None:
    """Remove what a new run wrote before its first checkpoint (cache, config, logs)."""
    if not keep_folder:
        shutil.rmtree(run, ignore_errors=True)
        return
    for path in run.iterdir():
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


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
