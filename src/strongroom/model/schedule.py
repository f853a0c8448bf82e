"""Velero's ``velero.io/v1`` Schedule as a typed model.

A Schedule is a Backup spec plus a cron expression: the server creates a
Backup named ``<schedule>-YYYYMMDDHHMMSS`` from ``spec.template`` each time
the expression fires. The model follows :mod:`strongroom.model.velero`: Go
JSON names, unknown fields kept, phases open to values a newer Velero adds,
and the CRD schema generated from it.
"""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from strongroom.model.velero import (
    BackupSpec,
    ModelError,
    OpenStrEnum,
    Timestamp,
    _VeleroModel,
    _VeleroResource,
)

__all__ = [
    "SCHEDULE_TIMESTAMP_FORMAT",
    "Schedule",
    "SchedulePhase",
    "ScheduleSpec",
    "ScheduleStatus",
]

# Velero's Go layout "20060102150405": the suffix of every scheduled backup's name.
SCHEDULE_TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"


class SchedulePhase(OpenStrEnum):
    """``status.phase`` of a Schedule."""

    NEW = "New"
    ENABLED = "Enabled"
    FAILED_VALIDATION = "FailedValidation"


class ScheduleSpec(_VeleroModel):
    """When to back up and what (``velero.io/v1`` ScheduleSpec)."""

    template: BackupSpec
    """The spec of every Backup this schedule creates."""
    schedule: str
    """A standard 5-field cron expression (minute hour day-of-month month day-of-week), for example `0 7 * * *`."""
    use_owner_references_in_backup: bool | None = None
    """Whether the Backups created by this schedule carry an owner reference to it (and so are deleted with it)."""
    paused: bool | None = None
    """Whether the schedule is paused: no backups are created while it is true."""
    skip_immediately: bool | None = None
    """Whether a backup that is already due when the schedule is created or unpaused is skipped (empty: the server's setting, false by default)."""


class ScheduleStatus(_VeleroModel):
    """What the schedule controller last did (``velero.io/v1`` ScheduleStatus)."""

    phase: SchedulePhase | None = None
    """New until validated; Enabled when backups are being created; FailedValidation otherwise."""
    last_backup: Timestamp | None = None
    """When a Backup was last created for this schedule."""
    last_skipped: Timestamp | None = None
    """When a due backup was last skipped."""
    validation_errors: list[str] | None = None
    """Why the schedule failed validation."""


class Schedule(_VeleroResource):
    """A ``velero.io/v1`` Schedule: Backups created from a template on a cron schedule."""

    KIND: ClassVar[str] = "Schedule"

    kind: str = "Schedule"
    spec: ScheduleSpec
    status: ScheduleStatus = Field(default_factory=ScheduleStatus)

    def backup_name(self, when: datetime) -> str:
        """The name Velero gives the backup this schedule creates at ``when`` (``<schedule>-YYYYMMDDHHMMSS``).

        Velero formats its clock in the server's zone, which is UTC in a
        cluster; the caller passes the time already in the zone it wants.
        """
        if not self.metadata.name:
            raise ModelError("a Schedule without metadata.name cannot name its backups")
        return f"{self.metadata.name}-{when.strftime(SCHEDULE_TIMESTAMP_FORMAT)}"
