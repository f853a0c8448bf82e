"""DownloadRequests and ServerStatusRequests: the CLI's questions to the server.

A DownloadRequest names a file of a backup or a restore (its log, contents,
results...); the server answers with a URL that reads it without
credentials (pre-signed for a bucket, ``file://`` for a directory) and an
expiration, and removes the request once it has expired. A
ServerStatusRequest is answered with the server's version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, Final

from strongroom import __version__
from strongroom.controller.context import ServerContext, phase_of
from strongroom.controller.locations import Locations
from strongroom.errors import StrongroomError
from strongroom.model.velero import format_timestamp, parse_timestamp
from strongroom.storage import Layout

__all__ = ["TARGETS", "DownloadController", "StatusRequestController"]

_log = logging.getLogger(__name__)

# DownloadRequest target kinds: (is a restore's, the file's key in the layout).
TARGETS: Final[dict[str, tuple[bool, Callable[[Layout, str], str]]]] = {
    "BackupLog": (False, Layout.backup_log),
    "BackupContents": (False, Layout.backup_contents),
    "BackupVolumeSnapshots": (False, Layout.backup_volume_snapshots),
    "BackupItemOperations": (False, Layout.backup_item_operations),
    "BackupResourceList": (False, Layout.backup_resource_list),
    "BackupResults": (False, Layout.backup_results),
    "CSIBackupVolumeSnapshots": (False, Layout.backup_csi_volume_snapshots),
    "CSIBackupVolumeSnapshotContents": (False, Layout.backup_csi_volume_snapshot_contents),
    "BackupVolumeInfos": (False, Layout.backup_volume_info),
    "RestoreLog": (True, Layout.restore_log),
    "RestoreResults": (True, Layout.restore_results),
    "RestoreResourceList": (True, Layout.restore_resource_list),
    "RestoreItemOperations": (True, Layout.restore_item_operations),
    "RestoreVolumeInfo": (True, Layout.restore_volume_info),
}


class DownloadController:
    """Answers DownloadRequests."""

    def __init__(self, ctx: ServerContext, locations: Locations) -> None:
        self._ctx = ctx
        self._locations = locations

    async def reconcile(self, body: Mapping[str, Any]) -> None:
        ctx = self._ctx
        name = str(body["metadata"]["name"])
        if phase_of(body) == "Processed":
            expiration = parse_timestamp((body.get("status") or {}).get("expiration"))
            if expiration is not None and ctx.clock() > expiration:
                await ctx.delete(ctx.resources.download_requests, name)
            return
        now = ctx.clock()
        expiration = now + ctx.config.download_url_ttl
        status: dict[str, Any] = {"phase": "Processed", "expiration": format_timestamp(expiration)}
        try:
            status["downloadURL"] = await self._url(body)
        except StrongroomError as exc:
            # No URL: the CLI reports the request as failed; the event says why.
            _log.warning("download request %s: %s", name, exc.message)
            ctx.event(body, "Warning", "DownloadFailed", exc.message)
        await ctx.patch_status(ctx.resources.download_requests, name, status)

    async def _url(self, request: Mapping[str, Any]) -> str:
        ctx = self._ctx
        target = (request.get("spec") or {}).get("target") or {}
        kind = str(target.get("kind") or "")
        target_name = str(target.get("name") or "")
        if kind not in TARGETS:
            raise _error(f"spec.target.kind: unsupported value {kind!r}; supported: {', '.join(TARGETS)}")
        if not target_name:
            raise _error("spec.target.name is required")
        of_restore, key_of = TARGETS[kind]
        backup_name = target_name
        if of_restore:
            restore = await ctx.get(ctx.resources.restores, target_name)
            if restore is None:
                raise _error(f"restore {target_name} not found")
            backup_name = str((restore.get("spec") or {}).get("backupName") or "")
        backup = await ctx.get(ctx.resources.backups, backup_name)
        if backup is None:
            raise _error(f"backup {backup_name} not found")
        location_name = str((backup.get("spec") or {}).get("storageLocation") or "")
        location = await self._locations.get(location_name)
        if location is None:
            raise _error(f"backup storage location {location_name} not found")
        store = await self._locations.store(location)
        return await store.download_url(key_of(Layout(), target_name), ctx.config.download_url_ttl)


class StatusRequestController:
    """Answers ServerStatusRequests with the server's version, and removes old ones."""

    def __init__(self, ctx: ServerContext, plugins: Callable[[], list[dict[str, str]]] | None = None) -> None:
        self._ctx = ctx
        self._plugins = plugins or list

    async def reconcile(self, body: Mapping[str, Any]) -> None:
        ctx = self._ctx
        name = str(body["metadata"]["name"])
        status = body.get("status") or {}
        if phase_of(body) == "Processed":
            processed = parse_timestamp(status.get("processedTimestamp"))
            if processed is not None and ctx.clock() - processed > ctx.config.request_ttl:
                await ctx.delete(ctx.resources.status_requests, name)
            return
        await ctx.patch_status(
            ctx.resources.status_requests,
            name,
            {
                "phase": "Processed",
                "processedTimestamp": format_timestamp(ctx.clock()),
                "serverVersion": __version__,
                "plugins": self._plugins(),
            },
        )


def _error(message: str) -> StrongroomError:
    return StrongroomError(message)
