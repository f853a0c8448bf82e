"""Deleting a backup's volume data: restic snapshots, native and CSI snapshots, and internal images.

Called before the backup's files are removed (they say what to delete).
restic snapshots are forgotten in each namespace's repository and the data
only they referenced is pruned. A CSI snapshot kept by the backup (its
content's deletion policy was Retain) is deleted the way Velero does it: a
VolumeSnapshotContent naming the snapshot handle is created with the
deletion policy Delete, then deleted, and the CSI driver removes the
snapshot. A native snapshot is deleted by the snapshotter of the
VolumeSnapshotLocation it was taken with (found again by name). An
internal image (``<B>-images.json.gz``) that no other backup of the location
keeps is deleted from the location's registry; the layers no image uses any
more are then collected, unless a backup or restore may be writing to the
registry at the same time. Every failure is returned as a message; nothing
stops at the first one.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
import uuid
from collections import defaultdict
from typing import Any

from strongroom.errors import NotFoundError, StrongroomError
from strongroom.images import LocationRegistry
from strongroom.images.settings import ImagesSettings
from strongroom.kube import Discovery, KubeClient
from strongroom.model.labels import BACKUP_NAME_LABEL, valid_label_value
from strongroom.snapshots.native import PHASE_COMPLETED, SnapshotterSource, VolumeSnapshotter
from strongroom.storage.catalog import BackupCatalog
from strongroom.volumes.location import RepositoryLocation
from strongroom.volumes.repository import Repositories

__all__ = ["delete_volume_data", "has_volume_data"]

_log = logging.getLogger(__name__)

_SEEN_TIMEOUT = 5.0


async def _side_file(catalog: BackupCatalog, key: str) -> list[dict[str, Any]]:
    try:
        raw = await catalog.read_file(key)
    except NotFoundError:
        return []
    document = json.loads(gzip.decompress(raw) or b"null")
    return [item for item in document or [] if isinstance(item, dict)]


async def delete_volume_data(
    kube: KubeClient | None,
    discovery: Discovery | None,
    catalog: BackupCatalog,
    backup: str,
    *,
    repositories: Repositories | None,
    location: RepositoryLocation | None,
    snapshotters: SnapshotterSource | None = None,
    images: ImagesSettings | None = None,
    collect_image_layers: bool = False,
) -> list[str]:
    """Forget the backup's restic snapshots, delete its native and CSI snapshots and its images; the errors.

    ``collect_image_layers`` says that no backup or restore is using the
    location's image registry now, so unused layers can be collected.
    """
    layout = catalog.layout
    errors: list[str] = []
    try:
        volume_backups = await _side_file(catalog, layout.backup_pod_volume_backups(backup))
        contents = await _side_file(catalog, layout.backup_csi_volume_snapshot_contents(backup))
        native = await _side_file(catalog, layout.backup_volume_snapshots(backup))
        kept_images = await _side_file(catalog, layout.backup_images(backup))
    except (StrongroomError, ValueError, OSError) as exc:
        message = exc.message if isinstance(exc, StrongroomError) else str(exc)
        return [f"reading the volume data records of backup {backup} failed: {message}"]
    by_namespace: dict[str, list[str]] = defaultdict(list)
    for item in volume_backups:
        snapshot = (item.get("status") or {}).get("snapshotID")
        namespace = ((item.get("spec") or {}).get("pod") or {}).get("namespace")
        if snapshot and namespace:
            by_namespace[str(namespace)].append(str(snapshot))
    if by_namespace:
        if repositories is None or location is None:
            errors.append(
                f"the file-system backup snapshots of backup {backup} were not forgotten: "
                "no repository access here (delete it through the server)"
            )
        else:
            for namespace, snapshots in sorted(by_namespace.items()):
                try:
                    await repositories.forget_snapshots(location, namespace, snapshots)
                except StrongroomError as exc:
                    errors.append(
                        f"forgetting the restic snapshots of namespace {namespace} failed: {exc.message}"
                    )
    if native:
        errors += await _delete_native_snapshots(snapshotters, native)
    if contents:
        errors += await _delete_csi_snapshots(kube, discovery, contents, backup)
    if kept_images:
        errors += await _delete_images(catalog, backup, kept_images, images, collect_image_layers)
    return errors


async def _delete_images(
    catalog: BackupCatalog,
    backup: str,
    kept: list[dict[str, Any]],
    images: ImagesSettings | None,
    collect_layers: bool,
) -> list[str]:
    """Delete the backup's images that no other backup of the location keeps (digests are shared)."""
    mine = {(str(item.get("repository")), str(item.get("digest"))) for item in kept}
    others: set[tuple[str, str]] = set()
    try:
        for name in await catalog.backup_names():
            if name != backup:
                for item in await _side_file(catalog, catalog.layout.backup_images(name)):
                    others.add((str(item.get("repository")), str(item.get("digest"))))
    except (StrongroomError, ValueError, OSError) as exc:
        # Not knowing what the others keep, deleting anything could take their images.
        message = exc.message if isinstance(exc, StrongroomError) else str(exc)
        return [
            f"the internal images of backup {backup} were not deleted: reading the other backups' failed: {message}"
        ]
    unused = sorted(mine - others)
    if not unused:
        return []
    if images is None:
        return [
            f"the internal images of backup {backup} were not deleted: no access to its location's registry here"
        ]
    errors: list[str] = []
    try:
        async with LocationRegistry.from_location(
            images.location, images.credentials, scratch_dir=images.scratch_dir
        ) as registry:
            for repository, digest in unused:
                try:
                    await registry.delete_manifest(repository, digest)
                except StrongroomError as exc:
                    errors.append(str(exc))
            if collect_layers and not errors:
                await registry.garbage_collect()
    except StrongroomError as exc:
        errors.append(f"deleting the internal images of backup {backup} failed: {exc}")
    if not errors:
        _log.info("deleted %d internal images of backup %s", len(unused), backup)
    return errors


async def _delete_native_snapshots(
    snapshotters: SnapshotterSource | None, records: list[dict[str, Any]]
) -> list[str]:
    errors: list[str] = []
    found: dict[str, VolumeSnapshotter | str] = {}
    for record in records:
        spec, status = record.get("spec") or {}, record.get("status") or {}
        snapshot_id = status.get("providerSnapshotID")
        if status.get("phase") != PHASE_COMPLETED or not snapshot_id:
            continue  # a snapshot that failed left nothing to delete
        where = str(spec.get("location") or "")
        what = f"snapshot {snapshot_id} of persistent volume {spec.get('persistentVolumeName')}"
        if snapshotters is None:
            errors.append(f"{what} was not deleted: no access to volume snapshot locations here")
            continue
        if where not in found:
            try:
                found[where] = await snapshotters.snapshotter(where)
            except StrongroomError as exc:
                found[where] = str(exc)
        snapshotter = found[where]
        if isinstance(snapshotter, str):
            errors.append(f"{what} was not deleted: {snapshotter}")
            continue
        try:
            await snapshotter.delete_snapshot(str(snapshot_id))
        except StrongroomError as exc:
            errors.append(f"deleting {what} failed: {exc}")
            continue
        _log.info("deleted %s", what)
    return errors


async def _delete_csi_snapshots(
    kube: KubeClient | None, discovery: Discovery | None, contents: list[dict[str, Any]], backup: str
) -> list[str]:
    resource = discovery.find("snapshot.storage.k8s.io", "volumesnapshotcontents") if discovery else None
    if kube is None or resource is None:
        return [
            "the backup's CSI snapshots were not deleted: the cluster does not serve VolumeSnapshotContents"
        ]
    errors: list[str] = []
    for content in contents:
        handle = (content.get("status") or {}).get("snapshotHandle")
        driver = (content.get("spec") or {}).get("driver")
        if not handle or not driver:
            continue
        name = f"velero-delete-{uuid.uuid4().hex[:10]}"
        body = {
            "apiVersion": f"snapshot.storage.k8s.io/{resource.version}",
            "kind": "VolumeSnapshotContent",
            "metadata": {"name": name, "labels": {BACKUP_NAME_LABEL: valid_label_value(backup)}},
            "spec": {
                "deletionPolicy": "Delete",
                "driver": driver,
                "source": {"snapshotHandle": handle},
                # Required by the schema; nothing binds to it.
                "volumeSnapshotRef": {"namespace": "default", "name": name},
            },
        }
        try:
            await kube.create(resource, body)
            # The CSI snapshotter must see the content before it goes, or it may never delete the
            # snapshot (Velero waits too): until it reports on it, or a few seconds at most.
            deadline = time.monotonic() + _SEEN_TIMEOUT
            while time.monotonic() < deadline:
                seen = await kube.get(resource, name)
                if (
                    seen is None
                    or (seen.get("status") or {}).get("snapshotHandle")
                    or (seen.get("status") or {}).get("error")
                ):
                    break
                await asyncio.sleep(0.2)
            await kube.delete(resource, name)
        except StrongroomError as exc:
            errors.append(f"deleting CSI snapshot {handle} failed: {exc.message}")
            continue
        _log.info("deleted CSI snapshot %s", handle)
    return errors


async def has_volume_data(catalog: BackupCatalog, backup: str) -> bool:
    """Whether the backup holds restic, native or CSI snapshots or images (deleting it then needs the cluster)."""
    layout = catalog.layout
    for key in (
        layout.backup_pod_volume_backups(backup),
        layout.backup_volume_snapshots(backup),
        layout.backup_csi_volume_snapshot_contents(backup),
        layout.backup_images(backup),
    ):
        if await _side_file(catalog, key):
            return True
    return False
