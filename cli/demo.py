"""``liverseg demo``: the main job on the embedded default, from nothing.

Generates one synthetic abdominal CT scan (the package's phantom generator), segments it
with the default zoo model through ``liverseg predict``, scores the result against the
phantom's ground truth with the LiTS metrics, and prints a summary of a few lines; the full
report (``liverseg predict``'s, with the scores added as ``scores_vs_phantom_truth``) is in
``report.json``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import click

from keras_liverseg.cli import outputs
from keras_liverseg.cli.errors import UserError

DEMO_SEED = 20261123
DEMO_SHAPE = (512, 512, 80)


@click.command("demo")
@click.option("-o", "--output", "folder", default="liverseg-demo", show_default=True,
              type=click.Path(path_type=Path, file_okay=False),
              help="Folder for the sample scan, its segmentation, report and overlay.")
@click.option("--model", "model_name", default="unet_sharp", show_default=True,
              help="Zoo model to run.")
@click.option("--overwrite", is_flag=True, help="Replace the files of an earlier demo.")
@click.pass_context
def demo(ctx: click.Context, folder: Path, model_name: str, overwrite: bool) -> None:
    """Generate a sample CT scan, segment it, score it, and print a short summary."""
    from keras_liverseg.phantom import write_lits_dataset

    started = time.perf_counter()
    scan, truth = folder / "volume-0.nii.gz", folder / "segmentation-0.nii.gz"
    seg, report, overlay = (folder / "prediction-0.nii.gz", folder / "report.json",
                            folder / "overlay.png")
    files = (scan, truth, folder / "phantoms.json", seg, report, overlay)
    ctx.with_resource(outputs.claim([("--output", path) for path in files], overwrite))
    click.echo(f"1/3 generating a sample scan {DEMO_SHAPE} (phantom seed {DEMO_SEED}) "
               f"-> {scan}", err=True)
    write_lits_dataset(folder, cases=1, seed=DEMO_SEED, shape=DEMO_SHAPE, overwrite=True)

    weights = _weights_for(model_name, folder)
    click.echo(f"2/3 liverseg predict {scan} --model {model_name} -> {seg}", err=True)
    from keras_liverseg.cli.predict import predict

    ctx.invoke(predict, input_path=scan, output=seg, model_name=model_name, weights=weights,
               overlay=overlay, report=report, overwrite=True, quiet=True)

    click.echo(f"3/3 liverseg evaluate --pred {seg} --gt {truth}", err=True)
    from keras_liverseg.metrics import evaluate_labels, read_labels

    predicted, reference = read_labels(seg), read_labels(truth)
    results = evaluate_labels(predicted.labels, reference.labels, reference.geometry.spacing,
                              classes=("liver", "tumor"))
    scores = {name: {k: round(v, 4) if math.isfinite(v) else None
                     for k, v in result.metrics.items()}
              for name, result in results.items()}
    full = json.loads(report.read_text())
    full["scores_vs_phantom_truth"] = scores
    from keras_liverseg.inference.report import volume_summary, write_report

    write_report(full, report)
    truth_volumes = volume_summary(reference.labels, reference.geometry.affine)
    for line in _summary_lines(full, truth_volumes, time.perf_counter() - started, folder):
        click.echo(line)


def _summary_lines(report: dict, truth: dict, seconds: float, folder: Path) -> list[str]:
    """The few lines the demo prints: volumes and Dice against the phantom, time, files."""
    scores = report["scores_vs_phantom_truth"]

    def dice(name: str) -> str:
        value = scores[name]["dice"]
        return "n/a" if value is None else f"{value:.3f}"

    lesions = report.get("lesion_count", len(report.get("lesions", [])))
    timing = report.get("timing_s", {})
    segment = timing.get("total")
    return [
        f"liver  {report['liver_volume_ml']:8.1f} mL  (phantom truth "
        f"{truth['liver_volume_ml']:.1f} mL)  Dice {dice('liver')}",
        f"tumor  {report['tumor_volume_ml']:8.1f} mL in {lesions} lesion(s)  (phantom truth "
        f"{truth['tumor_volume_ml']:.1f} mL)  Dice {dice('tumor')}",
        f"time   {seconds:.1f} s in all"
        + (f", {segment:.1f} s to segment" if segment is not None else ""),
        f"files  {folder}/: volume-0.nii.gz (scan), segmentation-0.nii.gz (phantom truth), "
        "prediction-0.nii.gz, overlay.png",
        f"report {folder / 'report.json'} (the full report, with every metric against the "
        "phantom truth)",
    ]


def _weights_for(model_name: str, folder: Path) -> str | None:
    """The bundled weights, or (while none are released) an untrained model saved here."""
    from keras_liverseg.cli.quiet import import_backend

    import_backend()
    from keras_liverseg import zoo

    try:
        zoo.get_entry(model_name)
    except ValueError as error:
        raise UserError(str(error)) from None
    if zoo.default_weights(model_name) is not None:
        return None
    click.echo(f"NOTE: no trained weights are released for {model_name!r} yet; the demo runs "
               "an UNTRAINED model, so its segmentation is meaningless (it shows the pipeline, "
               "not accuracy).", err=True)
    path = folder / f"untrained_{model_name}.keras"
    from keras_liverseg.io.atomic import atomic_path

    with atomic_path(path) as temp:
        zoo.load(model_name, weights=None).save(temp)
    return str(path)
