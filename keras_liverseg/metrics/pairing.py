"""Pair prediction and ground-truth NIfTI files: two files, or two folders matched by name.

Folder pairing, in order:

1. identical file names (``case_07.nii.gz`` in both folders);
2. otherwise the last integer in the name (LiTS naming): ground truth ``segmentation-N.nii``
   pairs with the one remaining prediction whose name ends in the same number ``N``, such as
   ``test-segmentation-N.nii`` or ``volume-N_seg.nii.gz`` (numbers compare as integers, so
   ``007`` matches ``7``).

Every ground truth must find exactly one prediction and every prediction one ground truth;
anything else is an :class:`~keras_liverseg.metrics.errors.EvaluationInputError` naming the
files. Only ``*.nii`` and ``*.nii.gz`` files directly inside the folders count (hidden files
are ignored). In a ground-truth folder holding LiTS ``segmentation-N`` files, the LiTS CT
images ``volume-N.nii[.gz]`` next to them are ignored, so the LiTS training folder can be
passed as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from keras_liverseg.io.nifti import case_name, last_integer
from keras_liverseg.io.nifti import is_nifti_path as is_nifti_name
from keras_liverseg.metrics.errors import EvaluationInputError

__all__ = ["CasePair", "case_name", "find_image", "find_pairs", "is_nifti_name", "last_integer"]

_LITS_SEGMENTATION = re.compile(r"^segmentation-\d+\.nii(\.gz)?$")
_LITS_VOLUME = re.compile(r"^volume-\d+\.nii(\.gz)?$")
_MAX_LISTED = 5


@dataclass(frozen=True)
class CasePair:
    """One case to evaluate: its name (the ground truth's file name without suffix) and files."""

    case: str
    pred: Path
    gt: Path



def _listing(paths: list[Path]) -> str:
    names = sorted(p.name for p in paths)
    shown = ", ".join(names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def _nifti_files(folder: Path, role: str) -> list[Path]:
    try:
        entries = sorted(folder.iterdir())
    except OSError as error:
        raise EvaluationInputError(
            f"cannot list {role} folder {folder}: {error.strerror}"
        ) from None
    files = [p for p in entries if is_nifti_name(p) and not p.name.startswith(".") and p.is_file()]
    if not files:
        raise EvaluationInputError(f"{role} folder {folder} holds no .nii or .nii.gz files")
    return files


def _check_exists(path: Path, role: str) -> None:
    if not path.exists():
        raise EvaluationInputError(f"{role} {path} does not exist")


def _single_file(path: Path, role: str) -> None:
    if not path.is_file():
        raise EvaluationInputError(f"{role} {path} is neither a file nor a folder")
    if not is_nifti_name(path):
        from keras_liverseg.io.nifti import unsupported_format  # NRRD: how to convert it

        reason = unsupported_format(path) or f"{path} is not a NIfTI file (.nii or .nii.gz)"
        raise EvaluationInputError(f"{role} {reason}")


def find_pairs(pred: Path | str, gt: Path | str) -> list[CasePair]:
    """Pair ``pred`` with ``gt``: two NIfTI files, or two folders (see the module docstring).

    Returns the pairs sorted by case name (numerically where names end in a number).
    """
    pred, gt = Path(pred), Path(gt)
    _check_exists(pred, "prediction")
    _check_exists(gt, "ground truth")
    if pred.is_dir() != gt.is_dir():
        kinds = {True: "a folder", False: "a file"}
        raise EvaluationInputError(
            f"prediction {pred} is {kinds[pred.is_dir()]} but ground truth {gt} is "
            f"{kinds[gt.is_dir()]}; give two files or two folders"
        )
    if not gt.is_dir():
        _single_file(pred, "prediction")
        _single_file(gt, "ground truth")
        return [CasePair(case_name(gt), pred, gt)]
    return _pair_folders(pred, gt)


def _pair_folders(pred_dir: Path, gt_dir: Path) -> list[CasePair]:
    preds = _nifti_files(pred_dir, "prediction")
    gts = _nifti_files(gt_dir, "ground truth")
    if any(_LITS_SEGMENTATION.match(p.name) for p in gts):
        gts = [p for p in gts if not _LITS_VOLUME.match(p.name)]

    by_name = {p.name: p for p in preds}
    pairs: dict[Path, Path] = {}
    for g in gts:
        if g.name in by_name:
            pairs[g] = by_name.pop(g.name)

    remaining = list(by_name.values())
    unpaired_gt = []
    for g in gts:
        if g in pairs:
            continue
        number = last_integer(g)
        candidates = [p for p in remaining if number is not None and last_integer(p) == number]
        if len(candidates) > 1:
            raise EvaluationInputError(
                f"ground truth {g} matches several predictions by its number {number}: "
                f"{_listing(candidates)} (in {pred_dir})"
            )
        if not candidates:
            unpaired_gt.append(g)
            continue
        pairs[g] = candidates[0]
        remaining.remove(candidates[0])

    if unpaired_gt:
        raise EvaluationInputError(
            f"{len(unpaired_gt)} ground truth file(s) in {gt_dir} have no prediction in "
            f"{pred_dir}: {_listing(unpaired_gt)}"
        )
    if remaining:
        raise EvaluationInputError(
            f"{len(remaining)} prediction file(s) in {pred_dir} have no ground truth in "
            f"{gt_dir}: {_listing(remaining)}"
        )
    result = [CasePair(case_name(g), p, g) for g, p in pairs.items()]
    return sorted(result, key=lambda pair: _sort_key(pair.case))


def _sort_key(name: str) -> tuple:
    # "segmentation-2" before "segmentation-10".
    parts = re.split(r"(\d+)", name)
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts)


def find_image(gt: Path | str, images: Path | str | None = None) -> Path | None:
    """The CT image of the ground-truth file ``gt`` (for ``liverseg evaluate --overlay``).

    ``images`` is a NIfTI file (the image of a single case) or a folder, where the image has
    ``gt``'s name or, failing that, its last number (LiTS ``volume-N`` for
    ``segmentation-N``; LiTS segmentations in that folder are not images). Without
    ``images``, the LiTS ``volume-N.nii[.gz]`` beside a ``segmentation-N`` file, or ``None``.
    """
    gt = Path(gt)
    if images is None:
        if not _LITS_SEGMENTATION.match(gt.name):
            return None
        number = gt.name[len("segmentation-"):].split(".")[0]
        for suffix in (".nii", ".nii.gz"):
            candidate = gt.with_name(f"volume-{number}{suffix}")
            if candidate.is_file():
                return candidate
        return None
    images = Path(images)
    _check_exists(images, "image")
    if not images.is_dir():
        _single_file(images, "image")
        return images
    files = _nifti_files(images, "image")
    if any(_LITS_VOLUME.match(p.name) for p in files):
        files = [p for p in files if not _LITS_SEGMENTATION.match(p.name)]
    same = [p for p in files if p.name == gt.name]
    number = last_integer(gt)
    found = same or [p for p in files if number is not None and last_integer(p) == number]
    if len(found) != 1:
        how = "several images" if found else "no image"
        raise EvaluationInputError(
            f"ground truth {gt} matches {how} in {images} (by its name or its number "
            f"{number}){': ' + _listing(found) if found else ''}"
        )
    return found[0]
