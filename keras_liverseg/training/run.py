"""A training run: data, model, the epoch loop, checkpoints, history, model card, resume.

The run folder holds::

    config.json        the TrainConfig (resume reads it back)
    split.json         training / validation case ids
    state.json         last completed epoch, best validation Dice, slices seen
    checkpoints/       last.weights.h5 + last.optimizer.npz (resume), best.weights.h5
    model.keras        the final model (best validation weights), loads in safe mode
    model_card.json    architecture, preprocessing, classes, data, metrics, versions, command
    model_card.md      the same for people
    history.csv        one row per epoch
    logs/              TensorBoard scalars
    cache/             the dataset's decoded volumes (.npy), reused by later epochs and runs
                       (not the ``phantoms``: those are drawn into memory, in worker
                       processes)

The length of the run and its learning rate are a :class:`~keras_liverseg.training.epochs.
Budget`: ``epochs`` of ``steps_per_epoch`` steps (one pass over the training slices unless
given; for a 3D model, over the training voxels in patches), or ``steps`` steps, or
``minutes`` of wall time.

A 2D model trains on axial slices, a 3D model (the V-Net family) on patches of volumes
resampled once to its voxel spacing: :mod:`keras_liverseg.training.inputs` is where the two
part; everything else (run folder, budgets, strategies, losses per head, validation scores)
is shared.

Under ``--strategy multi-worker`` only the chief writes the run folder; the other workers
read it (resume) and write the same files into a scratch folder of their own, removed at the
end (:mod:`keras_liverseg.training.workers`).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import platform
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from keras_liverseg import __version__, losses, models, zoo
from keras_liverseg.data.datasets import (
    Case,
    DatasetError,
    draw_phantoms,
    find_cases,
    phantom_cases,
    split_cases,
    write_split,
)
from keras_liverseg.data.volumes import crop_to_liver, load_volumes
from keras_liverseg.io.atomic import atomic_paths, uninterrupted
from keras_liverseg.models import registry
from keras_liverseg.training.config import TrainConfig
from keras_liverseg.training.epochs import Budget, make_epoch_runner, strategy_scope
from keras_liverseg.training.es_unet_pp import FEATURES, encoding_stage, supervised_features
from keras_liverseg.training.inputs import (
    make_sampler,
    on_model_grid,
    phantom_geometry,
    samples_per_pass,
)
from keras_liverseg.training.validation import describe, validate
from keras_liverseg.training.workers import write_folder

HISTORY_FIELDS = ["epoch", "loss", "dice_per_case", "dice_per_case_liver",
                  "dice_per_case_tumor", "learning_rate", "seconds"]


def train(config: TrainConfig, resume: bool = False, log=print) -> Path:
    """Train as ``config`` says; with ``resume`` continue the run in ``config.output``."""
    policy = keras.mixed_precision.global_policy()
    try:
        with write_folder(config.output, config.strategy) as own:  # multi-worker: chief only
            if own != Path(config.output):
                log(f"not the chief worker: writing to the scratch folder {own} (removed at "
                    f"the end); the chief writes {config.output}")
            return _train(config, resume, log, own)
    finally:  # --mixed-precision must not leak into the caller's later models
        keras.mixed_precision.set_global_policy(policy)


def _train(config: TrainConfig, resume: bool, log, own: Path) -> Path:
    # every worker reads the run folder ``run`` (resume); this worker writes to ``own``: the
    # run folder on the chief, its scratch folder on other workers (training.workers)
    run = Path(config.output)
    backend = keras.backend.backend()
    # MultiWorkerMirroredStrategy must exist before TensorFlow runs its first op.
    strategy = _strategy(config) if backend == "tensorflow" else None
    if backend == "jax":
        _jax_distribution(config, log)
    _check_model(config)
    cases = _cases(config)
    train_cases, val_cases = split_cases(cases, config.validation_fraction, config.seed,
                                         config.split_file)
    if config.phantoms and config.split_file:  # drawn cases a split file does not name train
        named = {case.case_id for case in (*train_cases, *val_cases)}
        train_cases += [case for case in cases
                        if case.image is None and case.case_id not in named]
    state = _start(run, config, resume, own)
    write_split(own / "split.json", train_cases, val_cases)
    if config.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")

    cache = own / "cache"
    train_volumes, val_volumes = _volumes(config, train_cases,
                                          val_cases[: config.validation_cases_max], cache, log)
    samples, what = samples_per_pass(config, train_volumes)
    log(f"data: {len(train_cases)} training and {len(val_cases)} validation cases ({what})")
    # an epoch is one pass over the training slices (3D: over the training voxels in
    # patches) unless --steps-per-epoch says otherwise
    steps_per_epoch = config.steps_per_epoch or math.ceil(samples / config.batch_size)
    budget = Budget(config, steps_per_epoch, state.get("steps", state["epoch"] * steps_per_epoch),
                    state.get("seconds", 0.0))

    with strategy_scope(strategy):
        model = _build_model(config)
        optimizer = budget.optimizer()
        optimizer.build(model.trainable_variables)
    head_losses, head_weights = _losses(config, model)
    if state["epoch"] > 0:
        _restore(run, model, optimizer)
        log(f"resuming after epoch {state['epoch']}")

    sampler = make_sampler(config, models.preprocessing_of(model), train_volumes)
    heads = {name: tuple(out.shape[1:]) for name, out in zip(model.output_names, model.outputs,
                                                            strict=True)}
    heads = {name: shape for name, shape in heads.items() if name in head_losses}
    extra_targets = None
    if _two_stage(config):
        extra_targets = encoding_stage(
            dataclasses.replace(config, steps_per_epoch=steps_per_epoch), run, strategy, sampler,
            log, out=own)
    epoch_runner = make_epoch_runner(model, optimizer, head_losses, head_weights, strategy,
                                     sampler, heads, steps_per_epoch, config.batch_size,
                                     extra_targets=extra_targets, workers=config.workers)
    writer = _summary_writer(own / "logs", log)

    epoch = state["epoch"]
    while not budget.finished():
        epoch += 1
        started = time.perf_counter()
        loss = budget.run_epoch(epoch_runner, optimizer, config.batch_size)
        if not np.isfinite(loss):  # stop before a NaN model overwrites the checkpoints
            raise ValueError(_not_finite(config, epoch, loss))
        scores = validate(model, val_volumes, config.task)
        row = {"epoch": epoch, "loss": loss, **scores,
               "learning_rate": budget.learning_rate(),
               "seconds": time.perf_counter() - started}
        state["steps"], state["seconds"] = budget.steps_done, budget.seconds()
        with uninterrupted():  # Ctrl-C / SIGTERM take effect once the checkpoint is whole
            state["epoch"] = epoch
            score = scores.get("dice_per_case", -loss)
            if score > state["best"]:
                state["best"], state["best_epoch"] = score, epoch
                model.save_weights(own / "checkpoints" / "best.weights.h5")
            _checkpoint(own, model, optimizer, state, row)
            writer(epoch, row)
        log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in row.items()))

    model.load_weights(own / "checkpoints" / "best.weights.h5")
    with uninterrupted():
        model.save(own / "model.keras")
    final = validate(model, val_volumes, config.task)
    _write_model_card(own, config, model, train_cases, val_cases, state, final)
    return run


def _not_finite(config: TrainConfig, epoch: int, loss: float) -> str:
    """The one-line error of a run whose loss became NaN or infinite."""
    kept = f"epoch {epoch - 1}'s checkpoint is kept (--resume)" if epoch > 1 else "no checkpoint"
    hint = "lower --lr"
    if config.mixed_precision:
        hint += (" or drop --mixed-precision (on the JAX backend, jaxlib 0.11's CPU build "
                 "computes NaN for bfloat16 convolution blocks)")
    return f"training loss is {loss} after epoch {epoch}; {kept}; {hint}"


# --- setting up -----------------------------------------------------------------------------

def _cases(config: TrainConfig) -> list[Case]:
    """The run's cases: the dataset folder's, then the phantoms to draw (ids ``volume-N``,
    no files), which must not share an id with a dataset case."""
    cases = find_cases(config.data) if config.data else []
    if config.phantoms:
        drawn = phantom_cases(config.phantoms)
        clash = sorted({c.case_id for c in cases} & {c.case_id for c in drawn},
                       key=lambda case_id: (len(case_id), case_id))
        if clash:
            raise DatasetError(
                f"{config.data} has case ids that --phantoms {config.phantoms} draws too "
                f"({', '.join(clash[:3])}{', ...' if len(clash) > 3 else ''}): number the "
                f"dataset's cases from volume-{config.phantoms} up, or draw fewer phantoms")
        cases += drawn
    return cases


def _volumes(config: TrainConfig, train_cases, val_cases, cache: Path, log) -> tuple[list, list]:
    """The training and validation volumes: the dataset's read through the ``.npy`` cache
    (decoded in ``config.workers`` processes), the phantoms drawn in worker processes; cut
    to the liver's region for the second stage of a cascade; for a 3D model, resampled to
    its voxel spacing (the phantoms as they are drawn)."""
    roi = zoo.get_entry(config.model).liver_roi if config.crops_to_liver else None
    cases = [*train_cases, *val_cases]
    by_id = {}
    drawn = [case for case in cases if case.image is None]
    if drawn:
        started = time.perf_counter()
        processes = config.workers or os.cpu_count() or 1
        for volume in draw_phantoms(drawn, config.phantom_seed, config.phantom_size,
                                    crop=config.crops_to_liver, roi=roi,
                                    processes=processes, **phantom_geometry(config)):
            by_id[volume.case_id] = volume
        log(f"drew {len(drawn)} phantoms of seed {config.phantom_seed} in "
            f"{time.perf_counter() - started:.0f} s")
    files = [case for case in cases if case.image is not None]
    if files:
        read = load_volumes(files, cache, processes=config.workers)
        if config.crops_to_liver:  # the second stage of a cascade
            read = [crop_to_liver(volume, roi) for volume in read]
        by_id.update((volume.case_id, volume) for volume in on_model_grid(config, read))
    volumes = [by_id[case.case_id] for case in cases]
    return volumes[:len(train_cases)], volumes[len(train_cases):]


def _start(run: Path, config: TrainConfig, resume: bool, out: Path | None = None) -> dict:
    """The run's state: read from ``run`` (resume), or a new run's, written to ``out``.

    ``out`` is where this worker writes (``run`` itself unless it is not the chief of a
    multi-worker run); another worker's folder gets a copy of the chief's best weights, the
    final model's weights if no later epoch beats them.
    """
    out = run if out is None else out
    state_path = run / "state.json"
    if resume:
        if not state_path.is_file():
            raise FileNotFoundError(f"nothing to resume in {run}: no state.json")
        saved = TrainConfig.from_dict(json.loads((run / "config.json").read_text()))
        if (saved.model, saved.task, saved.model_config) != (config.model, config.task,
                                                              config.model_config):
            raise ValueError(f"{run} holds a run of another model/task; start a new run folder")
        state = json.loads(state_path.read_text())
        if out != run:
            (out / "checkpoints").mkdir(parents=True, exist_ok=True)
            best = run / "checkpoints" / "best.weights.h5"
            if best.is_file():
                shutil.copyfile(best, out / "checkpoints" / "best.weights.h5")
        return state
    if out == run:
        taken = run.exists() and any(run.iterdir())
    else:  # another worker cannot tell whether the chief found its folder empty, but a
        # completed epoch there is an older run's (this run's first needs every worker)
        try:
            taken = json.loads(state_path.read_text())["epoch"] > 0
        except (OSError, ValueError, KeyError, TypeError):
            taken = False
    if taken:
        raise FileExistsError(f"run folder {run} is not empty; pass --resume to continue it "
                              "or choose another folder")
    (out / "checkpoints").mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    state = {"epoch": 0, "best": -np.inf, "best_epoch": 0}
    (out / "state.json").write_text(json.dumps(state))
    return state


def _check_model(config: TrainConfig) -> None:
    """Fail before the run folder is created: unknown or pruned model, missing --init."""
    entry = zoo.get_entry(config.model)
    if entry.prune_level is not None:
        raise ValueError(f"{config.model} is a pruned view of another entry; train that one")
    if config.init and config.init.startswith("zoo:"):
        if zoo.default_weights(config.init[4:]) is None:
            raise ValueError(f"--init {config.init}: that zoo model has no released weights")
    elif config.init and not Path(config.init).is_file():
        raise FileNotFoundError(f"--init weights file not found: {config.init}")


def _two_stage(config: TrainConfig) -> bool:
    """ES-UNet++ trains an encoding UNet++ first and supervises the encoder with it."""
    return registry.trains_in_two_stages(zoo.get_entry(config.model).architecture)


def _losses(config: TrainConfig, model: keras.Model) -> tuple[dict, dict]:
    """The paper's loss on every segmentation head (and Smooth-L1 for ES-UNet++)."""
    head_losses, head_weights = losses.deep_supervision_losses(
        model, _segmentation_loss(zoo.get_entry(config.model).architecture, config.loss),
        feature_loss=losses.SmoothL1Loss() if _two_stage(config) else None,
        feature_weight=config.feature_weight)
    if _two_stage(config):
        for name in set(FEATURES) - set(supervised_features(config)):
            head_losses.pop(name)
            head_weights.pop(name)
        supervised = supervised_features(config)
        for name in supervised:
            head_weights[name] = config.feature_weight / len(supervised)
    return head_losses, head_weights


def _build_model(config: TrainConfig) -> keras.Model:
    overrides = config.model_overrides()  # classes, model_config, input_size
    if _two_stage(config):
        overrides["encoder_features"] = True
    model = zoo.load(config.model, weights=None, **overrides)
    if config.init:
        if config.init.startswith("zoo:"):
            source = zoo.load(config.init[4:], weights="default", **overrides)
            model.set_weights(source.get_weights())
        else:
            model.load_weights(config.init)
    return model


def _segmentation_loss(architecture: str, loss: str = "paper"):
    """The loss of each architecture's paper (per head, registered with the architecture),
    or batch Dice + cross-entropy."""
    if loss == "dice_ce":
        return losses.SegLoss(per_image=False)
    return registry.paper_loss(architecture)


def _strategy(config: TrainConfig):
    from keras_liverseg.training.steps import make_strategy

    return make_strategy(config.strategy)


def _jax_distribution(config: TrainConfig, log) -> None:
    """On JAX, ``keras.distribution.DataParallel`` over the local devices (``auto`` with
    more than one device, or ``mirrored``); ``multi-worker`` is TensorFlow-only."""
    if config.strategy == "multi-worker":
        raise ValueError("strategy multi-worker needs the TensorFlow backend; on JAX use "
                         "auto, one or mirrored (data parallel over the local devices)")
    devices = keras.distribution.list_devices()
    if config.strategy == "mirrored" or (config.strategy == "auto" and len(devices) > 1):
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        log(f"data parallel over {len(devices)} JAX devices")



# --- saving ---------------------------------------------------------------------------------

def _checkpoint(run: Path, model, optimizer, state: dict, row: dict) -> None:
    """Write the last checkpoint, ``history.csv`` with the epoch's ``row`` and, last,
    ``state.json`` into ``run`` (this worker's folder), as one group of renames: a run killed
    at any point (SIGKILL too) leaves a history that resume continues. The history is
    written whole, its rows of earlier epochs and then ``row``, so a row of an epoch that
    ``state.json`` never recorded is replaced when that epoch is run again."""
    folder = run / "checkpoints"
    values = {f"v{i}": keras.ops.convert_to_numpy(v) for i, v in enumerate(optimizer.variables)}
    rows = [old for old in _read_history(run / "history.csv") if old["epoch"] < row["epoch"]]
    with atomic_paths([folder / "last.weights.h5", folder / "last.optimizer.npz",
                       run / "history.csv", run / "state.json"]
                      ) as (weights, optimizer_state, history, state_file):
        model.save_weights(weights)
        np.savez(optimizer_state, **values)
        with history.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, HISTORY_FIELDS, extrasaction="ignore")
            writer.writeheader()
            for kept in [*rows, row]:
                writer.writerow({k: kept.get(k, "") for k in HISTORY_FIELDS})
        state_file.write_text(json.dumps(state))


def _read_history(path: Path) -> list[dict]:
    """The rows of ``history.csv`` with their epoch as an int (none for a missing file)."""
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [{**row, "epoch": int(row["epoch"])} for row in csv.DictReader(handle)
                if (row.get("epoch") or "").isdigit()]


def _restore(run: Path, model, optimizer) -> None:
    folder = run / "checkpoints"
    model.load_weights(folder / "last.weights.h5")
    saved = np.load(folder / "last.optimizer.npz")
    for i, variable in enumerate(optimizer.variables):
        variable.assign(saved[f"v{i}"])


def _summary_writer(folder: Path, log=print):
    """TensorBoard scalars via tf.summary; without TensorFlow (a JAX-only install) a no-op."""
    try:
        import tensorflow as tf
    except ImportError:
        log("TensorBoard logs skipped: they need TensorFlow (history.csv has every scalar)")
        return lambda epoch, row: None

    writer = tf.summary.create_file_writer(str(folder))

    def write(epoch: int, row: dict) -> None:
        with writer.as_default():
            for key, value in row.items():
                if key != "epoch" and isinstance(value, float):
                    tf.summary.scalar(key, value, step=epoch)
        writer.flush()

    return write


def _source(config: TrainConfig) -> str:
    """Where the run's cases came from: the dataset folder, the phantoms it drew, or both."""
    sources = [str(config.data)] if config.data else []
    if config.phantoms:
        size = "x".join(map(str, config.phantom_size))
        sources.append(f"phantoms: {config.phantoms} of seed {config.phantom_seed}, "
                       f"{size} voxels")
    return " + ".join(sources)


def _write_model_card(run, config: TrainConfig, model, train_cases, val_cases, state, scores):
    pre = models.preprocessing_of(model)
    card = {
        "model": config.model,
        "architecture": zoo.get_entry(config.model).architecture,
        "config": {**zoo.get_entry(config.model).config, **config.model_overrides()},
        "preprocessing": pre.to_dict(),
        "classes": list(pre.classes),
        "task": config.task,
        "data": {"folder": _source(config), "training_cases": [c.case_id for c in train_cases],
                 "validation_cases": [c.case_id for c in val_cases]},
        "training": {k: v for k, v in config.to_dict().items() if k not in ("data", "output")},
        "best_epoch": state["best_epoch"],
        "validation": scores,
        "validation_note": describe(scores, config.task),
        "weights_sha256": zoo.sha256_of(run / "checkpoints" / "best.weights.h5"),
        "versions": {"keras_liverseg": __version__, "keras": keras.__version__,
                     "backend": keras.backend.backend(), "python": platform.python_version()},
        "command": config.command,
    }
    (run / "model_card.json").write_text(json.dumps(card, indent=2, default=str))
    lines = [f"# {config.model} ({card['architecture']}), task {config.task}", "",
             f"- command: `{config.command}`",
             f"- preprocessing: {json.dumps(card['preprocessing'])}",
             f"- data: {len(train_cases)} training / {len(val_cases)} validation cases "
             f"from `{_source(config)}`",
             f"- best epoch: {state['best_epoch']} of {state['epoch']}",
             f"- validation: {json.dumps(scores)}",
             f"- {card['validation_note']}",
             f"- weights sha256: `{card['weights_sha256']}`",
             f"- versions: {json.dumps(card['versions'])}"]
    (run / "model_card.md").write_text("\n".join(lines) + "\n")
