"""The server's metrics: Velero's names and labels, moved by backup, restore and location events."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from strongroom.controller.metrics import BACKUP_DURATION_BUCKETS, ServerMetrics


def samples(metrics: ServerMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the rendered exposition, by name and sorted labels."""
    body, _ = metrics.render()
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(metrics: ServerMetrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, tuple(sorted(labels.items()))))


def test_render_serves_the_prometheus_text_format() -> None:
    body, content_type = ServerMetrics().render()
    assert content_type.startswith("text/plain; version=0.0.4")
    assert b"# TYPE velero_backup_attempt_total counter" in body


def test_a_fresh_server_shows_velero_counters_for_hand_made_backups_at_zero() -> None:
    metrics = ServerMetrics()
    for name in (
        "velero_backup_attempt_total",
        "velero_backup_success_total",
        "velero_backup_partial_failure_total",
        "velero_backup_failure_total",
        "velero_backup_validation_failure_total",
        "velero_backup_deletion_attempt_total",
        "velero_restore_attempt_total",
        "velero_restore_success_total",
        "velero_restore_partial_failure_total",
        "velero_restore_failed_total",
        "velero_restore_validation_failed_total",
    ):
        assert value(metrics, name, schedule="") == 0, name
    assert value(metrics, "velero_backup_total") == 0
    assert value(metrics, "velero_restore_total") == 0


def test_no_created_series_beside_counters_as_velero_serves_none() -> None:
    body, _ = ServerMetrics().render()
    assert b"_created" not in body


def test_a_completed_scheduled_backup_moves_velero_counters_and_gauges() -> None:
    metrics = ServerMetrics(clock=lambda: 1_700_000_000.0)
    metrics.register_schedule("daily")
    metrics.backup_attempted("daily")
    metrics.backup_finished("daily", "Completed", duration_s=90, items=42, errors=0, warnings=2, size=4096)

    assert value(metrics, "velero_backup_attempt_total", schedule="daily") == 1
    assert value(metrics, "velero_backup_success_total", schedule="daily") == 1
    assert value(metrics, "velero_backup_failure_total", schedule="daily") == 0
    assert value(metrics, "velero_backup_items_total", schedule="daily") == 42
    assert value(metrics, "velero_backup_items_errors", schedule="daily") == 0
    assert value(metrics, "velero_backup_warning_total", schedule="daily") == 1
    assert value(metrics, "velero_backup_tarball_size_bytes", schedule="daily") == 4096
    assert value(metrics, "velero_backup_last_successful_timestamp", schedule="daily") == 1_700_000_000
    assert value(metrics, "velero_backup_last_status", schedule="daily") == 1
    assert value(metrics, "velero_backup_duration_seconds_count", schedule="daily") == 1
    assert value(metrics, "velero_backup_duration_seconds_sum", schedule="daily") == 90
    # 90 s falls in Velero's 5-minute bucket, not its 1-minute one.
    assert value(metrics, "velero_backup_duration_seconds_bucket", schedule="daily", le="60.0") == 0
    assert value(metrics, "velero_backup_duration_seconds_bucket", schedule="daily", le="300.0") == 1
    # Hand-made backups are counted apart.
    assert value(metrics, "velero_backup_attempt_total", schedule="") == 0


def test_the_backup_duration_histogram_has_velero_buckets() -> None:
    metrics = ServerMetrics()
    metrics.backup_finished("", "Failed", duration_s=1)
    bounds = sorted(
        float(dict(labels)["le"])
        for (name, labels) in samples(metrics)
        if name == "velero_backup_duration_seconds_bucket"
    )
    assert bounds == [*BACKUP_DURATION_BUCKETS, float("inf")]


@pytest.mark.parametrize(
    ("phase", "counter"),
    [
        ("PartiallyFailed", "velero_backup_partial_failure_total"),
        ("Failed", "velero_backup_failure_total"),
        ("FailedValidation", "velero_backup_validation_failure_total"),
    ],
)
def test_an_unsuccessful_backup_counts_its_phase_and_sets_last_status_to_failure(
    phase: str, counter: str
) -> None:
    metrics = ServerMetrics()
    metrics.backup_finished("nightly", phase, duration_s=5, items=3, errors=1)

    assert value(metrics, counter, schedule="nightly") == 1
    assert value(metrics, "velero_backup_success_total", schedule="nightly") is None
    assert value(metrics, "velero_backup_last_status", schedule="nightly") == 0
    assert value(metrics, "velero_backup_last_successful_timestamp", schedule="nightly") is None


def test_a_backup_that_failed_validation_never_ran_so_has_no_duration_or_items() -> None:
    metrics = ServerMetrics()
    metrics.backup_finished("", "FailedValidation", duration_s=5, items=3)

    assert value(metrics, "velero_backup_duration_seconds_count", schedule="") is None
    assert value(metrics, "velero_backup_items_total", schedule="") == 0


def test_an_unknown_phase_is_refused() -> None:
    metrics = ServerMetrics()
    with pytest.raises(ValueError, match="InProgress"):
        metrics.backup_finished("", "InProgress")
    with pytest.raises(ValueError, match="New"):
        metrics.restore_finished("", "New")


def test_restores_move_velero_counters_and_our_duration_and_items() -> None:
    metrics = ServerMetrics()
    metrics.restore_attempted("daily")
    metrics.restore_finished("daily", "PartiallyFailed", duration_s=12, items=30, errors=2)
    metrics.restore_attempted("daily")
    metrics.restore_finished("daily", "FailedValidation")
    metrics.restores_counted(2)

    assert value(metrics, "velero_restore_attempt_total", schedule="daily") == 2
    assert value(metrics, "velero_restore_partial_failure_total", schedule="daily") == 1
    assert value(metrics, "velero_restore_validation_failed_total", schedule="daily") == 1
    assert value(metrics, "velero_restore_total") == 2
    assert value(metrics, "strongroom_restore_duration_seconds_count", schedule="daily") == 1
    assert value(metrics, "strongroom_restore_duration_seconds_sum", schedule="daily") == 12
    assert value(metrics, "strongroom_restore_items_total", schedule="daily") == 30
    assert value(metrics, "strongroom_restore_items_errors", schedule="daily") == 2


def test_location_availability_uses_velero_gauge_and_label() -> None:
    metrics = ServerMetrics()
    metrics.location_checked("default", True)
    metrics.location_checked("secondary", False)

    assert value(metrics, "velero_backup_location_status_gauge", backup_location_name="default") == 1
    assert value(metrics, "velero_backup_location_status_gauge", backup_location_name="secondary") == 0

    metrics.location_checked("default", False)
    metrics.remove_location("secondary")
    metrics.remove_location("never-seen")
    assert value(metrics, "velero_backup_location_status_gauge", backup_location_name="default") == 0
    assert value(metrics, "velero_backup_location_status_gauge", backup_location_name="secondary") is None


def test_backup_deletions_count_attempts_successes_and_failures() -> None:
    metrics = ServerMetrics()
    metrics.backup_deletion_attempted("daily")
    metrics.backup_deleted("daily", success=True)
    metrics.backup_deletion_attempted("daily")
    metrics.backup_deleted("daily", success=False)
    metrics.backups_counted(7)

    assert value(metrics, "velero_backup_deletion_attempt_total", schedule="daily") == 2
    assert value(metrics, "velero_backup_deletion_success_total", schedule="daily") == 1
    assert value(metrics, "velero_backup_deletion_failure_total", schedule="daily") == 1
    assert value(metrics, "velero_backup_total") == 7


def test_removing_a_schedule_drops_all_its_series_and_keeps_the_others() -> None:
    metrics = ServerMetrics()
    metrics.register_schedule("weekly")
    metrics.schedule_interval_set("weekly", 604800)
    metrics.backup_attempted("weekly")
    metrics.backup_finished("weekly", "Completed", duration_s=3, items=1, size=10)
    metrics.backup_attempted("")

    metrics.remove_schedule("weekly")
    metrics.remove_schedule("weekly")  # twice is harmless

    assert not [key for key in samples(metrics) if ("schedule", "weekly") in key[1]]
    assert value(metrics, "velero_backup_attempt_total", schedule="") == 1


def test_two_servers_in_one_process_do_not_share_counters() -> None:
    first, second = ServerMetrics(), ServerMetrics()
    first.backup_attempted("")
    assert value(first, "velero_backup_attempt_total", schedule="") == 1
    assert value(second, "velero_backup_attempt_total", schedule="") == 0
