"""What every command of the command line shares: options, output, the environment.

The entry point is the only place that reads the environment
(``STRONGROOM_CONFIG_DIR``, ``KUBECONFIG`` through the kube client's own
defaults); the library receives paths and clients. Listings render as a
table, JSON or YAML; JSON and YAML are stable for scripts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import yaml
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from strongroom.archive import ResourceList, Results, decode_resource_list, decode_results, iter_log_lines
from strongroom.errors import (
    EXIT_FAILURE,
    EXIT_PARTIAL,
    NotFoundError,
    ObjectNotFound,
    StorageError,
    UsageError,
)
from strongroom.locations import Location, LocationRegistry, open_location
from strongroom.storage import validate_top_level
from strongroom.storage.catalog import BackupCatalog

if TYPE_CHECKING:
    from strongroom.kube import KubeClient

T = TypeVar("T")

CONFIG_DIR_ENV = "STRONGROOM_CONFIG_DIR"


class Output(StrEnum):
    table = "table"
    json = "json"
    yaml = "yaml"


OutputOption = Annotated[Output, typer.Option("--output", "-o", help="Output format: table, json or yaml.")]
KubeconfigOption = Annotated[
    str | None,
    typer.Option(
        "--kubeconfig", help="Path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)."
    ),
]
ContextOption = Annotated[str | None, typer.Option("--kubecontext", help="The kubeconfig context to use.")]
NamespaceOption = Annotated[
    str,
    typer.Option(
        "--namespace",
        "-n",
        help="The namespace strongroom's own resources belong to (Velero's: velero, OADP's: openshift-adp).",
    ),
]
LocationOption = Annotated[
    str | None,
    typer.Option(
        "--storage-location", help="Backup storage location to write to (default: the default location)."
    ),
]
SearchLocationOption = Annotated[
    str | None,
    typer.Option(
        "--storage-location", help="Look only in this backup storage location (default: every location)."
    ),
]

DEFAULT_NAMESPACE = "velero"


def config_dir() -> Path:
    """``$STRONGROOM_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/strongroom``, else ``~/.config/strongroom``."""
    explicit = os.environ.get(CONFIG_DIR_ENV)
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "strongroom"


def registry() -> LocationRegistry:
    return LocationRegistry(config_dir())


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def kubeconfig_path(explicit: str | None) -> str | None:
    """``--kubeconfig``, else ``$KUBECONFIG`` read now (the client library reads it once, when imported)."""
    return explicit or os.environ.get("KUBECONFIG") or None


@asynccontextmanager
async def kube_client(kubeconfig: str | None, context: str | None) -> AsyncIterator[KubeClient]:
    from strongroom.kube import KubeClient  # the Kubernetes client is loaded only by commands that use it

    client = await KubeClient.from_kubeconfig(kubeconfig_path(kubeconfig), context)
    try:
        yield client
    finally:
        await client.close()


async def open_catalog(location: Location, *, check: bool = True) -> BackupCatalog:
    """The catalog of a location; ``check`` refuses a prefix holding foreign directories."""
    store, layout = open_location(location)
    if check:
        await validate_top_level(store, layout)
    return BackupCatalog(store, layout)


async def search(
    location_name: str | None, probe: Callable[[BackupCatalog], Awaitable[T | None]], what: str
) -> tuple[Location, BackupCatalog, T]:
    """The first location where ``probe`` finds ``what``: the named one, or each in turn.

    When every location is searched, one that cannot be reached is reported
    on stderr and skipped; if nothing is found, its error is the answer.
    """
    failures: list[StorageError] = []
    async for location, catalog in catalogs(location_name, failures):
        found = await _probe(catalog, probe, location_name, failures, location)
        if found is not None:
            return location, catalog, found
    if failures:
        raise failures[0]
    where = f"location {location_name!r}" if location_name else "any backup storage location"
    raise NotFoundError(f"{what} not found in {where}")


async def _probe(
    catalog: BackupCatalog,
    probe: Callable[[BackupCatalog], Awaitable[T | None]],
    location_name: str | None,
    failures: list[StorageError],
    location: Location,
) -> T | None:
    try:
        return await probe(catalog)
    except StorageError as exc:
        if location_name is not None or isinstance(exc, NotFoundError):
            raise
        typer.echo(f"warning: location {location.name!r} skipped: {exc.message}", err=True)
        failures.append(exc)
        return None


async def catalogs(
    location_name: str | None, failures: list[StorageError] | None = None
) -> AsyncIterator[tuple[Location, BackupCatalog]]:
    """The named location's catalog, or every location's (one that cannot be opened is skipped with a warning)."""
    if location_name is not None:
        location = registry().get(location_name)
        yield location, await open_catalog(location, check=False)
        return
    for location in registry().locations():
        try:
            catalog = await open_catalog(location, check=False)
        except (StorageError, UsageError) as exc:
            typer.echo(f"warning: location {location.name!r} skipped: {exc.message}", err=True)
            if failures is not None and isinstance(exc, StorageError):
                failures.append(exc)
            continue
        yield location, catalog


async def stored_names(
    location_name: str | None, names_in: Callable[[BackupCatalog], Awaitable[list[str]]]
) -> AsyncIterator[tuple[Location, BackupCatalog, str]]:
    """Each name ``names_in`` lists in the named location, or in every location.

    When every location is listed, one that cannot be read is reported on
    stderr and skipped, so that one unreachable bucket does not hide the rest.
    """
    async for location, catalog in catalogs(location_name):
        try:
            names = await names_in(catalog)
        except StorageError as exc:
            if location_name is not None:
                raise
            typer.echo(f"warning: location {location.name!r} skipped: {exc.message}", err=True)
            continue
        for name in names:
            yield location, catalog, name


async def read_details(
    catalog: BackupCatalog, results_key: str, resource_list_key: str
) -> tuple[Results | None, ResourceList | None]:
    """What ``describe`` shows of a stored backup or restore beyond its record; None for a file it lacks."""
    results: Results | None = None
    resource_list: ResourceList | None = None
    with contextlib.suppress(ObjectNotFound):
        results = decode_results(await catalog.read_file(results_key))
    with contextlib.suppress(ObjectNotFound):
        resource_list = decode_resource_list(await catalog.read_file(resource_list_key))
    return results, resource_list


async def read_log(catalog: BackupCatalog, key: str, what: str) -> bytes:
    """A stored log; a run without one (written by an older tool, or failed early) is a not-found error."""
    try:
        return await catalog.read_file(key)
    except ObjectNotFound as exc:
        raise NotFoundError(f"{what} has no log stored") from exc


def print_log(data: bytes) -> None:
    """A ``-logs.gz`` file as text, as ``velero backup logs`` prints it."""
    for line in iter_log_lines(data):
        typer.echo(line)


def require_writable(location: Location) -> None:
    if location.read_only:
        raise UsageError(
            f"backup storage location {location.name!r} is ReadOnly",
            hint=f"make it writable with `strongroom backup-location set {location.name} --access-mode ReadWrite`",
        )


def print_problems(status: Mapping[str, Any], details: str) -> None:
    """The errors, warnings and failure reason of a finished backup or restore, and where to read more."""
    if status.get("errors") or status.get("warnings"):
        typer.echo(f"Errors: {status.get('errors', 0)}  Warnings: {status.get('warnings', 0)}")
        typer.echo(f"Run {details} for details.")
    if status.get("failureReason"):
        typer.echo(f"Failure reason: {status['failureReason']}")


def exit_for_phase(phase: object) -> None:
    """The stable exit code of a run's phase: Completed 0, PartiallyFailed 6, anything else 1."""
    if phase == "PartiallyFailed":
        raise typer.Exit(EXIT_PARTIAL)
    if phase != "Completed":
        raise typer.Exit(EXIT_FAILURE)


def confirm(question: str) -> None:
    """Ask before a destructive step; without a terminal, demand ``--confirm``."""
    if not sys.stdin.isatty():
        raise UsageError(f"{question} Refusing without --confirm when not run in a terminal")
    if not typer.confirm(question, default=False):
        raise typer.Exit(1)


def emit(document: Any, output: Output, table: Callable[[], None]) -> None:
    """Print ``document`` as JSON or YAML, or call ``table`` to print it for people."""
    if output is Output.json:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))
    elif output is Output.yaml:
        typer.echo(yaml.safe_dump(document, sort_keys=False, allow_unicode=True).rstrip())
    else:
        table()


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """kubectl-style columns: upper-case headers, left aligned, three spaces apart."""
    cells = [[str(value) if value is not None else "" for value in row] for row in rows]
    widths = [max([len(header), *(len(row[index]) for row in cells)]) for index, header in enumerate(headers)]
    for row in [list(headers), *cells]:
        typer.echo("   ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip())


def parse_bool_flag(value: str | None, flag: str) -> bool | None:
    """A tri-state boolean flag: unset, true or false (Go's ParseBool spellings, as velero takes them)."""
    if value is None:
        return None
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise UsageError(f"invalid value {value!r} for {flag}", hint="use true or false")


def split_list(values: Sequence[str] | None) -> list[str]:
    """Comma-separated flag values, as velero takes them (``-x a,b -x c``)."""
    result: list[str] = []
    for value in values or ():
        result.extend(part.strip() for part in value.split(",") if part.strip())
    return result


class ProgressReporter:
    """A progress bar on a terminal; silence otherwise (scripts read the final output)."""

    def __init__(self, what: str, *, enabled: bool | None = None) -> None:
        self._enabled = sys.stderr.isatty() if enabled is None else enabled
        self._what = what
        self._progress: Progress | None = None
        self._task: Any = None

    @property
    def enabled(self) -> bool:
        """Whether a bar is shown (stderr is a terminal, unless told otherwise)."""
        return self._enabled

    def __enter__(self) -> ProgressReporter:
        if self._enabled:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task(self._what, total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, done: int, total: int) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=done, total=max(total, done) or None)


def run_until_signalled(
    kubeconfig: str | None,
    kubecontext: str | None,
    main: Callable[[KubeClient, asyncio.Event], Awaitable[int]],
) -> None:
    """Run a long-lived command (server, node agent) until SIGTERM or SIGINT; exit with its code."""

    from strongroom.kube import KubeClient  # loaded only by the commands that run

    async def go() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        async with await KubeClient.connect(kubeconfig, kubecontext) as kube:
            return await main(kube, stop)

    code = asyncio.run(go())
    if code:
        raise typer.Exit(code)
