"""Native snapshots without a cloud: location choice, records, the backup's and the restore's decisions."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import pytest
from tests.runasync import run_async

from strongroom.archive import Results
from strongroom.archive.runlog import RunLog
from strongroom.archive.sidecars import LogWriter
from strongroom.backup.volumes import VolumeBackups
from strongroom.errors import StorageConfigError, StrongroomError
from strongroom.model.resources import ApiResource
from strongroom.restore.volumes import BackupVolumeData, VolumeRestores
from strongroom.snapshots.ebs import EbsSnapshotter, ebs_volume_id, with_volume_id
from strongroom.snapshots.native import (
    NativeLocation,
    UnsupportedProvider,
    choose_locations,
    snapshot_record,
    snapshotter_for,
)

PVS = ApiResource("", "v1", "persistentvolumes", "PersistentVolume", False)


def vsl(name: str, provider: str = "aws", **config: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"provider": provider, "config": config}}


# -- choosing the locations (Velero's validateAndGetSnapshotLocations) --------------------


def test_the_only_location_of_each_provider_is_chosen() -> None:
    chosen, errors = choose_locations([], [vsl("east"), vsl("disks", "azure")])
    assert errors == []
    assert [item["metadata"]["name"] for item in chosen] == ["disks", "east"]


def test_a_named_location_wins_over_the_others_of_its_provider() -> None:
    chosen, errors = choose_locations(["west"], [vsl("east"), vsl("west")])
    assert (errors, [item["metadata"]["name"] for item in chosen]) == ([], ["west"])


def test_several_locations_of_a_provider_need_a_name_or_a_default() -> None:
    chosen, errors = choose_locations([], [vsl("east"), vsl("west")])
    assert chosen == []
    assert errors == [
        "provider aws has more than one possible volume snapshot location, and none were specified "
        "explicitly or as a default"
    ]
    chosen, errors = choose_locations([], [vsl("east"), vsl("west")], {"aws": "west"})
    assert (errors, [item["metadata"]["name"] for item in chosen]) == ([], ["west"])
    _, errors = choose_locations([], [vsl("east"), vsl("west")], {"aws": "north"})
    assert errors == ["the default volume snapshot location north of provider aws does not exist"]


def test_a_missing_name_and_two_names_of_one_provider_are_refused() -> None:
    _, errors = choose_locations(["gone"], [vsl("east")])
    assert len(errors) == 1 and "location gone" in errors[0] and "needs to be created" in errors[0]
    _, errors = choose_locations(["east", "west"], [vsl("east"), vsl("west")])
    assert errors == [
        "more than one VolumeSnapshotLocation name specified for provider aws: west; unexpected name was east"
    ]


def test_no_location_means_no_native_snapshot() -> None:
    assert choose_locations([], []) == ([], [])


def test_only_aws_has_a_snapshotter() -> None:
    assert isinstance(snapshotter_for(vsl("east", region="us-east-1"), None), EbsSnapshotter)
    assert isinstance(snapshotter_for(vsl("east", "velero.io/aws", region="us-east-1"), None), EbsSnapshotter)
    with pytest.raises(UnsupportedProvider) as refused:
        snapshotter_for(vsl("disks", "azure"), None)
    assert "provider azure has no native snapshotter" in str(refused.value)
    assert "CSI snapshots" in str(refused.value)
    with pytest.raises(StorageConfigError, match="missing region"):
        snapshotter_for(vsl("east"), None)


def test_the_record_is_velero_volume_snapshot() -> None:
    backup = {"metadata": {"name": "b", "uid": "u-1"}}
    record = snapshot_record(
        backup, location="east", pv_name="pv", volume_id="vol-1", volume_type="gp2", zone=None, iops=None
    )
    assert record == {
        "spec": {
            "backupName": "b",
            "backupUID": "u-1",
            "location": "east",
            "persistentVolumeName": "pv",
            "providerVolumeID": "vol-1",
            "volumeType": "gp2",
        },
        "status": {"phase": "New"},
    }


# -- the backup -----------------------------------------------------------------------------


class _Snapshotter:
    """EBS volume identification, with EC2 played by dictionaries."""

    def __init__(self) -> None:
        self.volumes = {"vol-a": ("gp3", 3000), "vol-b": ("gp2", None)}
        self.fail_create: set[str] = set()
        self.snapshots: dict[str, str] = {}
        self.deleted: list[str] = []
        self.made: list[tuple[str, str, str, int | None]] = []

    def volume_id(self, pv: Mapping[str, Any]) -> str | None:
        return ebs_volume_id(pv)

    def set_volume_id(self, pv: Mapping[str, Any], volume_id: str) -> dict[str, Any]:
        return with_volume_id(pv, volume_id)

    async def volume_info(self, volume_id: str) -> tuple[str, int | None]:
        if volume_id not in self.volumes:
            raise StrongroomError(f"InvalidVolume.NotFound: The volume '{volume_id}' does not exist")
        return self.volumes[volume_id]

    async def create_snapshot(self, volume_id: str, tags: Mapping[str, str]) -> str:
        if volume_id in self.fail_create:
            raise StrongroomError("SnapshotLimitExceeded")
        snapshot = f"snap-{len(self.snapshots)}"
        self.snapshots[snapshot] = volume_id
        assert tags["velero.io/backup"] == "b"
        return snapshot

    async def create_volume_from_snapshot(
        self, snapshot_id: str, volume_type: str, zone: str, iops: int | None = None
    ) -> str:
        self.made.append((snapshot_id, volume_type, zone, iops))
        return f"vol-new-{len(self.made)}"

    async def delete_snapshot(self, snapshot_id: str) -> None:
        self.deleted.append(snapshot_id)


def pv(name: str, volume: str | None, claim: str = "data", zone: str = "us-east-1a") -> dict[str, Any]:
    spec: dict[str, Any] = {"claimRef": {"namespace": "shop", "name": claim}}
    if volume is None:
        spec["hostPath"] = {"path": "/tmp"}
    else:
        spec["awsElasticBlockStore"] = {"volumeID": volume}
    return {"metadata": {"name": name, "labels": {"topology.kubernetes.io/zone": zone}}, "spec": spec}


class _Discovery:
    def find(self, group: str, resource: str) -> ApiResource | None:
        return PVS if (group, resource) == ("", "persistentvolumes") else None


def backups(snapshotter: _Snapshotter, results: Results, **spec: Any) -> VolumeBackups:
    log = RunLog(LogWriter(io.BytesIO()), {"backup": "velero/b"})
    backup = {"metadata": {"name": "b", "namespace": "velero", "uid": "u-b"}, "spec": spec}
    location = NativeLocation("east", "aws", snapshotter)
    return VolumeBackups(
        None,  # type: ignore[arg-type]
        _Discovery(),  # type: ignore[arg-type]
        backup,
        results,
        log,
        snapshot_locations=[location],
    )


@run_async
async def test_the_backup_snapshots_ebs_volumes_and_records_each_outcome() -> None:
    snapshotter, results = _Snapshotter(), Results()
    snapshotter.fail_create.add("vol-b")
    work = backups(snapshotter, results)
    page = [pv("pv-a", "vol-a"), pv("pv-b", "vol-b", claim="logs"), pv("pv-c", None), pv("pv-x", "vol-x")]
    assert await work.process(PVS, page) == page
    report = await work.finish()
    records = {r["spec"]["persistentVolumeName"]: r for r in report.volume_snapshots}
    # pv-c is no EBS volume; pv-x is unknown to EC2 (an error, and no record, as in Velero).
    assert set(records) == {"pv-a", "pv-b"}
    assert records["pv-a"]["status"] == {"providerSnapshotID": "snap-0", "phase": "Completed"}
    assert records["pv-a"]["spec"]["volumeIOPS"] == 3000
    assert records["pv-a"]["spec"]["volumeAZ"] == "us-east-1a"
    assert records["pv-b"]["status"] == {"phase": "Failed"}
    errors = results.errors.namespaces["shop"]
    assert any("pv-b" in e and "SnapshotLimitExceeded" in e for e in errors)
    assert any("pv-x" in e and "InvalidVolume.NotFound" in e for e in errors)
    assert len(errors) == 2
    infos = {i["pvName"]: i for i in report.volume_infos}
    assert infos["pv-a"]["result"] == "succeeded" and infos["pv-b"]["result"] == "failed"
    assert infos["pv-a"]["nativeSnapshotInfo"]["iops"] == "3000"


@run_async
async def test_no_native_snapshot_when_disabled_or_copied_otherwise() -> None:
    snapshotter, results = _Snapshotter(), Results()
    work = backups(snapshotter, results, snapshotVolumes=False)
    await work.process(PVS, [pv("pv-a", "vol-a")])
    assert snapshotter.snapshots == {}
    # A claim copied by file-system backup: its PV is not snapshotted on top.
    work = backups(snapshotter, results)
    work._fs_claims.add(("shop", "data"))
    await work.process(PVS, [pv("pv-a", "vol-a")])
    assert snapshotter.snapshots == {}


@run_async
async def test_a_failed_backup_deletes_the_snapshots_it_took() -> None:
    snapshotter, results = _Snapshotter(), Results()
    work = backups(snapshotter, results)
    await work.process(PVS, [pv("pv-a", "vol-a")])
    await work.abort()
    assert snapshotter.deleted == ["snap-0"]


# -- the restore ------------------------------------------------------------------------------


class _Source:
    def __init__(self, snapshotter: _Snapshotter) -> None:
        self.found = snapshotter

    async def snapshotter(self, location: str) -> _Snapshotter:
        assert location == "east"
        return self.found


class _Cluster:
    def __init__(self, live: dict[str, dict[str, Any]]) -> None:
        self.live = live

    async def get(self, res: ApiResource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.live.get(name)


def record(pv_name: str, phase: str = "Completed") -> dict[str, Any]:
    made = snapshot_record(
        {"metadata": {"name": "b"}},
        location="east",
        pv_name=pv_name,
        volume_id="vol-a",
        volume_type="gp3",
        zone="us-east-1a",
        iops=3000,
    )
    made["status"] = (
        {"phase": phase, "providerSnapshotID": "snap-9"} if phase == "Completed" else {"phase": phase}
    )
    return made


def restores(live: dict[str, dict[str, Any]], snapshotter: _Snapshotter | None) -> VolumeRestores:
    data = BackupVolumeData(volume_snapshots=[record("pv-a"), record("pv-f", "Failed")])
    log = RunLog(LogWriter(io.BytesIO()), {"restore": "r"})
    return VolumeRestores(
        _Cluster(live),  # type: ignore[arg-type]
        _Discovery(),  # type: ignore[arg-type]
        {"metadata": {"name": "r", "namespace": "velero"}},
        data,
        Results(),
        log,
        snapshotters=_Source(snapshotter) if snapshotter else None,  # type: ignore[arg-type]
    )


def test_an_old_backup_without_volume_info_is_read_from_its_snapshot_records() -> None:
    data = BackupVolumeData(volume_snapshots=[record("pv-a"), record("pv-f", "Failed")])
    assert data.volume_methods() == {"pv-a": "NativeSnapshot"}
    failed = {"pvName": "pv-f", "backupMethod": "NativeSnapshot", "result": "failed"}
    assert BackupVolumeData(volume_infos=[failed]).volume_methods() == {}


@run_async
async def test_the_volume_is_made_from_the_snapshot_in_its_zone() -> None:
    snapshotter = _Snapshotter()
    renamed: dict[str, str] = {}
    restored = await restores({}, snapshotter).restore_native_volume(
        "pv-a", pv("pv-a", "aws://us-east-1a/vol-a"), rename_if_exists=False, renamed=renamed
    )
    assert snapshotter.made == [("snap-9", "gp3", "us-east-1a", 3000)]
    assert restored["spec"]["awsElasticBlockStore"]["volumeID"] == "vol-new-1"
    assert renamed == {}


@run_async
async def test_an_existing_pv_keeps_its_volume_and_a_moved_claim_gets_a_clone() -> None:
    snapshotter = _Snapshotter()
    live = {"pv-a": pv("pv-a", "vol-a")}
    original = pv("pv-a", "vol-a")
    kept = await restores(live, snapshotter).restore_native_volume(
        "pv-a", original, rename_if_exists=False, renamed={}
    )
    assert kept is original and snapshotter.made == []
    renamed: dict[str, str] = {}
    clone = await restores(live, snapshotter).restore_native_volume(
        "pv-a", pv("pv-a", "vol-a"), rename_if_exists=True, renamed=renamed
    )
    assert clone["metadata"]["name"].startswith("velero-clone-")
    assert clone["metadata"]["annotations"]["velero.io/original-pv-name"] == "pv-a"
    assert renamed == {"pv-a": clone["metadata"]["name"]}
    assert len(snapshotter.made) == 1


@run_async
async def test_no_snapshot_no_change_and_no_location_access_is_an_error() -> None:
    snapshotter = _Snapshotter()
    failed = pv("pv-f", "vol-f")
    assert (
        await restores({}, snapshotter).restore_native_volume(
            "pv-f", failed, rename_if_exists=False, renamed={}
        )
        is failed
    )
    with pytest.raises(StrongroomError, match="volume snapshot location east cannot be reached"):
        await restores({}, None).restore_native_volume(
            "pv-a", pv("pv-a", "vol-a"), rename_if_exists=False, renamed={}
        )
