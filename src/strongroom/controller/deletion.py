"""Deleting backups: DeleteBackupRequests, and the garbage collection of expired backups.

Only a DeleteBackupRequest removes a backup's files; deleting the Backup
resource with kubectl leaves storage alone (and backup sync would bring it
back), as in Velero. The request removes the backup's files, then the
files and resources of the restores made from it, then the Backup
resource; any failure is listed in the request's ``status.errors`` and the
Backup stays, so nothing is half-deleted silently.

Garbage collection turns an expired backup into a DeleteBackupRequest. When
the backup's location is missing, unavailable or ReadOnly, the backup is
kept and labelled ``velero.io/gc-failure=<reason>``, to be tried again at
the next pass.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

from strongroom.backup.deletion import delete_volume_data
from strongroom.controller.context import ServerContext, phase_of
from strongroom.controller.locations import Locations, is_read_only
from strongroom.controller.volumedata import VolumeData
from strongroom.errors import StrongroomError
from strongroom.model import labels as velero_labels
from strongroom.model.velero import format_timestamp, parse_timestamp

__all__ = ["DeletionController", "GarbageCollector"]

_log = logging.getLogger(__name__)

GC_FAILURE_LABEL: Final = "velero.io/gc-failure"
# Processed requests are kept a day for inspection, as Velero keeps them.
_PROCESSED_REQUEST_TTL: Final = timedelta(hours=24)


class DeletionController:
    """Processes DeleteBackupRequests."""

    def __init__(
        self, ctx: ServerContext, locations: Locations, volume_data: VolumeData | None = None
    ) -> None:
        self._ctx = ctx
        self._locations = locations
        self._volume_data = volume_data

    async def reconcile(self, body: Mapping[str, Any]) -> None:
        ctx = self._ctx
        res = ctx.resources.delete_requests
        name = str(body["metadata"]["name"])
        if phase_of(body) not in ("", "New"):
            if phase_of(body) == "Processed":
                await self._expire(body)
            return
        backup_name = str((body.get("spec") or {}).get("backupName") or "")
        if ctx.metrics is not None:
            ctx.metrics.backup_deletion_attempted()
        errors = await self._delete(backup_name, body)
        status: dict[str, Any] = {"phase": "Processed", "errors": errors or None}
        await ctx.patch_status(res, name, status)
        if ctx.metrics is not None:
            ctx.metrics.backup_deleted("", not errors)
        if errors:
            _log.warning("deleting backup %s failed: %s", backup_name, "; ".join(errors))
            ctx.event(body, "Warning", "DeleteFailed", "; ".join(errors))
        else:
            _log.info("backup %s deleted", backup_name)

    async def _delete(self, backup_name: str, request: Mapping[str, Any]) -> list[str]:
        ctx = self._ctx
        if not backup_name:
            return ["spec.backupName is required"]
        backup = await ctx.get(ctx.resources.backups, backup_name)
        if backup is None:
            return [f"backup {backup_name} not found"]
        if phase_of(backup) in ("", "New", "InProgress"):
            return [f"backup {backup_name} is still in progress; delete it once it has finished"]
        if phase_of(backup) == "FailedValidation":
            # It never ran: there are no files, and its location may not even exist.
            await ctx.delete(ctx.resources.backups, backup_name)
            return []
        location_name = str((backup.get("spec") or {}).get("storageLocation") or "")
        location = await self._locations.get(location_name) if location_name else None
        if location is None:
            return [f"backup storage location {location_name or '(none)'} not found"]
        if is_read_only(location):
            return [
                f"cannot delete backup because backup storage location {location_name} is currently in read-only mode"
            ]
        await ctx.patch_status(
            ctx.resources.delete_requests, request["metadata"]["name"], {"phase": "InProgress"}
        )
        previous = phase_of(backup)
        await ctx.patch_status(ctx.resources.backups, backup_name, {"phase": "Deleting"})
        errors: list[str] = []
        try:
            catalog = await self._locations.catalog(location)
            # The volume data first: the backup's files say what it is.
            volume_errors = await delete_volume_data(
                ctx.kube,
                await ctx.kube.discover(),
                catalog,
                backup_name,
                repositories=self._volume_data.repositories if self._volume_data else None,
                location=await self._volume_data.location(location) if self._volume_data else None,
                snapshotters=self._volume_data.snapshot_locations if self._volume_data else None,
                images=await self._volume_data.image_storage(location) if self._volume_data else None,
                collect_image_layers=await self._volume_data.registry_idle() if self._volume_data else False,
            )
            if volume_errors:
                # Some volume data may be gone already: the backup is no longer whole, so it stays
                # Deleting (not restorable) until a new request finishes the deletion.
                await ctx.patch_status(ctx.resources.backups, backup_name, {"phase": "Deleting"})
                return [
                    *volume_errors,
                    "the backup's files are kept: delete it again once the cause is fixed",
                ]
            removed = await catalog.delete_backup(backup_name)
            _log.info("removed %d files of backup %s", removed, backup_name)
        except StrongroomError as exc:
            errors.append(f"error deleting backup files: {exc.message}")
            catalog = None
        if catalog is not None:
            for restore in await ctx.list(ctx.resources.restores):
                if (restore.get("spec") or {}).get("backupName") != backup_name:
                    continue
                restore_name = str(restore["metadata"]["name"])
                try:
                    await catalog.delete_restore(restore_name)
                except StrongroomError as exc:
                    errors.append(f"error deleting the files of restore {restore_name}: {exc.message}")
                    continue
                await ctx.delete(ctx.resources.restores, restore_name)
        for volume_backup in await ctx.list(
            ctx.resources.pod_volume_backups,
            label_selector=velero_labels.backup_name_selector(backup_name),
        ):
            await ctx.delete(ctx.resources.pod_volume_backups, str(volume_backup["metadata"]["name"]))
        if errors:
            # Put the phase back: the backup is still there, the request says why.
            await ctx.patch_status(ctx.resources.backups, backup_name, {"phase": previous})
            return errors
        await ctx.delete(ctx.resources.backups, backup_name)
        return []

    async def _expire(self, request: Mapping[str, Any]) -> None:
        created = parse_timestamp(request["metadata"].get("creationTimestamp"))
        if created is not None and self._ctx.clock() - created > _PROCESSED_REQUEST_TTL:
            await self._ctx.delete(self._ctx.resources.delete_requests, str(request["metadata"]["name"]))


def delete_request_for(backup: Mapping[str, Any], namespace: str) -> dict[str, Any]:
    """A DeleteBackupRequest for ``backup``, labelled as Velero labels them."""
    name = str(backup["metadata"]["name"])
    return {
        "apiVersion": "velero.io/v1",
        "kind": "DeleteBackupRequest",
        "metadata": {
            "name": f"{name[:240]}-{secrets.token_hex(3)}",
            "namespace": namespace,
            "labels": {
                velero_labels.BACKUP_NAME_LABEL: velero_labels.valid_label_value(name),
                velero_labels.BACKUP_UID_LABEL: str(backup["metadata"].get("uid") or ""),
            },
        },
        "spec": {"backupName": name},
    }


class GarbageCollector:
    """Requests the deletion of expired backups."""

    def __init__(self, ctx: ServerContext, locations: Locations) -> None:
        self._ctx = ctx
        self._locations = locations

    async def sweep(self) -> None:
        ctx = self._ctx
        now = ctx.clock()
        pending = {
            str((request.get("spec") or {}).get("backupName"))
            for request in await ctx.list(ctx.resources.delete_requests)
            if phase_of(request) in ("", "New", "InProgress")
        }
        locations = {str(loc["metadata"]["name"]): loc for loc in await self._locations.all()}
        for backup in await ctx.list(ctx.resources.backups):
            expiration = parse_timestamp((backup.get("status") or {}).get("expiration"))
            name = str(backup["metadata"]["name"])
            if (
                expiration is None
                or expiration > now
                or phase_of(backup) in ("", "New", "InProgress", "Deleting")
            ):
                continue
            if name in pending:
                continue
            location_name = str((backup.get("spec") or {}).get("storageLocation") or "")
            location = locations.get(location_name)
            failure = None
            if phase_of(backup) == "FailedValidation":
                pass  # nothing was stored: its location does not matter
            elif location is None:
                failure = "BSLNotFound"
            elif is_read_only(location):
                failure = "BSLReadOnly"
            elif phase_of(location) != "Available":
                failure = "BSLUnavailable"
            labels = backup["metadata"].get("labels") or {}
            if failure is not None:
                if labels.get(GC_FAILURE_LABEL) != failure:
                    await ctx.patch(
                        ctx.resources.backups, name, {"metadata": {"labels": {GC_FAILURE_LABEL: failure}}}
                    )
                    _log.warning(
                        "expired backup %s is kept: its location %s: %s", name, location_name, failure
                    )
                continue
            if GC_FAILURE_LABEL in labels:
                await ctx.patch(
                    ctx.resources.backups, name, {"metadata": {"labels": {GC_FAILURE_LABEL: None}}}
                )
            await ctx.kube.create(
                ctx.resources.delete_requests, delete_request_for(backup, ctx.namespace), ctx.namespace
            )
            _log.info("backup %s expired at %s: deletion requested", name, format_timestamp(expiration))
