"""How backups and restores read on a terminal: velero's columns and describe layout.

Administrators who know ``velero backup get`` and ``velero backup describe``
find the same columns and headings here; scripts use ``-o json`` instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import typer

from strongroom.archive import Results
from strongroom.cli.common import print_table
from strongroom.model.selectors import label_selector_from_object

__all__ = [
    "backup_rows",
    "describe_backup",
    "describe_restore",
    "describe_schedule",
    "print_backups",
    "print_restores",
    "print_schedules",
    "selector_text",
]


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def show_time(value: object) -> str:
    when = _parse_time(value)
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S +0000 UTC") if when else "<n/a>"


def expires_in(value: object, now: datetime) -> str:
    """velero's EXPIRES column: whole days left, or hours when less than a day."""
    when = _parse_time(value)
    if when is None:
        return "n/a"
    left = when - now
    if left.total_seconds() <= 0:
        return "expired"
    if left.days >= 1:
        return f"{left.days}d"
    return f"{int(left.total_seconds() // 3600)}h"


def selector_text(spec: Mapping[str, Any]) -> str:
    """The label selector(s) of a spec as kubectl prints them; ``<none>`` without one."""
    if spec.get("labelSelector"):
        try:
            return str(label_selector_from_object(spec["labelSelector"])) or "<none>"
        except ValueError:
            return "<invalid>"
    ors = spec.get("orLabelSelectors") or []
    if ors:
        parts = []
        for selector in ors:
            try:
                parts.append(str(label_selector_from_object(selector)))
            except ValueError:
                parts.append("<invalid>")
        return " or ".join(parts)
    return "<none>"


def backup_rows(backups: Sequence[Mapping[str, Any]], now: datetime) -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for backup in backups:
        status = backup.get("status") or {}
        spec = backup.get("spec") or {}
        rows.append(
            (
                backup["metadata"]["name"],
                status.get("phase") or "New",
                status.get("errors", 0),
                status.get("warnings", 0),
                show_time(status.get("startTimestamp") or backup["metadata"].get("creationTimestamp")),
                expires_in(status.get("expiration"), now),
                spec.get("storageLocation", ""),
                selector_text(spec),
            )
        )
    return rows


def print_backups(backups: Sequence[Mapping[str, Any]], now: datetime) -> None:
    print_table(
        ["NAME", "STATUS", "ERRORS", "WARNINGS", "CREATED", "EXPIRES", "STORAGE LOCATION", "SELECTOR"],
        backup_rows(backups, now),
    )


def print_restores(restores: Sequence[Mapping[str, Any]]) -> None:
    rows = []
    for restore in restores:
        status = restore.get("status") or {}
        spec = restore.get("spec") or {}
        rows.append(
            (
                restore["metadata"]["name"],
                spec.get("backupName", ""),
                status.get("phase") or "New",
                show_time(status.get("startTimestamp")),
                show_time(status.get("completionTimestamp")),
                status.get("errors", 0),
                status.get("warnings", 0),
                show_time(restore["metadata"].get("creationTimestamp") or status.get("startTimestamp")),
                selector_text(spec),
            )
        )
    print_table(
        ["NAME", "BACKUP", "STATUS", "STARTED", "COMPLETED", "ERRORS", "WARNINGS", "CREATED", "SELECTOR"],
        rows,
    )


def _list(values: object, default: str) -> str:
    if isinstance(values, list) and values:
        return ", ".join(str(value) for value in values)
    return default


def _key_values(values: object) -> str:
    if isinstance(values, Mapping) and values:
        return ", ".join(f"{key}={value}" for key, value in sorted(values.items()))
    return "<none>"


def _heading(metadata: Mapping[str, Any], *, annotations: bool = True) -> list[str]:
    """The first lines of every describe, as kubectl and velero start theirs."""
    lines = [
        f"Name:         {metadata.get('name')}",
        f"Namespace:    {metadata.get('namespace', '')}",
        f"Labels:       {_key_values(metadata.get('labels'))}",
    ]
    if annotations:
        lines.append(f"Annotations:  {_key_values(metadata.get('annotations'))}")
    return lines


def _scope(
    spec: Mapping[str, Any],
    *,
    indent: str = "",
    all_namespaces: str = "*",
    excluded_resources: str = "<none>",
) -> list[str]:
    """The Namespaces and Resources blocks of a backup, restore or schedule template.

    ``all_namespaces`` and ``excluded_resources`` are what velero shows when
    the spec names none (a restore's defaults differ from a backup's).
    """
    return [
        f"{indent}Namespaces:",
        f"{indent}  Included:  {_list(spec.get('includedNamespaces'), all_namespaces)}",
        f"{indent}  Excluded:  {_list(spec.get('excludedNamespaces'), '<none>')}",
        "",
        f"{indent}Resources:",
        f"{indent}  Included:        {_list(spec.get('includedResources'), '*')}",
        f"{indent}  Excluded:        {_list(spec.get('excludedResources'), excluded_resources)}",
        f"{indent}  Cluster-scoped:  {_cluster_scoped(spec.get('includeClusterResources'))}",
    ]


def _results(results: Results | None, details: bool) -> None:
    if results is None:
        return
    for title, result in (("Errors", results.errors), ("Warnings", results.warnings)):
        if result.is_empty():
            continue
        typer.echo(f"\n{title}:")
        if not details:
            typer.echo(f"  {result.count()} (use --details to see them)")
            continue
        for message in result.velero:
            typer.echo(f"  Velero:   {message}")
        for message in result.cluster:
            typer.echo(f"  Cluster:  {message}")
        if result.namespaces:
            typer.echo("  Namespaces:")
        for namespace, messages in sorted(result.namespaces.items()):
            typer.echo(f"    {namespace}:")
            for message in messages:
                typer.echo(f"      {message}")


def describe_backup(
    backup: Mapping[str, Any],
    *,
    results: Results | None,
    resource_list: Mapping[str, Sequence[str]] | None,
    details: bool,
    location: str | None,
    volume_infos: Sequence[Mapping[str, Any]] | None = None,
) -> None:
    """velero's describe layout; ``location`` is where the backup was found (local mode), if anywhere."""
    metadata = backup.get("metadata") or {}
    spec = backup.get("spec") or {}
    status = backup.get("status") or {}
    progress = status.get("progress") or {}
    lines = [*_heading(metadata), "", f"Phase:  {status.get('phase', 'New')}"]
    if status.get("failureReason"):
        lines.append(f"Failure reason:  {status['failureReason']}")
    if status.get("validationErrors"):
        lines.append("Validation errors:")
        lines.extend(f"  {message}" for message in status["validationErrors"])
    lines += [
        "",
        f"Errors:    {status.get('errors', 0)}",
        f"Warnings:  {status.get('warnings', 0)}",
        "",
        *_scope(spec),
        "",
        f"Label selector:  {selector_text(spec)}",
        "",
        f"Storage Location:  {spec.get('storageLocation', '')}" + (f" ({location})" if location else ""),
        "",
        f"TTL:  {spec.get('ttl', '')}",
        "",
        f"Started:    {show_time(status.get('startTimestamp'))}",
        f"Completed:  {show_time(status.get('completionTimestamp'))}",
        "",
        f"Expiration:  {show_time(status.get('expiration'))}",
        "",
        f"Total items to be backed up:  {progress.get('totalItems', 0)}",
        f"Items backed up:              {progress.get('itemsBackedUp', 0)}",
    ]
    if spec.get("orderedResources"):
        lines += ["", "Ordered resources:"]
        lines.extend(f"  {kind}: {order}" for kind, order in sorted(spec["orderedResources"].items()))
    lines += _volume_lines(status, volume_infos, details)
    for line in lines:
        typer.echo(line)
    _resource_list(resource_list, details)
    _results(results, details)


def _volume_lines(
    status: Mapping[str, Any], volume_infos: Sequence[Mapping[str, Any]] | None, details: bool
) -> list[str]:
    """Velero's "Backup Volumes" and "HooksAttempted" parts of describe."""
    lines = ["", "Backup Volumes:"]
    native = [info for info in volume_infos or () if info.get("backupMethod") == "NativeSnapshot"]
    if native:
        lines.append("  Velero-Native Snapshots:")
        for info in native:
            if not details:
                lines.append(f"    {info.get('pvName')}: specify --details for more information")
                continue
            snapshot = info.get("nativeSnapshotInfo") or {}
            lines += [
                f"    {info.get('pvName')}:",
                f"      Snapshot ID:        {snapshot.get('snapshotHandle') or '<none>'}",
                f"      Type:               {snapshot.get('volumeType', '')}",
                f"      Availability Zone:  {snapshot.get('volumeAZ', '')}",
                f"      IOPS:               {snapshot.get('iops') if snapshot.get('iops') not in (None, '0') else '<N/A>'}",
                f"      Result:             {info.get('result', '')}",
            ]
    elif volume_infos is not None:
        lines.append("  Velero-Native Snapshots: <none included>")
    csi = [info for info in volume_infos or () if info.get("backupMethod") == "CSISnapshot"]
    copies = [info for info in volume_infos or () if info.get("backupMethod") == "PodVolumeBackup"]
    if status.get("csiVolumeSnapshotsAttempted"):
        lines.append(
            f"  CSI Snapshots:  {status.get('csiVolumeSnapshotsCompleted', 0)} of "
            f"{status['csiVolumeSnapshotsAttempted']} completed"
        )
    elif not csi and volume_infos is not None:
        lines.append("  CSI Snapshots:  <none included>")
    if details:
        for info in csi:
            snapshot = info.get("csiSnapshotInfo") or {}
            lines.append(
                f"    {info.get('pvcNamespace')}/{info.get('pvcName')}: snapshot "
                f"{snapshot.get('volumeSnapshotName')} (handle {snapshot.get('snapshotHandle')}, "
                f"{snapshot.get('size', 0)} bytes)"
            )
    if copies:
        by_result: dict[str, list[str]] = {}
        for info in copies:
            pvb = info.get("pvbInfo") or {}
            result = "Completed" if info.get("result") == "succeeded" else "Failed"
            by_result.setdefault(result, []).append(
                f"{pvb.get('podNamespace')}/{pvb.get('podName')}: {pvb.get('volumeName')}"
            )
        lines.append("  Pod Volume Backups - restic:")
        for result, entries in sorted(by_result.items()):
            if details:
                lines.append(f"    {result}:")
                lines.extend(f"      {entry}" for entry in entries)
            else:
                lines.append(f"    {result}:  {len(entries)}")
    elif volume_infos is not None:
        lines.append("  Pod Volume Backups:  <none included>")
    else:
        # What the server's status does not say (the per-volume records are in the location).
        lines.append("  Pod Volume Backups:  kubectl get podvolumebackups -l velero.io/backup-name=<backup>")
    hooks = status.get("hookStatus") or {}
    lines += [
        "",
        f"HooksAttempted:  {hooks.get('hooksAttempted', 0)}",
        f"HooksFailed:     {hooks.get('hooksFailed', 0)}",
    ]
    return lines


def _cluster_scoped(value: object) -> str:
    if value is True:
        return "included"
    if value is False:
        return "excluded"
    return "auto"


# The resources velero never restores, which its describe lists when the restore excludes none itself.
_RESTORE_EXCLUDED_RESOURCES = (
    "nodes, events, events.events.k8s.io, backups.velero.io, restores.velero.io, "
    "resticrepositories.velero.io, csinodes.storage.k8s.io, volumeattachments.storage.k8s.io, "
    "backuprepositories.velero.io"
)


def describe_restore(
    restore: Mapping[str, Any],
    *,
    results: Results | None,
    resource_list: Mapping[str, Sequence[str]] | None,
    details: bool,
) -> None:
    metadata = restore.get("metadata") or {}
    spec = restore.get("spec") or {}
    status = restore.get("status") or {}
    progress = status.get("progress") or {}
    mapping = spec.get("namespaceMapping") or {}
    lines = [
        *_heading(metadata, annotations=False),
        "",
        f"Phase:                       {status.get('phase', 'New')}",
        f"Total items to be restored:  {progress.get('totalItems', 0)}",
        f"Items restored:              {progress.get('itemsRestored', 0)}",
        "",
        f"Started:    {show_time(status.get('startTimestamp'))}",
        f"Completed:  {show_time(status.get('completionTimestamp'))}",
    ]
    if status.get("failureReason"):
        lines.append(f"Failure reason:  {status['failureReason']}")
    lines += [
        "",
        f"Backup:  {spec.get('backupName', '')}",
        "",
        *_scope(
            spec,
            all_namespaces="all namespaces found in the backup",
            excluded_resources=_RESTORE_EXCLUDED_RESOURCES,
        ),
        "",
        "Namespace mappings:  "
        + (", ".join(f"{src}={dst}" for src, dst in sorted(mapping.items())) or "<none>"),
        "",
        f"Label selector:  {selector_text(spec)}",
        "",
        f"Restore PVs:  {_auto(spec.get('restorePVs'))}",
        f"Existing Resource Policy:   {spec.get('existingResourcePolicy') or '<none>'}",
        f"Preserve Service NodePorts:  {_auto(spec.get('preserveNodePorts'))}",
        "",
        "Restore status of:  " + _list((spec.get("restoreStatus") or {}).get("includedResources"), "<none>"),
    ]
    for line in lines:
        typer.echo(line)
    _resource_list(resource_list, details)
    _results(results, details)


def _resource_list(resource_list: Mapping[str, Sequence[str]] | None, details: bool) -> None:
    if resource_list is None:
        return
    if not details:
        typer.echo("\nResource List:  <use --details to see>")
        return
    typer.echo("\nResource List:")
    for key, entries in sorted(resource_list.items()):
        typer.echo(f"  {key}:")
        for entry in entries:
            typer.echo(f"    - {entry}")


def _auto(value: object) -> str:
    return "auto" if value is None else str(value).lower()


def _ago(value: object, now: datetime) -> str:
    """velero's LAST BACKUP column: how long ago, coarsely; ``n/a`` when never."""
    when = _parse_time(value)
    if when is None:
        return "n/a"
    seconds = max(int((now - when).total_seconds()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def print_schedules(schedules: Sequence[Mapping[str, Any]], now: datetime) -> None:
    rows = []
    for schedule in schedules:
        spec = schedule.get("spec") or {}
        status = schedule.get("status") or {}
        template = spec.get("template") or {}
        rows.append(
            (
                schedule["metadata"]["name"],
                status.get("phase") or "New",
                show_time(schedule["metadata"].get("creationTimestamp")),
                spec.get("schedule", ""),
                template.get("ttl", ""),
                _ago(status.get("lastBackup"), now),
                selector_text(template),
                "true" if spec.get("paused") else "false",
            )
        )
    print_table(
        ["NAME", "STATUS", "CREATED", "SCHEDULE", "BACKUP TTL", "LAST BACKUP", "SELECTOR", "PAUSED"], rows
    )


def describe_schedule(schedule: Mapping[str, Any]) -> None:
    """velero's ``schedule describe``: metadata, phase, paused, the cron and backup template, the last backup."""
    metadata = schedule.get("metadata") or {}
    spec = schedule.get("spec") or {}
    status = schedule.get("status") or {}
    template = spec.get("template") or {}
    lines = [*_heading(metadata), "", f"Phase:  {status.get('phase') or 'New'}"]
    if status.get("validationErrors"):
        lines += ["", "Validation errors:"]
        lines.extend(f"  {message}" for message in status["validationErrors"])
    lines += [
        "",
        f"Paused:  {'true' if spec.get('paused') else 'false'}",
        "",
        f"Schedule:  {spec.get('schedule', '')}",
        f"Use owner references in backup:  {'true' if spec.get('useOwnerReferencesInBackup') else 'false'}",
        f"Skip immediately:  {_auto(spec.get('skipImmediately'))}",
        "",
        "Backup Template:",
        *_scope(template, indent="  "),
        "",
        f"  Label selector:  {selector_text(template)}",
        "",
        f"  Storage Location:  {template.get('storageLocation') or '<default>'}",
        "",
        f"  TTL:  {template.get('ttl', '')}",
        "",
        f"Last Backup:  {show_time(status.get('lastBackup'))}",
    ]
    if status.get("lastSkipped"):
        lines.append(f"Last Skipped:  {show_time(status.get('lastSkipped'))}")
    for line in lines:
        typer.echo(line)
