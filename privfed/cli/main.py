"""``privfed`` entry point: sub-command groups, --version, and the error contract.

Every :class:`~privfed.errors.PrivfedError` becomes one ``error: ...`` line on stderr
with exit code 2 and no traceback.
"""

from __future__ import annotations

import sys

import typer

try:  # typer >= 0.20 vendors click; older releases depend on it
    from typer._click.exceptions import UsageError
except ImportError:  # pragma: no cover
    from click.exceptions import UsageError

from privfed import __version__
from privfed.errors import PrivfedError

app = typer.Typer(
    name="privfed",
    help="Train federated medical-image classifiers and measure how private they are by attacking them.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"privfed {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
) -> None:
    """Federated learning on medical images, attacked to measure what it leaks."""


def _register_commands() -> None:
    from privfed.cli import attack_cmd, compare_cmd, data_cmd, flower_cmd, report_cmd, train_cmd

    app.add_typer(data_cmd.app, name="data")
    train_cmd.register(app)
    attack_cmd.register(app)
    report_cmd.register(app)
    compare_cmd.register(app)
    app.add_typer(flower_cmd.app, name="flower")


_register_commands()


def fail(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(2)


def run(argv: list[str] | None = None) -> None:
    """Console-script entry: map user errors to ``error:`` + exit 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="privfed", standalone_mode=False)
    except UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        fail(exc.format_message() + hint)
    except typer.Abort:
        fail("aborted")
    except PrivfedError as exc:
        fail(str(exc))
    except OSError as exc:  # the file system said no: a path the user gave (or the disk) is at fault
        where = f"{exc.filename}: " if exc.filename else ""
        fail(f"{where}{exc.strerror or exc}; check the path, its permissions and the free disk space")
    except KeyboardInterrupt:
        fail("interrupted; finished rounds are kept in the run directory (use --resume DIR to continue)")
    raise SystemExit(code if isinstance(code, int) else 0)
