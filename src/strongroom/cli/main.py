"""The `strongroom` command: noun-verb subcommands like velero's.

Translates arguments, calls the library, renders the result. Errors from the
library become one clear line on stderr and their stable exit code.
"""

from __future__ import annotations

import logging
import sys

import typer

from strongroom import __version__
from strongroom.cli.sandbox import sandbox_app
from strongroom.errors import EXIT_FAILURE, StrongroomError

app = typer.Typer(
    name="strongroom",
    help="Backup, restore and disaster recovery for Kubernetes and OpenShift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(sandbox_app, name="sandbox")


@app.command()
def version() -> None:
    """Print the strongroom version."""
    typer.echo(f"strongroom {__version__}")


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        app()
    except StrongroomError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(EXIT_FAILURE)


if __name__ == "__main__":
    main()
