"""Schedule, the request kinds, VolumeSnapshotLocation and the pod-volume kinds read and write Velero's JSON."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from strongroom.model.podvolume import (
    BackupRepository,
    BackupRepositoryPhase,
    PodVolumeBackup,
    PodVolumeOperationPhase,
    PodVolumeRestore,
    UploaderType,
)
from strongroom.model.requests import (
    DeleteBackupRequest,
    DeleteBackupRequestPhase,
    DownloadRequest,
    DownloadTargetKind,
    ServerStatusRequest,
)
from strongroom.model.schedule import Schedule, SchedulePhase
from strongroom.model.snapshotlocation import VolumeSnapshotLocation
from strongroom.model.velero import ModelError, _VeleroResource

SEED = Path(__file__).parents[2] / "data" / "seed"


def schedule_manifest() -> dict[str, Any]:
    return {
        "kind": "Schedule",
        "apiVersion": "velero.io/v1",
        "metadata": {"name": "nginx-daily", "namespace": "openshift-adp"},
        "spec": {
            "template": {
                "includedNamespaces": ["nginx-example"],
                "storageLocation": "velero-sample-1",
                "ttl": "720h0m0s",
                "defaultVolumesToFsBackup": True,
                "metadata": {"labels": {"team": "web"}},
            },
            "schedule": "0 7 * * *",
            "useOwnerReferencesInBackup": False,
            "paused": True,
            "skipImmediately": True,
        },
        "status": {
            "phase": "Enabled",
            "lastBackup": "2024-07-01T07:00:00Z",
            "lastSkipped": "2024-06-30T07:00:00Z",
            "validationErrors": ["bad"],
        },
    }


def velero_manifests() -> list[tuple[type[_VeleroResource], dict[str, Any]]]:
    """One manifest of each kind, every field set, as Velero writes them."""
    meta = {"name": "x", "namespace": "velero"}
    return [
        (Schedule, schedule_manifest()),
        (
            VolumeSnapshotLocation,
            {
                "kind": "VolumeSnapshotLocation",
                "apiVersion": "velero.io/v1",
                "metadata": meta,
                "spec": {
                    "provider": "aws",
                    "config": {"region": "us-west-2", "profile": "volumeSnapshot"},
                    "credential": {"name": "cloud-credentials", "key": "cloud"},
                },
                "status": {"phase": "Available"},
            },
        ),
        (
            DeleteBackupRequest,
            {
                "kind": "DeleteBackupRequest",
                "apiVersion": "velero.io/v1",
                "metadata": {**meta, "labels": {"velero.io/backup-name": "b1"}},
                "spec": {"backupName": "b1"},
                "status": {"phase": "Processed", "errors": ["error deleting backup file: boom"]},
            },
        ),
        (
            DownloadRequest,
            {
                "kind": "DownloadRequest",
                "apiVersion": "velero.io/v1",
                "metadata": meta,
                "spec": {"target": {"kind": "BackupLog", "name": "b1"}},
                "status": {
                    "phase": "Processed",
                    "downloadURL": "https://bucket.example/backups/b1/b1-logs.gz?sig=1",
                    "expiration": "2024-07-01T10:10:00Z",
                },
            },
        ),
        (
            ServerStatusRequest,
            {
                "kind": "ServerStatusRequest",
                "apiVersion": "velero.io/v1",
                "metadata": meta,
                "spec": {},
                "status": {
                    "phase": "Processed",
                    "processedTimestamp": "2024-07-01T10:00:00Z",
                    "serverVersion": "v1.14.0",
                    "plugins": [{"name": "velero.io/aws", "kind": "ObjectStore"}],
                },
            },
        ),
        (
            PodVolumeBackup,
            {
                "kind": "PodVolumeBackup",
                "apiVersion": "velero.io/v1",
                "metadata": meta,
                "spec": {
                    "node": "worker-0",
                    "pod": {"kind": "Pod", "namespace": "app", "name": "db-0", "uid": "u-1"},
                    "volume": "data",
                    "backupStorageLocation": "default",
                    "repoIdentifier": "s3:http://minio/velero/restic/app",
                    "uploaderType": "restic",
                    "tags": {"backup": "b1", "pod": "db-0"},
                    "uploaderSettings": {"a": "b"},
                    "cancel": False,
                },
                "status": {
                    "phase": "Completed",
                    "path": "/host_pods/u-1/volumes/kubernetes.io~csi/pvc-1/mount",
                    "snapshotID": "4f2c0d1e",
                    "message": "",
                    "startTimestamp": "2024-07-01T10:00:00Z",
                    "completionTimestamp": "2024-07-01T10:01:00Z",
                    "progress": {"totalBytes": 1048576, "bytesDone": 1048576},
                    "incrementalBytes": 4096,
                    "acceptedTimestamp": "2024-07-01T09:59:59Z",
                },
            },
        ),
        (
            PodVolumeRestore,
            {
                "kind": "PodVolumeRestore",
                "apiVersion": "velero.io/v1",
                "metadata": meta,
                "spec": {
                    "pod": {"kind": "Pod", "namespace": "app-copy", "name": "db-0"},
                    "volume": "data",
                    "backupStorageLocation": "default",
                    "repoIdentifier": "s3:http://minio/velero/restic/app",
                    "uploaderType": "",
                    "snapshotID": "4f2c0d1e",
                    "sourceNamespace": "app",
                    "snapshotSize": 1048576,
                },
                "status": {
                    "phase": "InProgress",
                    "progress": {"totalBytes": 10, "bytesDone": 3},
                    "node": "w",
                },
            },
        ),
        (
            BackupRepository,
            {
                "kind": "BackupRepository",
                "apiVersion": "velero.io/v1",
                "metadata": meta,
                "spec": {
                    "volumeNamespace": "app",
                    "backupStorageLocation": "default",
                    "repositoryType": "kopia",
                    "resticIdentifier": "s3:http://minio/velero/restic/app",
                    "maintenanceFrequency": "168h0m0s",
                    "repositoryConfig": {"cacheLimitMB": "1000"},
                },
                "status": {
                    "phase": "Ready",
                    "lastMaintenanceTime": "2024-07-01T10:00:00Z",
                    "recentMaintenance": [
                        {
                            "result": "Succeeded",
                            "startTimestamp": "2024-07-01T09:00:00Z",
                            "completeTimestamp": "2024-07-01T10:00:00Z",
                            "message": "",
                        }
                    ],
                },
            },
        ),
    ]


@pytest.mark.parametrize(("model", "manifest"), velero_manifests(), ids=lambda v: getattr(v, "KIND", ""))
def test_velero_manifests_round_trip_unchanged(
    model: type[_VeleroResource], manifest: dict[str, Any]
) -> None:
    assert model.from_manifest(copy.deepcopy(manifest)).to_manifest() == manifest


@pytest.mark.parametrize(("model", "manifest"), velero_manifests(), ids=lambda v: getattr(v, "KIND", ""))
def test_every_field_velero_writes_is_modelled(
    model: type[_VeleroResource], manifest: dict[str, Any]
) -> None:
    loaded = model.from_manifest(manifest)
    for part in ("spec", "status"):
        assert getattr(loaded, part).model_extra == {}, part


@pytest.mark.parametrize(("model", "manifest"), velero_manifests(), ids=lambda v: getattr(v, "KIND", ""))
def test_fields_and_phases_of_a_newer_velero_are_kept(
    model: type[_VeleroResource], manifest: dict[str, Any]
) -> None:
    newer = copy.deepcopy(manifest)
    newer["spec"]["futureSetting"] = {"x": 1}
    newer["status"]["phase"] = "Reticulating"
    loaded = model.from_manifest(newer)
    assert loaded.to_manifest() == newer
    phase = loaded.status.phase  # type: ignore[attr-defined]
    assert phase == "Reticulating"
    assert not phase.is_known


def test_schedule_reads_the_seed_example_and_names_its_backups_like_velero() -> None:
    schedule = Schedule.from_manifest(yaml.safe_load((SEED / "schedule.yaml").read_text()))
    assert schedule.spec.schedule == "0 7 * * *"
    assert schedule.spec.template.default_volumes_to_restic is True
    assert schedule.spec.template.ttl == "720h0m0s"
    assert schedule.spec.paused is None
    assert schedule.backup_name(datetime(2024, 7, 1, 7, 0, 5, tzinfo=UTC)) == "nginx-daily-20240701070005"


def test_schedule_status_uses_the_schedule_phases() -> None:
    schedule = Schedule.from_manifest(schedule_manifest())
    assert schedule.status.phase is SchedulePhase.ENABLED
    assert schedule.status.last_backup == datetime(2024, 7, 1, 7, tzinfo=UTC)
    assert [p.value for p in SchedulePhase] == ["New", "Enabled", "FailedValidation"]


def test_a_schedule_without_a_cron_expression_or_template_is_refused_naming_both() -> None:
    with pytest.raises(ModelError) as caught:
        Schedule.from_manifest({"metadata": {"name": "s"}, "spec": {}})
    assert caught.value.fields == ("spec.template", "spec.schedule")


def test_a_schedule_template_is_checked_like_a_backup_spec() -> None:
    manifest = schedule_manifest()
    manifest["spec"]["template"]["ttl"] = "30 days"
    with pytest.raises(ModelError) as caught:
        Schedule.from_manifest(manifest)
    assert caught.value.fields == ("spec.template.ttl",)


def test_a_schedule_without_a_name_cannot_name_backups() -> None:
    schedule = Schedule.from_manifest({"spec": {"schedule": "@daily", "template": {}}})
    with pytest.raises(ModelError, match=r"metadata\.name"):
        schedule.backup_name(datetime(2024, 7, 1, tzinfo=UTC))


def test_download_request_uses_go_initialism_for_the_url_and_knows_every_target_kind() -> None:
    request = DownloadRequest.from_manifest(dict(velero_manifests()[3][1]))
    assert request.status.download_url is not None
    assert request.to_manifest()["status"]["downloadURL"].startswith("https://")
    assert request.spec.target.kind is DownloadTargetKind.BACKUP_LOG
    assert len(list(DownloadTargetKind)) == 14
    assert DownloadTargetKind("CSIBackupVolumeSnapshotContents").is_known


def test_python_names_build_the_same_manifest_as_go_names() -> None:
    built = DeleteBackupRequest(
        metadata={"name": "x", "namespace": "velero"},  # type: ignore[arg-type]
        spec={"backup_name": "b1"},  # type: ignore[arg-type]
    )
    assert built.to_manifest() == {
        "kind": "DeleteBackupRequest",
        "apiVersion": "velero.io/v1",
        "metadata": {"name": "x", "namespace": "velero"},
        "spec": {"backupName": "b1"},
        "status": {},
    }
    assert DeleteBackupRequestPhase("InProgress") is DeleteBackupRequestPhase.IN_PROGRESS


def test_server_status_request_needs_no_spec() -> None:
    request = ServerStatusRequest.from_manifest({"metadata": {"name": "velero-cli-1"}})
    assert request.to_manifest()["kind"] == "ServerStatusRequest"


def test_pod_volume_kinds_read_snapshot_ids_and_uploaders() -> None:
    backup = PodVolumeBackup.from_manifest(velero_manifests()[5][1])
    assert backup.status.snapshot_id == "4f2c0d1e"
    assert backup.spec.uploader_type is UploaderType.RESTIC
    assert backup.status.phase is PodVolumeOperationPhase.COMPLETED
    assert backup.status.progress is not None and backup.status.progress.bytes_done == 1048576
    restore = PodVolumeRestore.from_manifest(velero_manifests()[6][1])
    assert restore.spec.uploader_type is UploaderType.DEFAULT
    assert restore.spec.snapshot_id == "4f2c0d1e"


def test_a_pod_volume_backup_missing_its_node_and_pod_is_refused() -> None:
    with pytest.raises(ModelError) as caught:
        PodVolumeBackup.from_manifest(
            {"spec": {"volume": "data", "backupStorageLocation": "d", "repoIdentifier": "r"}}
        )
    assert caught.value.fields == ("spec.node", "spec.pod")


def test_backup_repository_maintenance_frequency_is_a_go_duration() -> None:
    manifest = copy.deepcopy(velero_manifests()[7][1])
    repository = BackupRepository.from_manifest(manifest)
    assert repository.status.phase is BackupRepositoryPhase.READY
    manifest["spec"]["maintenanceFrequency"] = "weekly"
    with pytest.raises(ModelError) as caught:
        BackupRepository.from_manifest(manifest)
    assert caught.value.fields == ("spec.maintenanceFrequency",)


def test_the_wrong_kind_is_refused() -> None:
    with pytest.raises(ModelError, match="expected kind 'VolumeSnapshotLocation'"):
        VolumeSnapshotLocation.from_manifest({"kind": "BackupStorageLocation", "spec": {"provider": "aws"}})
