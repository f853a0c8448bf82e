"""The Backup controller: a new Backup resource is validated, run by the engine and its status kept.

Phases as Velero's: New (or unset) -> FailedValidation, or InProgress ->
Completed / PartiallyFailed / Failed. Validation follows Velero's server:
defaults (TTL, storage location) are filled in, the location must exist, be
Available and not ReadOnly, and the spec must pass the same checks as the
CLI's. The location is recorded in the label ``velero.io/storage-location``.

A backup's files become visible in storage only when its
``velero-backup.json`` is written, last; a server that dies mid-backup
leaves files that no reader treats as a backup, and on restart
``recover_in_progress`` marks the resource Failed (or adopts the stored
result when the backup had in fact been stored) and removes the leftovers.
"""

from __future__ import annotations

import copy
import logging
from datetime import timedelta
from typing import Any

from strongroom.backup.request import plan_backup
from strongroom.backup.runner import BackupRunner, VolumeOptions
from strongroom.controller.context import ServerContext, phase_of, stored_form
from strongroom.controller.locations import Locations, is_read_only
from strongroom.controller.runs import ProgressWriter, RunController
from strongroom.controller.volumedata import SnapshotChoice, VolumeData
from strongroom.errors import ConflictError, StrongroomError
from strongroom.model import labels as velero_labels
from strongroom.model.duration import format_duration, parse_duration
from strongroom.model.filters import validate_backup_spec
from strongroom.model.velero import Backup, format_timestamp

__all__ = ["BackupController"]

_log = logging.getLogger(__name__)

_TERMINAL = ("Completed", "PartiallyFailed", "Failed", "FailedValidation", "Deleting")


class BackupController(RunController):
    """Processes Backup resources of the server's namespace."""

    noun = "backup"

    def __init__(
        self, ctx: ServerContext, locations: Locations, volume_data: VolumeData | None = None
    ) -> None:
        super().__init__(ctx, ctx.resources.backups, ctx.config.concurrent_backups)
        self._locations = locations
        self._volume_data = volume_data

    async def _process(self, backup: dict[str, Any]) -> None:
        ctx = self._ctx
        name = str(backup["metadata"]["name"])
        schedule = (backup["metadata"].get("labels") or {}).get(velero_labels.SCHEDULE_NAME_LABEL, "")
        started = ctx.clock()
        request, location, errors = await self._validate(backup)
        snapshots = SnapshotChoice()
        if self._volume_data is not None and not errors:
            # Velero's validateAndGetSnapshotLocations: the backup records the locations it snapshots with.
            snapshots = await self._volume_data.snapshot_locations.choose(
                [str(name) for name in request["spec"].get("volumeSnapshotLocations") or []]
            )
            errors = snapshots.errors
            if snapshots.names:
                request["spec"]["volumeSnapshotLocations"] = snapshots.names
            else:
                request["spec"].pop("volumeSnapshotLocations", None)
        labels = {"labels": request["metadata"].get("labels") or {}}
        ttl = parse_duration(str(request["spec"]["ttl"]))
        if errors:
            # It expires like any backup, so garbage collection clears it away in time.
            await self._fail_validation(
                name,
                errors,
                metadata=labels,
                version=1,
                formatVersion="1.1.0",
                expiration=format_timestamp(started + ttl),
            )
            if ctx.metrics is not None:
                ctx.metrics.backup_finished(schedule, "FailedValidation")
            return
        # Velero counts an attempt once the backup passed validation.
        if ctx.metrics is not None:
            ctx.metrics.backup_attempted(schedule)
        assert location is not None
        claimed = await self._claim(
            backup,
            f"backing up to location {location['metadata']['name']}",
            {
                "version": 1,
                "formatVersion": "1.1.0",
                "startTimestamp": format_timestamp(started),
                "expiration": format_timestamp(started + ttl),
            },
            metadata=labels,
            spec=request["spec"],
        )
        progress = ProgressWriter(ctx, self._res, name, ("itemsBackedUp", "totalItems"))
        try:
            catalog = await self._locations.catalog(location)
            if await catalog.backup_exists(name):
                raise ConflictError("backup already exists in object storage")
            plan = await plan_backup(ctx.kube, claimed)
            runner = BackupRunner(
                ctx.kube, catalog, workdir=ctx.config.workdir, clock=ctx.clock, progress=progress.update
            )
            volumes = None
            if plan.discovery is not None:
                volumes = VolumeOptions(
                    discovery=plan.discovery,
                    namespaces=plan.namespaces,
                    repositories=(
                        await self._volume_data.for_backup(location)
                        if self._volume_data is not None
                        else None
                    ),
                    default_to_fs_backup=ctx.config.default_volumes_to_fs_backup,
                    fs_backup_timeout=ctx.config.fs_backup_timeout,
                    snapshot_locations=snapshots.locations,
                    images=await self._volume_data.images(location)
                    if self._volume_data is not None
                    else None,
                )
            outcome = await runner.run(
                stored_form(claimed),
                plan.scope,
                plan.resources,
                ttl=ttl,
                cluster_version=plan.cluster_version,
                warnings=[*plan.warnings, *snapshots.warnings],
                volumes=volumes,
            )
            final = dict(outcome.backup.get("status") or {})
        except StrongroomError as exc:
            final = self.failed(exc, ctx.clock())
        await progress.settle()
        phase = await self._finish(name, final)
        if ctx.metrics is not None:
            ctx.metrics.backup_finished(
                schedule,
                phase,
                duration_s=(ctx.clock() - started).total_seconds(),
                items=int((final.get("progress") or {}).get("itemsBackedUp") or 0),
                errors=int(final.get("errors") or 0),
                warnings=int(final.get("warnings") or 0),
            )

    async def _validate(
        self, backup: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any] | None, list[str]]:
        """The backup with the server's defaults, its location, and every validation error."""
        ctx = self._ctx
        request = copy.deepcopy(backup)
        spec = request.setdefault("spec", {})
        errors: list[str] = []
        ttl_text = spec.get("ttl")
        try:
            ttl = parse_duration(str(ttl_text)) if ttl_text else timedelta(0)
        except ValueError as exc:
            errors.append(f"spec.ttl: {exc}")
            ttl = timedelta(0)
        if ttl == timedelta(0):
            ttl = ctx.config.default_backup_ttl
        spec["ttl"] = format_duration(ttl)
        if spec.get("defaultVolumesToRestic") is True and spec.get("defaultVolumesToFsBackup") is None:
            spec["defaultVolumesToFsBackup"] = True
        spec.setdefault("defaultVolumesToFsBackup", ctx.config.default_volumes_to_fs_backup)
        server_default = not spec.get("storageLocation")
        if server_default:
            spec["storageLocation"] = await self._locations.default_name()
        location_name = str(spec["storageLocation"])
        location = await self._locations.get(location_name)
        if location is None:
            where = "the server default" if server_default else "the location"
            errors.append(
                f"an existing backup storage location was not specified at backup creation time and {where} "
                f"{location_name} does not exist. Create it (strongroom backup-location create) and create a new backup"
                if server_default
                else f"backup storage location {location_name} does not exist"
            )
        else:
            if is_read_only(location):
                errors.append(
                    f"backup can't be created because backup storage location {location_name} is currently in read-only mode"
                )
            if phase_of(location) != "Available":
                errors.append(
                    f"backup can't be created because BackupStorageLocation {location_name} is in Unavailable status."
                    + (
                        f" {location['status']['message']}"
                        if (location.get("status") or {}).get("message")
                        else ""
                    )
                )
        labels = request["metadata"].setdefault("labels", {})
        labels[velero_labels.STORAGE_LOCATION_LABEL] = velero_labels.valid_label_value(location_name)
        try:
            model = Backup.from_manifest(request)
            errors.extend(validate_backup_spec(model.spec))
        except StrongroomError as exc:
            errors.append(exc.message)
        except ValueError as exc:
            errors.append(str(exc))
        return request, location, errors

    async def recover_in_progress(self) -> None:
        """After a restart: no Backup stays InProgress; what a dead server left is settled."""
        ctx = self._ctx
        for backup in await ctx.list(ctx.resources.backups):
            if phase_of(backup) != "InProgress":
                continue
            name = str(backup["metadata"]["name"])
            location_name = str((backup.get("spec") or {}).get("storageLocation") or "")
            stored: dict[str, Any] | None = None
            location = await self._locations.get(location_name) if location_name else None
            catalog = None
            if location is not None:
                try:
                    catalog = await self._locations.catalog(location)
                    if await catalog.backup_exists(name):
                        stored = await catalog.read_backup_metadata(name)
                except StrongroomError as exc:
                    _log.warning("backup %s: cannot look at its location: %s", name, exc.message)
            if stored is not None and phase_of(stored) in _TERMINAL:
                # The backup was stored before the server died: its stored status is the truth.
                await ctx.patch_status(ctx.resources.backups, name, dict(stored.get("status") or {}))
                _log.warning(
                    "backup %s was stored before the restart; its status is taken from storage", name
                )
                continue
            await self._mark_failed_after_restart(backup)
            if stored is None and catalog is not None and location is not None and not is_read_only(location):
                try:
                    removed = await catalog.delete_backup(name)
                except StrongroomError as exc:
                    _log.warning("backup %s: its partial files could not be removed: %s", name, exc.message)
                else:
                    if removed:
                        _log.info("backup %s: removed %d partial files", name, removed)
