"""Train the default model on one accelerator (JAX backend) from phantoms drawn on that machine.

    KERAS_BACKEND=jax python scripts/train_on_gpu.py \\
        --split scripts/splits/phantoms-train-240.json --out OUT \\
        --init WEIGHTS [--minutes 6 | --steps 9200] [--extra 240] [--input-size 224]

What ``liverseg train`` does on a CPU, sized for a GPU machine that has 16 cores and no
TensorFlow (the ``device`` tool's H200): the phantoms are drawn there instead of read from
NIfTI, and the slice sampler runs in worker processes so that the GPU is not starved.

1. Draw the training phantoms in a process pool: cases ``0 .. base-1`` of dataset seed 1 at
   ``512 x 512 x 64`` (the cases of ``data/phantoms-train-240``, so a split file made there
   applies) and ``--extra`` more cases ``base ..`` of the same seed at ``512 x 512 x 80``.
   Each is brought to canonical orientation, cut to the liver's region for ``--model
   unet_sharp_roi`` (the cascade's second stage, as ``liverseg train --liver-roi`` cuts it),
   and resized in-plane to the model input once, with the resizing the sampler and
   inference use (so the sampler's own resize is a no-op). ``--input-size N`` trains the
   zoo model rebuilt for N x N slices (its weights, convolutional only, load at any size):
   a finer first stage than the entry's own input.
2. Train on the split's training cases plus the extra cases; the split's first
   ``--val-cases`` validation cases pick the checkpoint (:func:`~keras_liverseg.training.
   validation.validate`, Dice per case); the other validation cases are left for
   ``bash scripts/default_weights.sh validate``.
3. Train for ``--minutes`` of wall time after the first chunk (which compiles the train
   step), or for ``--steps`` steps, in chunks of ``--chunk`` steps; the learning rate warms
   up over the first ``--warmup`` of the run, then follows a cosine over the rest;
   validation follows the first chunk that ends ``--validate-seconds`` after the last one.

Writes to ``--out``: ``best.weights.h5`` (best validation Dice per case), ``last.weights.h5``,
``history.json`` (one row per validation) and ``log.txt``; with ``--input-size`` other than
the entry's, also ``best.keras`` and ``last.keras`` (the model with its input size, which
``liverseg predict --weights`` loads as saved).

On a machine with JAX but without TensorFlow, Keras and the package's pure-Python
dependencies, or internet: download them where pip works (``pip download
--only-binary=:all: --python-version 3.12 --platform manylinux2014_x86_64 --no-deps -d .whl
keras==3.15.1 namex optree nibabel pydicom``; ``.whl/`` is git-ignored), copy ``.whl/`` and
the checkout there, ``pip install --target /tmp/site .whl/*.whl`` and run with
``PYTHONPATH=/tmp/site:$PWD``. On a CPU, TensorFlow's graph mode in bfloat16 is the fast
path (``KERAS_BACKEND=tensorflow ... --mixed-precision``; Keras then compiles without XLA).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import os
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np

from keras_liverseg.data.phantom import case_seed, generate_case
from keras_liverseg.data.roi import LiverROI
from keras_liverseg.data.sampler import Augmentation, SliceSampler
from keras_liverseg.data.volumes import crop_to_liver, volume_from_arrays
from keras_liverseg.io import to_canonical
from keras_liverseg.io.slices import resize_axes, resize_labels

# The zoo entries this script trains and the liver framing each reads (None: whole slices).
# Written out because the phantoms are drawn before Keras may be imported; _train checks
# both, and INPUT_SIZE (the slices the phantoms are cut for, the default of --input-size),
# against the zoo entry or the --config overrides.
MODELS = {
    "unet_sharp": None,
    "unet_sharp_fast": None,
    "unet": None,
    "unet_pp": None,
    "unet3p": None,
    "unet_sharp_roi": LiverROI(margin=0.1, slices=2),
}
INPUT_SIZE = (192, 192)
SEED = 1  # dataset seed of data/phantoms-train-240

_SAMPLER: SliceSampler | None = None  # the sampler of the forked batch workers


def draw_case(
    job: tuple[int, int, LiverROI | None, tuple[int, int]],
) -> tuple[str, np.ndarray, np.ndarray]:
    """Phantom ``index`` of dataset seed 1 with ``depth`` slices, canonical, cut to the
    liver's ``roi`` if one is given (as ``liverseg train --liver-roi`` cuts training
    volumes), and resized in-plane to the model input ``size``."""
    index, depth, roi, size = job
    case = generate_case(case_seed(SEED, index), (512, 512, depth))
    image, _, _ = to_canonical(case.volume, case.affine)
    labels, _, _ = to_canonical(case.labels, case.affine)
    volume = volume_from_arrays(f"volume-{index}", image, np.asarray(labels, np.uint8))
    if roi is not None:
        volume = crop_to_liver(volume, roi)
    image = np.rint(resize_axes(volume.image, size, axes=(0, 1))).astype(np.int16)
    return volume.case_id, image, resize_labels(volume.labels, size)


def sample_batch(job: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Slices ``first .. first + size - 1`` of the worker's sampler (float16 HU, labels)."""
    first, size = job
    x, y = _SAMPLER.batch(range(first, first + size))
    return x.astype(np.float16), y


class Batches:
    """Batches ``first, first + batch, ...`` of the sampler from a pool, ``depth`` ahead."""

    def __init__(self, pool, batch_size: int, depth: int = 48):
        self.pool, self.batch_size, self.depth = pool, batch_size, depth
        self.next_first = 0
        self.pending: deque = deque()

    def take(self, count: int):
        """A generator of ``count`` batches ``(x float32, labels)``."""
        for _ in range(count):
            while len(self.pending) < self.depth:
                job = (self.next_first, self.batch_size)
                self.pending.append(self.pool.apply_async(sample_batch, (job,)))
                self.next_first += self.batch_size
            x, y = self.pending.popleft().get()
            yield x.astype(np.float32), y


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", required=True, help="split.json of the base cases")
    parser.add_argument("--out", required=True)
    parser.add_argument("--init", default=None,
                        help="weights to start from (.weights.h5); default: untrained")
    parser.add_argument("--model", choices=sorted(MODELS), nargs="+", default=["unet_sharp"],
                        help="zoo entries, trained one after the other on the same phantoms "
                        "(each into OUT/NAME when there are several); unet_sharp_roi: the "
                        "cascade's second stage, on liver crops")
    parser.add_argument("--config", default="{}",
                        help="JSON overrides of the entries' builder configuration, e.g. "
                        '\'{"filters": [16, 32, 64, 128, 256], "input_shape": [192, 192, 3]}\'; '
                        "best/last.keras are then written too")
    parser.add_argument("--model-config", nargs=2, action="append", default=[],
                        metavar=("NAME", "JSON"),
                        help="more overrides for one of the --model entries, e.g. "
                        'unet3p \'{"deep_supervision": true, "cat_filters": 16}\'')
    parser.add_argument("--base", type=int, default=240)
    parser.add_argument("--extra", type=int, default=240)
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--steps", type=int, default=None,
                        help="train this many steps, the schedule over steps, not minutes")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=float, default=0.05, help="share of the budget")
    parser.add_argument("--chunk", type=int, default=100, help="steps per fit() call")
    parser.add_argument("--validate-seconds", type=float, default=45.0)
    parser.add_argument("--val-cases", type=int, default=20)
    parser.add_argument("--liver-fraction", type=float, default=0.4)
    parser.add_argument("--tumor-fraction", type=float, default=0.4)
    parser.add_argument("--sampling-seed", type=int, default=3)
    parser.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    parser.add_argument("--depth", type=int, nargs=2, default=(64, 80),
                        help="slices of the base and the extra phantoms")
    parser.add_argument("--mixed-precision", action="store_true")
    parser.add_argument("--input-size", type=int, default=INPUT_SIZE[0],
                        help="train on N x N slices (a multiple of 16; default: the entry's)")
    args = parser.parse_args(argv)
    if args.input_size < 16 or args.input_size % 16:
        parser.error(f"--input-size must be a positive multiple of 16, got {args.input_size}")
    size = (args.input_size, args.input_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    log_file = (out / "log.txt").open("a")

    def log(text: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {text}"
        print(line, flush=True)
        log_file.write(line + "\n")
        log_file.flush()

    started = time.perf_counter()
    split = json.loads(Path(args.split).read_text())
    validation = [c for c in split["validation"] if int(c.split("-")[1]) < args.base]
    keep_out = set(validation[args.val_cases:])  # for default_weights.sh validate
    picks = set(validation[: args.val_cases])
    rois = {MODELS[name] for name in args.model}
    if len(rois) > 1:
        parser.error("--model: entries that read whole slices and liver crops need two runs")
    roi = rois.pop()
    jobs = [(i, args.depth[0], roi, size)
            for i in range(args.base) if f"volume-{i}" not in keep_out]
    jobs += [(i, args.depth[1], roi, size) for i in range(args.base, args.base + args.extra)]

    # Both pools fork before Keras (and JAX) are imported: the workers never touch them.
    ctx = mp.get_context("fork")
    with ctx.Pool(args.workers) as pool:
        drawn = pool.map(draw_case, jobs, chunksize=1)
    volumes = [volume_from_arrays(*case) for case in drawn]
    train = [v for v in volumes if v.case_id not in picks]
    val = [v for v in volumes if v.case_id in picks]
    log(f"drew {len(volumes)} phantoms in {time.perf_counter() - started:.0f} s: "
        f"{len(train)} training ({sum(v.depth for v in train)} slices), {len(val)} validation")

    global _SAMPLER
    _SAMPLER = SliceSampler(train, size, 3, args.liver_fraction, args.tumor_fraction,
                            Augmentation(), args.sampling_seed)
    pool = ctx.Pool(args.workers)
    try:
        for name in args.model:
            folder = out / name if len(args.model) > 1 else out
            folder.mkdir(parents=True, exist_ok=True)
            _train(args, name, pool, val, folder, log, started)
        return 0
    finally:
        pool.terminate()


def _train(args, name: str, pool, val, out: Path, log, started: float) -> int:
    import keras

    from keras_liverseg import losses, zoo
    from keras_liverseg.losses import deep_supervision_targets
    from keras_liverseg.models import inference_model
    from keras_liverseg.training.validation import validate

    log(f"keras {keras.__version__} backend {keras.backend.backend()} "
        f"devices {keras.distribution.list_devices()}")
    size = (args.input_size, args.input_size)
    entry = zoo.get_entry(name)
    overrides = json.loads(args.config)
    for model_name, text in args.model_config:
        if model_name == name:
            overrides.update(json.loads(text))
    config = {**entry.config, **overrides}
    if tuple(config["input_shape"][:2]) != INPUT_SIZE or config["input_shape"][2] != 3:
        raise SystemExit(f"Error: {name} takes {tuple(config['input_shape'])}, not "
                         f"{(*INPUT_SIZE, 3)}: update INPUT_SIZE or pass --config")
    overrides["input_shape"] = (*size, 3)
    # what the files are saved from: built before --mixed-precision, so that a saved model
    # computes in float32 wherever it is loaded (the variables are float32 either way)
    keras.mixed_precision.set_global_policy("float32")
    clean = zoo.load(name, weights=None, **overrides)
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = zoo.load(name, weights=args.init, **overrides)
    # the run's files then also carry the model's input size and configuration
    resized = size != INPUT_SIZE or len(overrides) > 1 or entry.prune_level is not None
    if resized:
        log(f"{name} rebuilt for {size[0]}x{size[1]} slices with {json.dumps(overrides)} "
            f"({clean.count_params()} parameters); also writing best.keras and last.keras")
    if entry.liver_roi != MODELS[name]:
        raise SystemExit(f"Error: {name} reads {entry.liver_roi}, not {MODELS[name]}: "
                         "update MODELS")
    head_losses, head_weights = losses.deep_supervision_losses(
        model, losses.SegLoss(per_image=False))
    heads = list(head_losses)
    single = not isinstance(model.output, dict)  # a plain U-Net: one output, no heads
    if single:
        head_losses, head_weights = head_losses["mask"], None
    optimizer = keras.optimizers.Adam(args.lr)
    # Keras's "auto": XLA on JAX and on a TensorFlow GPU, graph mode on a TensorFlow CPU
    # (XLA is 2-6 times slower there: 1.2 against 2.3 slices/s in float32, 0.7 against 4.3
    # with --mixed-precision)
    model.compile(optimizer=optimizer, loss=head_losses, loss_weights=head_weights,
                  jit_compile="auto")
    batches = Batches(pool, args.batch_size)
    net = inference_model(model)  # one predict function, compiled once, for every validation

    def chunk_data(count: int):
        for x, y in batches.take(count):
            targets = deep_supervision_targets(heads, y)
            yield x, targets["mask"] if single else targets

    # liverseg train's schedule (cosine to 5 %), over the share of the run done
    schedule = keras.optimizers.schedules.CosineDecay(args.lr, decay_steps=1.0, alpha=0.05)
    history, best = [], -math.inf
    scores = validate(net, val, "both", batch_size=64)
    log(f"{name}, initial weights: {json.dumps(scores)}")
    train_start = time.perf_counter()
    chunks, slices, validated = 0, 0, train_start
    clock = None  # --minutes count from the end of the first chunk, which compiles the step

    def progress() -> float:  # share of the run done: of its steps, else of its minutes
        if args.steps:
            return chunks * args.chunk / args.steps
        return 0.0 if clock is None else (time.perf_counter() - clock) / (args.minutes * 60.0)

    while progress() < 1.0:
        done = progress()
        lr = float(keras.ops.convert_to_numpy(schedule(done)))
        lr *= min(1.0, 0.05 + done / args.warmup)  # Adam's first steps are wild
        optimizer.learning_rate.assign(lr)
        fit = model.fit(chunk_data(args.chunk), steps_per_epoch=args.chunk, epochs=1,
                        verbose=0)
        chunks += 1
        slices += args.chunk * args.batch_size
        clock = clock or time.perf_counter()
        loss = float(fit.history["loss"][-1])
        if time.perf_counter() - validated < args.validate_seconds and progress() < 1.0:
            log(f"chunk {chunks} loss {loss:.4f} lr {lr:.2e} "
                f"{slices / (time.perf_counter() - train_start):.0f} slices/s")
            continue
        scores = validate(net, val, "both", batch_size=64)
        validated = time.perf_counter()
        row = {"chunk": chunks, "slices": slices, "loss": loss, "lr": lr,
               "seconds": round(time.perf_counter() - train_start, 1), **scores}
        history.append(row)
        (out / "history.json").write_text(json.dumps(history, indent=1))
        _save(model, clean, out / "last", resized)
        if scores["dice_per_case"] > best:
            best = scores["dice_per_case"]
            _save(model, clean, out / "best", resized)
        log(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in row.items()))
    log(f"{name} done: {slices} slices in {time.perf_counter() - train_start:.0f} s of training, "
        f"{time.perf_counter() - started:.0f} s in all; best validation {best:.4f}")
    return 0


def _save(model, clean, stem: Path, with_model: bool = False) -> None:
    """Save ``model``'s weights as ``stem.weights.h5`` (and, ``with_model``, the model as
    ``stem.keras``) through ``clean``, an uncompiled twin (a compiled model's file would
    also hold the optimizer's state), each under a temporary name first: a run stopped at
    its time limit while writing leaves the previous file whole."""
    clean.set_weights(model.get_weights())
    suffixes = [".weights.h5", ".keras"] if with_model else [".weights.h5"]
    for suffix in suffixes:
        path = stem.with_name(stem.name + suffix)
        partial = path.with_name("partial." + path.name)
        (clean.save_weights if suffix == ".weights.h5" else clean.save)(partial)
        partial.replace(path)


if __name__ == "__main__":
    sys.exit(main())
