"""Label values and keys must be exactly Velero's, or Velero and strongroom would not find each other's objects."""

from __future__ import annotations

import hashlib

import pytest

from strongroom.model import labels
from strongroom.model.labels import (
    backup_name_selector,
    name_or_hash,
    restore_name_selector,
    valid_label_value,
)
from strongroom.model.selectors import label_value_errors

# Velero's own cases (pkg/label/label_test.go).
LONG = "this_is_a_very_long_label_value_that_will_be_rejected_by_Kubernetes"


def test_short_label_value_is_unchanged() -> None:
    assert valid_label_value("short label value") == "short label value"


def test_long_label_value_is_cut_and_hashed_as_velero_does() -> None:
    assert valid_label_value(LONG) == "this_is_a_very_long_label_value_that_will_be_rejected_by_8d0722"


def test_value_of_exactly_63_characters_is_unchanged() -> None:
    value = "a" * 63
    assert valid_label_value(value) == value


def test_value_of_64_characters_keeps_57_and_six_hex_digits_of_its_sha256() -> None:
    value = "b" * 64
    shortened = valid_label_value(value)
    assert shortened == "b" * 57 + hashlib.sha256(value.encode()).hexdigest()[:6]
    assert len(shortened) == 63


def test_long_backup_name_becomes_a_valid_label_value() -> None:
    name = "nightly-" + "x" * 200
    assert label_value_errors(valid_label_value(name)) == []


def test_length_is_counted_in_bytes_like_go() -> None:
    # 32 two-byte characters are 64 bytes: too long for Velero although only 32 characters.
    value = "\u00e9" * 32
    shortened = valid_label_value(value)
    assert shortened != value
    assert len(shortened.encode("utf-8", "surrogateescape")) == 63


def test_name_or_hash_matches_velero() -> None:
    assert name_or_hash("short label value") == "short label value"
    assert name_or_hash(LONG) == "1a7399f2d00e268fc12daf431d6667319d1461e2609981070bb7e85c"


def test_selector_for_backup_matches_velero() -> None:
    assert backup_name_selector("my-backup") == "velero.io/backup-name=my-backup"
    assert backup_name_selector(LONG) == f"velero.io/backup-name={valid_label_value(LONG)}"


def test_selector_for_restore() -> None:
    assert restore_name_selector("r1") == "velero.io/restore-name=r1"


@pytest.mark.parametrize(
    ("constant", "value"),
    [
        (labels.BACKUP_NAME_LABEL, "velero.io/backup-name"),
        (labels.BACKUP_UID_LABEL, "velero.io/backup-uid"),
        (labels.RESTORE_NAME_LABEL, "velero.io/restore-name"),
        (labels.RESTORE_UID_LABEL, "velero.io/restore-uid"),
        (labels.SCHEDULE_NAME_LABEL, "velero.io/schedule-name"),
        (labels.STORAGE_LOCATION_LABEL, "velero.io/storage-location"),
        (labels.EXCLUDE_FROM_BACKUP_LABEL, "velero.io/exclude-from-backup"),
        (labels.POD_UID_LABEL, "velero.io/pod-uid"),
        (labels.PVC_UID_LABEL, "velero.io/pvc-uid"),
        (labels.VOLUMES_TO_BACKUP_ANNOTATION, "backup.velero.io/backup-volumes"),
        (labels.VOLUMES_TO_EXCLUDE_ANNOTATION, "backup.velero.io/backup-volumes-excludes"),
        (labels.RESOURCE_TIMEOUT_ANNOTATION, "velero.io/resource-timeout"),
        (labels.SOURCE_CLUSTER_K8S_GIT_VERSION_ANNOTATION, "velero.io/source-cluster-k8s-gitversion"),
        (labels.POD_VOLUME_OPERATION_TIMEOUT_ANNOTATION, "velero.io/pod-volume-timeout"),
    ],
)
def test_keys_are_veleros(constant: str, value: str) -> None:
    assert constant == value
