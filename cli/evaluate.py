"""``liverseg evaluate``: LiTS metrics of predicted label volumes against ground truth."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click

from keras_liverseg.cli.errors import UserError

_KNOWN_CLASSES = ("liver", "tumor")


def _parse_classes(text: str) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in _KNOWN_CLASSES]
    if not names or unknown:
        raise UserError(
            f"--classes takes a comma-separated list of {', '.join(_KNOWN_CLASSES)}; got {text!r}"
        )
    return tuple(dict.fromkeys(names))


def _check_output(path: Path | None, overwrite: bool, option: str) -> None:
    if path is None:
        return
    if path.is_dir():
        raise UserError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not overwrite:
        raise UserError(f"{option} {path} already exists; pass --overwrite to replace it")
    if not path.parent.is_dir():
        raise UserError(f"{option} {path}: folder {path.parent} does not exist")


def _write_atomically(path: Path, text: str, overwrite: bool, option: str) -> None:
    """Write ``text`` to a temporary file next to ``path``, then rename it into place."""
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="") as file:
            file.write(text)
        if path.exists() and not overwrite:
            raise UserError(f"{option} {path} already exists; pass --overwrite to replace it")
        os.replace(temporary, path)
    except OSError as error:
        raise UserError(f"cannot write {option} {path}: {error.strerror or error}") from None
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)


@click.command("evaluate")
@click.option(
    "--pred",
    "pred",
    required=True,
    type=click.Path(path_type=Path),
    help="Predicted label volume (.nii / .nii.gz) or a folder of them.",
)
@click.option(
    "--gt",
    "gt",
    required=True,
    type=click.Path(path_type=Path),
    help="Ground-truth label volume or folder (LiTS labels: 0 background, 1 liver, 2 tumor).",
)
@click.option(
    "--classes",
    default="liver,tumor",
    show_default=True,
    help="Classes to score: liver (label >= 1), tumor (label == 2).",
)
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Write a CSV table.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write a JSON report.")
@click.option(
    "--resample",
    is_flag=True,
    help="Resample predictions on another grid to the ground truth (nearest neighbour).",
)
@click.option(
    "--tolerance",
    type=float,
    default=1.0,
    show_default=True,
    help="Surface-Dice tolerance in mm.",
)
@click.option("--overwrite", is_flag=True, help="Replace existing --csv / --json files.")
def evaluate(
    pred: Path,
    gt: Path,
    classes: str,
    csv_path: Path | None,
    json_path: Path | None,
    resample: bool,
    tolerance: float,
    overwrite: bool,
) -> None:
    """Score predicted segmentations against ground truth with the LiTS metrics.

    --pred and --gt are NIfTI files or folders. Folders pair files with identical names
    or, failing that, by the last number in the name (LiTS: ground truth segmentation-N.nii
    with a prediction such as test-segmentation-N.nii or volume-N_seg.nii.gz).

    Prints Dice, Jaccard, VOE, RVD, ASSD, MSSD (Hausdorff), HD95 and surface Dice per case
    and class, then the mean, std, Dice per case and Dice global. Distances are in mm, using
    the ground truth's voxel spacing. A distance is nan (and left out of the means) when
    exactly one of the two masks is empty.
    """
    from keras_liverseg.metrics import report
    from keras_liverseg.metrics.errors import EvaluationInputError
    from keras_liverseg.metrics.evaluate import iter_evaluate, summarize
    from keras_liverseg.metrics.pairing import find_pairs

    class_names = _parse_classes(classes)
    if not tolerance >= 0 or tolerance == float("inf"):
        raise UserError(f"--tolerance must be a finite number of mm >= 0, got {tolerance}")
    _check_output(csv_path, overwrite, "--csv")
    _check_output(json_path, overwrite, "--json")
    if csv_path is not None and json_path is not None and csv_path.resolve() == json_path.resolve():
        raise UserError("--csv and --json name the same file")

    try:
        pairs = find_pairs(pred, gt)
        width = max(len("case"), *(len(pair.case) for pair in pairs))
        click.echo(report.text_header(width, tolerance))
        results = []
        for result in iter_evaluate(pairs, class_names, tolerance, resample):
            results.append(result)
            for line in report.text_case_rows(result, width):
                click.echo(line)
    except EvaluationInputError as error:
        raise UserError(str(error)) from None

    summaries = summarize(results, class_names)
    click.echo("")
    for line in report.text_summary(summaries, width):
        click.echo(line)
    resampled = [r.case for r in results if r.resampled]
    if resampled:
        click.echo(f"resampled to the ground-truth grid: {', '.join(resampled)}")

    if csv_path is not None:
        _write_atomically(
            csv_path, report.to_csv(results, summaries, tolerance), overwrite, "--csv"
        )
    if json_path is not None:
        settings = {
            "pred": str(pred),
            "gt": str(gt),
            "classes": list(class_names),
            "tolerance_mm": tolerance,
            "resample": resample,
            "connectivity": 1,
        }
        _write_atomically(
            json_path, report.to_json(results, summaries, settings), overwrite, "--json"
        )
