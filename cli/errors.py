"""Errors the CLI reports to the user as one line, without a traceback."""

from __future__ import annotations

import click


class UserError(click.ClickException):
    """An error caused by the user's input: ``Error: <message>`` on stderr, exit code 2."""

    exit_code = 2

    def show(self, file=None) -> None:
        click.echo(f"Error: {self.format_message()}", err=True, file=file)
