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
    click.echo(f"{'zoo model':<16} {'architecture':<12} {'weights':<16} summary")
    for entry in zoo.entries():
        weights = "bundled" if entry.has_default_weights() else "not released yet"
        click.echo(f"{entry.name:<16} {entry.architecture:<12} {weights:<16} {entry.summary}")
