"""``liverseg predict``: segment CT scans (NIfTI files or DICOM series) into label maps.

INPUT is a ``.nii``/``.nii.gz`` file, a folder holding one DICOM series, or a folder of
scans (its NIfTI files and its sub-folders holding a DICOM series); OUTPUT is then a
``.nii``/``.nii.gz`` file, or a folder for a folder of scans (one file per scan, named after
it). Labels: uint8, 0 background, 1 liver, 2 tumor, on the input's grid with its affine.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from keras_liverseg.cli.errors import UserError
from keras_liverseg.cli.signals import raise_pending

__all__ = ["predict"]


@dataclass
class _Job:
    """One scan to segment and where its outputs go."""

    source: Path
    output: Path
    overlay: Path | None = None


CRF_DEFAULTS = {"appearance_weight": 0.01, "appearance_mm": 10.0, "appearance_hu": 10.0,
                "smoothness_weight": 0.03, "smoothness_mm": 2.0, "iterations": 5}
"""The defaults of :class:`keras_liverseg.inference.crf.CRFOptions`, for --help without
importing the inference package (a test keeps the two the same)."""


def _is_nifti_name(path: Path) -> bool:
    return path.name.lower().endswith((".nii", ".nii.gz"))


def _plan_single(source: Path, output: Path, overlay: Path | None) -> list[_Job]:
    if output.is_dir():
        raise UserError(f"OUTPUT {output} is a folder; for one scan give a .nii.gz file name")
    if not _is_nifti_name(output):
        raise UserError(f"OUTPUT {output} must end with .nii.gz or .nii")
    if overlay is not None and overlay.suffix.lower() != ".png":
        raise UserError(f"--overlay {overlay} must end with .png")
    return [_Job(source, output, overlay)]


def _output_name(scan: Path) -> str:
    return scan.name if _is_nifti_name(scan) else f"{scan.name}.nii.gz"


def _plan_batch(source: Path, output: Path, overlay: Path | None) -> list[_Job]:
    from keras_liverseg.io import find_scans

    if output.exists() and not output.is_dir():
        raise UserError(f"OUTPUT {output} must be a folder when INPUT is a folder of scans")
    if overlay is not None and (overlay.suffix.lower() == ".png" or overlay.is_file()):
        raise UserError(f"--overlay {overlay} must be a folder when INPUT is a folder of scans")
    jobs, taken = [], {}
    for scan in find_scans(source):
        name = _output_name(scan)
        if name in taken:
            raise UserError(f"{taken[name].name} and {scan.name} would both write {output / name}")
        taken[name] = scan
        picture = overlay / f"{name.split('.nii')[0]}.png" if overlay is not None else None
        jobs.append(_Job(scan, output / name, picture))
    return jobs


def _claims(jobs: list[_Job], report: Path | None) -> list[tuple[str, Path | None]]:
    """Every file the run writes, with the option that named it."""
    named: list[tuple[str, Path | None]] = []
    for job in jobs:
        named += [("OUTPUT", job.output), ("--overlay", job.overlay)]
    return [*named, ("--report", report)]


def _warn(message: str, quiet: bool) -> None:
    if not quiet:
        click.echo(f"Warning: {message}", err=True)


def _summary(output: Path, report: dict[str, Any]) -> str:
    return (
        f"{output}: liver {report['liver_volume_ml']:.1f} mL, tumor "
        f"{report['tumor_volume_ml']:.2f} mL ({report['tumor_burden_percent']:.1f} %), "
        f"{report['lesion_count']} lesion(s)"
    )


def _segment(scan, loaded, label: str, options: dict[str, Any], quiet: bool):
    from keras_liverseg.inference import predict_volume
    from keras_liverseg.inference.loading import ModelLoadError

    with warnings.catch_warnings(), contextlib.ExitStack() as stack:
        warnings.simplefilter("ignore")
        bars = []  # the progress bar, opened at the first call: its total is the length

        def progress(done: int, total: int) -> None:
            raise_pending()  # a signal whose exception a callback swallowed
            if quiet:
                return
            if not bars:
                bars.append(stack.enter_context(
                    click.progressbar(length=total, label=label, file=sys.stderr)))
            bars[0].length = total  # a cascade's second stage adds its slices
            bars[0].update(done - bars[0].pos)

        try:
            return predict_volume(loaded, scan, progress=progress, **options)
        except ModelLoadError as error:  # e.g. --runtime onnx: this slice size's export
            raise UserError(str(error)) from None


def _write(job: _Job, scan, segmentation, report_path: Path | None, report: dict | None) -> None:
    """Write the segmentation, overlay and report together: all of them or none."""
    import nibabel as nib

    from keras_liverseg.cli.outputs import cannot_write
    from keras_liverseg.inference.overlay import render_overlay
    from keras_liverseg.inference.report import report_json
    from keras_liverseg.io.atomic import atomic_paths

    targets = [job.output]
    picture = None
    if job.overlay is not None:
        picture = render_overlay(scan.volume, segmentation.labels, segmentation.affine)
        targets.append(job.overlay)
    if report_path is not None:
        targets.append(report_path)
    try:
        with atomic_paths(targets) as temps:
            nib.save(segmentation.to_nifti(), str(temps[0]))
            if picture is not None:
                picture.save(temps[1], format="PNG")
            if report_path is not None:
                temps[-1].write_text(report_json(report), encoding="utf-8")
    except OSError as error:
        raise cannot_write("OUTPUT", job.output, error) from None


@click.command("predict")
@click.argument("input_path", metavar="INPUT", type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Output .nii.gz/.nii file; a folder when INPUT is a folder of scans.",
)
@click.option(
    "-m",
    "--model",
    "model_name",
    default="unet_sharp",
    show_default=True,
    help="Zoo model name (see `liverseg models`).",
)
@click.option(
    "-w",
    "--weights",
    default=None,
    metavar="PATH|RELEASE",
    help="A .keras model file or a .weights.h5 file for --model, or the name of one of "
    "--model's weights releases. Default: --model's default weights, bundled (unet_sharp, "
    "unet_sharp_fast) or else taken from the cache or downloaded from the weights mirror "
    "(`liverseg zoo list` shows them all).",
)
@click.option(
    "--second-stage-weights",
    default=None,
    metavar="PATH",
    help="Run --model's second stage with these weights (.weights.h5 or .keras, your own: "
    "none are released). The second stage (unet_sharp -> unet_sharp_roi) segments the "
    "first stage's liver region again at a finer scale; inside it the two stages' "
    "probabilities are averaged. Default: no second stage.",
)
@click.option(
    "--single-stage",
    is_flag=True,
    help="Never run a cascade's second stage, not even with bundled second-stage weights "
    "(none are released, so this is already the default).",
)
@click.option(
    "--batch-size",
    default=None,
    type=click.IntRange(min=1),
    help="Axial slices per model call (a 3D model: patches). Default: 4 slices on the CPU "
    "(fastest there, least memory), 16 on a GPU; one patch for a 3D model.",
)
@click.option(
    "--device",
    type=click.Choice(["cpu", "gpu"]),
    default=None,
    help="Run on the CPU or the GPU. Default: the GPU when there is one.",
)
@click.option(
    "--fast",
    is_flag=True,
    help="Use the zoo's fast variant of --model (<model>_fast) when it has one.",
)
@click.option(
    "--tta",
    is_flag=True,
    help="Also read the slices at a 7/6 larger input size and average (about 2.3 times "
    "slower; +0.006 liver Dice on validation phantoms).",
)
@click.option(
    "--precision",
    type=click.Choice(["auto", "float32", "bfloat16"]),
    default="auto",
    show_default=True,
    help="What the model computes in. auto: bfloat16 on a CPU that computes it natively "
    "(AMX or AVX-512 BF16; about 1.5 times faster), else float32; LIVERSEG_PRECISION "
    "overrides auto. The report's model.precision says which ran.",
)
@click.option(
    "--runtime",
    type=click.Choice(["keras", "onnx"]),
    default="keras",
    show_default=True,
    help="What runs the model. onnx: ONNX Runtime on the float32 graph (the export extra; "
    "TensorFlow backend; slice models), exported once per slice size and cached in "
    "LIVERSEG_HOME/onnx; faster than keras in float32 on a CPU without native bfloat16. "
    "Once cached, a prediction starts without Keras and TensorFlow (about 5 s sooner).",
)
@click.option(
    "--all-slices",
    is_flag=True,
    help="Read every axial slice. Default: the model surveys a slice every 15 mm and reads "
    "only the run of slices with liver, bounded by liver-free ones (the same labels after "
    "post-processing; the report's slices_read says how many were read).",
)
@click.option(
    "--no-postprocess",
    is_flag=True,
    help="Keep the raw argmax labels (no largest component, hole filling, ...).",
)
@click.option(
    "--min-lesion-mm3",
    default=None,
    type=click.FloatRange(min=0),
    help="Turn tumor lesions smaller than this into liver (post-processing; 0 keeps "
    "all). Default: the model's own (its zoo card) with bundled weights, else 0.",
)
@click.option(
    "--lesion-growth-mm",
    default=None,
    type=click.FloatRange(min=0),
    help="Grow each tumor lesion up to this far into adjacent liver of the lesion's "
    "density (post-processing; 0: off). Default: the model's own (its zoo card) with "
    "bundled weights, else 0.",
)
@click.option(
    "--min-lesion-prob",
    default=None,
    type=click.FloatRange(0, 1),
    help="Turn each tumor lesion whose mean tumor probability (the model's, over the "
    "lesion's voxels, as the report lists it) is below this into liver (post-processing, "
    "last step; 0 keeps all). Default: the model's own (its zoo card) with bundled weights, "
    "else 0.",
)
@click.option(
    "--bridge-mm",
    default=None,
    type=click.FloatRange(min=0),
    help="Cut off a thick region (5 ml or more) joined to the liver only through a neck "
    "narrower than this, such as bowel touching the liver's tip (post-processing, before "
    "the largest component; 0: off; 6 is a fair width). Default: the model's own (its zoo "
    "card), 0 for every model at present: it can also cut off a real liver lobe on a "
    "thin neck.",
)
@click.option(
    "--crf",
    is_flag=True,
    help="Refine the class probabilities slice by slice with a fully connected CRF "
    "(ES-UNet++'s post-processing: an appearance kernel over position and HU plus a "
    "smoothness kernel, mean-field inference) before the argmax and post-processing. Off "
    "by default: see the model card for what it does to the default weights.",
)
@click.option("--crf-appearance-weight", default=CRF_DEFAULTS["appearance_weight"],
              type=click.FloatRange(min=0), show_default=True,
              help="With --crf: weight w1 of the appearance kernel.")
@click.option("--crf-appearance-mm", default=CRF_DEFAULTS["appearance_mm"],
              type=click.FloatRange(min=0, min_open=True), show_default=True,
              help="With --crf: its width in position, theta_alpha (mm).")
@click.option("--crf-appearance-hu", default=CRF_DEFAULTS["appearance_hu"],
              type=click.FloatRange(min=0, min_open=True), show_default=True,
              help="With --crf: its width in intensity, theta_beta (HU).")
@click.option("--crf-smoothness-weight", default=CRF_DEFAULTS["smoothness_weight"],
              type=click.FloatRange(min=0), show_default=True,
              help="With --crf: weight w2 of the smoothness kernel.")
@click.option("--crf-smoothness-mm", default=CRF_DEFAULTS["smoothness_mm"],
              type=click.FloatRange(min=0, min_open=True), show_default=True,
              help="With --crf: its width, theta_gamma (mm).")
@click.option("--crf-iterations", default=CRF_DEFAULTS["iterations"],
              type=click.IntRange(min=1), show_default=True,
              help="With --crf: mean-field iterations.")
@click.option(
    "--force",
    is_flag=True,
    help="Segment inputs that do not look like CT: a DICOM series whose Modality is not "
    "CT, a label map.",
)
@click.option(
    "--skip-unreadable",
    is_flag=True,
    help="Skip DICOM files that cannot be read and, in a folder of scans, the scans that "
    "cannot be read; they are listed in the report.",
)
@click.option(
    "--overlay",
    type=click.Path(path_type=Path),
    default=None,
    metavar="PNG",
    help="Write a PNG of axial slices with the contours (a folder in batch mode).",
)
@click.option(
    "--report",
    type=click.Path(path_type=Path),
    default=None,
    metavar="JSON",
    help="Write volumes, lesions, model, input warnings and timing as JSON (one file in "
    "batch mode).",
)
@click.option("--overwrite", is_flag=True, help="Replace existing output files.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar, summary or warnings.")
def predict(
    input_path: Path,
    output: Path,
    model_name: str,
    weights: str | None,
    second_stage_weights: str | None,
    single_stage: bool,
    batch_size: int | None,
    device: str | None,
    fast: bool,
    tta: bool,
    precision: str,
    runtime: str,
    all_slices: bool,
    no_postprocess: bool,
    min_lesion_mm3: float | None,
    lesion_growth_mm: float | None,
    min_lesion_prob: float | None,
    bridge_mm: float | None,
    crf: bool,
    crf_appearance_weight: float,
    crf_appearance_mm: float,
    crf_appearance_hu: float,
    crf_smoothness_weight: float,
    crf_smoothness_mm: float,
    crf_iterations: int,
    force: bool,
    skip_unreadable: bool,
    overlay: Path | None,
    report: Path | None,
    overwrite: bool,
    quiet: bool,
) -> None:
    """Segment the liver and liver tumors of the CT scan(s) INPUT.

    INPUT is a .nii/.nii.gz file, a folder holding one DICOM series, or a folder of scans
    (NIfTI files and sub-folders with one DICOM series each), segmented in one run.
    Labels: 0 background, 1 liver, 2 tumor, written on the input's voxel grid with its
    affine (qform/sform kept).

    The output files are claimed when the run starts (a hidden .NAME.lock beside each
    while it runs), so a second run writing the same file fails at once; each is written
    to a temporary file and renamed when complete. An output is never an input.
    """
    from keras_liverseg.cli import outputs
    from keras_liverseg.io import InputError, scan_kind

    started = time.perf_counter()
    try:
        kind = scan_kind(input_path)
    except InputError as error:
        raise UserError(str(error)) from None
    inputs = {"INPUT": input_path, "--weights": weights,
              "--second-stage-weights": second_stage_weights}
    if kind == "batch":  # the segmentations and the overlays may share a folder
        for named in ({"OUTPUT": output}, {"--overlay": overlay}, {"--report": report}):
            outputs.refuse_clashes(named, inputs)
        try:
            jobs = _plan_batch(input_path, output, overlay)
        except InputError as error:
            raise UserError(str(error)) from None
    else:
        outputs.refuse_clashes({"OUTPUT": output, "--overlay": overlay, "--report": report},
                               inputs)
        jobs = _plan_single(input_path, output, overlay)
    if not jobs:
        raise UserError(f"{input_path}: no NIfTI file or DICOM series found")
    if single_stage and second_stage_weights:
        raise UserError("--single-stage and --second-stage-weights exclude each other")
    crf_settings = {"appearance_weight": crf_appearance_weight,
                    "appearance_mm": crf_appearance_mm, "appearance_hu": crf_appearance_hu,
                    "smoothness_weight": crf_smoothness_weight,
                    "smoothness_mm": crf_smoothness_mm, "iterations": crf_iterations}
    changed = [name for name, value in crf_settings.items() if value != CRF_DEFAULTS[name]]
    if changed and not crf:
        raise UserError(f"--crf-{changed[0].replace('_', '-')} needs --crf")

    with outputs.claim(_claims(jobs, report), overwrite):
        _predict(jobs, kind, input_path, output, report, started, model_name=model_name,
                 weights=weights, second_stage=None if single_stage else
                 second_stage_weights or "auto", batch_size=batch_size, device=device,
                 fast=fast, tta=tta, all_slices=all_slices, no_postprocess=no_postprocess,
                 post_overrides={name: float(value) for name, value in (
                     ("min_lesion_mm3", min_lesion_mm3), ("lesion_growth_mm", lesion_growth_mm),
                     ("min_lesion_prob", min_lesion_prob), ("bridge_mm", bridge_mm),
                 ) if value is not None},
                 load_options={"force": force, "skip_unreadable": skip_unreadable},
                 precision=precision, runtime=runtime, crf=crf_settings if crf else None,
                 quiet=quiet)


def _load(path: Path, load_options: dict[str, bool]):
    """Read one scan; returns it and the seconds it took."""
    from keras_liverseg.io import load_scan

    tick = time.perf_counter()
    scan = load_scan(path, **load_options)
    return scan, time.perf_counter() - tick


def _predict(jobs: list[_Job], kind: str, input_path: Path, output: Path,
             report: Path | None, started: float, *, model_name: str, weights: str | None,
             second_stage: str | None, batch_size: int | None, device: str | None,
             fast: bool, tta: bool, all_slices: bool, no_postprocess: bool,
             post_overrides: dict[str, float],
             load_options: dict[str, bool],
             quiet: bool, precision: str = "auto", runtime: str = "keras",
             crf: dict[str, Any] | None = None) -> None:
    """Load the model once, then segment and write every job (the outputs are claimed)."""
    from keras_liverseg.io import InputError, skipped_label_files

    first, failures = None, []
    # bad input fails before the backend and the model are loaded
    if kind != "batch":
        try:
            first = _load(input_path, load_options)
        except InputError as error:
            raise UserError(str(error)) from None
    else:
        jobs, failures = _readable(jobs, load_options, quiet)

    from keras_liverseg.cli.quiet import import_backend
    from keras_liverseg.inference.device import DeviceError, select_device

    # ONNX Runtime runs on the CPU, and from cached graphs without Keras: the backend then
    # starts only if a graph has to be exported (load_model's start_backend)
    keras_free = runtime == "onnx"
    if keras_free and device == "gpu":
        raise UserError("--runtime onnx runs on the CPU: drop --device gpu or use --runtime "
                        "keras")
    try:
        if device == "cpu":
            select_device("cpu")  # hides the GPUs before the backend starts
        if not keras_free:
            import_backend()
        if device == "gpu":
            select_device("gpu")
    except DeviceError as error:
        raise UserError(str(error)) from None

    from keras_liverseg.inference import PostprocessOptions
    from keras_liverseg.inference.loading import ModelLoadError, load_model
    from keras_liverseg.inference.predictor import prepare_tta
    from keras_liverseg.inference.report import ReportFacts

    tick = time.perf_counter()
    try:
        loaded = load_model(model_name, weights if weights else "default", fast=fast,
                            second_stage_weights=second_stage, progress=not quiet,
                            precision=precision, runtime=runtime,
                            start_backend=import_backend if keras_free else None)
        if tta:
            prepare_tta(loaded)
    except ModelLoadError as error:
        raise UserError(str(error)) from None
    model_seconds = round(time.perf_counter() - tick, 3)

    # the model's own post-processing, with the options the user gave
    post = replace(loaded.postprocess_options(), **post_overrides)
    if no_postprocess:
        post = PostprocessOptions.off()
    if batch_size is None and not loaded.preprocessing.volumetric and not keras_free:
        from keras_liverseg.inference.device import gpu_count

        batch_size = 16 if gpu_count() else None  # None: predict_volume's CPU default
    options = {"batch_size": batch_size, "tta": tta, "postprocess": post,
               "all_slices": all_slices}
    if crf is not None:
        from keras_liverseg.inference.crf import CRFOptions

        options["crf"] = CRFOptions(**crf)
    cli_options = {"fast": fast, "device": device or "auto", **load_options}

    skipped_labels = [Path(p) for p in skipped_label_files(input_path)] if kind == "batch" else []
    if skipped_labels:
        _warn(f"{input_path}: skipped {len(skipped_labels)} label map(s), not CT: "
              + ", ".join(path.name for path in skipped_labels), quiet)

    reports = []
    for number, job in enumerate(jobs, start=1):
        if first is None:
            try:
                first = _load(job.source, load_options)
            except InputError as error:
                click.echo(f"Error: {error}", err=True)
                failures.append({"input": str(job.source), "error": str(error)})
                continue
        (scan, load_seconds), first = first, None
        for message in scan.warnings:
            _warn(f"{job.source}: {message}", quiet)
        label = f"[{number}/{len(jobs)}] {job.source.name}" if len(jobs) > 1 else job.source.name
        # the CLI reads the scan itself (to fail before the model loads): predict_volume,
        # given the Scan, is told how long that took
        facts = ReportFacts(output=job.output, overlay=job.overlay, options=cli_options,
                            load_s=load_seconds, model_load_s=model_seconds)
        segmentation = _segment(scan, loaded, label, {**options, "report_facts": facts}, quiet)
        raise_pending()
        scan_report = segmentation.report
        single_report = report if kind != "batch" else None
        _write(job, scan, segmentation, single_report, scan_report)
        reports.append(scan_report)
        if not quiet:
            click.echo(_summary(job.output, scan_report))
        del scan, segmentation

    if kind == "batch" and report is not None:
        from keras_liverseg.inference.report import REPORT_VERSION, report_json

        _write_report(report, report_json(
            {
                "report_version": REPORT_VERSION,
                "input": str(input_path),
                "output": str(output),
                "scans": reports,
                "failed": failures,
                "skipped_label_files": [str(path) for path in skipped_labels],
                "wall_time_s": round(time.perf_counter() - started, 3),
            }
        ))
    if len(reports) < len(jobs):
        raise UserError(f"{len(jobs) - len(reports)} of {len(jobs)} scans could not be read")


def _readable(jobs: list[_Job], load_options: dict[str, bool],
              quiet: bool) -> tuple[list[_Job], list[dict[str, str]]]:
    """Read every scan of a batch once before any work: the jobs whose scan reads, and the
    failures. A scan that cannot be read stops the run (nothing written) unless
    ``--skip-unreadable``, which skips it with a warning and lists it in the report."""
    from keras_liverseg.io import InputError

    good, failures = [], []
    for job in jobs:
        try:
            _load(job.source, load_options)  # read and checked, then let go (memory)
        except InputError as error:
            failures.append({"input": str(job.source), "error": str(error)})
            continue
        good.append(job)
    if failures and not load_options["skip_unreadable"]:
        raise UserError(f"{failures[0]['error']} ({len(failures)} of {len(jobs)} scans cannot "
                        "be read; pass --skip-unreadable to segment the others)")
    for failure in failures:
        _warn(f"skipping {failure['input']}: {failure['error']}", quiet)
    if not good:
        raise UserError(f"none of the {len(jobs)} scans can be read")
    return good, failures


def _write_report(path: Path, text: str) -> None:
    from keras_liverseg.cli.outputs import write_text

    write_text("--report", path, text)
