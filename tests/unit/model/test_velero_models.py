"""The velero.io/v1 models must read and write what Velero reads and writes, losing nothing."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from strongroom.errors import UsageError
from strongroom.model.duration import parse_duration
from strongroom.model.velero import (
    API_VERSION,
    Backup,
    BackupPhase,
    BackupSpec,
    BackupStorageLocation,
    BackupStorageLocationAccessMode,
    BackupStorageLocationPhase,
    ExistingResourcePolicy,
    HookErrorMode,
    ModelError,
    Restore,
    RestorePhase,
    format_timestamp,
)

FIXTURE = Path(__file__).parent / "data" / "velero-backup.json"


def fixture_text() -> str:
    return FIXTURE.read_text(encoding="utf-8")


def fixture() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fixture_text())
    return data


def extras(model: BaseModel, path: str = "") -> dict[str, Any]:
    """Every field that landed in model_extra anywhere in the tree (i.e. was not recognised)."""
    found: dict[str, Any] = {}
    for key, value in (model.model_extra or {}).items():
        found[f"{path}{key}"] = value
    for name in type(model).model_fields:
        value = getattr(model, name)
        children = value if isinstance(value, list) else [value]
        for index, child in enumerate(children):
            if isinstance(child, BaseModel):
                suffix = f"[{index}]" if isinstance(value, list) else ""
                found.update(extras(child, f"{path}{name}{suffix}."))
    return found


# ---------------------------------------------------------------------------
# velero-backup.json
# ---------------------------------------------------------------------------


def test_velero_backup_json_round_trips_unchanged() -> None:
    backup = Backup.from_manifest(fixture())
    assert backup.to_manifest() == fixture()


def test_written_manifest_has_veleros_key_order() -> None:
    # Velero writes velero-backup.json with two-space indentation in Go struct order.
    written = json.dumps(Backup.from_manifest(fixture()).to_manifest(), indent=2)
    assert written == fixture_text().rstrip("\n")


def test_every_velero_field_of_the_fixture_is_modelled() -> None:
    backup = Backup.from_manifest(fixture())
    # managedFields is opaque server bookkeeping, kept verbatim.
    assert extras(backup) == {"metadata.managedFields": fixture()["metadata"]["managedFields"]}


def test_backup_fields_are_typed() -> None:
    backup = Backup.from_manifest(fixture())
    assert backup.metadata.name == "nginx-daily-20240701020000"
    assert backup.metadata.creation_timestamp == datetime(2024, 7, 1, 2, 0, tzinfo=UTC)
    assert backup.metadata.owner_references is not None
    assert backup.metadata.owner_references[0].controller is True
    spec = backup.spec
    assert spec.included_namespaces == ["nginx-example"]
    assert spec.include_cluster_resources is False
    assert spec.snapshot_volumes is True
    assert spec.ttl is not None
    assert parse_duration(spec.ttl) == timedelta(days=30)
    assert spec.ordered_resources == {
        "persistentvolumes": "pvc-3f2a,pvc-9b1c",
        "pods": "nginx-example/web-0,nginx-example/web-1",
    }
    assert spec.resource_policy is not None
    assert spec.resource_policy.name == "skip-nfs-volumes"
    assert spec.uploader_config is not None
    assert spec.uploader_config.parallel_files_upload == 4
    assert spec.hooks is not None
    assert spec.hooks.resources is not None
    hook = spec.hooks.resources[0]
    assert hook.pre_hooks is not None
    assert hook.pre_hooks[0].exec.command == ["/sbin/fsfreeze", "--freeze", "/var/log/nginx"]
    assert hook.pre_hooks[0].exec.on_error is HookErrorMode.FAIL
    assert spec.label_selector is not None
    selector = spec.label_selector.to_selector()
    assert selector.matches({"app": "nginx", "tier": "web"})
    assert not selector.matches({"app": "nginx", "tier": "db"})
    status = backup.status
    assert status.phase is BackupPhase.COMPLETED
    assert status.format_version == "1.1.0"
    assert status.expiration == datetime(2024, 7, 31, 2, 0, tzinfo=UTC)
    assert status.progress is not None
    assert (status.progress.total_items, status.progress.items_backed_up) == (31, 31)
    assert status.hook_status is not None
    assert status.hook_status.hooks_attempted == 2


def test_fields_from_a_newer_velero_are_kept() -> None:
    data = fixture()
    data["metadata"]["someNewMetadata"] = "kept"
    data["spec"]["volumePolicyV2"] = {"rules": [{"action": "skip"}]}
    data["spec"]["hooks"]["resources"][0]["pre"][0]["exec"]["retries"] = 3
    data["spec"]["labelSelector"]["matchExpressions"][0]["futureHint"] = True
    data["status"]["phase"] = "Archived"
    data["status"]["archivedTimestamp"] = "2025-01-01T00:00:00Z"
    backup = Backup.from_manifest(copy.deepcopy(data))
    assert backup.to_manifest() == data
    assert backup.status.phase == "Archived"
    assert backup.status.phase is not None
    assert not backup.status.phase.is_known
    assert BackupPhase.COMPLETED.is_known


def test_new_backup_writes_only_type_meta_and_empty_sections() -> None:
    assert Backup().to_manifest() == {
        "kind": "Backup",
        "apiVersion": API_VERSION,
        "metadata": {},
        "spec": {},
        "status": {},
    }


def test_python_names_and_go_names_both_populate_fields() -> None:
    by_name = BackupSpec(included_namespaces=["a"], default_volumes_to_fs_backup=True, data_mover="velero")
    by_alias = BackupSpec.model_validate(
        {"includedNamespaces": ["a"], "defaultVolumesToFsBackup": True, "datamover": "velero"}
    )
    assert by_name == by_alias
    assert by_name.model_dump(by_alias=True, exclude_none=True) == {
        "includedNamespaces": ["a"],
        "defaultVolumesToFsBackup": True,
        "datamover": "velero",
    }


def test_ttl_accepts_a_timedelta_and_stores_gos_form() -> None:
    assert BackupSpec(ttl=timedelta(days=30)).ttl == "720h0m0s"  # type: ignore[arg-type]


def test_ttl_is_validated_on_assignment() -> None:
    spec = BackupSpec()
    with pytest.raises(ValidationError, match='time: unknown unit "d" in duration "3d"'):
        spec.ttl = "3d"


# --- errors ----------------------------------------------------------------------


def test_bad_ttl_is_reported_with_its_field_and_gos_message() -> None:
    data = fixture()
    data["spec"]["ttl"] = "3d"
    with pytest.raises(ModelError) as caught:
        Backup.from_manifest(data)
    assert caught.value.fields == ("spec.ttl",)
    assert str(caught.value) == (
        'invalid Backup \'nginx-daily-20240701020000\': spec.ttl: time: unknown unit "d" in duration "3d"'
    )


def test_every_bad_field_is_named() -> None:
    data = fixture()
    data["spec"]["csiSnapshotTimeout"] = "10"
    data["spec"]["hooks"]["resources"][0]["pre"][0]["exec"]["command"] = []
    data["status"]["startTimestamp"] = "yesterday"
    data["status"]["warnings"] = "many"
    with pytest.raises(ModelError) as caught:
        Backup.from_manifest(data)
    assert set(caught.value.fields) == {
        "spec.csiSnapshotTimeout",
        "spec.hooks.resources[0].pre[0].exec.command",
        "status.startTimestamp",
        "status.warnings",
    }
    assert 'time: missing unit in duration "10"' in str(caught.value)
    assert "invalid RFC 3339 timestamp 'yesterday'" in str(caught.value)


def test_model_error_is_a_value_error_and_a_usage_error() -> None:
    with pytest.raises(ValueError, match="apiVersion"):
        Backup.from_manifest({"apiVersion": "ark.heptio.com/v1", "kind": "Backup"})
    assert issubclass(ModelError, UsageError)


def test_wrong_kind_is_refused() -> None:
    with pytest.raises(ModelError, match="kind: expected kind 'Backup', got 'Restore'"):
        Backup.from_manifest({"apiVersion": API_VERSION, "kind": "Restore"})


def test_missing_type_meta_defaults_to_the_model() -> None:
    backup = Backup.from_manifest({"metadata": {"name": "b"}})
    assert (backup.kind, backup.api_version) == ("Backup", API_VERSION)


def test_non_object_manifest_is_refused() -> None:
    with pytest.raises(ModelError, match="must be a JSON object, not list"):
        Backup.from_manifest([])  # type: ignore[arg-type]


# --- timestamps ------------------------------------------------------------------


def test_timestamps_are_written_as_utc_seconds_with_z() -> None:
    backup = Backup()
    backup.status.start_timestamp = datetime(2024, 7, 1, 4, 0, 5, 999999, tzinfo=timezone(timedelta(hours=2)))
    assert backup.to_manifest()["status"]["startTimestamp"] == "2024-07-01T02:00:05Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-07-01T02:00:00Z", datetime(2024, 7, 1, 2, 0, tzinfo=UTC)),
        ("2024-07-01T04:00:00+02:00", datetime(2024, 7, 1, 2, 0, tzinfo=UTC)),
        ("2024-07-01t02:00:00.123456789z", datetime(2024, 7, 1, 2, 0, 0, 123456, tzinfo=UTC)),
    ],
)
def test_rfc3339_timestamps_are_read(text: str, expected: datetime) -> None:
    backup = Backup.from_manifest({"status": {"completionTimestamp": text}})
    assert backup.status.completion_timestamp == expected


@pytest.mark.parametrize(
    "text", ["2024-07-01", "2024-07-01 02:00:00Z", "2024-07-01T02:00:00", "2024-13-01T00:00:00Z"]
)
def test_non_rfc3339_timestamps_are_refused(text: str) -> None:
    with pytest.raises(ModelError, match=r"status\.expiration"):
        Backup.from_manifest({"status": {"expiration": text}})


def test_naive_datetime_is_refused() -> None:
    with pytest.raises(ValidationError, match="time zone"):
        Backup().status.expiration = datetime(2024, 1, 1)


def test_format_timestamp_pads_small_years() -> None:
    assert format_timestamp(datetime(9, 1, 2, 3, 4, 5, tzinfo=UTC)) == "0009-01-02T03:04:05Z"


# --- enums -----------------------------------------------------------------------


def test_backup_phases_are_veleros() -> None:
    assert [phase.value for phase in BackupPhase] == [
        "New",
        "Queued",
        "ReadyToStart",
        "FailedValidation",
        "InProgress",
        "WaitingForPluginOperations",
        "WaitingForPluginOperationsPartiallyFailed",
        "Finalizing",
        "FinalizingPartiallyFailed",
        "Completed",
        "PartiallyFailed",
        "Failed",
        "Deleting",
    ]


def test_restore_phases_are_veleros() -> None:
    assert [phase.value for phase in RestorePhase] == [
        "New",
        "FailedValidation",
        "InProgress",
        "WaitingForPluginOperations",
        "WaitingForPluginOperationsPartiallyFailed",
        "Completed",
        "PartiallyFailed",
        "Failed",
        "Finalizing",
        "FinalizingPartiallyFailed",
    ]


def test_location_enums_are_veleros() -> None:
    assert [phase.value for phase in BackupStorageLocationPhase] == ["Available", "Unavailable"]
    assert [mode.value for mode in BackupStorageLocationAccessMode] == ["ReadOnly", "ReadWrite"]
    assert [policy.value for policy in ExistingResourcePolicy] == ["none", "update"]


def test_schema_lists_only_known_enum_values_and_precise_types() -> None:
    schema = Backup.model_json_schema(by_alias=True)
    definitions = schema["$defs"]
    assert definitions["BackupPhase"]["enum"] == [phase.value for phase in BackupPhase]
    status = definitions["BackupStatus"]["properties"]
    assert {"type": "string", "format": "date-time"} in status["startTimestamp"]["anyOf"]
    assert {"type": "integer"} in status["warnings"]["anyOf"]
    spec = definitions["BackupSpec"]["properties"]
    assert {"type": "string"} in spec["ttl"]["anyOf"]
    assert {"type": "boolean"} in spec["includeClusterResources"]["anyOf"]
    assert "datamover" in spec
    assert definitions["ExecHook"]["required"] == ["command"]


# ---------------------------------------------------------------------------
# Restore
# ---------------------------------------------------------------------------


def restore_manifest() -> dict[str, Any]:
    return {
        "kind": "Restore",
        "apiVersion": "velero.io/v1",
        "metadata": {"name": "nginx-restore", "namespace": "openshift-adp"},
        "spec": {
            "backupName": "nginx-daily-20240701020000",
            "includedNamespaces": ["nginx-example"],
            "excludedResources": ["nodes", "events"],
            "namespaceMapping": {"nginx-example": "nginx-restored"},
            "orLabelSelectors": [{"matchLabels": {"app": "nginx"}}, {"matchLabels": {"app": "redis"}}],
            "restorePVs": True,
            "restoreStatus": {"includedResources": ["workflows.argoproj.io"]},
            "preserveNodePorts": True,
            "includeClusterResources": None,
            "hooks": {
                "resources": [
                    {
                        "name": "warm-cache",
                        "postHooks": [
                            {
                                "exec": {
                                    "command": ["/bin/warm"],
                                    "execTimeout": "1m0s",
                                    "waitTimeout": "5m0s",
                                    "waitForReady": True,
                                }
                            },
                            {
                                "init": {
                                    "initContainers": [{"name": "seed", "image": "busybox"}],
                                    "timeout": "2m",
                                }
                            },
                        ],
                    }
                ]
            },
            "existingResourcePolicy": "update",
            "itemOperationTimeout": "4h0m0s",
            "resourceModifier": {"kind": "ConfigMap", "name": "modifiers"},
            "uploaderConfig": {"writeSparseFiles": True, "parallelFilesDownload": 8},
        },
        "status": {
            "phase": "PartiallyFailed",
            "warnings": 2,
            "errors": 1,
            "startTimestamp": "2024-07-02T09:00:00Z",
            "completionTimestamp": "2024-07-02T09:01:10Z",
            "progress": {"totalItems": 20, "itemsRestored": 19},
        },
    }


def test_restore_round_trips_and_is_typed() -> None:
    data = restore_manifest()
    restore = Restore.from_manifest(copy.deepcopy(data))
    expected = copy.deepcopy(data)
    del expected["spec"]["includeClusterResources"]  # null is written as absent, as Go omits nil
    assert restore.to_manifest() == expected
    assert extras(restore) == {}
    spec = restore.spec
    assert spec.restore_pvs is True
    assert spec.namespace_mapping == {"nginx-example": "nginx-restored"}
    assert spec.include_cluster_resources is None
    assert spec.restore_status is not None
    assert spec.restore_status.included_resources == ["workflows.argoproj.io"]
    assert spec.existing_resource_policy == ExistingResourcePolicy.UPDATE
    assert spec.or_label_selectors is not None
    assert len(spec.or_label_selectors) == 2
    assert restore.status.phase is RestorePhase.PARTIALLY_FAILED
    assert restore.status.progress is not None
    assert restore.status.progress.items_restored == 19


def test_restore_keeps_an_unknown_existing_resource_policy_for_validation_to_report() -> None:
    data = restore_manifest()
    data["spec"]["existingResourcePolicy"] = "overwrite"
    assert Restore.from_manifest(data).spec.existing_resource_policy == "overwrite"


def test_restore_hook_timeouts_are_go_durations() -> None:
    data = restore_manifest()
    data["spec"]["hooks"]["resources"][0]["postHooks"][0]["exec"]["waitTimeout"] = "five minutes"
    with pytest.raises(ModelError) as caught:
        Restore.from_manifest(data)
    assert caught.value.fields == ("spec.hooks.resources[0].postHooks[0].exec.waitTimeout",)


# ---------------------------------------------------------------------------
# BackupStorageLocation
# ---------------------------------------------------------------------------


def location_manifest() -> dict[str, Any]:
    return {
        "kind": "BackupStorageLocation",
        "apiVersion": "velero.io/v1",
        "metadata": {"name": "default", "namespace": "openshift-adp"},
        "spec": {
            "provider": "aws",
            "config": {"region": "us-east-1", "s3ForcePathStyle": "true"},
            "credential": {"name": "cloud-credentials", "key": "cloud"},
            "objectStorage": {"bucket": "backups", "prefix": "velero", "caCert": "LS0tLS1CRUdJTg=="},
            "default": True,
            "accessMode": "ReadWrite",
            "backupSyncPeriod": "1m0s",
            "validationFrequency": "0s",
        },
        "status": {
            "phase": "Available",
            "lastValidationTime": "2024-07-01T02:00:00Z",
            "lastSyncedTime": "2024-07-01T01:59:00Z",
        },
    }


def test_location_round_trips_and_is_typed() -> None:
    data = location_manifest()
    location = BackupStorageLocation.from_manifest(copy.deepcopy(data))
    assert location.to_manifest() == data
    assert extras(location) == {}
    assert location.spec.object_storage.ca_cert == b"-----BEGIN"
    assert location.spec.access_mode is BackupStorageLocationAccessMode.READ_WRITE
    assert location.status.phase is BackupStorageLocationPhase.AVAILABLE
    assert location.validation_errors() == []


def test_location_needs_provider_and_bucket() -> None:
    data = location_manifest()
    del data["spec"]["provider"]
    del data["spec"]["objectStorage"]["bucket"]
    with pytest.raises(ModelError) as caught:
        BackupStorageLocation.from_manifest(data)
    assert set(caught.value.fields) == {"spec.provider", "spec.objectStorage.bucket"}


def test_location_refuses_ca_cert_and_ca_cert_ref_together() -> None:
    data = location_manifest()
    data["spec"]["objectStorage"]["caCertRef"] = {"name": "ca", "key": "ca.crt"}
    location = BackupStorageLocation.from_manifest(data)
    assert location.validation_errors() == ["cannot specify both caCert and caCertRef in objectStorage"]


def test_location_ca_cert_must_be_base64() -> None:
    data = location_manifest()
    data["spec"]["objectStorage"]["caCert"] = "not base64!"
    with pytest.raises(ModelError, match=r"spec\.objectStorage\.caCert: invalid base64 data"):
        BackupStorageLocation.from_manifest(data)


def test_location_sync_period_is_a_go_duration() -> None:
    data = location_manifest()
    data["spec"]["backupSyncPeriod"] = "1 minute"
    with pytest.raises(ModelError, match=r"spec\.backupSyncPeriod: time: unknown unit"):
        BackupStorageLocation.from_manifest(data)
