"""`strongroom schedule create|get|describe|delete|pause|unpause`: Velero's Schedules, through the server.

A schedule is a cron expression and a backup template that the in-cluster
server turns into Backups (``<schedule>-YYYYMMDDHHMMSS``). Nothing runs a
schedule in local mode, so every command here needs the server and says so
(exit 2) when none is installed, rather than storing a schedule that would
never fire. The template is built from the same flags, with the same
validation, as ``backup create``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

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
    confirm,
    emit,
    run,
    split_list,
)
from strongroom.cli.render import describe_schedule, print_schedules
from strongroom.cli.server_mode import Mode, ModeOption, ServerNamespaceOption, Target, choose, require_server
from strongroom.errors import UsageError

if TYPE_CHECKING:
    from strongroom.cli.server_api import ServerApi

schedule_app = typer.Typer(help="Back up on a schedule (needs the in-cluster server).", no_args_is_help=True)

NamesArgument = Annotated[list[str] | None, typer.Argument(help="Names of the schedules.")]
AllOption = Annotated[bool, typer.Option("--all", help="Every schedule.")]
ScheduleSelectorOption = Annotated[
    str | None, typer.Option("--selector", "-l", help="Only the schedules whose labels match this selector.")
]


def _server(
    mode: Mode | None, namespace: str | None, kubeconfig: str | None, kubecontext: str | None, command: str
) -> Target:
    target = choose(mode, namespace, kubeconfig, kubecontext)
    require_server(target, command)
    return target


def _selected(
    command: str,
    names: list[str] | None,
    selector: str | None,
    mode: Mode | None,
    namespace: str | None,
    kubeconfig: str | None,
    kubecontext: str | None,
) -> list[dict[str, Any]]:
    """``get`` and ``describe``: the named schedules (each must exist), else those matching ``selector``."""
    from strongroom.cli.server_api import SCHEDULES
    from strongroom.cli.server_commands import select

    target = _server(mode, namespace, kubeconfig, kubecontext, f"schedule {command}")
    return select(target, SCHEDULES, names, selector)


@schedule_app.command()
def create(
    name: Annotated[str, typer.Argument(help="Name of the schedule.")],
    schedule: Annotated[
        str,
        typer.Option(
            "--schedule",
            help="A cron expression for when to back up, e.g. '0 7 * * *' (every day at 07:00 UTC).",
        ),
    ],
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
    labels: Annotated[
        list[str] | None, typer.Option("--labels", help="Labels for the schedule (key=value,...).")
    ] = None,
    paused: Annotated[bool, typer.Option("--paused", help="Create the schedule paused.")] = False,
    skip_immediately: Annotated[
        bool | None,
        typer.Option(
            "--skip-immediately/--no-skip-immediately",
            help="Skip a backup that is already due when the schedule is created or unpaused "
            "(default: the server's setting).",
        ),
    ] = None,
    use_owner_references_in_backup: Annotated[
        bool,
        typer.Option(
            "--use-owner-references-in-backup",
            help="Make the schedule own its backups: deleting the schedule deletes them too.",
        ),
    ] = False,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
    output: OutputOption = Output.table,
) -> None:
    """Create a schedule: the server backs up with these flags whenever the cron expression fires."""
    from strongroom.backup.request import parse_labels
    from strongroom.cli.server_api import SCHEDULES, server_api
    from strongroom.cli.server_commands import backup_manifest

    target = _server(mode, namespace, kubeconfig, kubecontext, "schedule create")
    if not schedule.strip():
        raise UsageError("--schedule is required", hint="e.g. --schedule '0 7 * * *'")
    # The template is validated exactly as `backup create` validates its flags.
    backup = backup_manifest(
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
        ),
        storage_location,
    )
    spec: dict[str, Any] = {
        "schedule": schedule,
        "template": backup["spec"],
        "useOwnerReferencesInBackup": use_owner_references_in_backup,
        "paused": paused,
    }
    if skip_immediately is not None:
        spec["skipImmediately"] = skip_immediately
    metadata: dict[str, Any] = {"name": name, "namespace": target.namespace}
    schedule_labels = parse_labels(split_list(labels))
    if schedule_labels:
        metadata["labels"] = schedule_labels
    body = {"apiVersion": "velero.io/v1", "kind": "Schedule", "metadata": metadata, "spec": spec}

    async def go() -> dict[str, Any]:
        async with server_api(target) as api:
            return await api.create(SCHEDULES, body)

    created = run(go())
    if output is Output.table:
        typer.echo(f'Schedule "{name}" created successfully.')
    else:
        emit(created, output, lambda: None)


@schedule_app.command()
def get(
    names: NamesArgument = None,
    selector: ScheduleSelectorOption = None,
    output: OutputOption = Output.table,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """List schedules."""
    from strongroom.cli.server_commands import emit_list

    schedules = _selected("get", names, selector, mode, namespace, kubeconfig, kubecontext)
    emit_list("Schedule", schedules, names, output, lambda: print_schedules(schedules, datetime.now(UTC)))


@schedule_app.command()
def describe(
    names: NamesArgument = None,
    selector: ScheduleSelectorOption = None,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Describe schedules (all of them, or the named ones)."""
    for index, found in enumerate(
        _selected("describe", names, selector, mode, namespace, kubeconfig, kubecontext)
    ):
        if index:
            typer.echo("")
        describe_schedule(found)


def _chosen(
    command: str,
    names: list[str] | None,
    everything: bool,
    selector: str | None,
    mode: Mode | None,
    namespace: str | None,
    kubeconfig: str | None,
    kubecontext: str | None,
) -> Target:
    """The server of a command that acts on some schedules, once they are named exactly one way."""
    if sum((bool(names), everything, selector is not None)) != 1:
        raise UsageError(
            "name the schedules, or pass --all or --selector (exactly one of these)",
            hint=f"strongroom schedule {command} NAME... | --all | --selector KEY=VALUE",
        )
    return _server(mode, namespace, kubeconfig, kubecontext, f"schedule {command}")


async def _found(api: ServerApi, names: list[str] | None, selector: str | None) -> list[dict[str, Any]]:
    """The schedules to act on; saying so when there are none (an empty --all is not an error)."""
    from strongroom.cli.server_api import SCHEDULES

    found = await api.select(SCHEDULES, names, selector)
    if not found:
        typer.echo("No schedules found")
    return found


@schedule_app.command()
def delete(
    names: NamesArgument = None,
    everything: AllOption = False,
    selector: ScheduleSelectorOption = None,
    confirm_flag: Annotated[bool, typer.Option("--confirm", help="Do not ask for confirmation.")] = False,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Delete schedules; their backups are kept (unless the schedule owns them)."""
    from strongroom.cli.server_api import SCHEDULES, server_api

    target = _chosen("delete", names, everything, selector, mode, namespace, kubeconfig, kubecontext)
    if not confirm_flag:
        confirm("Are you sure you want to continue?")

    async def go() -> None:
        async with server_api(target) as api:
            for item in await _found(api, names, selector):
                await api.delete(SCHEDULES, item["metadata"]["name"])
                typer.echo(f"Schedule deleted: {item['metadata']['name']}")

    run(go())


def _pause(
    target: Target, names: list[str] | None, selector: str | None, paused: bool, skip: bool | None
) -> None:
    """``pause`` and ``unpause``: set ``spec.paused`` (and ``skipImmediately``) where it differs."""
    from strongroom.cli.server_api import SCHEDULES, server_api

    word = "paused" if paused else "unpaused"

    async def go() -> None:
        async with server_api(target) as api:
            for item in await _found(api, names, selector):
                spec = item.setdefault("spec", {})
                if bool(spec.get("paused")) == paused:
                    typer.echo(f"Schedule {item['metadata']['name']} is already {word}, skip")
                    continue
                spec["paused"] = paused
                if skip is None:
                    spec.pop("skipImmediately", None)
                else:
                    spec["skipImmediately"] = skip
                await api.replace(SCHEDULES, item)
                typer.echo(f"Schedule {item['metadata']['name']} {word} successfully")

    run(go())


@schedule_app.command()
def pause(
    names: NamesArgument = None,
    everything: AllOption = False,
    selector: ScheduleSelectorOption = None,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Pause schedules: no backups are created until they are unpaused."""
    target = _chosen("pause", names, everything, selector, mode, namespace, kubeconfig, kubecontext)
    _pause(target, names, selector, True, None)


@schedule_app.command()
def unpause(
    names: NamesArgument = None,
    everything: AllOption = False,
    selector: ScheduleSelectorOption = None,
    skip_immediately: Annotated[
        bool | None,
        typer.Option(
            "--skip-immediately/--no-skip-immediately",
            help="Skip a backup that is already due now (default: the server's setting).",
        ),
    ] = None,
    namespace: ServerNamespaceOption = None,
    mode: ModeOption = None,
    kubeconfig: KubeconfigOption = None,
    kubecontext: ContextOption = None,
) -> None:
    """Unpause schedules."""
    target = _chosen("unpause", names, everything, selector, mode, namespace, kubeconfig, kubecontext)
    _pause(target, names, selector, False, skip_immediately)
