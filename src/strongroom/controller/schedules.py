"""The Schedule controller: validates schedules and creates their backups when they are due.

Velero's rules: the phase is Enabled or FailedValidation (with
``validationErrors``); the next run is the cron's first activation after the
last backup (or the schedule's creation, or ``lastSkipped`` if later);
``skipImmediately`` skips the run that is due right now and records
``lastSkipped``; a paused schedule makes no backups; no backup is made while
one of the schedule's backups is still New or InProgress. A backup is named
``<schedule>-YYYYMMDDHHMMSS``, carries the template's labels (or the
schedule's) plus ``velero.io/schedule-name``, and with
``useOwnerReferencesInBackup`` is owned by the schedule.

Schedules are kept in memory from the watch; a tick every second compares
the clock with each schedule's next run, so a due schedule costs requests
only when it fires.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from strongroom.controller.context import ServerContext, phase_of
from strongroom.errors import StrongroomError
from strongroom.kube.errors import KubeAlreadyExists
from strongroom.model import labels as velero_labels
from strongroom.model.cron import CronError, CronSchedule, parse_cron
from strongroom.model.filters import validate_backup_spec
from strongroom.model.velero import Backup, format_timestamp, parse_timestamp

__all__ = ["ScheduleController", "backup_for_schedule"]

_log = logging.getLogger(__name__)
_BUSY = ("", "New", "InProgress")


def validation_errors(schedule: Mapping[str, Any]) -> tuple[CronSchedule | None, list[str]]:
    """The parsed cron and every problem with the schedule (its cron and its backup template)."""
    spec = schedule.get("spec") or {}
    errors: list[str] = []
    cron: CronSchedule | None = None
    try:
        cron = parse_cron(str(spec.get("schedule") or ""))
    except CronError as exc:
        errors.append(str(exc))
    template = spec.get("template") or {}
    try:
        backup = Backup.from_manifest(
            {"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": {"name": "x"}, "spec": template}
        )
        errors.extend(f"template: {problem}" for problem in validate_backup_spec(backup.spec))
    except StrongroomError as exc:
        errors.append(f"template: {exc.message}")
    except ValueError as exc:
        errors.append(f"template: {exc}")
    return cron, errors


def next_run(schedule: Mapping[str, Any], cron: CronSchedule) -> datetime:
    """When the schedule is next due, by Velero's rule."""
    status = schedule.get("status") or {}
    last = parse_timestamp(status.get("lastBackup")) or parse_timestamp(
        schedule["metadata"].get("creationTimestamp")
    )
    skipped = parse_timestamp(status.get("lastSkipped"))
    if last is None or (skipped is not None and skipped > last):
        last = skipped
    assert last is not None
    return cron.next(last)


def backup_for_schedule(schedule: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    """The Backup a schedule makes at ``now``."""
    metadata = schedule["metadata"]
    spec = schedule.get("spec") or {}
    template = copy.deepcopy(spec.get("template") or {})
    template_labels = (template.pop("metadata", None) or {}).get("labels")
    labels = dict(template_labels if template_labels is not None else metadata.get("labels") or {})
    labels[velero_labels.SCHEDULE_NAME_LABEL] = velero_labels.valid_label_value(metadata["name"])
    annotations = {
        key: value
        for key, value in (metadata.get("annotations") or {}).items()
        if key != "kubectl.kubernetes.io/last-applied-configuration"
    }
    backup_metadata: dict[str, Any] = {
        "name": f"{metadata['name']}-{now.strftime('%Y%m%d%H%M%S')}",
        "namespace": metadata.get("namespace"),
        "labels": labels,
    }
    if annotations:
        backup_metadata["annotations"] = annotations
    if spec.get("useOwnerReferencesInBackup"):
        backup_metadata["ownerReferences"] = [
            {
                "apiVersion": "velero.io/v1",
                "kind": "Schedule",
                "name": metadata["name"],
                "uid": metadata["uid"],
                "controller": True,
            }
        ]
    return {"apiVersion": "velero.io/v1", "kind": "Backup", "metadata": backup_metadata, "spec": template}


class ScheduleController:
    """Keeps schedules' phases and fires them."""

    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx
        # Each schedule as last seen, with its cron parsed then (None when invalid).
        self._known: dict[str, tuple[dict[str, Any], CronSchedule | None]] = {}

    def forget(self, name: str) -> None:
        self._known.pop(name, None)
        if self._ctx.metrics is not None:
            self._ctx.metrics.remove_schedule(name)

    async def reconcile(self, body: Mapping[str, Any]) -> None:
        ctx = self._ctx
        name = str(body["metadata"]["name"])
        schedule = copy.deepcopy(dict(body))
        if ctx.metrics is not None and name not in self._known:
            ctx.metrics.register_schedule(name)
        cron, errors = validation_errors(schedule)
        spec_patch: dict[str, Any] = {}
        status_patch: dict[str, Any] = {}
        if (schedule.get("spec") or {}).get("skipImmediately"):
            # Velero: the flag is consumed; the run due now is skipped and remembered.
            spec_patch["skipImmediately"] = False
            status_patch["lastSkipped"] = format_timestamp(ctx.clock())
        phase = "FailedValidation" if errors else "Enabled"
        status = schedule.get("status") or {}
        if status.get("phase") != phase or (status.get("validationErrors") or []) != errors:
            status_patch["phase"] = phase
            status_patch["validationErrors"] = errors or None
            if errors:
                _log.warning("schedule %s failed validation: %s", name, "; ".join(errors))
                ctx.event(schedule, "Warning", "FailedValidation", "; ".join(errors))
        if spec_patch:
            updated = await ctx.patch(ctx.resources.schedules, name, {"spec": spec_patch})
            schedule["metadata"] = updated["metadata"]
            schedule["spec"] = updated.get("spec") or {}
        if status_patch:
            written = await ctx.patch_status(ctx.resources.schedules, name, status_patch)
            if written is None:
                return
            schedule = written
        if cron is not None and ctx.metrics is not None:
            # Velero's expected interval: between the two runs after now.
            following = cron.next(ctx.clock())
            ctx.metrics.schedule_interval_set(name, (cron.next(following) - following).total_seconds())
        self._known[name] = (schedule, None if errors else cron)

    async def tick(self) -> None:
        """Fire every schedule that is due."""
        now = self._ctx.clock()
        for name, (schedule, cron) in list(self._known.items()):
            spec = schedule.get("spec") or {}
            if cron is None or phase_of(schedule) != "Enabled" or spec.get("paused"):
                continue
            if now <= next_run(schedule, cron):
                continue
            try:
                await self._fire(schedule, cron, now)
            except StrongroomError as exc:
                _log.warning("schedule %s: could not create its backup: %s", name, exc.message)

    async def _fire(self, schedule: dict[str, Any], cron: CronSchedule, now: datetime) -> None:
        ctx = self._ctx
        name = str(schedule["metadata"]["name"])
        busy = [
            backup["metadata"]["name"]
            for backup in await ctx.list(
                ctx.resources.backups,
                label_selector=f"{velero_labels.SCHEDULE_NAME_LABEL}={velero_labels.valid_label_value(name)}",
            )
            if phase_of(backup) in _BUSY
        ]
        if busy:
            _log.debug("schedule %s is due but backup %s is not finished yet", name, busy[0])
            return
        backup = backup_for_schedule(schedule, now)
        try:
            await ctx.kube.create(ctx.resources.backups, backup, ctx.namespace)
        except KubeAlreadyExists:
            _log.debug("schedule %s: backup %s exists already", name, backup["metadata"]["name"])
        written = await ctx.patch_status(ctx.resources.schedules, name, {"lastBackup": format_timestamp(now)})
        if written is not None:
            self._known[name] = (written, cron)
        _log.info("schedule %s is due: created backup %s", name, backup["metadata"]["name"])
        ctx.event(schedule, "Normal", "BackupCreated", f"created backup {backup['metadata']['name']}")
