"""Entry point of the ``liverseg`` command.

Every sub-command lives in its own module and is registered here. Errors that a user can
fix (bad paths, bad files, bad options) are raised as
:class:`keras_liverseg.cli.errors.UserError` and printed as one line with exit code 2,
never as a traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import warnings

import click

from keras_liverseg import __version__
from keras_liverseg.cli.errors import UserError

__all__ = ["UserError", "cli", "main", "run"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="liverseg")
def cli() -> None:
    """Segment the liver and liver tumors in abdominal CT."""


def _register() -> None:
    from keras_liverseg.cli import demo as demo_cmd
    from keras_liverseg.cli import evaluate as evaluate_cmd
    from keras_liverseg.cli import export as export_cmd
    from keras_liverseg.cli import models as models_cmd
    from keras_liverseg.cli import predict as predict_cmd
    from keras_liverseg.cli import sample_data as sample_data_cmd
    from keras_liverseg.cli import train as train_cmd
    from keras_liverseg.cli import zoo as zoo_cmd

    cli.add_command(demo_cmd.demo)
    cli.add_command(predict_cmd.predict)
    cli.add_command(sample_data_cmd.sample_data)
    cli.add_command(models_cmd.models)
    cli.add_command(evaluate_cmd.evaluate)
    cli.add_command(export_cmd.export)
    cli.add_command(train_cmd.train)
    cli.add_command(zoo_cmd.zoo)


_register()


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code instead of raising ``SystemExit``.

    A user error, a bad option value or a missing argument is one line ``Error: ...`` (exit
    code 2); Ctrl-C exits with 130 and SIGTERM with 143 after removing temporary files and
    output claims (see :mod:`keras_liverseg.cli.signals`).
    """
    from keras_liverseg.cli.signals import (
        INTERRUPTED,
        TERMINATED,
        Terminated,
        handle_termination,
        received,
    )

    warnings.formatwarning = _one_line_warning
    try:
        with handle_termination():
            code = cli.main(args=argv, prog_name="liverseg", standalone_mode=False)
    except Terminated as error:
        click.echo(str(error) or "Terminated.", err=True)
        return TERMINATED
    except click.exceptions.Abort as error:
        # click turns Ctrl-C into Abort (after a newline that ends the terminal's "^C")
        if isinstance(error.__cause__, KeyboardInterrupt):
            click.echo(str(error.__cause__) or "Interrupted.", err=True)
            return INTERRUPTED
        click.echo("Aborted.", err=True)
        return 1
    except click.exceptions.NoArgsIsHelpError as error:
        error.show()
        return error.exit_code
    except click.UsageError as error:  # one line, as every other error: no usage dump
        click.echo(f"Error: {error.format_message()}", err=True)
        return error.exit_code
    except click.ClickException as error:
        error.show()
        return error.exit_code
    except KeyboardInterrupt as error:
        click.echo(str(error) or "Interrupted.", err=True)
        return INTERRUPTED
    except Exception:
        # a signal's exception raised inside C code (NumPy, TensorFlow) can come out as
        # another error (SystemError "returned a result with an exception set"); the
        # clean-up has run all the same while it unwound
        number = received()
        if number is None:
            raise
        if number == signal.SIGTERM:
            click.echo("Terminated.", err=True)
            return TERMINATED
        click.echo("Interrupted.", err=True)
        return INTERRUPTED
    return code if isinstance(code, int) else 0


def run() -> None:
    """The ``liverseg`` command: :func:`main`, then exit at once with its code.

    Every output is written, renamed into place and closed by the time :func:`main`
    returns; what is left is the interpreter's shutdown, which with TensorFlow loaded takes
    about a second and has nothing of ours to finish (``benchmarks/bench_predict_commits.py``
    counts it in the whole process). So the process ends with ``os._exit`` after flushing
    stdout and stderr.
    """
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as the CLI prints it: ``Warning: <message>``, without the source line."""
    return f"Warning: {message}\n"


if __name__ == "__main__":
    run()
