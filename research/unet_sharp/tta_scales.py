"""Liver and tumor Dice per case of a model read at several input sizes, and averaged.

    python research/unet_sharp/tta_scales.py [DATA_DIR] [CASE_ID[,CASE_ID...]] [--model unet_sharp]
        [--weights default] [--sizes 192 224 256]

The same weights read every case's slices resized to each input size (the model rebuilt
for that size, :meth:`~keras_liverseg.inference.loading.LoadedModel.at_input_size`); each
size's probabilities, and the mean of every combination of two or more sizes, are
labelled by argmax with the default post-processing and scored against the case's labels.
This is how ``liverseg predict --tta`` (the input size and 7/6 of it) was chosen.

Defaults: ``data/phantoms-train-240`` and its 28 validation cases that picked no
checkpoint (validation cases 21-48 of ``research/unet_sharp/splits/phantoms-train-240.json``).
Prints one line per case and the means.
"""

from __future__ import annotations

import argparse
import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from keras_liverseg.data.datasets import DatasetError
from keras_liverseg.data.volumes import case_arrays
from keras_liverseg.inference.loading import load_model
from keras_liverseg.inference.postprocess import postprocess_labels
from keras_liverseg.inference.predictor import predict_slices
from keras_liverseg.metrics import dice

SPLIT = Path(__file__).parent / "splits" / "phantoms-train-240.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default="data/phantoms-train-240")
    parser.add_argument("cases", nargs="?", default=None,
                        help="comma-separated case ids (default: the 28 validation cases)")
    parser.add_argument("--model", default="unet_sharp")
    parser.add_argument("--weights", default="default")
    parser.add_argument("--sizes", type=int, nargs="+", default=[192, 224, 256])
    args = parser.parse_args()

    ids = (args.cases.split(",") if args.cases
           else json.loads(SPLIT.read_text())["validation"][20:48])
    loaded = load_model(args.model, args.weights, second_stage_weights=None)
    readers = {  # whole slices resized to each size: the reading this sweep compared
        size: replace(loaded, model=loaded.at_input_size((size, size)),
                      preprocessing=replace(loaded.preprocessing, input_size=(size, size),
                                            pixel_spacing=None))
        for size in args.sizes
    }
    groups = [(size,) for size in args.sizes] + [
        group for n in range(2, len(args.sizes) + 1)
        for group in itertools.combinations(args.sizes, n)
    ]
    scores: dict[tuple[int, ...], list[tuple[float, float]]] = {g: [] for g in groups}
    try:
        cases = case_arrays(args.data, ids)
    except DatasetError as error:
        raise SystemExit(f"Error: {error}") from None
    for case_id, image, truth, voxel_mm3, _ in cases:
        probs = {}
        for size, reader in readers.items():
            _, p = predict_slices(reader, image, batch_size=8, keep_probabilities=True)
            probs[size] = p.astype(np.float32)
        line = []
        for group in groups:
            mean = np.mean([probs[size] for size in group], axis=0)
            labels = postprocess_labels(np.argmax(mean, axis=-1).astype(np.uint8), voxel_mm3)
            scores[group].append((dice(labels >= 1, truth >= 1), dice(labels == 2, truth == 2)))
            line.append(f"{'+'.join(map(str, group))} {scores[group][-1][0]:.3f}/"
                        f"{scores[group][-1][1]:.3f}")
        print(case_id, "  ".join(line), flush=True)
    for group in groups:
        liver, tumor = np.mean(scores[group], axis=0)
        print(f"sizes {'+'.join(map(str, group)):>12}: liver {liver:.4f} tumor {tumor:.4f} "
              f"({len(scores[group])} cases)")


if __name__ == "__main__":
    main()
