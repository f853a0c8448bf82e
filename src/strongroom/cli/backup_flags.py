"""The flags that say what a backup holds, shared by ``backup create`` and ``schedule create``.

A schedule's backup template is built from the same flags, with the same help
and the same validation, as ``backup create`` (as ``velero schedule create``
takes ``velero backup create``'s): declaring them and turning them into
:class:`BackupFlags` here keeps the two commands from drifting apart.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from strongroom.cli.common import parse_bool_flag, split_list

if TYPE_CHECKING:
    from strongroom.backup.request import BackupFlags

__all__ = [
    "DEFAULT_TTL",
    "CsiSnapshotTimeoutOption",
    "DefaultVolumesToFsBackupOption",
    "ExcludeNamespacesOption",
    "ExcludeResourcesOption",
    "IncludeClusterResourcesOption",
    "IncludeNamespacesOption",
    "IncludeResourcesOption",
    "OrSelectorOption",
    "OrderedResourcesOption",
    "SelectorOption",
    "SnapshotVolumesOption",
    "TtlOption",
    "VolumeSnapshotLocationsOption",
    "backup_flags",
]

IncludeNamespacesOption = Annotated[
    list[str] | None,
    typer.Option("--include-namespaces", help="Namespaces to include (globs; default *)."),
]
ExcludeNamespacesOption = Annotated[
    list[str] | None, typer.Option("--exclude-namespaces", help="Namespaces to exclude (globs).")
]
IncludeResourcesOption = Annotated[
    list[str] | None,
    typer.Option(
        "--include-resources",
        help="Resources to include (plural, singular, short or group-qualified names; default *).",
    ),
]
ExcludeResourcesOption = Annotated[
    list[str] | None, typer.Option("--exclude-resources", help="Resources to exclude.")
]
IncludeClusterResourcesOption = Annotated[
    str | None,
    typer.Option(
        "--include-cluster-resources",
        help="true or false; unset: cluster-scoped resources only when backing up every namespace, plus what the included items need.",
    ),
]
SelectorOption = Annotated[
    str | None, typer.Option("--selector", "-l", help="Back up only items matching this label selector.")
]
OrSelectorOption = Annotated[
    str | None,
    typer.Option(
        "--or-selector", help="Label selectors joined by ' or ' (an item matching any is backed up)."
    ),
]
TtlOption = Annotated[str, typer.Option("--ttl", help="How long to keep the backup (Go duration).")]
OrderedResourcesOption = Annotated[
    str | None,
    typer.Option(
        "--ordered-resources",
        help="Order of items per kind: 'pods=ns1/pod1,ns1/pod2;persistentvolumes=pv4'.",
    ),
]
DefaultVolumesToFsBackupOption = Annotated[
    str | None,
    typer.Option(
        "--default-volumes-to-fs-backup",
        help="true: copy every pod volume with file-system backup unless the pod opts it out "
        "(backup.velero.io/backup-volumes-excludes); false: only volumes a pod opts in "
        "(backup.velero.io/backup-volumes). Unset: the server's default (false).",
    ),
]
SnapshotVolumesOption = Annotated[
    str | None,
    typer.Option(
        "--snapshot-volumes",
        help="true or false: take snapshots of persistent volumes (CSI and native); default true.",
    ),
]
VolumeSnapshotLocationsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--volume-snapshot-locations",
        help="The volume snapshot locations to take native snapshots with, at most one per provider "
        "(comma-separated or repeated). Default: the only location of each provider, else the server's "
        "default for it.",
    ),
]
CsiSnapshotTimeoutOption = Annotated[
    str | None,
    typer.Option(
        "--csi-snapshot-timeout", help="How long to wait for a CSI snapshot to be ready (default 10m)."
    ),
]
# Velero's default (thirty days), the engine's DEFAULT_TTL: spelt out here because
# importing the engine for a help text would slow every command down.
DEFAULT_TTL = "720h0m0s"


def backup_flags(
    name: str,
    namespace: str,
    *,
    include_namespaces: list[str] | None,
    exclude_namespaces: list[str] | None,
    include_resources: list[str] | None,
    exclude_resources: list[str] | None,
    include_cluster_resources: str | None,
    selector: str | None,
    or_selector: str | None,
    ttl: str,
    ordered_resources: str | None,
    labels: list[str] | None = None,
    default_volumes_to_fs_backup: str | None = None,
    snapshot_volumes: str | None = None,
    csi_snapshot_timeout: str | None = None,
    volume_snapshot_locations: list[str] | None = None,
) -> BackupFlags:
    """The flags as given on the command line (comma lists, a tri-state boolean), typed."""
    # Imported here, as the engine is: commands that only read backups start faster.
    from strongroom.backup.request import BackupFlags

    return BackupFlags(
        name=name,
        namespace=namespace,
        include_namespaces=split_list(include_namespaces),
        exclude_namespaces=split_list(exclude_namespaces),
        include_resources=split_list(include_resources),
        exclude_resources=split_list(exclude_resources),
        include_cluster_resources=parse_bool_flag(include_cluster_resources, "--include-cluster-resources"),
        selector=selector,
        or_selector=or_selector,
        ttl=ttl,
        ordered_resources=ordered_resources,
        labels=split_list(labels),
        default_volumes_to_fs_backup=parse_bool_flag(
            default_volumes_to_fs_backup, "--default-volumes-to-fs-backup"
        ),
        snapshot_volumes=parse_bool_flag(snapshot_volumes, "--snapshot-volumes"),
        csi_snapshot_timeout=csi_snapshot_timeout,
        volume_snapshot_locations=split_list(volume_snapshot_locations),
    )
