"""``liverseg evaluate``: LiTS metrics of predicted label volumes against ground truth."""

from __future__ import annotations

from pathlib import Path

import click

from keras_liverseg.cli import outputs
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


def _parse_label_values(text: str | None, option: str) -> tuple[int, ...] | None:
    """``"5"`` or ``"5,6"`` -> ``(5, 6)``: label values (integers >= 1) of a ground truth."""
    if text is None:
        return None
    words = text.replace(",", " ").split()
    try:
        values = tuple(dict.fromkeys(int(word) for word in words))
    except ValueError:
        values = ()
    if not values or min(values) < 1:
        raise UserError(f"{option} takes label values >= 1, comma-separated (e.g. 5 or 1,2); "
                        f"got {text!r}")
    return values


def _overlay_drawer(overlay: Path | None, image: Path | None, pairs, folders: bool,
                    overwrite: bool, inputs: dict, written: dict):
    """The ``visit`` of :func:`iter_evaluate` that writes each case's ``--overlay`` PNG (the
    outputs claimed now, and checked against the ``written`` ones), or None without
    ``--overlay``."""
    if overlay is None:
        if image is not None:
            raise UserError("--image is the CT under --overlay; give --overlay too")
        return None
    from keras_liverseg.metrics.pairing import find_image

    if not folders and overlay.suffix.lower() != ".png":
        raise UserError(f"--overlay {overlay} must end with .png")
    if folders and (overlay.suffix.lower() == ".png" or overlay.is_file()):
        raise UserError(f"--overlay {overlay} must be a folder when --gt is a folder")
    targets = {pair.case: overlay / f"{pair.case}.png" if folders else overlay for pair in pairs}
    images = {pair.case: find_image(pair.gt, image) for pair in pairs}
    named = [("--overlay", path) for path in targets.values()]
    outputs.refuse_clashes([*written.items(), *named], inputs)
    click.get_current_context().with_resource(outputs.claim(named, overwrite))
    if not any(images.values()):
        click.echo("--overlay: no CT image (give --image); contours drawn on black", err=True)

    def draw(pair, pred, gt) -> None:
        from keras_liverseg.inference.overlay import write_overlay

        ct = _read_ct(images[pair.case], gt.geometry, pair.gt)
        try:
            write_overlay(ct, pred.labels, gt.geometry.affine, targets[pair.case], gt=gt.labels)
        except OSError as error:
            raise outputs.cannot_write("--overlay", targets[pair.case], error) from None

    return draw


def _read_ct(path: Path | None, grid, gt_path: Path):
    """The CT image ``path`` in HU, which must lie on the ground truth's grid; None: none."""
    if path is None:
        return None
    import numpy as np

    from keras_liverseg.metrics.errors import EvaluationInputError
    from keras_liverseg.metrics.evaluate import read_geometry, same_grid

    geometry = read_geometry(path, "CT image")
    if not same_grid(geometry, grid):
        raise EvaluationInputError(f"CT image {path} (shape {geometry.shape}) is not on the "
                                   f"grid of ground truth {gt_path} (shape {grid.shape})")
    from keras_liverseg.io.errors import one_line
    from keras_liverseg.io.nifti import open_nifti

    try:
        data = np.asanyarray(open_nifti(path).dataobj, dtype=np.float32)
    except Exception as error:
        raise EvaluationInputError(f"CT image {path} cannot be read ({one_line(error)})") from None
    return data.reshape(geometry.shape)


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
@click.option(
    "--gt-liver",
    metavar="N[,N...]",
    help="Label value(s) of the liver in the ground truth, for a ground truth that is not "
    "LiTS's (TotalSegmentator: 5); other labels count as background. [LiTS: 1 and 2]",
)
@click.option(
    "--gt-tumor",
    metavar="N[,N...]",
    help="Label value(s) of tumor in the ground truth (they count as liver too). [LiTS: 2; "
    "with --gt-liver alone: none, and tumor is not scored]",
)
@click.option("--csv", "csv_path", type=click.Path(path_type=Path), help="Write a CSV table.")
@click.option("--json", "json_path", type=click.Path(path_type=Path), help="Write a JSON report.")
@click.option(
    "--overlay",
    type=click.Path(path_type=Path),
    metavar="PNG",
    help="Write a PNG of axial slices with the predicted contours and, dashed, the ground "
    "truth's, and a legend (a folder of CASE.png when --gt is a folder).",
)
@click.option(
    "--image",
    type=click.Path(path_type=Path),
    help="The CT image(s) under --overlay: a file, or a folder paired by name or number "
    "[LiTS volume-N beside segmentation-N; else contours on black].",
)
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
@click.option(
    "--overwrite", is_flag=True, help="Replace existing --csv / --json / --overlay files."
)
def evaluate(
    pred: Path,
    gt: Path,
    classes: str,
    gt_liver: str | None,
    gt_tumor: str | None,
    csv_path: Path | None,
    json_path: Path | None,
    overlay: Path | None,
    image: Path | None,
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
    liver_values = _parse_label_values(gt_liver, "--gt-liver")
    tumor_values = _parse_label_values(gt_tumor, "--gt-tumor")
    gt_tumor_values = tumor_values or (() if liver_values else (2,))
    if liver_values is not None and tumor_values is None and "tumor" in class_names:
        if class_names == ("tumor",):
            raise UserError("--classes tumor: with --gt-liver and no --gt-tumor the ground "
                            "truth has no tumor label; give --gt-tumor N")
        class_names = tuple(name for name in class_names if name != "tumor")
        click.echo("tumor is not scored: with --gt-liver and no --gt-tumor the ground truth "
                   "has no tumor label", err=True)
    if not tolerance >= 0 or tolerance == float("inf"):
        raise UserError(f"--tolerance must be a finite number of mm >= 0, got {tolerance}")
    written = {"--csv": csv_path, "--json": json_path}
    outputs.refuse_clashes(written, {"--pred": pred, "--gt": gt, "--image": image})
    click.get_current_context().with_resource(outputs.claim(written, overwrite))

    try:
        pairs = find_pairs(pred, gt)
        draw = _overlay_drawer(overlay, image, pairs, gt.is_dir(), overwrite,
                               {"--pred": pred, "--gt": gt, "--image": image}, written)
        width = max(len("case"), *(len(pair.case) for pair in pairs))
        click.echo(report.text_header(width, tolerance))
        results = []
        for result in iter_evaluate(pairs, class_names, tolerance, resample,
                                    liver_values, tumor_values, visit=draw):
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
        outputs.write_text("--csv", csv_path, report.to_csv(results, summaries, tolerance))
    if json_path is not None:
        settings = {
            "pred": str(pred),
            "gt": str(gt),
            "classes": list(class_names),
            "tolerance_mm": tolerance,
            "resample": resample,
            "connectivity": 1,
            # the ground truth's label values read as liver (tumor included) and as tumor
            "gt_liver": sorted({*(liver_values or (1,)), *gt_tumor_values}),
            "gt_tumor": list(gt_tumor_values),
        }
        outputs.write_text("--json", json_path, report.to_json(results, summaries, settings))
