"""Backup sync: the Backup resources follow what the locations hold.

Storage is the source of truth. A backup found in an Available location but
not in the cluster (made by another cluster sharing the bucket, or before
this cluster was rebuilt) becomes a Backup resource with its stored spec
and status, pointing at this location. A Completed Backup of this location
whose files are gone is removed. Backups that are New or InProgress are
never touched: their files are not there yet.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from strongroom.controller.context import ServerContext, phase_of
from strongroom.controller.locations import Locations
from strongroom.errors import StrongroomError
from strongroom.kube.errors import KubeAlreadyExists
from strongroom.model import labels as velero_labels
from strongroom.model.duration import parse_duration

__all__ = ["BackupSync"]

_log = logging.getLogger(__name__)


class BackupSync:
    """Syncs each Available location when its sync period has passed."""

    def __init__(self, ctx: ServerContext, locations: Locations) -> None:
        self._ctx = ctx
        self._locations = locations
        self._last: dict[str, datetime] = {}

    def _period(self, location: Mapping[str, Any]) -> float:
        text = (location.get("spec") or {}).get("backupSyncPeriod")
        if text:
            try:
                return parse_duration(str(text)).total_seconds()
            except ValueError:
                pass
        return self._ctx.config.backup_sync_period.total_seconds()

    async def sweep(self) -> None:
        now = self._ctx.clock()
        for location in await self._locations.all():
            name = str(location["metadata"]["name"])
            period = self._period(location)
            if period <= 0 or phase_of(location) != "Available":
                continue
            last = self._last.get(name)
            if last is not None and (now - last).total_seconds() < period:
                continue
            self._last[name] = now
            try:
                await self.sync(location)
            except StrongroomError as exc:
                _log.warning("syncing backups from location %s failed: %s", name, exc.message)

    async def sync(self, location: Mapping[str, Any]) -> None:
        ctx = self._ctx
        res = ctx.resources.backups
        location_name = str(location["metadata"]["name"])
        catalog = await self._locations.catalog(location)
        stored = set(await catalog.backup_names())
        in_cluster = {str(b["metadata"]["name"]): b for b in await ctx.list(res)}
        for name in sorted(stored - set(in_cluster)):
            try:
                manifest = await catalog.read_backup_metadata(name)
            except StrongroomError as exc:
                _log.warning("location %s: backup %s cannot be read: %s", location_name, name, exc.message)
                continue
            await self._adopt(manifest, name, location_name)
        for name, backup in in_cluster.items():
            if name in stored or phase_of(backup) != "Completed":
                continue
            if (backup.get("spec") or {}).get("storageLocation") != location_name:
                continue
            _log.info("backup %s is no longer in location %s: removing its resource", name, location_name)
            await ctx.delete(res, name)

    async def _adopt(self, manifest: Mapping[str, Any], name: str, location_name: str) -> None:
        ctx = self._ctx
        metadata = manifest.get("metadata") or {}
        labels = dict(metadata.get("labels") or {})
        labels[velero_labels.STORAGE_LOCATION_LABEL] = velero_labels.valid_label_value(location_name)
        spec = dict(manifest.get("spec") or {})
        spec["storageLocation"] = location_name
        body: dict[str, Any] = {
            "apiVersion": "velero.io/v1",
            "kind": "Backup",
            "metadata": {"name": name, "namespace": ctx.namespace, "labels": labels},
            "spec": spec,
        }
        if metadata.get("annotations"):
            body["metadata"]["annotations"] = dict(metadata["annotations"])
        status = dict(manifest.get("status") or {})
        if "status" not in ctx.resources.backups.subresources:
            body["status"] = status
        try:
            await ctx.kube.create(ctx.resources.backups, body, ctx.namespace)
        except KubeAlreadyExists:
            return
        if "status" in ctx.resources.backups.subresources:
            await ctx.patch_status(ctx.resources.backups, name, status)
        _log.info("synced backup %s from location %s", name, location_name)
