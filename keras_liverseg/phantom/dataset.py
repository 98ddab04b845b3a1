"""Write phantom cases to disk in the LiTS layout.

``DIR/volume-<i>.nii.gz`` (int16 HU) and ``DIR/segmentation-<i>.nii.gz`` (uint8 0/1/2)
share one affine; ``DIR/phantoms.json`` records the generator version, the dataset seed,
each case's own seed and its meta. Case ``i`` of a dataset drawn with seed ``S`` uses
:func:`~keras_liverseg.phantom.case_seed` ``(S, i)``, so datasets drawn with different
seeds (a training and a held-out set) share no case. Every file is written to a temporary
name in the same folder and renamed into place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

__all__ = ["case_paths", "existing_outputs", "write_case", "write_lits_dataset"]

MANIFEST = "phantoms.json"


def case_paths(out_dir: str | os.PathLike, index: int) -> tuple[Path, Path]:
    """``(volume, segmentation)`` paths of case ``index`` in ``out_dir``."""
    out = Path(out_dir)
    return out / f"volume-{index}.nii.gz", out / f"segmentation-{index}.nii.gz"


def existing_outputs(out_dir: str | os.PathLike, indices) -> list[Path]:
    """The files a dataset with these case indices would replace."""
    found = [p for i in indices for p in case_paths(out_dir, i) if p.exists()]
    manifest = Path(out_dir) / MANIFEST
    return found + ([manifest] if manifest.exists() else [])


def _image(array: np.ndarray, affine: np.ndarray, dtype) -> nib.Nifti1Image:
    img = nib.Nifti1Image(np.asarray(array, dtype=dtype), affine)
    img.header.set_data_dtype(dtype)
    img.header.set_xyzt_units("mm")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    return img


def write_case(case, out_dir: str | os.PathLike, index: int) -> tuple[Path, Path]:
    """Write one :class:`~keras_liverseg.phantom.PhantomCase` as a LiTS pair."""
    from keras_liverseg.io.atomic import atomic_paths

    targets = case_paths(out_dir, index)
    with atomic_paths(targets) as (tmp_vol, tmp_seg):
        nib.save(_image(case.volume, case.affine, np.int16), tmp_vol)
        nib.save(_image(case.labels, case.affine, np.uint8), tmp_seg)
    return targets


def write_lits_dataset(
    out_dir: str | os.PathLike,
    cases: int,
    seed: int,
    shape: tuple[int, int, int] = (512, 512, 100),
    *,
    overwrite: bool = False,
    progress: Callable[[int, object, tuple[Path, Path]], None] | None = None,
    **case_options,
) -> dict:
    """Generate ``cases`` phantoms from ``seed`` and write them to ``out_dir``.

    Refuses (``FileExistsError``, before writing anything) to replace existing outputs
    unless ``overwrite``. ``case_options`` go to
    :func:`~keras_liverseg.phantom.generate_case`. ``progress(index, case, paths)`` is
    called after each case. Returns the manifest written to ``phantoms.json``.
    """
    from keras_liverseg.io.atomic import atomic_write_text
    from keras_liverseg.phantom import GENERATOR_VERSION, case_seed, generate_case

    if int(cases) < 1:
        raise ValueError(f"cases must be >= 1, got {cases}")
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"not a folder: {out}")
    if not overwrite:
        clash = existing_outputs(out, range(int(cases)))
        if clash:
            raise FileExistsError(
                f"{clash[0]} exists ({len(clash)} file(s) would be replaced); "
                "pass overwrite=True (--overwrite) to replace them"
            )
    out.mkdir(parents=True, exist_ok=True)
    manifest = {
        "generator": "keras_liverseg.phantom",
        "generator_version": GENERATOR_VERSION,
        "dataset_seed": int(seed),
        "shape": [int(s) for s in shape],
        "options": {k: v for k, v in case_options.items() if v is not None},
        "cases": [],
    }
    for i in range(int(cases)):
        s = case_seed(seed, i)
        case = generate_case(s, shape, **case_options)
        paths = write_case(case, out, i)
        manifest["cases"].append({
            "index": i,
            "seed": s,
            "volume": paths[0].name,
            "segmentation": paths[1].name,
            "meta": case.meta,
        })
        if progress is not None:
            progress(i, case, paths)
        del case
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=1) + "\n")
    return manifest
