"""``liverseg train``: train a zoo model on a LiTS / MSD dataset folder or on phantoms drawn
on the fly, for a number of epochs or a budget of steps or minutes, on a CPU or a GPU."""

from __future__ import annotations

import contextlib
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
@click.option("--data", type=click.Path(path_type=Path),
              help="Dataset folder: LiTS layout (volume-N / segmentation-N) or MSD "
                   "(imagesTr/ labelsTr/). Give --data, --phantoms or both.")
@click.option("--phantoms", type=int, metavar="N",
              help="Instead of --data, or beside its cases (whose ids must differ): draw "
                   "phantom cases volume-0 .. volume-N-1 (those "
                   "`liverseg sample-data --cases N --seed S` writes) in worker processes, "
                   "resized once to the model input (a 3D model: to its voxel spacing); "
                   "--split-file and the validation split apply to their ids (cases a split "
                   "file does not name are training cases too, so a split made on fewer "
                   "phantoms keeps its validation cases). With --data: mix the dataset with "
                   "synthetic cases, e.g. to fine-tune on a few labelled scans without "
                   "forgetting the phantoms.")
@click.option("--phantom-seed", type=int, metavar="S",
              help="Dataset seed of --phantoms [0].")
@click.option("--phantom-size", type=int, nargs=3, metavar="X Y Z",
              help="Voxels of each drawn phantom [512 512 64].")
@click.option("--model", "model_name", default=None,
              help="Zoo model to train (its architecture and configuration) [unet_sharp; "
              "with --resume, the run's own; else the --config file's].")
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
              help="JSON file of training settings (see keras_liverseg.training.TrainConfig); "
                   "command-line options override it.")
@click.option("--model-config", "model_config", metavar="JSON",
              help='Overrides of the zoo entry\'s builder configuration, e.g. '
                   '\'{"filters": [16, 32, 64, 128, 256]}\' (replaces the --config file\'s '
                   'model_config).')
@click.option("--input-size", type=int, metavar="N",
              help="Train the zoo model rebuilt for N x N slices (a multiple of 16; a 3D "
                   "model: patches of its depth and N x N in-plane) [the entry's own].")
@click.option("--pixel-spacing", type=float, metavar="MM",
              help="Train the model to read axial slices resampled to MM mm pixels, centred "
                   "on a canvas of at least its input size (any field of view gives organs "
                   "the same size in pixels); stored in the model, so predict does the same "
                   "[the entry's own; none: each slice resized to the input].")
@click.option("--epochs", type=int, help="Epochs [10]; --steps or --minutes replace it.")
@click.option("--steps", type=int, metavar="N",
              help="Budget: N steps in all, in epochs of --steps-per-epoch (the last one cut "
                   "short); the warm-up and cosine run over them.")
@click.option("--minutes", type=float, metavar="M",
              help="Budget: M minutes of wall time after the first step (which compiles), in "
                   "epochs of --steps-per-epoch or until the time is up; the learning rate "
                   "follows the share of the time spent.")
@click.option("--steps-per-epoch", type=int,
              help="Batches per epoch [one pass over the training slices: ceil(training "
                   "slices / batch size); a 3D model: over the training voxels, ceil(patches "
                   "that tile the training volumes / batch size)].")
@click.option("--batch-size", type=int, help="Slices (a 3D model: patches) per batch, all "
              "replicas together [8; a 3D model: 2].")
@click.option("--lr", "learning_rate", type=float,
              help="Peak learning rate [1e-3]: Adam; after the --warmup (a linear rise from 5 % "
                   "of it), a cosine to 5 % at the end of the run.")
@click.option("--warmup", type=float, metavar="SHARE",
              help="Share of the run (epochs, steps or minutes) that the warm-up takes [0.05 with "
                   "--steps or --minutes, 0 with --epochs].")
@click.option("--workers", type=int, metavar="N",
              help="Sampler worker processes, on either backend, and the processes that draw "
                   "--phantoms and decode the --data cases not cached yet "
                   "[0: the sampler in threads of the training process; phantoms "
                   "drawn by one process per core].")
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
@click.option("--coarse", type=float, metavar="P",
              help="Share of training slices read as a coarser reconstruction of the same "
                   "scan would show them (blurred and sampled at 3-9 mm pixels, then "
                   "resampled; the labels stay fine), for models that read slices at a "
                   "pixel spacing [0].")
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
    """Train a model on CT volumes with liver / tumor labels: a dataset folder (--data) or
    phantoms drawn on the fly (--phantoms), for --epochs or a budget of --steps or
    --minutes, on a CPU or a GPU (either backend)."""
    from keras_liverseg.training.config import ConfigError, TrainConfig

    values = {k: v for k, v in options.items() if v is not None}
    for key in ("split_file",):
        if key in values:
            values[key] = str(values[key])
    if "model_config" in values:
        values["model_config"] = _json_object("--model-config", values["model_config"])
    if data is None and options.get("phantoms") is None and config_file is None and not resume:
        raise UserError("give --data FOLDER (a dataset) or --phantoms N (phantoms drawn on "
                        "the fly)")
    budgets = [f"--{k}" for k in ("epochs", "steps", "minutes") if options.get(k) is not None]
    if len(budgets) > 1:
        raise UserError(f"give one of --epochs, --steps and --minutes, not {budgets[0]} and "
                        f"{budgets[1]}")
    command = _command_line(click.get_current_context())
    settings = {"data": None if data is None else str(data), "output": str(output),
                "command": command, **values}
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
    from keras_liverseg.training.workers import is_chief

    # multi-worker: the chief claims and writes the run folder, the other workers only read
    # it (they write to scratch folders of their own), so they neither claim nor clear it
    chief = is_chief(config.strategy)

    def log(line: str) -> None:  # after each epoch's checkpoint: a lost signal stops here
        raise_pending()
        if not quiet:
            click.echo(line, err=True)

    # a new run that stops before its first checkpoint leaves nothing behind (the folder was
    # empty or missing: a folder with files in it is refused without --resume)
    existed = output.is_dir()
    fresh = chief and not resume and (not existed or not any(output.iterdir()))
    try:
        with (outputs.claim_run_folder("--output", output) if chief
              else contextlib.nullcontext()):
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
    source = [*(("--data", config.data) if config.data else ()),
              *(("--phantoms", config.phantoms) if config.phantoms else ())]
    again = " ".join(shlex.quote(str(word)) for word in (
        "liverseg", "train", *source, "--model", config.model, "--output", run))
    of = "" if config.steps or config.minutes else f" of {config.epochs}"
    return (f"{how} after epoch {done}{of}, whose checkpoint is complete; "
            f"continue with: {again} --resume")


def _json_object(option: str, text: str) -> dict:
    """``text`` parsed as a JSON object, or a one-line error naming ``option``."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise UserError(f"{option} is not JSON ({error}): {text}") from None
    if not isinstance(value, dict):
        raise UserError(f'{option} must be a JSON object of {{"key": value}} pairs, got {text}')
    return value


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
        elif isinstance(value, tuple):  # nargs > 1
            words += [flag, *(shlex.quote(str(v)) for v in value)]
        else:
            words += [flag, shlex.quote(str(value))]
    return " ".join(words)
