"""The `strongroom` command: noun-verb subcommands like velero's.

Translates arguments, calls the library, renders the result. Errors from the
library become one clear line on stderr and their stable exit code.
"""

from __future__ import annotations

import logging
import sys

import typer

from strongroom import __version__
from strongroom.cli.backup import backup_app
from strongroom.cli.cluster import cluster_app
from strongroom.cli.csr import csr_app
from strongroom.cli.doctor import doctor
from strongroom.cli.etcd import etcd_app
from strongroom.cli.gather import must_gather
from strongroom.cli.install import install, uninstall
from strongroom.cli.locations import location_app
from strongroom.cli.nodeagent import node_agent, restore_wait
from strongroom.cli.restore import restore_app
from strongroom.cli.sandbox import sandbox_app
from strongroom.cli.schedule import schedule_app
from strongroom.cli.server import server
from strongroom.errors import EXIT_FAILURE, EXIT_OK, StrongroomError

app = typer.Typer(
    name="strongroom",
    help="Backup, restore and disaster recovery for Kubernetes and OpenShift.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(sandbox_app, name="sandbox")
app.add_typer(backup_app, name="backup")
app.add_typer(restore_app, name="restore")
app.add_typer(location_app, name="backup-location")
app.add_typer(schedule_app, name="schedule")
app.add_typer(etcd_app, name="etcd")
app.add_typer(cluster_app, name="cluster")
app.add_typer(csr_app, name="csr")
app.command(name="server")(server)
app.command(name="install")(install)
app.command(name="uninstall")(uninstall)
app.command(name="node-agent")(node_agent)
app.command(name="restore-wait")(restore_wait)
app.command(name="must-gather")(must_gather)
app.command(name="doctor")(doctor)


@app.command()
def version() -> None:
    """Print the strongroom version."""
    typer.echo(f"strongroom {__version__}")


def run_cli(args: list[str] | None = None) -> int:
    """Run one command and return its exit code; library errors become a message and their code.

    The command line parser reports its own usage errors (exit 2) and exits;
    that exit is caught here so the code can be returned to the caller.
    """
    try:
        app(args=args, prog_name="strongroom")
    except SystemExit as exc:
        if exc.code is None:
            return EXIT_OK
        return exc.code if isinstance(exc.code, int) else EXIT_FAILURE
    except StrongroomError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        if exc.hint:
            typer.echo(f"hint: {exc.hint}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        return EXIT_FAILURE
    return EXIT_OK


def main() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    sys.exit(run_cli())


if __name__ == "__main__":
    main()
