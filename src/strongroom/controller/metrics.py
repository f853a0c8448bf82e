"""The server's Prometheus metrics, under Velero's names so existing dashboards and alerts work.

Clusters that ran Velero (or OADP) have Grafana dashboards and alert rules on
``velero_backup_success_total{schedule=...}``,
``velero_backup_last_successful_timestamp`` and friends. Keeping Velero's
metric names, types, labels and histogram buckets (pkg/metrics/metrics.go)
lets them work unchanged. Where Velero measures nothing (restore duration and
items) the metrics are ours and carry the ``strongroom_`` prefix, so nobody
mistakes them for Velero's.

The metrics live in a registry of their own, not prometheus_client's global
one: two servers in one test process must not share counters, and nothing
imported by accident shows up on ``/metrics``.

Controllers report events (``backup_attempted``, ``backup_finished``, ...) and
never touch a metric object; which counters an event moves is decided here,
once, the way Velero's controllers move them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import Metric

__all__ = [
    "BACKUP_DURATION_BUCKETS",
    "BACKUP_PHASES",
    "RESTORE_DURATION_BUCKETS",
    "RESTORE_PHASES",
    "ServerMetrics",
]

# Velero's buckets: 1, 5, 10, 15, 30 minutes, then 1 to 4 hours.
BACKUP_DURATION_BUCKETS: Final = (60.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 10800.0, 14400.0)
# Restores of a few namespaces take seconds; finer buckets at the low end tell those apart.
RESTORE_DURATION_BUCKETS: Final = (10.0, 30.0, *BACKUP_DURATION_BUCKETS)

# The terminal phases a finished backup or restore reports.
BACKUP_PHASES: Final = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")
RESTORE_PHASES: Final = BACKUP_PHASES

# Velero's label names.
_SCHEDULE = "schedule"
_LOCATION = "backup_location_name"
# Velero's backup_last_status values.
_LAST_STATUS_SUCCESS = 1.0
_LAST_STATUS_FAILURE = 0.0

# The exposition format Velero's Go client serves; every Prometheus version reads it.
_CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# prometheus_client adds a ``_created`` series beside each counter and histogram; Velero
# serves none, and dashboards querying by name prefix should see the same series.
_CREATED_TYPES = frozenset({"counter", "histogram", "summary"})


class _WithoutCreated:
    """The registry's metrics minus prometheus_client's ``_created`` samples."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        for metric in self._registry.collect():
            if metric.type in _CREATED_TYPES:
                metric.samples = [s for s in metric.samples if not s.name.endswith("_created")]
            yield metric


class ServerMetrics:
    """Every metric the server exposes, moved by named events.

    ``schedule`` is the name of the Schedule that made a backup (a restore
    reports its backup's schedule), "" for a backup made by hand, as in Velero.
    """

    def __init__(
        self, registry: CollectorRegistry | None = None, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self._clock = clock
        reg = self.registry

        def counter(name: str, doc: str) -> Counter:
            return Counter(name, doc, [_SCHEDULE], registry=reg)

        def gauge(name: str, doc: str, labels: tuple[str, ...] = (_SCHEDULE,)) -> Gauge:
            return Gauge(name, doc, list(labels), registry=reg)

        # -- backups (Velero's) --
        self.backup_total = Gauge("velero_backup_total", "Current number of existent backups", registry=reg)
        self.backup_attempt = counter("velero_backup_attempt_total", "Total number of attempted backups")
        self.backup_success = counter("velero_backup_success_total", "Total number of successful backups")
        self.backup_partial_failure = counter(
            "velero_backup_partial_failure_total", "Total number of partially failed backups"
        )
        self.backup_failure = counter("velero_backup_failure_total", "Total number of failed backups")
        self.backup_validation_failure = counter(
            "velero_backup_validation_failure_total", "Total number of validation failed backups"
        )
        self.backup_warning = counter("velero_backup_warning_total", "Total number of warned backups")
        self.backup_duration = Histogram(
            "velero_backup_duration_seconds",
            "Time taken to complete backup, in seconds",
            [_SCHEDULE],
            buckets=BACKUP_DURATION_BUCKETS,
            registry=reg,
        )
        self.backup_items = gauge("velero_backup_items_total", "Total number of items backed up")
        self.backup_item_errors = gauge(
            "velero_backup_items_errors", "Total number of errors encountered during backup"
        )
        self.backup_tarball_size = gauge("velero_backup_tarball_size_bytes", "Size, in bytes, of a backup")
        self.backup_last_successful = gauge(
            "velero_backup_last_successful_timestamp",
            "Last time a backup ran successfully, Unix timestamp in seconds",
        )
        self.backup_last_status = gauge(
            "velero_backup_last_status", "Last status of the backup. A value of 1 is success, 0 is failure"
        )
        self.backup_deletion_attempt = counter(
            "velero_backup_deletion_attempt_total", "Total number of attempted backup deletions"
        )
        self.backup_deletion_success = counter(
            "velero_backup_deletion_success_total", "Total number of successful backup deletions"
        )
        self.backup_deletion_failure = counter(
            "velero_backup_deletion_failure_total", "Total number of failed backup deletions"
        )
        self.schedule_interval = gauge(
            "velero_schedule_expected_interval_seconds",
            "Expected interval between consecutive scheduled backups, in seconds",
        )
        # -- locations (Velero's) --
        self.location_status = gauge(
            "velero_backup_location_status_gauge",
            "The status of backup location. A value of 1 is available, 0 is unavailable",
            (_LOCATION,),
        )
        # -- restores (Velero's) --
        self.restore_total = Gauge(
            "velero_restore_total", "Current number of existent restores", registry=reg
        )
        self.restore_attempt = counter("velero_restore_attempt_total", "Total number of attempted restores")
        self.restore_success = counter("velero_restore_success_total", "Total number of successful restores")
        self.restore_partial_failure = counter(
            "velero_restore_partial_failure_total", "Total number of partially failed restores"
        )
        self.restore_failed = counter("velero_restore_failed_total", "Total number of failed restores")
        self.restore_validation_failed = counter(
            "velero_restore_validation_failed_total", "Total number of failed restores failing validations"
        )
        # -- restores (ours: Velero measures neither) --
        self.restore_duration = Histogram(
            "strongroom_restore_duration_seconds",
            "Time taken to complete a restore, in seconds",
            [_SCHEDULE],
            buckets=RESTORE_DURATION_BUCKETS,
            registry=reg,
        )
        self.restore_items = gauge(
            "strongroom_restore_items_total", "Number of items the last restore restored"
        )
        self.restore_item_errors = gauge(
            "strongroom_restore_items_errors", "Number of errors the last restore encountered"
        )

        self._per_schedule_counters = (
            self.backup_attempt,
            self.backup_success,
            self.backup_partial_failure,
            self.backup_failure,
            self.backup_validation_failure,
            self.backup_warning,
            self.backup_deletion_attempt,
            self.backup_deletion_success,
            self.backup_deletion_failure,
            self.restore_attempt,
            self.restore_success,
            self.restore_partial_failure,
            self.restore_failed,
            self.restore_validation_failed,
        )
        self._per_schedule = (
            *self._per_schedule_counters,
            self.backup_duration,
            self.backup_items,
            self.backup_item_errors,
            self.backup_tarball_size,
            self.backup_last_successful,
            self.backup_last_status,
            self.schedule_interval,
            self.restore_duration,
            self.restore_items,
            self.restore_item_errors,
        )
        # Velero shows the counters of hand-made backups ("" schedule) from the start.
        self.register_schedule("")

    # -- schedules -------------------------------------------------------------

    def register_schedule(self, name: str) -> None:
        """Show a schedule's counters at 0 before its first backup, so rate() and alerts see it."""
        for metric in self._per_schedule_counters:
            metric.labels(name).inc(0)
        self.backup_items.labels(name).inc(0)
        self.backup_item_errors.labels(name).inc(0)
        # Velero starts a schedule's last status at success: no backup has failed yet.
        self.backup_last_status.labels(name).set(_LAST_STATUS_SUCCESS)

    def remove_schedule(self, name: str) -> None:
        """Drop every series of a deleted schedule."""
        for metric in self._per_schedule:
            try:
                metric.remove(name)
            except KeyError:
                continue

    def schedule_interval_set(self, name: str, seconds: float) -> None:
        """The expected time between two backups of a schedule (from its cron expression)."""
        self.schedule_interval.labels(name).set(seconds)

    # -- backups ---------------------------------------------------------------

    def backups_counted(self, total: int) -> None:
        """How many Backup resources exist now."""
        self.backup_total.set(total)

    def backup_attempted(self, schedule: str = "") -> None:
        """A backup passed validation and starts running."""
        self.backup_attempt.labels(schedule).inc()

    def backup_finished(
        self,
        schedule: str,
        phase: str,
        *,
        duration_s: float | None = None,
        items: int | None = None,
        errors: int = 0,
        warnings: int = 0,
        size: int | None = None,
    ) -> None:
        """A backup reached a terminal phase (one of ``BACKUP_PHASES``).

        ``duration_s`` from start to completion, ``items`` backed up,
        ``errors`` and ``warnings`` counted in its results, ``size`` of its
        tarball in bytes. A backup that failed validation never ran, so only
        its counter and last status move.
        """
        if phase not in BACKUP_PHASES:
            raise ValueError(f"not a finished backup's phase: {phase!r} (expected one of {BACKUP_PHASES})")
        succeeded = phase == "Completed"
        self.backup_last_status.labels(schedule).set(
            _LAST_STATUS_SUCCESS if succeeded else _LAST_STATUS_FAILURE
        )
        if phase == "FailedValidation":
            self.backup_validation_failure.labels(schedule).inc()
            return
        if succeeded:
            self.backup_success.labels(schedule).inc()
            self.backup_last_successful.labels(schedule).set(self._clock())
        elif phase == "PartiallyFailed":
            self.backup_partial_failure.labels(schedule).inc()
        else:
            self.backup_failure.labels(schedule).inc()
        if duration_s is not None:
            self.backup_duration.labels(schedule).observe(max(duration_s, 0.0))
        if items is not None:
            self.backup_items.labels(schedule).set(items)
        self.backup_item_errors.labels(schedule).set(errors)
        if warnings > 0:
            self.backup_warning.labels(schedule).inc()
        if size is not None:
            self.backup_tarball_size.labels(schedule).set(size)

    def backup_deletion_attempted(self, schedule: str = "") -> None:
        """A DeleteBackupRequest starts deleting a backup."""
        self.backup_deletion_attempt.labels(schedule).inc()

    def backup_deleted(self, schedule: str, success: bool) -> None:
        """A backup deletion ended: its files and resource are gone, or something remains."""
        (self.backup_deletion_success if success else self.backup_deletion_failure).labels(schedule).inc()

    # -- restores --------------------------------------------------------------

    def restores_counted(self, total: int) -> None:
        """How many Restore resources exist now."""
        self.restore_total.set(total)

    def restore_attempted(self, schedule: str = "") -> None:
        """A restore starts (Velero counts the attempt before validating it)."""
        self.restore_attempt.labels(schedule).inc()

    def restore_finished(
        self,
        schedule: str,
        phase: str,
        *,
        duration_s: float | None = None,
        items: int | None = None,
        errors: int = 0,
    ) -> None:
        """A restore reached a terminal phase (one of ``RESTORE_PHASES``)."""
        if phase not in RESTORE_PHASES:
            raise ValueError(f"not a finished restore's phase: {phase!r} (expected one of {RESTORE_PHASES})")
        if phase == "FailedValidation":
            self.restore_validation_failed.labels(schedule).inc()
            return
        {
            "Completed": self.restore_success,
            "PartiallyFailed": self.restore_partial_failure,
            "Failed": self.restore_failed,
        }[phase].labels(schedule).inc()
        if duration_s is not None:
            self.restore_duration.labels(schedule).observe(max(duration_s, 0.0))
        if items is not None:
            self.restore_items.labels(schedule).set(items)
        self.restore_item_errors.labels(schedule).set(errors)

    # -- locations -------------------------------------------------------------

    def location_checked(self, name: str, available: bool) -> None:
        """A BackupStorageLocation was validated: 1 when Available, 0 when Unavailable."""
        self.location_status.labels(name).set(1.0 if available else 0.0)

    def remove_location(self, name: str) -> None:
        """A deleted location's series goes away (a stale 0 would page someone forever)."""
        try:
            self.location_status.remove(name)
        except KeyError:
            return

    # -- exposition ------------------------------------------------------------

    def render(self) -> tuple[bytes, str]:
        """The body and content type of a ``/metrics`` answer (Prometheus text format 0.0.4)."""
        return generate_latest(_WithoutCreated(self.registry)), _CONTENT_TYPE
