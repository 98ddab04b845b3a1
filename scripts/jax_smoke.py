"""Smoke run on the JAX backend: build every architecture, predict, and train a few steps.

    KERAS_BACKEND=jax python scripts/jax_smoke.py [--size 64] [--steps 3]

Prints one line per architecture (parameters, loss before/after, seconds) and exits
non-zero if any forward pass is not finite or the loss does not fall. Used by
``tox -e jax`` and, on a GPU machine, to check that the models train there.
"""

from __future__ import annotations

import argparse
import sys
import time

import keras
import numpy as np

from keras_liverseg import models

SMALL = (8, 16, 32, 64, 128)


def synthetic_batch(size: int, channels: int, batch: int = 4, seed: int = 0):
    """A bright disc (liver-like HU) with a dark core (tumor) on a fat background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    x = np.full((batch, size, size, channels), -100.0, "float32")
    y = np.zeros((batch, size, size), "int32")
    for b in range(batch):
        cy, cx, r = rng.uniform(0.3, 0.7) * size, rng.uniform(0.3, 0.7) * size, size / 5
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r**2
        core = (yy - cy) ** 2 + (xx - cx) ** 2 < (r / 3) ** 2
        x[b][disc] = 110.0
        x[b][core] = 40.0
        y[b][disc], y[b][core] = 1, 2
    x += rng.normal(0, 10, x.shape).astype("float32")
    return x, y


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args(argv)
    print(f"backend={keras.backend.backend()} devices={_devices()}")
    failed = []
    for name in models.available(volumetric=False):
        start = time.perf_counter()
        channels = 3 if name == "es_unet_pp_encoder" else 1
        model = models.build(name, input_shape=(args.size, args.size, channels),
                             num_classes=3, filters=SMALL)
        x, y = synthetic_batch(args.size, channels, args.batch)
        if name == "es_unet_pp_encoder":  # auto-encoder of one-hot label maps
            x = np.eye(3, dtype="float32")[y]
        targets = {out: y for out in model.output_names if not out.startswith(("cls", "enc"))}
        targets.update({out: np.ones((args.batch,), "int32")
                        for out in model.output_names if out.startswith("cls")})
        losses = {out: "sparse_categorical_crossentropy" for out in targets}
        outputs = [o for o in model.output_names if o in targets]
        trainer = keras.Model(model.inputs, [model.get_layer(o).output for o in outputs])
        trainer.compile(optimizer=keras.optimizers.Adam(1e-3),
                        loss=[losses[o] for o in outputs])
        ys = [_resize_labels(targets[o], trainer.outputs[i].shape) for i, o in enumerate(outputs)]
        # Training-mode losses of the first and the last step: BatchNorm's moving statistics
        # need far more steps than this before an inference-mode evaluation means much.
        history = trainer.fit(x, ys, epochs=args.steps, batch_size=args.batch, verbose=0)
        before, after = history.history["loss"][0], history.history["loss"][-1]
        ok = bool(np.isfinite(after) and after < before)
        print(f"{name:<20} params={model.count_params():>9,} loss {before:.3f} -> {after:.3f}"
              f" {'ok' if ok else 'FAILED'} {time.perf_counter() - start:.1f}s")
        if not ok:
            failed.append(name)
    if failed:
        print("failed: " + ", ".join(failed))
        return 1
    return 0


def _resize_labels(y, shape):
    """Labels for a head of ``shape``: max-pooled masks for smaller heads, 1D for CGMs."""
    if len(shape) == 2:
        return y
    factor = y.shape[1] // shape[1]
    if factor == 1:
        return y
    b, h, w = y.shape
    return y.reshape(b, h // factor, factor, w // factor, factor).max(axis=(2, 4))


def _devices() -> str:
    if keras.backend.backend() == "jax":
        import jax

        return ",".join(d.platform for d in jax.devices())
    return "n/a"


if __name__ == "__main__":
    sys.exit(main())
