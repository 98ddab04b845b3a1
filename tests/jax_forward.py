"""Run in a subprocess with KERAS_BACKEND=jax by tests/test_backends.py.

usage: python jax_forward.py WORKDIR CASE [CASE ...]
For each case, builds the tiny model, loads WORKDIR/CASE.weights.h5 (saved by the
TensorFlow backend), predicts on WORKDIR/input.npy and saves WORKDIR/CASE.jax.npz.
"""

from __future__ import annotations

import sys
from pathlib import Path

import keras
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from model_cases import CASES, TINY, architecture  # noqa: E402

from keras_liverseg import models  # noqa: E402


def main(workdir: str, *cases: str) -> None:
    assert keras.backend.backend() == "jax", keras.backend.backend()
    work = Path(workdir)
    x = np.load(work / "input.npy")
    for case in cases:
        channels = 3 if case == "es_unet_pp_encoder" else x.shape[-1]
        model = models.build(
            architecture(case),
            input_shape=(*x.shape[1:3], channels),
            num_classes=3,
            filters=TINY,
            **CASES[case],
        )
        model.load_weights(work / f"{case}.weights.h5")
        out = model.predict(x[..., :1].repeat(channels, -1), verbose=0)
        out = out if isinstance(out, dict) else {"mask": out}
        np.savez(work / f"{case}.jax.npz", **out)


if __name__ == "__main__":
    main(*sys.argv[1:])
