"""Training throughput on this machine: slices/s of each architecture, and of the input
pipeline alone (it must not be the bottleneck).

    python benchmarks/bench_training.py [--size 256] [--batch 8] [--steps 5] [--models ...]
        [--level L] [--mixed-precision]

Data: generated phantom cases (``liverseg sample-data``) if the generator is installed,
else synthetic blobs. Each model trains ``--steps`` timed steps after one warm-up step
with the package's own distributed step (single device) and losses. Prints one line per
model and the pipeline's slices/s; the ratio pipeline / model says how much headroom the
pipeline has.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_liverseg import losses, models  # noqa: E402
from keras_liverseg.data.datasets import find_cases  # noqa: E402
from keras_liverseg.data.sampler import Augmentation, SliceSampler  # noqa: E402
from keras_liverseg.data.volumes import load_volume  # noqa: E402

SMALL = (16, 32, 64, 128, 256)


def make_data(folder: Path, size: int) -> Path:
    try:
        from keras_liverseg.phantom import write_lits_dataset

        write_lits_dataset(folder, cases=2, seed=12345, shape=(512, 512, 48))
    except ImportError:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from synthetic import write_lits

        write_lits(folder, count=2, shape=(512, 512, 48))
    return folder


def pipeline_rate(sampler, heads, batch: int, batches: int = 20) -> float:
    from keras_liverseg.data.tfdata import slice_dataset

    dataset = slice_dataset(sampler, heads, batch, count=batches + 2)
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - start)


def model_rate(name: str, size: int, batch: int, steps: int, sampler,
               level: int | None = None) -> tuple[float, int]:
    import tensorflow as tf

    from keras_liverseg.training.steps import DistributedTrainer

    strategy = tf.distribute.get_strategy()
    channels = 3 if name == "es_unet_pp_encoder" else sampler.context_slices
    extra = {"deep_supervision": True} if name in ("unet_sharp", "unet_pp") else {}
    if level is not None and name == "unet_sharp":
        extra["level"] = level
    model = models.build(name, input_shape=(size, size, channels), num_classes=3,
                         filters=SMALL, **extra)
    head_losses, weights = losses.deep_supervision_losses(model, losses.SegLoss())
    optimizer = keras.optimizers.Adam(1e-3)
    trainer = DistributedTrainer(model, head_losses, weights, optimizer, strategy)
    x, y = sampler.batch(range(batch))
    x = x[..., :1].repeat(channels, -1) if channels != x.shape[-1] else x
    if name == "es_unet_pp_encoder":
        x = np.eye(3, dtype="float32")[y]
    heads = {n: tuple(o.shape[1:]) for n, o in zip(model.output_names, model.outputs,
                                                   strict=True) if n in head_losses}
    batch_data = (tf.constant(x), {k: tf.constant(v) for k, v in
                                  losses.deep_supervision_targets(list(heads), y).items()})
    dataset = tf.data.Dataset.from_tensors(batch_data).repeat()
    trainer.train(dataset, 1)
    start = time.perf_counter()
    trainer.train(dataset, steps)
    return steps * batch / (time.perf_counter() - start), model.count_params()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--models", nargs="*", default=models.available(volumetric=False))
    parser.add_argument("--level", type=int, default=None,
                        help="UNet# pruning level (the shipped unet_sharp is level 3)")
    parser.add_argument("--mixed-precision", action="store_true",
                        help="bfloat16 compute, as `liverseg train --mixed-precision`")
    args = parser.parse_args()
    if args.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp) / "data", args.size)
        volumes = [load_volume(c) for c in find_cases(data)]
        sampler = SliceSampler(volumes, (args.size, args.size), 3, augmentation=Augmentation())
        heads = {"mask": (args.size, args.size, 3)}
        rate = pipeline_rate(sampler, heads, args.batch)
        print(f"input pipeline: {rate:.1f} slices/s ({args.size}x{args.size}, 3 slices, "
              f"augmented, {os.cpu_count()} CPUs)")
        for name in args.models:
            speed, params = model_rate(name, args.size, args.batch, args.steps, sampler,
                                       args.level)
            print(f"{name:<20} {params:>10,} params  {speed:6.2f} slices/s  "
                  f"pipeline/model = {rate / speed:5.1f}x")


if __name__ == "__main__":
    main()
