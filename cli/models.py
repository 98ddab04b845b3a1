"""``liverseg models``: list the architectures and zoo entries."""

from __future__ import annotations

import click

from keras_liverseg.cli.quiet import import_backend


@click.command("models")
def models() -> None:
    """List the model architectures and the zoo entries with their weights."""
    import_backend()
    from keras_liverseg import zoo
    from keras_liverseg.models import available

    click.echo("architectures: " + ", ".join(available()))
    click.echo(f"{'zoo model':<16} {'architecture':<12} {'default weights':<24} summary")
    for entry in zoo.entries():
        record = zoo.default_weights(entry.name)
        weights = "none (untrained)" if record is None else (
            "bundled" if record.bundled else record.release)
        click.echo(f"{entry.name:<16} {entry.architecture:<12} {weights:<24} {entry.summary}")
    click.echo("`liverseg zoo list` shows every released weights file, its size and whether it "
               "is cached.")
