"""The server-mode side of ``backup``, ``restore`` and ``backup-location``: Velero's CLI semantics.

Each function here is what one command does when the strongroom server is
installed: it builds the same object local mode would run (through the same
``build_backup``/``build_restore``, so flags mean the same in both modes),
hands it to the server as a ``velero.io/v1`` resource, and with ``--wait``
follows its status. The command modules decide the mode and call these; the
rendering is shared with local mode.
"""

from __future__ import annotations

import base64
import contextlib
import io
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from strongroom.cli.common import Output, emit, exit_for_phase, print_log, print_table, run
from strongroom.cli.locations import merge_config
from strongroom.cli.render import describe_backup as render_backup
from strongroom.cli.render import describe_restore as render_restore
from strongroom.cli.render import print_backups, print_restores, show_time
from strongroom.cli.server_api import (
    BACKUP_STORAGE_LOCATIONS,
    BACKUPS,
    RESTORES,
    SCHEDULES,
    TERMINAL_PHASES,
    ServerApi,
    follow_with_progress,
    server_api,
)
from strongroom.errors import NotFoundError, StrongroomError, UsageError

if TYPE_CHECKING:
    from strongroom.archive import ResourceList, Results
    from strongroom.backup.request import BackupFlags
    from strongroom.cli.server_mode import Target
    from strongroom.locations import Location
    from strongroom.model.resources import ApiResource

__all__ = [
    "backup_logs",
    "backup_manifest",
    "create_backup",
    "create_location",
    "create_restore",
    "delete_backups",
    "delete_location",
    "describe_backup",
    "describe_restore",
    "download_backup",
    "get_backups",
    "get_locations",
    "get_restores",
    "restore_logs",
    "set_location",
]

# Phases in which a backup's log is final (Velero's CLI refuses logs before).
_LOGS_READY = frozenset(
    {
        "Completed",
        "PartiallyFailed",
        "Failed",
        "WaitingForPluginOperations",
        "WaitingForPluginOperationsPartiallyFailed",
    }
)


def _say(output: Output) -> Any:
    """Messages for people: stdout for a table, stderr when stdout carries a document."""

    def say(message: str) -> None:
        typer.echo(message, err=output is not Output.table)

    return say


def list_document(kind: str, items: list[dict[str, Any]], single: bool) -> Any:
    return items[0] if single else {"apiVersion": "velero.io/v1", "kind": f"{kind}List", "items": items}


def select(
    target: Target, resource: ApiResource, names: list[str] | None, selector: str | None
) -> list[dict[str, Any]]:
    """The named objects of the server (each must exist), else those matching ``selector`` (else all)."""

    async def go() -> list[dict[str, Any]]:
        async with server_api(target) as api:
            return await api.select(resource, names, selector)

    return run(go())


def emit_list(
    kind: str, items: list[dict[str, Any]], names: list[str] | None, output: Output, table: Callable[[], None]
) -> None:
    """A listing as Velero's CLI prints it: the object itself when one name was asked for, else a List."""
    emit(list_document(kind, items, names is not None and len(names) == 1), output, table)


async def _submit(
    api: ServerApi,
    resource: ApiResource,
    manifest: dict[str, Any],
    *,
    done_key: str,
    verb: str,
    wait: bool,
    say: Callable[[str], None],
) -> dict[str, Any]:
    """Create a backup or restore and, with ``--wait``, follow it to its final phase.

    ``done_key`` is the progress counter (``itemsBackedUp``/``itemsRestored``)
    and ``verb`` its past participle for the progress line.
    """
    kind = resource.kind.lower()
    created = await api.create(resource, manifest)
    name = created["metadata"]["name"]
    say(f'{kind.capitalize()} request "{name}" submitted successfully.')
    if not wait:
        say(f"Run `strongroom {kind} describe {name}` or `strongroom {kind} logs {name}` for more details.")
        return created
    say(
        f"Waiting for {kind} to complete. You may safely press ctrl-c to stop waiting - "
        f"your {kind} will continue in the background."
    )
    reporter, on_change = follow_with_progress(f'{kind.capitalize()} "{name}"', done_key, verb)
    with reporter:
        return await api.follow(resource, name, on_change)


def _submitted(
    document: dict[str, Any],
    *,
    kind: str,
    wait: bool,
    output: Output,
    say: Callable[[str], None],
    counts: Callable[[dict[str, Any]], str | None],
) -> None:
    """After ``_submit``: the object for ``-o json|yaml``; after ``--wait`` its outcome and exit code.

    ``counts`` words the errors and warnings line as Velero's CLI does for
    ``kind`` (it differs between backups and restores), or None for no line.
    """
    status = document.get("status") or {}
    if wait:
        name = document["metadata"]["name"]
        say(
            f"{kind.capitalize()} completed with status: {status.get('phase')}. You may check for more "
            f"information using the commands `strongroom {kind} describe {name}` and "
            f"`strongroom {kind} logs {name}`."
        )
        line = counts(status)
        if line is not None:
            say(line)
        for message in status.get("validationErrors") or ():
            say(f"Validation error: {message}")
        if status.get("failureReason"):
            say(f"Failure reason: {status['failureReason']}")
    if output is not Output.table:
        emit(document, output, lambda: None)
    if wait:
        exit_for_phase(status.get("phase"))


# -- backups -------------------------------------------------------------------------


def backup_manifest(flags: BackupFlags, storage_location: str | None) -> dict[str, Any]:
    """The Backup local mode would run, minus the location when none is named (the server picks its default)."""
    from strongroom.backup.request import build_backup
    from strongroom.model.labels import STORAGE_LOCATION_LABEL

    manifest, _ = build_backup(flags, storage_location or "")
    if not storage_location:
        # Velero's CLI leaves both empty; the server fills the default location and the label.
        manifest["spec"].pop("storageLocation", None)
        manifest["metadata"]["labels"].pop(STORAGE_LOCATION_LABEL, None)
    return manifest


def _from_schedule(schedule: dict[str, Any], name: str, namespace: str) -> dict[str, Any]:
    """A Backup from a Schedule's template, labelled and owned as Velero's ``FromSchedule`` does."""
    from strongroom.model.labels import SCHEDULE_NAME_LABEL

    metadata = schedule.get("metadata") or {}
    spec = schedule.get("spec") or {}
    template = dict(spec.get("template") or {})
    template_metadata = template.pop("metadata", None) or {}
    labels = dict(template_metadata.get("labels") or metadata.get("labels") or {})
    labels[SCHEDULE_NAME_LABEL] = metadata["name"]
    backup_metadata: dict[str, Any] = {"name": name, "namespace": namespace, "labels": labels}
    if metadata.get("annotations"):
        backup_metadata["annotations"] = dict(metadata["annotations"])
    if spec.get("useOwnerReferencesInBackup") is True:
        backup_metadata["ownerReferences"] = [
            {
                "apiVersion": "velero.io/v1",
                "kind": "Schedule",
                "name": metadata["name"],
                "uid": metadata.get("uid", ""),
                "controller": True,
            }
        ]
    if template_metadata:
        template["metadata"] = template_metadata
    return {"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": backup_metadata, "spec": template}


def create_backup(
    target: Target,
    *,
    name: str | None,
    flags: BackupFlags | None,
    storage_location: str | None,
    from_schedule: str | None,
    wait: bool,
    output: Output,
) -> None:
    say = _say(output)

    async def go() -> dict[str, Any]:
        async with server_api(target) as api:
            if from_schedule:
                from strongroom.model.schedule import SCHEDULE_TIMESTAMP_FORMAT

                schedule = await api.get(SCHEDULES, from_schedule)
                backup_name = (
                    name or f"{from_schedule}-{datetime.now(UTC).strftime(SCHEDULE_TIMESTAMP_FORMAT)}"
                )
                manifest = _from_schedule(schedule, backup_name, target.namespace)
                say("Creating backup from schedule, all other filters are ignored.")
            else:
                assert flags is not None
                manifest = backup_manifest(flags, storage_location)
            return await _submit(
                api, BACKUPS, manifest, done_key="itemsBackedUp", verb="backed up", wait=wait, say=say
            )

    _submitted(run(go()), kind="backup", wait=wait, output=output, say=say, counts=_backup_counts)


def _backup_counts(status: dict[str, Any]) -> str | None:
    if status.get("errors") or status.get("warnings"):
        return f"Errors: {status.get('errors', 0)}  Warnings: {status.get('warnings', 0)}"
    return None


def get_backups(
    target: Target,
    names: list[str] | None,
    selector: str | None,
    storage_location: str | None,
    output: Output,
) -> None:
    backups = select(target, BACKUPS, names, selector)
    if storage_location and not names:
        backups = [b for b in backups if (b.get("spec") or {}).get("storageLocation") == storage_location]
    emit_list("Backup", backups, names, output, lambda: print_backups(backups, datetime.now(UTC)))


async def _optional_file(
    api: ServerApi, kind: str, name: str, timeout: float, ca: bytes | None
) -> bytes | None:
    """A file that describe shows when the server can hand it out; a note on stderr when not."""
    try:
        return await api.fetch_bytes(kind, name, timeout=timeout, ca_pem=ca)
    except StrongroomError as exc:
        typer.echo(f"warning: {kind} of {name!r} is not available: {exc.message}", err=True)
        return None


def _decoded(
    results: bytes | None, resource_list: bytes | None
) -> tuple[Results | None, ResourceList | None]:
    """The files describe fetched, decoded; one the server did not hand out stays None."""
    from strongroom.archive import decode_resource_list, decode_results

    return (
        decode_results(results) if results else None,
        decode_resource_list(resource_list) if resource_list else None,
    )


def describe_backup(target: Target, name: str, *, details: bool, timeout: float) -> None:
    async def go() -> tuple[dict[str, Any], bytes | None, bytes | None]:
        async with server_api(target) as api:
            backup = await api.get(BACKUPS, name)
            results = resource_list = None
            if details and (backup.get("status") or {}).get("phase") in TERMINAL_PHASES:
                ca = await api.location_ca((backup.get("spec") or {}).get("storageLocation"))
                resource_list = await _optional_file(api, "BackupResourceList", name, timeout, ca)
                results = await _optional_file(api, "BackupResults", name, timeout, ca)
            return backup, results, resource_list

    backup, results, resource_list = run(go())
    decoded_results, decoded_list = _decoded(results, resource_list)
    render_backup(backup, results=decoded_results, resource_list=decoded_list, details=details, location=None)


def _ready_for_logs(kind: str, name: str, phase: object) -> None:
    if phase not in _LOGS_READY:
        raise UsageError(
            f"logs for {kind} {name!r} are not available until it has finished processing (phase: {phase or 'New'})",
            hint=f"wait until the {kind} has a phase of Completed or Failed and try again",
        )


def _print_log(
    target: Target,
    resource: ApiResource,
    name: str,
    *,
    timeout: float,
    insecure: bool,
    cacert: Path | None,
    location_ca: bool,
) -> None:
    """``backup logs``/``restore logs``: the log the server hands out once the run has finished.

    ``location_ca``: without ``--cacert``, trust the CA of the object's storage
    location (a Backup names one; a Restore does not).
    """
    kind = resource.kind

    async def go() -> bytes:
        async with server_api(target) as api:
            found = await api.get(resource, name)
            _ready_for_logs(kind.lower(), name, (found.get("status") or {}).get("phase"))
            ca = _ca(cacert)
            if location_ca:
                ca = ca or await api.location_ca((found.get("spec") or {}).get("storageLocation"))
            buffer = io.BytesIO()
            await api.fetch(f"{kind}Log", name, timeout=timeout, into=buffer, ca_pem=ca, insecure=insecure)
            return buffer.getvalue()

    print_log(run(go()))


def backup_logs(target: Target, name: str, *, timeout: float, insecure: bool, cacert: Path | None) -> None:
    _print_log(target, BACKUPS, name, timeout=timeout, insecure=insecure, cacert=cacert, location_ca=True)


def _ca(cacert: Path | None) -> bytes | None:
    if cacert is None:
        return None
    try:
        return cacert.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read --cacert {str(cacert)!r}: {exc.strerror or exc}") from exc


def download_backup(
    target: Target, name: str, destination: Path, *, timeout: float, insecure: bool, cacert: Path | None
) -> int:
    async def go() -> int:
        async with server_api(target) as api:
            backup = await api.get(BACKUPS, name)
            ca = _ca(cacert) or await api.location_ca((backup.get("spec") or {}).get("storageLocation"))
            partial = destination.with_name(destination.name + ".partial")
            try:
                with partial.open("wb") as handle:
                    size = await api.fetch(
                        "BackupContents", name, timeout=timeout, into=handle, ca_pem=ca, insecure=insecure
                    )
            except BaseException:
                partial.unlink(missing_ok=True)
                raise
            partial.replace(destination)
            return size

    return run(go())


def delete_backups(
    target: Target, names: list[str], *, everything: bool, selector: str | None, wait: bool
) -> None:
    async def go() -> None:
        async with server_api(target) as api:
            backups = await api.select(BACKUPS, names, selector if not names else None)
            if not names and not everything and not selector:
                raise UsageError("name the backups to delete, or pass --all or --selector")
            if not backups:
                typer.echo("No backups found")
                return
            requests = []
            for backup in backups:
                backup_name = backup["metadata"]["name"]
                request = await api.request_deletion(backup)
                requests.append((backup_name, request["metadata"]["name"]))
                typer.echo(
                    f'Request to delete backup "{backup_name}" submitted successfully.\n'
                    "The backup will be fully deleted after all associated data "
                    "(disk snapshots, backup files, restores) are removed."
                )
            if wait:
                for backup_name, request_name in requests:
                    await api.wait_deleted(backup_name, request_name)
                    typer.echo(f'Backup "{backup_name}" deleted.')

    run(go())


# -- restores ------------------------------------------------------------------------


def create_restore(
    target: Target, manifest: dict[str, Any], *, from_schedule: str | None, wait: bool, output: Output
) -> None:
    from strongroom.model.labels import SCHEDULE_NAME_LABEL

    say = _say(output)
    if from_schedule:
        # The server restores the newest completed backup of the schedule (Velero's scheduleName).
        manifest["spec"].pop("backupName", None)
        manifest["spec"]["scheduleName"] = from_schedule

    async def go() -> dict[str, Any]:
        async with server_api(target) as api:
            if from_schedule and not await api.list_all(BACKUPS, f"{SCHEDULE_NAME_LABEL}={from_schedule}"):
                raise NotFoundError(f"no backups found for the schedule {from_schedule!r}")
            return await _submit(
                api, RESTORES, manifest, done_key="itemsRestored", verb="restored", wait=wait, say=say
            )

    _submitted(run(go()), kind="restore", wait=wait, output=output, say=say, counts=_restore_counts)


def _restore_counts(status: dict[str, Any]) -> str:
    # Velero's restore line always shows both counts, warnings first.
    return f"Warnings: {status.get('warnings', 0)}  Errors: {status.get('errors', 0)}"


def get_restores(target: Target, names: list[str] | None, selector: str | None, output: Output) -> None:
    restores = select(target, RESTORES, names, selector)
    emit_list("Restore", restores, names, output, lambda: print_restores(restores))


def describe_restore(target: Target, name: str, *, details: bool, timeout: float) -> None:
    async def go() -> tuple[dict[str, Any], bytes | None, bytes | None]:
        async with server_api(target) as api:
            restore = await api.get(RESTORES, name)
            results = resource_list = None
            if (restore.get("status") or {}).get("phase") in TERMINAL_PHASES - {"FailedValidation"}:
                # As Velero's describe: the results (errors, warnings) always, the resource list with --details.
                results = await _optional_file(api, "RestoreResults", name, timeout, None)
                if details:
                    resource_list = await _optional_file(api, "RestoreResourceList", name, timeout, None)
            return restore, results, resource_list

    restore, results, resource_list = run(go())
    decoded_results, decoded_list = _decoded(results, resource_list)
    render_restore(restore, results=decoded_results, resource_list=decoded_list, details=details)


def restore_logs(target: Target, name: str, *, timeout: float, insecure: bool, cacert: Path | None) -> None:
    _print_log(target, RESTORES, name, timeout=timeout, insecure=insecure, cacert=cacert, location_ca=False)


# -- backup storage locations ----------------------------------------------------------


def _parse_credential(value: str | None) -> dict[str, str] | None:
    """``--credential secret=key`` (one pair, as Velero's CLI takes it)."""
    if value is None:
        return None
    secret, sep, key = value.partition("=")
    if not sep or not secret.strip() or not key.strip() or "," in value:
        raise UsageError(
            f"invalid --credential {value!r}",
            hint="give one Secret name and key: --credential cloud-credentials=cloud",
        )
    return {"name": secret.strip(), "key": key.strip()}


def _read_cacert(path: str | None) -> str | None:
    if path is None:
        return None
    try:
        return base64.b64encode(Path(path).read_bytes()).decode("ascii")
    except OSError as exc:
        raise UsageError(f"cannot read --cacert {path!r}: {exc.strerror or exc}") from exc


async def _defaults(api: ServerApi) -> list[str]:
    return [
        item["metadata"]["name"]
        for item in await api.list_all(BACKUP_STORAGE_LOCATIONS)
        if (item.get("spec") or {}).get("default") is True
    ]


def create_location(
    target: Target,
    location: Location,
    *,
    credential: str | None,
    labels: dict[str, str],
    backup_sync_period: str | None,
    validation_frequency: str | None,
) -> None:
    """A BackupStorageLocation for ``location`` (its ``ca_cert_file`` is read here and sent as caCert)."""
    name = location.name
    default = location.default
    object_storage: dict[str, Any] = {"bucket": location.bucket}
    if location.prefix:
        object_storage["prefix"] = location.prefix
    ca = _read_cacert(location.ca_cert_file)
    if ca:
        object_storage["caCert"] = ca
    spec: dict[str, Any] = {
        "provider": location.provider,
        "objectStorage": object_storage,
        "accessMode": location.access_mode,
    }
    if default:
        spec["default"] = True
    if location.config:
        spec["config"] = dict(location.config)
    selector = _parse_credential(credential)
    if selector:
        spec["credential"] = selector
    for key, value in (
        ("backupSyncPeriod", backup_sync_period),
        ("validationFrequency", validation_frequency),
    ):
        if value is not None:
            from strongroom.model.duration import format_duration, parse_duration

            try:
                spec[key] = format_duration(parse_duration(value))
            except ValueError as exc:
                raise UsageError(f"invalid duration {value!r}: {exc}") from exc
    metadata: dict[str, Any] = {"name": name}
    if labels:
        metadata["labels"] = labels
    body = {"apiVersion": "velero.io/v1", "kind": "BackupStorageLocation", "metadata": metadata, "spec": spec}

    async def go() -> None:
        async with server_api(target) as api:
            current = await _defaults(api)
            if default and current:
                raise UsageError(
                    f"backup storage location {current[0]!r} is already the default",
                    hint=f"unset it first (strongroom backup-location set {current[0]} --no-default), "
                    "or do not pass --default",
                )
            await api.create(BACKUP_STORAGE_LOCATIONS, body)

    run(go())
    typer.echo(f'Backup storage location "{name}" configured successfully.')


def get_locations(target: Target, name: str | None, output: Output) -> None:
    async def go() -> list[dict[str, Any]]:
        async with server_api(target) as api:
            return await api.select(BACKUP_STORAGE_LOCATIONS, [name] if name else None, None)

    locations = run(go())

    def table() -> None:
        rows = []
        for location in locations:
            spec = location.get("spec") or {}
            status = location.get("status") or {}
            storage = spec.get("objectStorage") or {}
            bucket = storage.get("bucket", "")
            rows.append(
                (
                    location["metadata"]["name"],
                    spec.get("provider", ""),
                    f"{bucket}/{storage['prefix']}" if storage.get("prefix") else bucket,
                    status.get("phase") or "Unknown",
                    show_time(status.get("lastValidationTime"))
                    if status.get("lastValidationTime")
                    else "Unknown",
                    spec.get("accessMode") or "ReadWrite",
                    "true" if spec.get("default") else "",
                )
            )
        print_table(
            ["NAME", "PROVIDER", "BUCKET/PREFIX", "PHASE", "LAST VALIDATED", "ACCESS MODE", "DEFAULT"], rows
        )
        for location in locations:
            message = (location.get("status") or {}).get("message")
            if message and (location.get("status") or {}).get("phase") == "Unavailable":
                typer.echo(f"{location['metadata']['name']}: {message}", err=True)

    emit(list_document("BackupStorageLocation", locations, name is not None), output, table)


def set_location(
    target: Target,
    name: str,
    *,
    default: bool | None,
    config: dict[str, str] | None,
    credential: str | None,
    cacert: str | None,
    access_mode: str | None,
) -> None:
    ca = _read_cacert(cacert)
    selector = _parse_credential(credential)

    async def go() -> str | None:
        async with server_api(target) as api:
            location = await api.get(BACKUP_STORAGE_LOCATIONS, name)
            spec = location.setdefault("spec", {})
            if default is True:
                others = [other for other in await _defaults(api) if other != name]
                if others:
                    raise UsageError(
                        f"backup storage location {others[0]!r} is already the default",
                        hint=f"unset it first: strongroom backup-location set {others[0]} --no-default",
                    )
                if spec.get("default") is True:
                    return f'Backup storage location "{name}" is already the default backup storage location.'
            if default is not None:
                spec["default"] = default
            if config is not None:
                spec["config"] = merge_config(spec.get("config") or {}, config)
            if ca is not None:
                spec.setdefault("objectStorage", {})["caCert"] = ca
            if selector is not None:
                spec["credential"] = selector
            if access_mode is not None:
                spec["accessMode"] = access_mode
            await api.replace(BACKUP_STORAGE_LOCATIONS, location)
            return None

    message = run(go())
    typer.echo(message or f'Backup storage location "{name}" configured successfully.')


def delete_location(target: Target, name: str) -> None:
    from strongroom.kube import KubeError
    from strongroom.model.labels import STORAGE_LOCATION_LABEL, valid_label_value

    async def go() -> None:
        async with server_api(target) as api:
            await api.get(BACKUP_STORAGE_LOCATIONS, name)
            await api.delete(BACKUP_STORAGE_LOCATIONS, name)
            typer.echo(f'Backup storage location "{name}" deleted successfully.')
            # As Velero's CLI: the Backup resources of the location go with it; their
            # files stay in storage (a later sync of a location there brings them back).
            for backup in await api.list_all(BACKUPS, f"{STORAGE_LOCATION_LABEL}={valid_label_value(name)}"):
                backup_name = backup["metadata"]["name"]
                with contextlib.suppress(KubeError):
                    await api.delete(BACKUPS, backup_name)
                    typer.echo(f'Backup associated with deleted BSL(s) "{backup_name}" deleted successfully.')

    run(go())
