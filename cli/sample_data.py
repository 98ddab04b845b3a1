"""``liverseg sample-data``: synthetic abdominal CT with liver/tumor labels in LiTS layout."""

from __future__ import annotations

from pathlib import Path

import click

from keras_liverseg.cli import outputs
from keras_liverseg.cli.errors import UserError

MAX_CASES = 100_000
MAX_SIZE = 2048
MAX_VOXELS = 512 * 512 * 1024  # ~0.5 GB int16 per volume, a few GB while generating


def _int(name: str, text: str, lo: int, hi: int) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise UserError(f"{name} must be an integer, got {text!r}") from None
    if not lo <= value <= hi:
        raise UserError(f"{name} must be between {lo} and {hi}, got {value}")
    return value


@click.command("sample-data")
@click.option("-o", "--output", required=True,
              type=click.Path(file_okay=True, dir_okay=True, path_type=Path),
              help="Folder to write volume-<i>.nii.gz, segmentation-<i>.nii.gz and phantoms.json "
                   "to (created when missing).")
@click.option("--cases", default="3", show_default=True, metavar="N",
              help="Number of cases.")
@click.option("--seed", default="0", show_default=True, metavar="S",
              help="Dataset seed; case i uses a seed derived from (S, i).")
@click.option("--size", nargs=3, default=("512", "512", "100"), show_default=True,
              metavar="X Y Z", help="Array size; small sizes keep the anatomy, coarser.")
@click.option("--overwrite", is_flag=True, help="Replace existing case files.")
def sample_data(output: Path, cases: str, seed: str, size: tuple[str, str, str],
                overwrite: bool) -> None:
    """Write synthetic abdominal CT phantoms (NIfTI, LiTS layout) with liver/tumor labels."""
    n = _int("--cases", cases, 1, MAX_CASES)
    s = _int("--seed", seed, 0, 2**63 - 1)
    shape = tuple(_int("--size", v, 16, MAX_SIZE) for v in size)
    if shape[0] * shape[1] * shape[2] > MAX_VOXELS:
        raise UserError(f"--size {' '.join(map(str, shape))} is too large "
                        f"(at most {MAX_VOXELS} voxels per case)")
    if output.exists() and not output.is_dir():
        raise UserError(f"output is not a folder: {output}")
    from keras_liverseg.phantom.dataset import MANIFEST, existing_outputs, write_lits_dataset

    def progress(i, case, paths) -> None:
        m = case.meta
        tumors = len(m["lesions"])
        sp = "x".join(f"{v:.2f}" for v in m["spacing"])
        click.echo(f"case {i}: {paths[0].name} + {paths[1].name} "
                   f"({m['phase']}, {sp} mm, {m['orientation']}, {tumors} lesion(s))")

    # the manifest stands for the dataset: claiming it locks the folder against a second
    # run and shows that it can be written, before the first case is drawn
    with outputs.claim({"--output": output / MANIFEST}, overwrite=True):
        if not overwrite:
            clash = existing_outputs(output, range(n))
            if clash:
                raise UserError(f"{clash[0]} exists; pass --overwrite to replace "
                                f"{len(clash)} existing file(s)")
        try:
            write_lits_dataset(output, n, s, shape, overwrite=overwrite, progress=progress)
        except OSError as error:
            raise outputs.cannot_write("--output", output, error) from None
    click.echo(f"wrote {n} case(s) and phantoms.json to {output}")
