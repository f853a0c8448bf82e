"""`backup describe`'s volume and hook lines, from the backup's status and volume info."""

from __future__ import annotations

from strongroom.cli.render import _volume_lines

INFOS = [
    {
        "backupMethod": "PodVolumeBackup",
        "result": "succeeded",
        "pvbInfo": {"podNamespace": "shop", "podName": "db-0", "volumeName": "data"},
    },
    {
        "backupMethod": "PodVolumeBackup",
        "result": "failed",
        "pvbInfo": {"podNamespace": "shop", "podName": "db-1", "volumeName": "data"},
    },
    {
        "backupMethod": "CSISnapshot",
        "pvcNamespace": "shop",
        "pvcName": "logs",
        "csiSnapshotInfo": {
            "volumeSnapshotName": "velero-logs-abcde",
            "snapshotHandle": "snap-1",
            "size": 42,
        },
    },
]
STATUS = {
    "csiVolumeSnapshotsAttempted": 1,
    "csiVolumeSnapshotsCompleted": 1,
    "hookStatus": {"hooksAttempted": 3, "hooksFailed": 1},
}


def test_details_list_every_copy_and_snapshot() -> None:
    text = "\n".join(_volume_lines(STATUS, INFOS, details=True))
    assert "CSI Snapshots:  1 of 1 completed" in text
    assert "shop/logs: snapshot velero-logs-abcde (handle snap-1, 42 bytes)" in text
    assert "Completed:\n      shop/db-0: data" in text
    assert "Failed:\n      shop/db-1: data" in text
    assert "HooksAttempted:  3" in text and "HooksFailed:     1" in text


def test_without_details_only_counts_and_an_empty_backup_says_none() -> None:
    text = "\n".join(_volume_lines(STATUS, INFOS, details=False))
    assert "Completed:  1" in text and "Failed:  1" in text and "db-0" not in text
    empty = "\n".join(_volume_lines({}, [], details=False))
    assert "CSI Snapshots:  <none included>" in empty
    assert "Pod Volume Backups:  <none included>" in empty
    assert "HooksAttempted:  0" in empty


def test_without_the_volume_records_nothing_is_claimed_about_the_copies() -> None:
    text = "\n".join(_volume_lines({}, None, details=True))
    assert "<none included>" not in text
    assert "kubectl get podvolumebackups" in text


NATIVE = {
    "backupMethod": "NativeSnapshot",
    "pvName": "pv-db",
    "result": "succeeded",
    "nativeSnapshotInfo": {
        "snapshotHandle": "snap-0abc",
        "volumeType": "gp3",
        "volumeAZ": "us-east-1a",
        "iops": "4000",
        "Phase": "Completed",
    },
}


def test_native_snapshots_are_listed_as_velero_describes_them() -> None:
    text = "\n".join(_volume_lines({}, [NATIVE], details=True))
    assert "Velero-Native Snapshots:\n    pv-db:\n      Snapshot ID:        snap-0abc" in text
    assert "Availability Zone:  us-east-1a" in text and "IOPS:               4000" in text
    assert "Result:             succeeded" in text
    short = "\n".join(_volume_lines({}, [NATIVE], details=False))
    assert "pv-db: specify --details for more information" in short and "snap-0abc" not in short
    empty = "\n".join(_volume_lines({}, [], details=False))
    assert "Velero-Native Snapshots: <none included>" in empty
