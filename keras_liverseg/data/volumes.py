"""Decoded training volumes: canonical orientation, checked labels, an on-disk cache.

A case is read once with nibabel, brought to the canonical orientation that inference uses
(:func:`keras_liverseg.io.to_canonical`), checked, and stored as two ``.npy`` files in the
cache folder; later epochs (and later runs) memory-map those instead of decoding NIfTI.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from keras_liverseg.data.datasets import Case, DatasetError, find_cases, select_cases
from keras_liverseg.data.roi import LiverROI
from keras_liverseg.io import InputError, load_nifti, open_nifti, to_canonical
from keras_liverseg.io.atomic import OutputBusy, atomic_paths
from keras_liverseg.io.labels import LabelError, read_labels
from keras_liverseg.io.orientation import canonical_spacing


@dataclass
class Volume:
    """A training case in canonical orientation (axial slices are ``image[:, :, k]``).

    Attributes:
        case_id: the case's id.
        image: ``(X, Y, Z)`` HU, int16 (or float32 for float sources), possibly memory-mapped.
        labels: ``(X, Y, Z)`` uint8 in {0, 1, 2}.
        liver_slices: indices ``k`` of slices containing liver or tumor.
        tumor_slices: indices ``k`` of slices containing tumor.
        spacing: in-plane voxel sizes (mm) of the rows and columns of ``image``, for models
            that read slices at a physical spacing.
        slice_spacing: the distance (mm) between the axial slices ``image[:, :, k]``, for
            3D models that read volumes at a physical voxel spacing.
    """

    case_id: str
    image: np.ndarray
    labels: np.ndarray
    liver_slices: np.ndarray
    tumor_slices: np.ndarray
    spacing: tuple[float, float] = (1.0, 1.0)
    slice_spacing: float = 1.0

    @property
    def depth(self) -> int:
        return int(self.image.shape[2])


def load_volume(case: Case, cache_dir: str | os.PathLike | None = None) -> Volume:
    """Read (or take from the cache) one case as a :class:`Volume`.

    Raises:
        DatasetError: unreadable files, a shape mismatch between volume and label, or label
            values outside {0, 1, 2}; the message names the case.
    """
    cached = _cache_paths(case, cache_dir)
    if cached and all(p.is_file() for p in cached):
        image, labels = (np.load(p, mmap_mode="r") for p in cached)
    else:
        image, labels = _decode(case)
        if cached:
            _write_cache(cached, image, labels)
    spacing = _spacing(case)
    return volume_from_arrays(case.case_id, image, labels, spacing[:2], spacing[2])


def load_volumes(cases: Sequence[Case], cache_dir: str | os.PathLike | None = None,
                 processes: int = 1) -> list[Volume]:
    """:func:`load_volume` of each case, in order. With ``processes > 1`` and a cache, the
    cases not cached yet are first decoded (and cached) in that many worker processes, so a
    large dataset is read in parallel; every case is then memory-mapped from the cache.

    Raises:
        DatasetError: as :func:`load_volume`, for the first case that fails.
    """
    if processes > 1 and cache_dir is not None:
        missing = [case for case in cases
                   if not all(path.is_file() for path in _cache_paths(case, cache_dir))]
        if len(missing) > 1:
            import multiprocessing

            # forkserver: clean worker interpreters (no TensorFlow or JAX threads forked)
            context = multiprocessing.get_context("forkserver")
            with context.Pool(min(processes, len(missing))) as pool:
                pool.starmap(_cache_case, [(case, cache_dir) for case in missing], chunksize=1)
    return [load_volume(case, cache_dir) for case in cases]


def _cache_case(case: Case, cache_dir: str | os.PathLike) -> None:
    """Decode one case into the cache (a worker of :func:`load_volumes`)."""
    load_volume(case, cache_dir)


def _spacing(case: Case) -> tuple[float, float, float]:
    """Canonical voxel sizes of a case (rows, columns, slices), from its NIfTI header alone."""
    try:
        return canonical_spacing(open_nifti(case.image).affine)
    except InputError as error:
        raise DatasetError(f"case {case.case_id}: {error}") from None


def _write_cache(paths: tuple[Path, Path], image: np.ndarray, labels: np.ndarray) -> None:
    """Store a decoded case in the cache; another process storing the same case wins."""
    try:
        with atomic_paths(paths) as temps:
            for temp, array in zip(temps, (image, labels), strict=True):
                np.save(temp, array)
    except OutputBusy:
        pass


def volume_from_arrays(
    case_id: str,
    image: np.ndarray,
    labels: np.ndarray,
    spacing: tuple[float, float] = (1.0, 1.0),
    slice_spacing: float = 1.0,
) -> Volume:
    """A :class:`Volume` of canonical ``image`` and ``labels`` arrays held in memory, with
    in-plane voxel sizes ``spacing`` and ``slice_spacing`` between slices (mm)."""
    per_slice = labels.reshape(-1, labels.shape[2])
    return Volume(
        case_id=case_id,
        image=image,
        labels=labels,
        liver_slices=np.flatnonzero(per_slice.max(axis=0) >= 1),
        tumor_slices=np.flatnonzero((per_slice == 2).any(axis=0)),
        spacing=(float(spacing[0]), float(spacing[1])),
        slice_spacing=float(slice_spacing),
    )


def voxel_volume_mm3(case: Case) -> float:
    """The volume of one voxel of a case's image, mm^3 (from its NIfTI header)."""
    try:
        zooms = open_nifti(case.image).header.get_zooms()[:3]
    except InputError as error:
        raise DatasetError(f"case {case.case_id}: {error}") from None
    return float(np.prod(zooms))


def case_arrays(
    root: str | os.PathLike, case_ids: Sequence[str]
) -> Iterator[tuple[str, np.ndarray, np.ndarray, float, tuple[float, float]]]:
    """The named cases of a dataset folder, one at a time, for scripts that score a model
    case by case: ``(case_id, float32 HU, uint8 labels, voxel volume mm^3, in-plane voxel
    sizes mm)``, the arrays in canonical orientation (the sizes are what
    :func:`~keras_liverseg.inference.predict_slices` takes as ``voxel_spacing``).

    Raises:
        DatasetError: (at once, not on iteration) a missing folder or an unknown case id.
    """
    cases = select_cases(find_cases(root), case_ids)

    def arrays(case: Case) -> tuple[str, np.ndarray, np.ndarray, float, tuple[float, float]]:
        volume = load_volume(case)
        image = np.asarray(volume.image, dtype=np.float32)
        return (case.case_id, image, np.asarray(volume.labels), voxel_volume_mm3(case),
                volume.spacing)

    return (arrays(case) for case in cases)


def crop_to_liver(volume: Volume, roi: LiverROI | None = None) -> Volume:
    """The liver's region of interest (:class:`~keras_liverseg.data.roi.LiverROI`, default
    framing if None) of a training volume, cut with its labels' liver; a volume without
    liver is returned whole. The sampler then resizes the crops to the model input like
    whole slices.
    """
    box = (roi or LiverROI()).box(np.asarray(volume.labels) >= 1)
    if box is None:
        return volume
    return volume_from_arrays(volume.case_id, volume.image[box], volume.labels[box],
                              volume.spacing, volume.slice_spacing)


def _decode(case: Case) -> tuple[np.ndarray, np.ndarray]:
    try:
        image, image_nii = load_nifti(case.image)
        label_map = read_labels(case.label)
    except LabelError as error:
        raise DatasetError(f"case {case.case_id}: {error.path.name} {error.reason}") from None
    except InputError as error:
        raise DatasetError(f"case {case.case_id}: {error}") from None
    image, labels = _squeeze(image, case, "volume"), label_map.labels
    if image.shape != labels.shape:
        raise DatasetError(f"case {case.case_id}: volume shape {image.shape} and label shape "
                           f"{labels.shape} differ")
    if not np.allclose(image_nii.affine, label_map.affine, atol=1e-3):
        raise DatasetError(f"case {case.case_id}: volume and label affines differ")
    try:
        image, _, _ = to_canonical(image, image_nii.affine)
        labels, _, _ = to_canonical(labels, image_nii.affine)
    except InputError as error:
        raise DatasetError(f"case {case.case_id}: {error}") from None
    image = image.astype(np.int16 if np.issubdtype(image.dtype, np.integer) else np.float32)
    return np.ascontiguousarray(image), np.ascontiguousarray(labels.astype(np.uint8))


def _squeeze(array: np.ndarray, case: Case, what: str) -> np.ndarray:
    if array.ndim == 4 and array.shape[3] == 1:
        array = array[..., 0]
    if array.ndim != 3:
        raise DatasetError(f"case {case.case_id}: {what} is {array.ndim}D, expected 3D")
    return array


def _cache_paths(case: Case, cache_dir) -> tuple[Path, Path] | None:
    if cache_dir is None:
        return None
    key = hashlib.sha1()
    for path in (case.image, case.label):
        stat = path.stat()
        key.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    stem = f"{case.case_id}-{key.hexdigest()[:12]}"
    return Path(cache_dir) / f"{stem}.image.npy", Path(cache_dir) / f"{stem}.labels.npy"
