"""`strongroom backup create|get|describe|logs|download|delete|inspect|verify` in local mode.

The location's storage is the source of truth: ``get`` lists what is stored
there (a backup written by Velero or another cluster appears too), and
``create`` runs the backup here, against the current kubeconfig, and stores
it there.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from strongroom.archive import ArchiveError, BackupReader, ResourceList, Results
from strongroom.cli.backup_flags import (
    DEFAULT_TTL,
    CsiSnapshotTimeoutOption,
    DefaultVolumesToFsBackupOption,
    ExcludeNamespacesOption,
    ExcludeResourcesOption,
    IncludeClusterResourcesOption,
    IncludeNamespacesOption,
    IncludeResourcesOption,
    OrderedResourcesOption,
    OrSelectorOption,
    SelectorOption,
    SnapshotVolumesOption,
    TtlOption,
    VolumeSnapshotLocationsOption,
    backup_flags,
)
from strongroom.cli.common import (
    ContextOption,
    KubeconfigOption,
    LocationOption,
    Output,
    OutputOption,
    ProgressReporter,
    SearchLocationOption,
    catalogs,
    confirm,
    emit,
    exit_for_phase,
    kube_client,
    open_catalog,
    print_log,
    print_problems,
    print_table,
    read_details,
    read_log,
    registry,
    require_writable,
    run,
    search,
    split_list,
    stored_names,
)
from strongroom.cli.render import describe_backup, print_backups
from strongroom.cli.server_mode import ModeOption, ServerNamespaceOption, choose, require_server
from strongroom.errors import (
    EXIT_FAILURE,
    ConflictError,
    NotFoundError,
    ObjectNotFound,
    StrongroomError,
    UsageError,
)
from strongroom.locations import Location
from strongroom.storage.catalog import BackupCatalog

backup_app = typer.Typer(help="Back up Kubernetes resources.", no_args_is_help=True)

ListOption = Annotated[list[str] | None, typer.Option(help="Comma-separated list (repeatable).")]


async def _find(name: str, location_name: str | None) -> tuple[Location, BackupCatalog, dict[str, Any]]:
    """The backup ``name`` in the named location, or in the first location that holds it."""

    async def probe(catalog: BackupCatalog) -> dict[str, Any] | None:
        if not await catalog.backup_exists(name):
            return None
        return await catalog.read_backup_metadata(name)

    location, catalog, backup = await search(location_name, probe, f"backup {name!r}")
    return location, catalog, _as_listed(backup, location)


def _as_listed(backup: dict[str, Any], location: Location) -> dict[str, Any]:
    # As Velero's sync does: a backup belongs to the location it is read from,
    # whichever location (or cluster) wrote it.
    backup.setdefault("spec", {})["storageLocation"] = location.name
    return backup


LabelsOption = Annotated[
    list[str] | None, typer.Option("--labels", help="Labels for the backup (key=value,...).")
]
ListSelectorOption = Annotated[
    str | None, typer.Option("--selector", "-l", help="Only the backups whose labels match this selector.")
]
TimeoutOption = Annotated[
    float,
    typer.Option("--timeout", help="Server mode: seconds to wait for the server to hand out the file."),
]
InsecureOption = Annotated[
    bool,
    typer.Option(
        "--insecure-skip-tls-verify",
        help="Server mode: accept any certificate of the object store (man-in-the-middle risk).",
    ),
]
CacertOption = Annotated[
    Path | None,
    typer.Option("--cacert", help="Server mode: CA bundle to trust for the object store's download URL."),
]
DOWNLOAD_TIMEOUT = 60.0


@backup_app.command()
def create(
    name: Annotated[
        str | None,
        typer.Argument(help="Name of the backup (with --from-schedule, default SCHEDULE-YYYYMMDDHHMMSS)."),
    ] = None,
    include_namespaces: IncludeNamespacesOption = None,
    exclude_namespaces: ExcludeNamespacesOption = None,
    include_resources: IncludeResourcesOption = None,
    exclude_resources: ExcludeResourcesOption = None,
    include_cluster_resources: IncludeClusterResourcesOption = None,
    selector: SelectorOption = None,
    or_selector: OrSelectorOption = None,
    ttl: TtlOption = DEFAULT_TTL,
    storage_location: LocationOption = None,
    ordered_resources: OrderedResourcesOption = None,
    default_volumes_to_fs_backup: DefaultVolumesToFsBackupOption = None,
    snapshot_volumes: SnapshotVolumesOption = None,
    csi_snapshot_timeout: CsiSnapshotTimeoutOption = None,
    volume_snapshot_locations: VolumeSnapshotLocationsOption = None,
    labels: LabelsOption = None,
    from_schedule: Annotated[
        str | None,
        typer.Option(
            "--from-schedule",
            help="Server mode: back up now as this schedule would (its template; other filters are ignored).",
        ),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Wait for the backup to finish (local mode always does)."),
    ] = False,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Back up the cluster's resources to a backup storage location."""
    # The engine (and the Kubernetes client under it) is imported by the commands
    # that talk to a cluster only: listing or describing backups starts faster.
    from strongroom.backup.request import build_backup, plan_backup
    from strongroom.backup.runner import BackupRunner
    from strongroom.cli.volumes import local_volume_options

    if name is None and from_schedule is None:
        raise UsageError(
            "Missing argument 'NAME': a backup needs a name", hint="strongroom backup create NAME [flags]"
        )
    target = choose(mode, namespace, kubeconfig, kubecontext)
    flags = (
        backup_flags(
            name,
            target.namespace,
            include_namespaces=include_namespaces,
            exclude_namespaces=exclude_namespaces,
            include_resources=include_resources,
            exclude_resources=exclude_resources,
            include_cluster_resources=include_cluster_resources,
            selector=selector,
            or_selector=or_selector,
            ttl=ttl,
            ordered_resources=ordered_resources,
            default_volumes_to_fs_backup=default_volumes_to_fs_backup,
            snapshot_volumes=snapshot_volumes,
            csi_snapshot_timeout=csi_snapshot_timeout,
            volume_snapshot_locations=volume_snapshot_locations,
            labels=labels,
        )
        if name is not None
        else None
    )
    if target.server:
        from strongroom.cli.server_commands import create_backup

        create_backup(
            target,
            name=name,
            flags=flags if from_schedule is None else None,
            storage_location=storage_location,
            from_schedule=from_schedule,
            wait=wait,
            output=output,
        )
        return
    if from_schedule is not None:
        require_server(target, "backup create --from-schedule")
    assert flags is not None and name is not None
    del wait  # a local-mode backup runs in this process and always finishes before the command returns
    location = registry().resolve(storage_location)
    require_writable(location)
    backup, ttl_delta = build_backup(flags, location.name)

    async def go() -> Any:
        catalog = await open_catalog(location)
        if await catalog.backup_exists(name):
            raise ConflictError(
                f"backup {name!r} already exists in location {location.name!r}",
                hint="choose another name, or delete the stored backup first",
            )
        async with kube_client(kubeconfig, kubecontext) as kube:
            plan = await plan_backup(kube, backup)
            for warning in plan.warnings:
                typer.echo(f"warning: {warning}", err=True)
            volumes = None
            snapshot_warnings: list[str] = []
            if plan.discovery is not None:
                volumes, snapshot_warnings = await local_volume_options(
                    kube,
                    plan.discovery,
                    plan.namespaces,
                    backup,
                    location=location.name,
                    namespace=target.namespace,
                )
                for warning in snapshot_warnings:
                    typer.echo(f"warning: {warning}", err=True)
            with ProgressReporter(f"Backing up {name}") as progress:
                runner = BackupRunner(kube, catalog, progress=progress.update)
                return await runner.run(
                    backup,
                    plan.scope,
                    plan.resources,
                    ttl=ttl_delta,
                    cluster_version=plan.cluster_version,
                    warnings=snapshot_warnings,
                    volumes=volumes,
                )

    outcome = run(go())
    stored = outcome.backup
    status = stored.get("status", {})

    def summary() -> None:
        progress = status.get("progress") or {}
        typer.echo(f'Backup "{name}" {status.get("phase")}: {progress.get("itemsBackedUp", 0)} items')
        print_problems(
            status, f"`strongroom backup describe {name} --details` and `strongroom backup logs {name}`"
        )
        if outcome.stored:
            typer.echo(f"Stored in location {location.name!r}.")

    emit(stored, output, summary)
    exit_for_phase(status.get("phase"))


@backup_app.command()
def get(
    names: Annotated[list[str] | None, typer.Argument(help="Show only these backups.")] = None,
    selector: ListSelectorOption = None,
    storage_location: SearchLocationOption = None,
    output: OutputOption = Output.table,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """List backups: the Backup resources of the server, or those stored in the locations (local mode)."""
    target = choose(mode, namespace, kubeconfig, kubecontext)
    if target.server:
        from strongroom.cli.server_commands import get_backups

        get_backups(target, names, selector, storage_location, output)
        return
    matches = label_filter(selector)

    async def go() -> list[dict[str, Any]]:
        if names:
            return [(await _find(name, storage_location))[2] for name in names]
        found: list[dict[str, Any]] = []
        async for location, catalog, backup_name in stored_names(
            storage_location, BackupCatalog.backup_names
        ):
            try:
                found.append(_as_listed(await catalog.read_backup_metadata(backup_name), location))
            except NotFoundError:
                continue  # deleted while listing
        return found

    backups = [backup for backup in run(go()) if matches(backup)]
    document: Any = (
        backups[0]
        if names and len(names) == 1 and backups
        else {"apiVersion": "velero.io/v1", "kind": "BackupList", "items": backups}
    )
    emit(document, output, lambda: print_backups(backups, datetime.now(UTC)))


def label_filter(selector: str | None) -> Callable[[dict[str, Any]], bool]:
    """``-l`` in local mode: the same selector the API server would apply to the resources."""
    if not selector:
        return lambda _: True
    from strongroom.model.selectors import SelectorError, parse_label_selector

    try:
        parsed = parse_label_selector(selector)
    except SelectorError as exc:
        raise UsageError(f"invalid --selector {selector!r}: {exc}") from exc
    return lambda backup: parsed.matches((backup.get("metadata") or {}).get("labels") or {})


@backup_app.command()
def describe(
    name: Annotated[str, typer.Argument(help="Name of the backup.")],
    details: Annotated[
        bool, typer.Option("--details", help="Show the resource list and every error and warning.")
    ] = False,
    storage_location: SearchLocationOption = None,
    timeout: TimeoutOption = DOWNLOAD_TIMEOUT,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Describe a backup."""
    target = choose(mode, namespace, kubeconfig, kubecontext)
    if target.server:
        from strongroom.cli.server_commands import describe_backup as describe_on_server

        describe_on_server(target, name, details=details, timeout=timeout)
        return

    async def go() -> tuple[Location, dict[str, Any], Results | None, ResourceList | None, list[Any]]:
        from strongroom.restore.volumes import load_volume_data

        location, catalog, backup = await _find(name, storage_location)
        layout = catalog.layout
        results, resource_list = await read_details(
            catalog, layout.backup_results(name), layout.backup_resource_list(name)
        )
        volumes = (await load_volume_data(catalog, name)).volume_infos
        return location, backup, results, resource_list, volumes

    location, backup, results, resource_list, volumes = run(go())
    describe_backup(
        backup,
        results=results,
        resource_list=resource_list,
        details=details,
        location=location.name,
        volume_infos=volumes,
    )


@backup_app.command()
def logs(
    name: Annotated[str, typer.Argument(help="Name of the backup.")],
    storage_location: SearchLocationOption = None,
    timeout: TimeoutOption = DOWNLOAD_TIMEOUT,
    insecure_skip_tls_verify: InsecureOption = False,
    cacert: CacertOption = None,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Print a backup's log."""
    target = choose(mode, namespace, kubeconfig, kubecontext)
    if target.server:
        from strongroom.cli.server_commands import backup_logs

        backup_logs(target, name, timeout=timeout, insecure=insecure_skip_tls_verify, cacert=cacert)
        return

    async def go() -> bytes:
        _, catalog, _ = await _find(name, storage_location)
        return await read_log(catalog, catalog.layout.backup_log(name), f"backup {name!r}")

    print_log(run(go()))


@backup_app.command()
def download(
    name: Annotated[str, typer.Argument(help="Name of the backup.")],
    output_file: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: NAME-data.tar.gz).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    storage_location: SearchLocationOption = None,
    timeout: TimeoutOption = DOWNLOAD_TIMEOUT,
    insecure_skip_tls_verify: InsecureOption = False,
    cacert: CacertOption = None,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Download a backup's tarball."""
    destination = output_file or Path(f"{name}-data.tar.gz")
    if destination.exists() and not force:
        raise UsageError(f"file {str(destination)!r} already exists", hint="pass --force to overwrite it")
    target = choose(mode, namespace, kubeconfig, kubecontext)
    if target.server:
        from strongroom.cli.server_commands import download_backup

        size = download_backup(
            target, name, destination, timeout=timeout, insecure=insecure_skip_tls_verify, cacert=cacert
        )
        typer.echo(
            f"Backup {name} has been successfully downloaded to {destination.resolve()} ({size} bytes)"
        )
        return

    async def go() -> int:
        _, catalog, _ = await _find(name, storage_location)
        partial = destination.with_name(destination.name + ".partial")
        try:
            digest = await catalog.download(catalog.layout.backup_contents(name), partial)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(destination)
        return digest.size

    size = run(go())
    typer.echo(f"Backup {name} has been successfully downloaded to {destination.resolve()} ({size} bytes)")


@backup_app.command()
def delete(
    names: Annotated[list[str] | None, typer.Argument(help="Names of the backups.")] = None,
    everything: Annotated[bool, typer.Option("--all", help="Delete every backup.")] = False,
    selector: ListSelectorOption = None,
    confirm_flag: Annotated[bool, typer.Option("--confirm", help="Do not ask for confirmation.")] = False,
    wait: Annotated[
        bool,
        typer.Option("--wait", help="Server mode: wait until the server has deleted the backups."),
    ] = False,
    storage_location: SearchLocationOption = None,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Delete backups and all their files from storage."""
    chosen = sum((bool(names), everything, selector is not None))
    if chosen != 1:
        raise UsageError(
            "name the backups to delete, or pass --all or --selector (exactly one of these)",
            hint="strongroom backup delete NAME... | --all | --selector KEY=VALUE",
        )
    what = (
        ", ".join(names)
        if names
        else ("every backup" if everything else f"the backups matching {selector!r}")
    )
    if not confirm_flag:
        confirm(f"Delete backup(s) {what} and all their files from storage?")
    target = choose(mode, namespace, kubeconfig, kubecontext)
    if target.server:
        from strongroom.cli.server_commands import delete_backups

        delete_backups(target, names or [], everything=everything, selector=selector, wait=wait)
        return
    matches = label_filter(selector)

    from strongroom.cli.volumes import delete_local_volume_data

    async def go() -> list[tuple[str, int]]:
        deleted = []
        if names:
            chosen_names = list(names)
        else:
            chosen_names = []
            async for _, catalog in catalogs(storage_location):
                for backup_name in await catalog.backup_names():
                    with contextlib.suppress(NotFoundError):
                        if matches(await catalog.read_backup_metadata(backup_name)):
                            chosen_names.append(backup_name)
        for name in chosen_names:
            location, catalog, _ = await _find(name, storage_location)
            require_writable(location)
            problems = await delete_local_volume_data(
                catalog,
                name,
                location=location.name,
                namespace=target.namespace,
                kubeconfig=kubeconfig,
                kubecontext=kubecontext,
            )
            if problems:
                raise StrongroomError(
                    f"backup {name!r} was not deleted: its volume data could not all be deleted: "
                    + "; ".join(problems),
                    hint="fix the cause (see the messages) and delete it again; its files are kept until then",
                )
            deleted.append((name, await catalog.delete_backup(name)))
        return deleted

    done = run(go())
    if not done:
        typer.echo("No backups found")
    for name, count in done:
        typer.echo(f'Backup "{name}" deleted ({count} files).')


@backup_app.command()
def verify(
    name: Annotated[str, typer.Argument(help="Name of the backup.")],
    storage_location: SearchLocationOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Re-read every file of a backup and check it against its recorded checksums and the format."""

    async def go() -> dict[str, Any]:
        _, catalog, _ = await _find(name, storage_location)
        tarball_key = catalog.layout.backup_contents(name)
        tarball_name = tarball_key[len(catalog.layout.backup_dir(name)) :]
        with tempfile.TemporaryDirectory(prefix="strongroom-verify-") as scratch:
            # The tarball is read once: its digest serves the checksum check and
            # the file the format check.
            path = Path(scratch) / "backup.tar.gz"
            try:
                known = {tarball_name: await catalog.download(tarball_key, path)}
            except ObjectNotFound:
                known = {}
            report = await catalog.verify_backup(name, known=known)
            document = report.to_json()
            if tarball_name in report.checked or not report.has_checksums:
                if not known:
                    document["tarball"] = {"ok": False, "error": "the tarball is missing"}
                else:
                    try:
                        with path.open("rb") as handle:
                            summary = BackupReader(handle).verify()
                        document["tarball"] = {
                            "ok": True,
                            "items": summary.item_entries,
                            "formatVersion": str(summary.format_version),
                        }
                    except ArchiveError as exc:
                        document["tarball"] = {"ok": False, "error": exc.message}
        document["ok"] = bool(document["ok"] or not report.has_checksums) and document.get("tarball", {}).get(
            "ok", report.ok
        )
        return document

    document = run(go())

    def table() -> None:
        for file_name, digest in document["checked"].items():
            typer.echo(f"ok       {file_name}  sha256:{digest['sha256']}")
        for file_name in document["missing"]:
            typer.echo(f"MISSING  {file_name}")
        for file_name, detail in document["altered"].items():
            typer.echo(f"ALTERED  {file_name}  {detail}")
        if not document["hasChecksums"]:
            typer.echo(
                "no strongroom-checksums.json (a backup written by another tool): checked the tarball's format only"
            )
        tarball = document.get("tarball")
        if tarball:
            typer.echo(
                f"tarball: {'ok, ' + str(tarball['items']) + ' item entries' if tarball['ok'] else 'DAMAGED: ' + tarball['error']}"
            )
        typer.echo(f"Backup {name}: {'verified' if document['ok'] else 'FAILED verification'}")

    emit(document, output, table)
    if not document["ok"]:
        raise typer.Exit(EXIT_FAILURE)


@backup_app.command()
def inspect(
    name: Annotated[str, typer.Argument(help="Name of the backup.")],
    resource: Annotated[
        list[str] | None,
        typer.Option("--resource", help="Only these group-resources (e.g. deployments.apps)."),
    ] = None,
    item_namespace: Annotated[
        list[str] | None, typer.Option("--item-namespace", help="Only items of these namespaces.")
    ] = None,
    item_name: Annotated[str | None, typer.Option("--name", help="Only items with this name.")] = None,
    print_items: Annotated[
        bool, typer.Option("--print", help="Print the items themselves, not a list.")
    ] = False,
    storage_location: SearchLocationOption = None,
    output: OutputOption = Output.table,
) -> None:
    """List (or print) the items inside a backup."""
    resources = set(split_list(resource))
    namespaces = set(split_list(item_namespace))

    async def go() -> list[dict[str, Any]]:
        _, catalog, _ = await _find(name, storage_location)
        with tempfile.TemporaryDirectory(prefix="strongroom-inspect-") as scratch:
            path = Path(scratch) / "backup.tar.gz"
            await catalog.download(catalog.layout.backup_contents(name), path)
            found = []
            with path.open("rb") as handle:
                reader = BackupReader(handle)
                for item in reader.items(lambda item_path: item_path.version is None):
                    if resources and str(item.group_resource) not in resources:
                        continue
                    if namespaces and (item.namespace or "") not in namespaces:
                        continue
                    if item_name and item.name != item_name:
                        continue
                    found.append(
                        {
                            "resource": str(item.group_resource),
                            "namespace": item.namespace,
                            "name": item.name,
                            "apiVersion": item.object.get("apiVersion"),
                            "object": item.object,
                        }
                    )
            return found

    items = run(go())
    if print_items:
        objects = [entry["object"] for entry in items]
        if output is Output.yaml:
            typer.echo(yaml.safe_dump_all(objects, sort_keys=False).rstrip())
        else:
            json.dump(objects if len(objects) != 1 else objects[0], sys.stdout, indent=2)
            typer.echo()
        return
    listing = [{key: value for key, value in entry.items() if key != "object"} for entry in items]
    emit(
        {"backup": name, "items": listing},
        output,
        lambda: print_table(
            ["RESOURCE", "NAMESPACE", "NAME", "API VERSION"],
            [
                (entry["resource"], entry["namespace"] or "", entry["name"], entry["apiVersion"])
                for entry in listing
            ],
        ),
    )
