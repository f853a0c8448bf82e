"""Schedules as Velero runs them: cron expressions, when the next backup is due, and the backup made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from strongroom.controller.schedules import backup_for_schedule, next_run, validation_errors
from strongroom.model.cron import CronError, parse_cron

NOW = datetime(2026, 11, 25, 10, 0, 30, tzinfo=UTC)


def schedule(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "velero.io/v1",
        "kind": "Schedule",
        "metadata": {
            "name": "nightly",
            "namespace": "openshift-adp",
            "uid": "1234",
            "creationTimestamp": "2026-11-25T09:00:00Z",
        },
        "spec": {"schedule": "0 7 * * *", "template": {"includedNamespaces": ["app"]}, **spec},
    }


@pytest.mark.parametrize(
    ("expression", "after", "expected"),
    [
        ("0 7 * * *", NOW, datetime(2026, 11, 26, 7, 0, tzinfo=UTC)),
        ("*/15 * * * *", NOW, datetime(2026, 11, 25, 10, 15, tzinfo=UTC)),
        ("0 0 * * MON", NOW, datetime(2026, 11, 30, 0, 0, tzinfo=UTC)),
        ("@daily", NOW, datetime(2026, 11, 26, 0, 0, tzinfo=UTC)),
        ("@hourly", NOW, datetime(2026, 11, 25, 11, 0, tzinfo=UTC)),
        ("@every 90s", NOW, datetime(2026, 11, 25, 10, 2, 0, tzinfo=UTC)),
        ("@every 6h", NOW, datetime(2026, 11, 25, 16, 0, 30, tzinfo=UTC)),
    ],
)
def test_the_next_activation_follows_the_cron(expression: str, after: datetime, expected: datetime) -> None:
    assert parse_cron(expression).next(after) == expected


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("", "non-empty"),
        ("0 7 * *", "expected exactly 5 fields, found 4"),
        ("0 0 7 * * *", "expected exactly 5 fields, found 6"),
        ("61 * * * *", "61 * * * *"),
        ("0 25 * * *", "0 25 * * *"),
        ("@fortnightly", "unrecognized descriptor"),
        ("@every soon", "failed to parse duration"),
    ],
)
def test_invalid_cron_expressions_are_refused_with_the_reason(expression: str, fragment: str) -> None:
    with pytest.raises(CronError) as caught:
        parse_cron(expression)
    assert fragment in str(caught.value)


def test_a_schedule_is_checked_with_its_backup_template() -> None:
    cron, errors = validation_errors(schedule())
    assert cron is not None and errors == []

    _, errors = validation_errors(
        schedule(
            schedule="not cron",
            template={
                "labelSelector": {"matchLabels": {"a": "b"}},
                "orLabelSelectors": [{"matchLabels": {"c": "d"}}],
            },
        )
    )
    assert errors[0].startswith("invalid schedule")
    assert any(error.startswith("template:") and "orLabelSelectors" in error for error in errors)


def test_a_new_schedule_is_next_due_after_its_creation_then_after_its_last_backup() -> None:
    cron = parse_cron("0 7 * * *")
    new = schedule()
    assert next_run(new, cron) == datetime(2026, 11, 26, 7, 0, tzinfo=UTC)

    ran = schedule()
    ran["status"] = {"lastBackup": "2026-11-26T07:00:05Z"}
    assert next_run(ran, cron) == datetime(2026, 11, 27, 7, 0, tzinfo=UTC)


def test_a_skipped_run_counts_as_the_last_one() -> None:
    cron = parse_cron("0 * * * *")
    skipped = schedule()
    skipped["status"] = {"lastBackup": "2026-11-20T07:00:00Z", "lastSkipped": "2026-11-25T10:00:30Z"}
    assert next_run(skipped, cron) == datetime(2026, 11, 25, 11, 0, tzinfo=UTC)


def test_the_backup_of_a_schedule_is_named_labelled_and_owned_as_velero_does() -> None:
    source = schedule(useOwnerReferencesInBackup=True)
    source["metadata"]["labels"] = {"team": "a"}
    source["metadata"]["annotations"] = {
        "note": "kept",
        "kubectl.kubernetes.io/last-applied-configuration": "{}",
    }
    backup = backup_for_schedule(source, datetime(2026, 11, 25, 7, 0, 1, tzinfo=UTC))

    assert backup["metadata"]["name"] == "nightly-20261125070001"
    assert backup["metadata"]["namespace"] == "openshift-adp"
    assert backup["metadata"]["labels"] == {"team": "a", "velero.io/schedule-name": "nightly"}
    assert backup["metadata"]["annotations"] == {"note": "kept"}
    assert backup["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "velero.io/v1",
            "kind": "Schedule",
            "name": "nightly",
            "uid": "1234",
            "controller": True,
        }
    ]
    assert backup["spec"] == {"includedNamespaces": ["app"]}


def test_template_labels_replace_the_schedules_labels() -> None:
    source = schedule(template={"metadata": {"labels": {"tier": "gold"}}, "ttl": "24h0m0s"})
    source["metadata"]["labels"] = {"team": "a"}
    backup = backup_for_schedule(source, NOW + timedelta(hours=1))
    assert backup["metadata"]["labels"] == {"tier": "gold", "velero.io/schedule-name": "nightly"}
    assert "ownerReferences" not in backup["metadata"]
    assert backup["spec"] == {"ttl": "24h0m0s"}
