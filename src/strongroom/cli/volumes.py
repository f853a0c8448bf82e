"""Local mode's access to volume data: the cluster's location and repositories, when they exist.

File-system backup is done by the node agents in the cluster, which read the
backup location from a BackupStorageLocation of their namespace. A local-mode
backup that copies pod volumes therefore needs that location in the cluster
too, under the same name; when it is missing, each volume gets an error that
says so, and the objects are backed up all the same.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from strongroom.backup.runner import VolumeOptions
from strongroom.errors import UsageError
from strongroom.kube import Discovery, KubeClient
from strongroom.restore.runner import RestoreVolumeOptions
from strongroom.storage.catalog import BackupCatalog

__all__ = ["delete_local_volume_data", "local_restore_options", "local_volume_data", "local_volume_options"]


class _MissingLocation:
    """Every volume to copy gets this error: the node agents could not reach the location."""

    def __init__(self, location: str, namespace: str) -> None:
        self._location = location
        self._namespace = namespace

    async def ensure(self, volume_namespace: str) -> str:
        raise UsageError(
            f"file-system backup needs backup location {self._location!r} as a BackupStorageLocation in "
            f"namespace {self._namespace} (the node agents read it there)",
            hint=f"create it: strongroom backup-location create {self._location} ... --namespace {self._namespace}",
        )


async def local_volume_data(kube: KubeClient, discovery: Discovery, namespace: str) -> Any | None:
    """The server-side view of locations and repositories, or None when strongroom is not installed."""
    from strongroom.controller.context import ServerConfig, ServerContext, ServerResources
    from strongroom.controller.locations import Locations
    from strongroom.controller.volumedata import VolumeData

    try:
        resources = ServerResources.from_discovery(discovery)
    except UsageError:
        return None
    ctx = ServerContext(
        kube,
        resources,
        ServerConfig(namespace=namespace, workdir=Path(tempfile.gettempdir())),
    )
    return VolumeData(ctx, Locations(ctx))


async def local_volume_options(
    kube: KubeClient,
    discovery: Discovery,
    namespaces: Sequence[str],
    backup: dict[str, Any],
    *,
    location: str,
    namespace: str,
) -> tuple[VolumeOptions, list[str]]:
    """What a local-mode backup needs for hooks, snapshots and file-system backup, and the warnings.

    The volume snapshot locations are chosen as the server chooses them, and
    recorded in the Backup's ``spec.volumeSnapshotLocations``; a choice that
    fails validation is a UsageError.
    """
    repositories: Any = _MissingLocation(location, namespace)
    volume_data = await local_volume_data(kube, discovery, namespace)
    native: list[Any] = []
    warnings: list[str] = []
    spec = backup.setdefault("spec", {})
    images = None
    if volume_data is not None:
        found = await volume_data.locations.get(location)
        if found is not None:
            repositories = await volume_data.for_backup(found)
            images = await volume_data.images(found)
        elif await volume_data.openshift_plugin():
            warnings.append(
                f"the ImageStreams' internal images are not copied: they go to backup location {location!r} "
                f"through its BackupStorageLocation in namespace {namespace}, which does not exist"
            )
        choice = await volume_data.snapshot_locations.choose(
            [str(name) for name in spec.get("volumeSnapshotLocations") or []]
        )
        if choice.errors:
            raise UsageError("; ".join(choice.errors))
        if choice.names:
            spec["volumeSnapshotLocations"] = choice.names
        native = choice.locations
        warnings += choice.warnings
    elif spec.get("volumeSnapshotLocations"):
        raise UsageError(
            "--volume-snapshot-locations needs strongroom's custom resources in the cluster "
            "(the VolumeSnapshotLocations live there)",
            hint="install them: strongroom install",
        )
    options = VolumeOptions(
        discovery=discovery,
        namespaces=namespaces,
        repositories=repositories,
        snapshot_locations=native,
        images=images,
    )
    return options, warnings


async def local_restore_options(
    kube: KubeClient, discovery: Discovery, namespace: str, *, location: str
) -> RestoreVolumeOptions:
    """A local-mode restore's volume snapshot locations, and its images when the openshift plugin is on."""
    volume_data = await local_volume_data(kube, discovery, namespace)
    if volume_data is None:
        return RestoreVolumeOptions()
    found = await volume_data.locations.get(location)
    return RestoreVolumeOptions(
        snapshotters=volume_data.snapshot_locations,
        images=await volume_data.images(found) if found is not None else None,
    )


async def delete_local_volume_data(
    catalog: BackupCatalog,
    backup: str,
    *,
    location: str,
    namespace: str,
    kubeconfig: str | None,
    kubecontext: str | None,
) -> list[str]:
    """Forget a backup's restic snapshots, delete its native and CSI snapshots, through the cluster; the errors."""
    from strongroom.backup.deletion import delete_volume_data, has_volume_data
    from strongroom.cli.common import kube_client

    if not await has_volume_data(catalog, backup):
        return []
    async with kube_client(kubeconfig, kubecontext) as kube:
        discovery = await kube.discover()
        volume_data = await local_volume_data(kube, discovery, namespace)
        found = await volume_data.locations.get(location) if volume_data is not None else None
        return await delete_volume_data(
            kube,
            discovery,
            catalog,
            backup,
            repositories=volume_data.repositories if volume_data is not None and found is not None else None,
            location=await volume_data.location(found)
            if volume_data is not None and found is not None
            else None,
            snapshotters=volume_data.snapshot_locations if volume_data is not None else None,
            images=await volume_data.image_storage(found)
            if volume_data is not None and found is not None
            else None,
            collect_image_layers=await volume_data.registry_idle() if volume_data is not None else False,
        )
