"""The Restore controller: a new Restore resource is validated, run by the engine and its status kept.

A Restore names its backup directly (``backupName``) or through a schedule
(``scheduleName``: the newest Completed backup the schedule made). The
backup must exist as a resource (backup sync brings those of a shared
bucket in) and be Completed or PartiallyFailed; its location must exist.
Everything else, the order, the mapping, the policies, is the engine's, the
same as in local mode.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from strongroom.controller.context import ServerContext, phase_of, stored_form
from strongroom.controller.locations import Locations, is_read_only
from strongroom.controller.runs import ProgressWriter, RunController
from strongroom.controller.volumedata import VolumeData
from strongroom.errors import NotFoundError, StrongroomError
from strongroom.hooks import RestoreHookSet
from strongroom.model import labels as velero_labels
from strongroom.model.filters import validate_restore_spec
from strongroom.model.velero import Restore, format_timestamp
from strongroom.restore.priorities import DEFAULT_RESTORE_PRIORITIES, Priorities
from strongroom.restore.request import backup_namespaces, restore_options
from strongroom.restore.runner import RestoreRunner, RestoreVolumeOptions

__all__ = ["RestoreController"]

_log = logging.getLogger(__name__)

_RESTORABLE = ("Completed", "PartiallyFailed")


class RestoreController(RunController):
    """Processes Restore resources of the server's namespace."""

    noun = "restore"

    def __init__(
        self,
        ctx: ServerContext,
        locations: Locations,
        *,
        priorities: Priorities = DEFAULT_RESTORE_PRIORITIES,
        volume_data: VolumeData | None = None,
    ) -> None:
        super().__init__(ctx, ctx.resources.restores, ctx.config.concurrent_restores)
        self._locations = locations
        self._priorities = priorities
        self._volume_data = volume_data

    async def _process(self, restore: dict[str, Any]) -> None:
        ctx = self._ctx
        name = str(restore["metadata"]["name"])
        started = ctx.clock()
        request, backup, errors = await self._validate(restore)
        schedule = ""
        if backup is not None:
            schedule = (backup["metadata"].get("labels") or {}).get(velero_labels.SCHEDULE_NAME_LABEL, "")
        if ctx.metrics is not None:
            ctx.metrics.restore_attempted(schedule)
        if errors:
            await self._fail_validation(name, errors)
            if ctx.metrics is not None:
                ctx.metrics.restore_finished(schedule, "FailedValidation")
            return
        assert backup is not None
        backup_name = str(request["spec"]["backupName"])
        location_name = str((backup.get("spec") or {}).get("storageLocation") or "")
        claimed = await self._claim(
            restore,
            f"restoring from backup {backup_name}",
            {"startTimestamp": format_timestamp(started)},
            spec={"backupName": backup_name},
        )
        progress = ProgressWriter(ctx, self._res, name, ("itemsRestored", "totalItems"))
        try:
            location = await self._locations.get(location_name)
            if location is None:
                raise NotFoundError(f"backup storage location {location_name} does not exist")
            catalog = await self._locations.catalog(location)
            discovery = await ctx.kube.discover()
            warnings: list[str] = []
            options = restore_options(
                discovery, request, await backup_namespaces(catalog, backup_name), warnings
            )
            runner = RestoreRunner(
                ctx.kube,
                catalog,
                workdir=ctx.config.workdir,
                clock=ctx.clock,
                progress=progress.update,
                priorities=self._priorities,
            )
            outcome = await runner.run(
                stored_form(claimed),
                options,
                store=not is_read_only(location),
                discovery=discovery,
                warnings=warnings,
                volumes=RestoreVolumeOptions(
                    helper_image=ctx.config.restore_helper_image,
                    timeout=ctx.config.fs_backup_timeout,
                    snapshotters=self._volume_data.snapshot_locations if self._volume_data else None,
                    images=await self._volume_data.images(location) if self._volume_data else None,
                ),
            )
            final = dict(outcome.restore.get("status") or {})
        except StrongroomError as exc:
            final = self.failed(exc, ctx.clock())
        await progress.settle()
        phase = await self._finish(name, final)
        if ctx.metrics is not None:
            ctx.metrics.restore_finished(
                schedule,
                phase,
                duration_s=(ctx.clock() - started).total_seconds(),
                items=int((final.get("progress") or {}).get("itemsRestored") or 0),
                errors=int(final.get("errors") or 0),
            )

    async def _validate(
        self, restore: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any] | None, list[str]]:
        """The restore with its backup resolved, that Backup resource, and every validation error."""
        ctx = self._ctx
        request = copy.deepcopy(restore)
        spec = request.setdefault("spec", {})
        errors: list[str] = []
        backup_name = str(spec.get("backupName") or "")
        schedule_name = str(spec.get("scheduleName") or "")
        # The spec as written (a backup or a schedule, not both), before the schedule is resolved.
        try:
            parsed = Restore.from_manifest(request).spec
            errors.extend(validate_restore_spec(parsed))
            # Init hooks missing a name, image or command: Velero refuses the restore before it starts.
            errors.extend(RestoreHookSet(parsed.hooks).validation_errors())
        except StrongroomError as exc:
            errors.append(exc.message)
        except ValueError as exc:
            errors.append(str(exc))
        if errors:
            return request, None, errors
        if not backup_name:
            backup_name = await self._newest_of(schedule_name) or ""
            if not backup_name:
                errors.append(f"No completed backups found for schedule {schedule_name}")
                return request, None, errors
            spec["backupName"] = backup_name
        backup = await ctx.get(ctx.resources.backups, backup_name)
        if backup is None:
            errors.append(
                f"Error retrieving backup: backup {backup_name} not found in namespace {ctx.namespace}"
            )
        elif phase_of(backup) not in _RESTORABLE:
            errors.append(
                f"backup {backup_name} is in phase {phase_of(backup) or 'New'}; only Completed or "
                "PartiallyFailed backups can be restored"
            )
        elif not (backup.get("spec") or {}).get("storageLocation"):
            errors.append(f"backup {backup_name} names no storage location")
        return request, backup, errors

    async def _newest_of(self, schedule: str) -> str | None:
        """The newest Completed backup a schedule made (Velero's rule for ``scheduleName``)."""
        backups = await self._ctx.list(
            self._ctx.resources.backups,
            label_selector=f"{velero_labels.SCHEDULE_NAME_LABEL}={velero_labels.valid_label_value(schedule)}",
        )
        completed = [b for b in backups if phase_of(b) == "Completed"]
        if not completed:
            return None
        newest = max(
            completed,
            key=lambda b: (
                str(
                    (b.get("status") or {}).get("startTimestamp")
                    or b["metadata"].get("creationTimestamp")
                    or ""
                ),
                b["metadata"]["name"],
            ),
        )
        return str(newest["metadata"]["name"])

    async def recover_in_progress(self) -> None:
        """After a restart: a Restore left InProgress is marked Failed with the reason."""
        for restore in await self._ctx.list(self._res):
            if phase_of(restore) == "InProgress":
                await self._mark_failed_after_restart(restore)
