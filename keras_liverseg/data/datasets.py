"""Training datasets on disk: LiTS and Medical Segmentation Decathlon layouts, case splits.

- LiTS (Bilic et al. 2023): ``volume-N.nii[.gz]`` with ``segmentation-N.nii[.gz]`` in one
  folder (``liverseg sample-data`` writes this layout).
- MSD Task03_Liver (Antonelli et al. 2022): ``imagesTr/liver_N.nii.gz`` with
  ``labelsTr/liver_N.nii.gz``.

Splits are by case, never by slice, so no patient is in both training and validation.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NIFTI = re.compile(r"\.nii(\.gz)?$")
LITS_VOLUME = re.compile(r"^volume-(\d+)\.nii(\.gz)?$")


class DatasetError(ValueError):
    """A dataset that cannot be used for training; the message names the case."""


@dataclass(frozen=True)
class Case:
    """One training case: a CT volume and its label map (0 background, 1 liver, 2 tumor);
    files ``None`` for a phantom drawn on demand (:func:`phantom_cases`)."""

    case_id: str
    image: Path | None
    label: Path | None


def find_cases(root: str | os.PathLike) -> list[Case]:
    """The cases of a dataset folder in LiTS or MSD layout, sorted by id.

    Raises:
        DatasetError: the folder is missing or empty, or a volume has no label file.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    if (root / "imagesTr").is_dir():
        cases = _msd_cases(root)
    else:
        cases = _lits_cases(root)
    if not cases:
        raise DatasetError(
            f"no cases in {root}: expected volume-N.nii[.gz] + segmentation-N.nii[.gz] (LiTS) "
            "or imagesTr/ + labelsTr/ (Medical Segmentation Decathlon)"
        )
    return cases


def _lits_cases(root: Path) -> list[Case]:
    cases = []
    for path in root.iterdir():
        match = LITS_VOLUME.match(path.name)
        if not match:
            continue
        number = match.group(1)
        labels = [root / f"segmentation-{number}{ext}" for ext in (".nii", ".nii.gz")]
        label = next((p for p in labels if p.is_file()), None)
        if label is None:
            raise DatasetError(f"case volume-{number}: label file segmentation-{number}.nii[.gz] "
                               f"is missing in {root}")
        cases.append(Case(f"volume-{number}", path, label))
    return sorted(cases, key=lambda c: int(c.case_id.split("-")[1]))


def _msd_cases(root: Path) -> list[Case]:
    labels_dir = root / "labelsTr"
    cases = []
    for path in sorted((root / "imagesTr").iterdir()):
        if not NIFTI.search(path.name) or path.name.startswith("."):
            continue
        label = labels_dir / path.name
        if not label.is_file():
            raise DatasetError(f"case {path.name}: label file {label} is missing")
        cases.append(Case(NIFTI.sub("", path.name), path, label))
    return cases


def select_cases(cases: Sequence[Case], case_ids: Sequence[str]) -> list[Case]:
    """The cases named by ``case_ids``, in that order.

    Raises:
        DatasetError: an id that is not among ``cases``.
    """
    by_id = {case.case_id: case for case in cases}
    unknown = [i for i in case_ids if i not in by_id]
    if unknown:
        raise DatasetError(f"unknown case id(s): {', '.join(unknown[:5])}")
    return [by_id[i] for i in case_ids]


def split_cases(
    cases: Sequence[Case],
    validation_fraction: float = 0.2,
    seed: int = 0,
    split_file: str | os.PathLike | None = None,
) -> tuple[list[Case], list[Case]]:
    """Split cases into training and validation sets, by case, reproducibly.

    Args:
        cases: the dataset's cases.
        validation_fraction: share of cases for validation (at least one case when there
            are two or more cases, none when 0).
        seed: the shuffle seed; the same seed and cases give the same split.
        split_file: a JSON file ``{"train": [ids], "validation": [ids]}`` that fixes the
            split instead (ids as :attr:`Case.case_id`).
    """
    if split_file is not None:
        spec = json.loads(Path(split_file).read_text())
        if "train" not in spec:
            raise DatasetError(f"split file {split_file}: no 'train' list")
        try:
            train = select_cases(cases, spec["train"])
            validation = select_cases(cases, spec.get("validation", []))
        except DatasetError as error:
            raise DatasetError(f"split file {split_file}: {error}") from None
        overlap = {c.case_id for c in train} & {c.case_id for c in validation}
        if overlap:
            raise DatasetError(f"split file {split_file}: cases in both sets: {sorted(overlap)}")
        return train, validation
    if not 0 <= validation_fraction < 1:
        raise DatasetError(f"validation fraction must be in [0, 1), got {validation_fraction}")
    order = np.random.default_rng(seed).permutation(len(cases))
    count = int(round(validation_fraction * len(cases)))
    if validation_fraction > 0 and len(cases) >= 2:
        count = min(max(count, 1), len(cases) - 1)
    shuffled = [cases[i] for i in order]
    validation = sorted(shuffled[:count], key=cases.index)
    train = sorted(shuffled[count:], key=cases.index)
    return train, validation


def write_split(path: str | os.PathLike, train: Sequence[Case], validation: Sequence[Case]):
    """Write a split file that :func:`split_cases` reads back."""
    Path(path).write_text(json.dumps({"train": [c.case_id for c in train],
                                      "validation": [c.case_id for c in validation]}, indent=2))


# --- phantoms drawn on the fly ----------------------------------------------------------------

def phantom_cases(count: int) -> list[Case]:
    """Cases ``volume-0 .. volume-{count - 1}`` of a phantom dataset, drawn on demand by
    :func:`draw_phantoms` (no files: ``image`` and ``label`` are ``None``). The ids are those
    ``liverseg sample-data`` writes, so a split file made on such a folder applies."""
    return [Case(f"volume-{i}", None, None) for i in range(int(count))]


def draw_phantoms(
    cases: Sequence[Case],
    seed: int,
    shape: Sequence[int],
    input_size: Sequence[int] | None = None,
    crop: bool = False,
    roi=None,
    processes: int = 1,
    pixel_spacing: float | None = None,
    slice_spacing: float | None = None,
) -> list:
    """The phantoms ``cases`` (ids ``volume-N``) of dataset ``seed`` as training volumes.

    Each is :func:`keras_liverseg.phantom.generate_case` ``(case_seed(seed, N), shape)``
    brought to canonical orientation, cut to the liver's region (``crop``; ``roi`` a
    :class:`~keras_liverseg.data.roi.LiverROI` or ``None`` for the default framing, as
    :func:`~keras_liverseg.data.volumes.crop_to_liver` cuts a dataset's volumes) and, with
    ``input_size``, resized in-plane once with the resizing the sampler and inference use, so
    that the sampler's own resize is a no-op and a drawn set of 512 x 512 phantoms fits in
    memory; with ``pixel_spacing`` (a model that reads slices at that spacing,
    :mod:`keras_liverseg.io.slices`) they are resampled in-plane to it instead; with
    ``slice_spacing`` too (a 3D model's voxel spacing) they are resampled in 3D to both
    (:func:`keras_liverseg.data.resample.to_voxel_spacing`), as the patch sampler reads them.
    ``processes > 1`` draws them in that many worker processes.

    Returns:
        a list of :class:`~keras_liverseg.data.volumes.Volume`, in the order of ``cases``.
    """
    from keras_liverseg.data.volumes import volume_from_arrays

    jobs = [(_phantom_index(case.case_id), int(seed), tuple(int(v) for v in shape),
             None if input_size is None else tuple(int(v) for v in input_size), crop, roi,
             pixel_spacing, slice_spacing) for case in cases]
    if processes > 1 and len(jobs) > 1:
        import multiprocessing

        # forkserver: the workers start from a clean interpreter (no TensorFlow or JAX
        # threads forked mid-flight) and import only NumPy, SciPy and the phantom generator
        context = multiprocessing.get_context("forkserver")
        with context.Pool(min(processes, len(jobs))) as pool:
            drawn = pool.map(_draw_phantom, jobs, chunksize=1)
    else:
        drawn = [_draw_phantom(job) for job in jobs]
    return [volume_from_arrays(*case) for case in drawn]


def _phantom_index(case_id: str) -> int:
    match = re.fullmatch(r"volume-(\d+)", case_id)
    if not match:
        raise DatasetError(f"case {case_id}: phantom cases are named volume-N")
    return int(match.group(1))


def _draw_phantom(job: tuple) -> tuple[str, np.ndarray, np.ndarray, tuple[float, float], float]:
    """One phantom of :func:`draw_phantoms`: ``(case_id, image int16, labels uint8,
    in-plane spacing mm, slice spacing mm)``."""
    from nibabel.affines import voxel_sizes

    from keras_liverseg.data.resample import to_voxel_spacing
    from keras_liverseg.data.volumes import crop_to_liver, volume_from_arrays
    from keras_liverseg.io import to_canonical
    from keras_liverseg.io.slices import resize_axes, resize_labels, spacing_grid
    from keras_liverseg.phantom import case_seed, generate_case

    index, seed, shape, size, crop, roi, pixel_spacing, slice_spacing = job
    case = generate_case(case_seed(seed, index), shape)
    image, affine_c, _ = to_canonical(case.volume, case.affine)
    labels, _, _ = to_canonical(case.labels, case.affine)
    sizes = voxel_sizes(affine_c)
    volume = volume_from_arrays(f"volume-{index}", image, np.asarray(labels, np.uint8),
                                sizes[:2], sizes[2])
    if crop:
        volume = crop_to_liver(volume, roi)
    if slice_spacing is not None:  # a 3D model: its voxel spacing, in 3D
        volume = to_voxel_spacing(volume, pixel_spacing, slice_spacing)
        return (volume.case_id, np.ascontiguousarray(volume.image),
                np.ascontiguousarray(volume.labels), volume.spacing, volume.slice_spacing)
    image, labels, spacing = volume.image, volume.labels, volume.spacing
    if pixel_spacing is not None:
        size = spacing_grid(image.shape, spacing, pixel_spacing)
    if size is not None and tuple(image.shape[:2]) != tuple(size):
        spacing = tuple(n * v / m for n, v, m in zip(image.shape[:2], spacing, size, strict=True))
        image = np.rint(resize_axes(image, size, axes=(0, 1))).astype(np.int16)
        labels = resize_labels(labels, size)
    return (volume.case_id, np.ascontiguousarray(image), np.ascontiguousarray(labels),
            tuple(float(v) for v in spacing), volume.slice_spacing)
