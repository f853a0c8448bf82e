"""`strongroom restore create|get|describe|logs` in local mode.

A restore reads a backup from a location and applies it to the cluster of
the current kubeconfig; its log, results and record are stored beside the
backups (under ``restores/<R>/``), so ``restore get`` and ``describe`` work
from any workstation that sees the location.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from strongroom.archive import ResourceList, Results
from strongroom.cli.backup import (
    DOWNLOAD_TIMEOUT,
    CacertOption,
    InsecureOption,
    TimeoutOption,
    label_filter,
)
from strongroom.cli.common import (
    ContextOption,
    KubeconfigOption,
    Output,
    OutputOption,
    ProgressReporter,
    SearchLocationOption,
    emit,
    exit_for_phase,
    kube_client,
    parse_bool_flag,
    print_log,
    print_problems,
    print_table,
    read_details,
    read_log,
    run,
    search,
    split_list,
    stored_names,
)
from strongroom.cli.render import describe_restore, print_restores
from strongroom.cli.server_mode import ModeOption, ServerNamespaceOption, choose, require_server
from strongroom.errors import (
    ConflictError,
    UsageError,
)
from strongroom.locations import Location
from strongroom.restore.priorities import DEFAULT_RESTORE_PRIORITIES, parse_priorities
from strongroom.storage.catalog import BackupCatalog

restore_app = typer.Typer(help="Restore backups into the cluster.", no_args_is_help=True)


async def _find_backup(name: str, location_name: str | None) -> tuple[Location, BackupCatalog]:
    async def probe(catalog: BackupCatalog) -> bool | None:
        return True if await catalog.backup_exists(name) else None

    location, catalog, _ = await search(location_name, probe, f"backup {name!r}")
    return location, catalog


async def _find_restore(name: str, location_name: str | None) -> tuple[BackupCatalog, dict[str, Any]]:
    async def probe(catalog: BackupCatalog) -> dict[str, Any] | None:
        if not await catalog.restore_exists(name):
            return None
        return await catalog.read_restore_record(name)

    _, catalog, record = await search(location_name, probe, f"restore {name!r}")
    return catalog, record


@restore_app.command()
def create(
    name: Annotated[
        str | None, typer.Argument(help="Name of the restore (default: BACKUP-YYYYMMDDHHMMSS).")
    ] = None,
    from_backup: Annotated[str | None, typer.Option("--from-backup", help="Backup to restore from.")] = None,
    from_schedule: Annotated[
        str | None,
        typer.Option(
            "--from-schedule",
            help="Server mode: restore the newest completed backup of this schedule.",
        ),
    ] = None,
    namespace_mappings: Annotated[
        list[str] | None,
        typer.Option("--namespace-mappings", help="Restore namespaces under new names: src1:dst1,src2:dst2."),
    ] = None,
    include_namespaces: Annotated[
        list[str] | None,
        typer.Option("--include-namespaces", help="Namespaces to restore (default: all in the backup)."),
    ] = None,
    exclude_namespaces: Annotated[
        list[str] | None, typer.Option("--exclude-namespaces", help="Namespaces not to restore.")
    ] = None,
    include_resources: Annotated[
        list[str] | None, typer.Option("--include-resources", help="Resources to restore (default: *).")
    ] = None,
    exclude_resources: Annotated[
        list[str] | None, typer.Option("--exclude-resources", help="Resources not to restore.")
    ] = None,
    include_cluster_resources: Annotated[
        str | None,
        typer.Option("--include-cluster-resources", help="true or false; unset: automatic, as Velero."),
    ] = None,
    selector: Annotated[
        str | None, typer.Option("--selector", "-l", help="Restore only items matching this label selector.")
    ] = None,
    or_selector: Annotated[
        str | None, typer.Option("--or-selector", help="Label selectors joined by ' or '.")
    ] = None,
    existing_resource_policy: Annotated[
        str | None,
        typer.Option(
            "--existing-resource-policy",
            help="none (default: keep and warn) or update (patch to the backed-up version).",
        ),
    ] = None,
    restore_volumes: Annotated[
        str | None,
        typer.Option("--restore-volumes", help="true or false: restore persistent volumes (default: auto)."),
    ] = None,
    preserve_nodeports: Annotated[
        str | None, typer.Option("--preserve-nodeports", help="true or false: keep Services' node ports.")
    ] = None,
    status_include_resources: Annotated[
        list[str] | None,
        typer.Option("--status-include-resources", help="Resources whose status is restored too."),
    ] = None,
    restore_resource_priorities: Annotated[
        str | None,
        typer.Option(
            "--restore-resource-priorities",
            help="Restore order, overriding Velero's: high-priority resources, then '-', then low-priority ones (e.g. 'namespaces,secrets,-,clusterbootstraps.run.tanzu.vmware.com').",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show what would be created, skipped and updated; change nothing."),
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the restore to finish (local mode always does).")
    ] = False,
    storage_location: SearchLocationOption = None,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Restore a backup into the cluster."""
    # Imported here, as in `backup create`: only this command needs the engine.
    from strongroom.cli.volumes import local_restore_options
    from strongroom.restore.request import RestoreFlags, backup_namespaces, build_restore, restore_options
    from strongroom.restore.runner import RestoreRunner

    if from_backup and from_schedule:
        raise UsageError("either a backup or schedule must be specified, but not both")
    if not from_backup and not from_schedule:
        raise UsageError(
            "a backup or schedule to restore from is required",
            hint="pass --from-backup NAME (or, with the server, --from-schedule NAME)",
        )
    target = choose(mode, namespace, kubeconfig, kubecontext)
    if from_schedule and not target.server:
        require_server(target, "restore create --from-schedule")
    if target.server:
        for flag, given in (
            ("--dry-run", dry_run),
            ("--restore-resource-priorities", restore_resource_priorities is not None),
        ):
            if given:
                raise UsageError(
                    f"{flag} works in local mode only: the server has no such setting per restore",
                    hint="use --mode local to run the restore here",
                )
        if storage_location is not None:
            typer.echo(
                "warning: --storage-location is ignored in server mode: the server finds the backup", err=True
            )
    flags = RestoreFlags(
        name=name,
        namespace=target.namespace,
        from_backup=from_backup or from_schedule,
        namespace_mappings=split_list(namespace_mappings),
        include_namespaces=split_list(include_namespaces),
        exclude_namespaces=split_list(exclude_namespaces),
        include_resources=split_list(include_resources),
        exclude_resources=split_list(exclude_resources),
        include_cluster_resources=parse_bool_flag(include_cluster_resources, "--include-cluster-resources"),
        selector=selector,
        or_selector=or_selector,
        existing_resource_policy=existing_resource_policy,
        restore_volumes=parse_bool_flag(restore_volumes, "--restore-volumes"),
        preserve_nodeports=parse_bool_flag(preserve_nodeports, "--preserve-nodeports"),
        status_include_resources=split_list(status_include_resources),
    )
    restore = build_restore(flags, datetime.now(UTC))
    if target.server:
        from strongroom.cli.server_commands import create_restore

        create_restore(target, restore, from_schedule=from_schedule, wait=wait, output=output)
        return
    del wait  # a local-mode restore runs in this process and always finishes before the command returns
    priorities = (
        parse_priorities(restore_resource_priorities)
        if restore_resource_priorities
        else DEFAULT_RESTORE_PRIORITIES
    )
    restore_name = restore["metadata"]["name"]
    backup_name = restore["spec"]["backupName"]

    async def go() -> Any:
        location, catalog = await _find_backup(backup_name, storage_location)
        if not dry_run and not location.read_only and await catalog.restore_exists(restore_name):
            raise ConflictError(f"restore {restore_name!r} already exists in location {location.name!r}")
        async with kube_client(kubeconfig, kubecontext) as kube:
            await RestoreRunner(kube, catalog).check_backup(backup_name)
            warnings: list[str] = []
            discovery = await kube.discover()
            options = restore_options(
                discovery, restore, await backup_namespaces(catalog, backup_name), warnings
            )
            for warning in warnings:
                typer.echo(f"warning: {warning}", err=True)
            with ProgressReporter(f"Restoring {backup_name}") as progress:
                runner = RestoreRunner(kube, catalog, progress=progress.update, priorities=priorities)
                if location.read_only and not dry_run:
                    typer.echo(
                        f"note: location {location.name!r} is ReadOnly: this restore's log and results are not stored there",
                        err=True,
                    )
                return await runner.run(
                    restore,
                    options,
                    dry_run=dry_run,
                    store=not location.read_only,
                    discovery=discovery,
                    volumes=await local_restore_options(
                        kube, discovery, target.namespace, location=location.name
                    ),
                )

    outcome = run(go())
    stored = outcome.restore
    status = stored.get("status", {})
    if dry_run:
        document = {
            "restore": restore_name,
            "backup": backup_name,
            "dryRun": True,
            "phase": status.get("phase"),
            "items": [
                {
                    "action": entry.action,
                    "resource": entry.group_resource,
                    "namespace": entry.namespace,
                    "name": entry.name,
                    **({"diff": entry.diff} if entry.diff else {}),
                    **({"reason": entry.reason} if entry.reason else {}),
                }
                for entry in outcome.dry_run
            ],
        }

        def dry_table() -> None:
            print_table(
                ["ACTION", "RESOURCE", "NAMESPACE", "NAME"],
                [
                    (entry.action, entry.group_resource, entry.namespace or "", entry.name)
                    for entry in outcome.dry_run
                ],
            )
            for entry in outcome.dry_run:
                if entry.diff:
                    typer.echo(
                        f"\n--- {entry.action}: {entry.group_resource} {entry.namespace or ''}/{entry.name}"
                    )
                    typer.echo(entry.diff.rstrip())
            for entry in outcome.dry_run:
                if entry.action == "error":
                    typer.echo(
                        f"error: {entry.group_resource} {entry.namespace or ''}/{entry.name}: {entry.reason}",
                        err=True,
                    )
            if status.get("failureReason"):
                typer.echo(f"error: {status['failureReason']}", err=True)
            typer.echo(f"\nDry run of restore from backup {backup_name!r}: nothing was changed.")

        emit(document, output, dry_table)
        exit_for_phase(status.get("phase"))
        return

    def summary() -> None:
        progress = status.get("progress") or {}
        typer.echo(
            f'Restore "{restore_name}" from backup "{backup_name}" {status.get("phase")}: '
            f"{progress.get('itemsRestored', 0)} of {progress.get('totalItems', 0)} items restored"
        )
        print_problems(status, f"`strongroom restore describe {restore_name} --details`")

    if outcome.store_error:
        typer.echo(f"warning: the restore's log and results were not stored: {outcome.store_error}", err=True)
    emit(stored, output, summary)
    exit_for_phase(status.get("phase"))


@restore_app.command()
def get(
    names: Annotated[list[str] | None, typer.Argument(help="Show only these restores.")] = None,
    selector: Annotated[
        str | None,
        typer.Option("--selector", "-l", help="Only the restores whose labels match this selector."),
    ] = None,
    storage_location: SearchLocationOption = None,
    output: OutputOption = Output.table,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """List restores."""
    target = choose(mode, namespace, kubeconfig, kubecontext)
    if target.server:
        from strongroom.cli.server_commands import get_restores

        get_restores(target, names, selector, output)
        return
    matches = label_filter(selector)

    async def go() -> list[dict[str, Any]]:
        if names:
            return [(await _find_restore(name, storage_location))[1] for name in names]
        return [
            await catalog.read_restore_record(restore_name)
            async for _, catalog, restore_name in stored_names(storage_location, BackupCatalog.restore_names)
        ]

    restores = [restore for restore in run(go()) if matches(restore)]
    document: Any = (
        restores[0]
        if names and len(names) == 1 and restores
        else {"apiVersion": "velero.io/v1", "kind": "RestoreList", "items": restores}
    )
    emit(document, output, lambda: print_restores(restores))


@restore_app.command()
def describe(
    name: Annotated[str, typer.Argument(help="Name of the restore.")],
    details: Annotated[bool, typer.Option("--details", help="Show every error and warning.")] = False,
    storage_location: SearchLocationOption = None,
    timeout: TimeoutOption = DOWNLOAD_TIMEOUT,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Describe a restore."""
    target = choose(mode, namespace, kubeconfig, kubecontext)
    if target.server:
        from strongroom.cli.server_commands import describe_restore as describe_on_server

        describe_on_server(target, name, details=details, timeout=timeout)
        return

    async def go() -> tuple[dict[str, Any], Results | None, ResourceList | None]:
        catalog, restore = await _find_restore(name, storage_location)
        layout = catalog.layout
        results, resource_list = await read_details(
            catalog, layout.restore_results(name), layout.restore_resource_list(name)
        )
        return restore, results, resource_list

    restore, results, resource_list = run(go())
    describe_restore(restore, results=results, resource_list=resource_list, details=details)


@restore_app.command()
def logs(
    name: Annotated[str, typer.Argument(help="Name of the restore.")],
    storage_location: SearchLocationOption = None,
    timeout: TimeoutOption = DOWNLOAD_TIMEOUT,
    insecure_skip_tls_verify: InsecureOption = False,
    cacert: CacertOption = None,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Print a restore's log."""
    target = choose(mode, namespace, kubeconfig, kubecontext)
    if target.server:
        from strongroom.cli.server_commands import restore_logs

        restore_logs(target, name, timeout=timeout, insecure=insecure_skip_tls_verify, cacert=cacert)
        return

    async def go() -> bytes:
        catalog, _ = await _find_restore(name, storage_location)
        return await read_log(catalog, catalog.layout.restore_log(name), f"restore {name!r}")

    print_log(run(go()))
