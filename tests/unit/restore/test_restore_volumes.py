"""What a restore does to pods, claims and snapshots whose data was backed up (no cluster needed)."""

from __future__ import annotations

import io
from typing import Any

from tests.runasync import run_async

from strongroom.archive import Results
from strongroom.archive.runlog import RunLog
from strongroom.archive.sidecars import LogWriter
from strongroom.restore.volumes import BackupVolumeData, VolumeRestores


class _NoDiscovery:
    def find(self, group: str, resource: str) -> None:
        return None


def pvb(pod: str, volume: str, phase: str = "Completed", snapshot: str = "abc123") -> dict[str, Any]:
    return {
        "metadata": {"name": f"b-{pod}-{volume}"},
        "spec": {"pod": {"namespace": "shop", "name": pod}, "volume": volume, "repoIdentifier": "/r"},
        "status": {"phase": phase, "snapshotID": snapshot},
    }


DATA = BackupVolumeData(
    pod_volume_backups=[pvb("db-0", "data"), pvb("db-0", "logs", phase="Failed"), pvb("web", "cache")],
    volume_infos=[
        {"pvName": "pv-a", "backupMethod": "PodVolumeBackup", "pvcName": "data", "pvcNamespace": "shop"},
        {
            "pvName": "pv-b",
            "backupMethod": "CSISnapshot",
            "pvcName": "logs",
            "pvcNamespace": "shop",
            "csiSnapshotInfo": {"volumeSnapshotName": "velero-logs-x1y2z"},
        },
        {"pvName": "pv-c", "backupMethod": "", "skipped": True},
    ],
)


def restores(**kwargs: Any) -> VolumeRestores:
    log = RunLog(LogWriter(io.BytesIO()), {"restore": "r"})
    restore = {"metadata": {"name": "r", "namespace": "velero"}}
    return VolumeRestores(None, _NoDiscovery(), restore, DATA, Results(), log, **kwargs)  # type: ignore[arg-type]


def pod(name: str, *volumes: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {
            "initContainers": [{"name": "migrate", "image": "app"}],
            "containers": [{"name": "app", "image": "app"}],
            "volumes": [
                {"name": volume, "persistentVolumeClaim": {"claimName": volume}} for volume in volumes
            ],
        },
    }


def test_the_planner_learns_how_each_volume_was_backed_up() -> None:
    assert DATA.volume_methods() == {"pv-a": "PodVolumeBackup", "pv-b": "CSISnapshot"}
    assert DATA.claim_snapshot("shop", "logs") == "velero-logs-x1y2z"
    assert DATA.claim_snapshot("shop", "data") is None
    # Only completed copies with a snapshot are restored.
    assert [item["spec"]["volume"] for item in DATA.pod_volumes("shop", "db-0")] == ["data"]


@run_async
async def test_a_pod_whose_volumes_were_copied_waits_for_them_first() -> None:
    work = restores()
    restored = await work.before_create("pods", "shop", "db-0", pod("db-0", "data", "logs"))
    assert restored is not None
    names = [c["name"] for c in restored["spec"]["initContainers"]]
    assert names == ["restore-wait", "migrate"]
    wait = restored["spec"]["initContainers"][0]
    assert wait["args"][:2] == ["restore-wait", "--restore-uid"]
    assert wait["volumeMounts"] == [{"name": "data", "mountPath": "/restores/data"}]
    untouched = await work.before_create("pods", "shop", "other", pod("other", "data"))
    assert untouched is not None
    assert [c["name"] for c in untouched["spec"]["initContainers"]] == ["migrate"]


@run_async
async def test_a_snapshotted_claim_is_created_from_its_snapshot_unless_restore_pvs_is_false() -> None:
    claim = {"metadata": {"name": "logs", "namespace": "shop"}, "spec": {"volumeName": "pv-b"}}
    restored = await restores().before_create("persistentvolumeclaims", "shop", "logs", dict(claim))
    assert restored is not None
    source = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "velero-logs-x1y2z"}
    assert restored["spec"] == {"dataSource": source, "dataSourceRef": source}
    empty = await restores(restore_pvs=False).before_create(
        "persistentvolumeclaims", "shop", "logs", {"metadata": {"name": "logs"}, "spec": {}}
    )
    assert empty is not None and "dataSource" not in empty["spec"]
    # Backed-up contents are never recreated as they were: the snapshots bring their own.
    assert (
        await restores().before_create("volumesnapshotcontents.snapshot.storage.k8s.io", None, "c", {})
        is None
    )
