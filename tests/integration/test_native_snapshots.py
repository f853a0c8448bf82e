"""Native volume snapshots end to end: the server, a sandbox cluster, and EBS on moto's EC2.

Volumes are created in moto's EC2 as a cloud would have them, and the
sandbox's PersistentVolumes point at them: one in-tree ``awsElasticBlockStore``
volume and one of the ``ebs.csi.aws.com`` CSI driver. The server reaches EC2
through boto3's own ``AWS_ENDPOINT_URL_EC2`` and the bucket through the
location's ``s3Url``, both on the same moto server. A backup snapshots both
volumes and records them as Velero does; a restore after the namespace is
gone makes new volumes from the snapshots in the right zones and points the
PVs at them; deleting the backup deletes the snapshots. The guide's
DataProtectionApplication with a snapshot location in another region than
the volumes gets the guide's error and its fix, per volume, and the rest of
the backup is stored.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from tests.conftest import Sandbox
from tests.integration.backupkit import Cli, unique
from tests.integration.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MotoServer, moto_server
from tests.integration.sandboxapi import eventually
from tests.integration.serverkit import (
    ServerProcess,
    apply_yaml,
    backup,
    get,
    install_crds,
    velero,
    wait_phase,
)

pytestmark = pytest.mark.integration

SEED = Path(__file__).parents[1] / "data" / "seed"
REGION = "us-east-1"
CREDENTIALS = (
    f"[default]\naws_access_key_id={ACCESS_KEY_ID}\naws_secret_access_key={SECRET_ACCESS_KEY}\n"
    f"[backupStorage]\naws_access_key_id={ACCESS_KEY_ID}\naws_secret_access_key={SECRET_ACCESS_KEY}\n"
    f"[volumeSnapshot]\naws_access_key_id={ACCESS_KEY_ID}\naws_secret_access_key={SECRET_ACCESS_KEY}\n"
)
FINISHED = ("Completed", "PartiallyFailed", "Failed", "FailedValidation")


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto-native")) as server:
        yield server


@pytest.fixture
def server_namespace(
    sandbox: Sandbox, moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, ServerProcess]]:
    install_crds(sandbox)
    # The server's EC2 calls go to moto, through the SDK's own setting (as on a cluster with a VPC endpoint).
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", moto.endpoint)
    namespace = unique("adp")
    sandbox.kubectl("create", "namespace", namespace)
    server = ServerProcess(sandbox, namespace, tmp_path / "server.log").start()
    apply_yaml(sandbox, _secret(namespace))
    try:
        yield namespace, server
    finally:
        server.stop()
        sandbox.kubectl("delete", "namespace", namespace, "--wait=false", check=False)


def _secret(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "cloud-credentials", "namespace": namespace},
        "data": {"cloud": base64.b64encode(CREDENTIALS.encode()).decode()},
    }


def ec2(moto: MotoServer, region: str = REGION) -> Any:
    return boto3.client(
        "ec2",
        endpoint_url=moto.endpoint,
        region_name=region,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )


def _volume(moto: MotoServer, zone: str, volume_type: str, **extra: Any) -> str:
    created = ec2(moto).create_volume(AvailabilityZone=zone, Size=4, VolumeType=volume_type, **extra)
    return str(created["VolumeId"])


def _bucket_location(moto: MotoServer, namespace: str, bucket: str) -> dict[str, Any]:
    return velero(
        "BackupStorageLocation",
        "default",
        namespace,
        provider="aws",
        default=True,
        objectStorage={"bucket": bucket, "prefix": "velero"},
        config={"region": REGION, "s3Url": moto.endpoint, "s3ForcePathStyle": "true"},
    )


def _app(namespace: str, volumes: dict[str, str]) -> list[dict[str, Any]]:
    """Two claims bound to EBS volumes: pv-a in-tree in us-east-1a, pv-b by the CSI driver in us-east-1b."""
    a, b = f"{namespace}-pv-a", f"{namespace}-pv-b"
    common = {"capacity": {"storage": "4Gi"}, "accessModes": ["ReadWriteOnce"], "storageClassName": ""}
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": a, "labels": {"topology.kubernetes.io/zone": "us-east-1a"}},
            "spec": {
                **common,
                "persistentVolumeReclaimPolicy": "Delete",
                "awsElasticBlockStore": {"volumeID": f"aws://us-east-1a/{volumes['a']}", "fsType": "ext4"},
                "claimRef": {"namespace": namespace, "name": "data-a"},
            },
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": b},
            "spec": {
                **common,
                "persistentVolumeReclaimPolicy": "Delete",
                "csi": {"driver": "ebs.csi.aws.com", "volumeHandle": volumes["b"], "fsType": "ext4"},
                "nodeAffinity": {
                    "required": {
                        "nodeSelectorTerms": [
                            {
                                "matchExpressions": [
                                    {
                                        "key": "topology.ebs.csi.aws.com/zone",
                                        "operator": "In",
                                        "values": ["us-east-1b"],
                                    }
                                ]
                            }
                        ]
                    }
                },
                "claimRef": {"namespace": namespace, "name": "data-b"},
            },
        },
        *(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": {"name": claim, "namespace": namespace},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "",
                    "volumeName": volume,
                    "resources": {"requests": {"storage": "4Gi"}},
                },
            }
            for claim, volume in (("data-a", a), ("data-b", b))
        ),
    ]


def _bound(sandbox: Sandbox, namespace: str) -> None:
    for claim in ("data-a", "data-b"):
        wait_phase(sandbox, "persistentvolumeclaims", claim, namespace, ("Bound",), timeout=30)


def _side_file(moto: MotoServer, bucket: str, backup_name: str, suffix: str) -> Any:
    key = f"velero/backups/{backup_name}/{backup_name}-{suffix}"
    body = moto.client().get_object(Bucket=bucket, Key=key)["Body"].read()
    return json.loads(gzip.decompress(body))


def _snapshots_tagged(moto: MotoServer, backup_name: str, region: str = REGION) -> list[dict[str, Any]]:
    # moto seeds every region with public snapshots of its own: only the backup's count.
    answer = ec2(moto, region).describe_snapshots(
        Filters=[{"Name": "tag:velero.io/backup", "Values": [backup_name]}]
    )
    return list(answer["Snapshots"])


def test_snapshot_restore_into_the_zones_and_delete(
    sandbox: Sandbox, moto: MotoServer, server_namespace: tuple[str, ServerProcess]
) -> None:
    namespace, server = server_namespace
    bucket = unique("native")
    moto.create_bucket(bucket)
    app = unique("ebs-app")
    volumes = {
        "a": _volume(moto, "us-east-1a", "gp3", Iops=4000),
        "b": _volume(moto, "us-east-1b", "gp2"),
    }
    apply_yaml(
        sandbox,
        _bucket_location(moto, namespace, bucket),
        velero("VolumeSnapshotLocation", "ebs", namespace, provider="aws", config={"region": REGION}),
    )
    wait_phase(sandbox, "backupstoragelocations", "default", namespace, ("Available",), timeout=60)
    try:
        apply_yaml(sandbox, *_app(app, volumes))
        _bound(sandbox, app)

        labelled = backup("snap", namespace, includedNamespaces=[app])
        labelled["metadata"]["labels"] = {"team": "db"}
        apply_yaml(sandbox, labelled)
        done = wait_phase(sandbox, "backups", "snap", namespace, FINISHED, timeout=90)
        status = done["status"]
        assert status["phase"] == "Completed", status
        assert status["volumeSnapshotsAttempted"] == 2 and status["volumeSnapshotsCompleted"] == 2
        assert done["spec"]["volumeSnapshotLocations"] == ["ebs"]

        # The records, in Velero's volume.Snapshot format.
        records = {
            r["spec"]["persistentVolumeName"]: r
            for r in _side_file(moto, bucket, "snap", "volumesnapshots.json.gz")
        }
        a, b = records[f"{app}-pv-a"], records[f"{app}-pv-b"]
        assert a["spec"] == {
            "backupName": "snap",
            "backupUID": done["metadata"]["uid"],
            "location": "ebs",
            "persistentVolumeName": f"{app}-pv-a",
            "providerVolumeID": volumes["a"],
            "volumeType": "gp3",
            "volumeAZ": "us-east-1a",
            "volumeIOPS": 4000,
        }
        assert b["spec"]["providerVolumeID"] == volumes["b"] and b["spec"]["volumeAZ"] == "us-east-1b"
        assert "volumeIOPS" not in b["spec"]  # gp2 provisions none
        assert a["status"]["phase"] == b["status"]["phase"] == "Completed"
        taken = {s["SnapshotId"]: s for s in _snapshots_tagged(moto, "snap")}
        assert set(taken) == {a["status"]["providerSnapshotID"], b["status"]["providerSnapshotID"]}
        tags = {t["Key"]: t["Value"] for t in taken[a["status"]["providerSnapshotID"]]["Tags"]}
        assert tags["velero.io/pv"] == f"{app}-pv-a" and tags["team"] == "db"
        assert taken[a["status"]["providerSnapshotID"]]["VolumeId"] == volumes["a"]
        infos = {i["pvName"]: i for i in _side_file(moto, bucket, "snap", "volumeinfo.json.gz")}
        assert infos[f"{app}-pv-a"]["backupMethod"] == "NativeSnapshot"
        assert (
            infos[f"{app}-pv-a"]["nativeSnapshotInfo"]["snapshotHandle"] == a["status"]["providerSnapshotID"]
        )

        # The application goes; its PVs (reclaim policy Delete) go with the claims.
        sandbox.kubectl("delete", "namespace", app, "--wait=true", "--timeout=60s")
        eventually(lambda: get(sandbox, "pv", f"{app}-pv-a", "") is None, timeout=30)

        apply_yaml(sandbox, velero("Restore", "back", namespace, backupName="snap"))
        restored = wait_phase(sandbox, "restores", "back", namespace, FINISHED, timeout=90)
        assert restored["status"]["phase"] == "Completed", restored["status"]
        _bound(sandbox, app)
        pv_a = json.loads(sandbox.kubectl("get", "pv", f"{app}-pv-a", "-o", "json").stdout)
        pv_b = json.loads(sandbox.kubectl("get", "pv", f"{app}-pv-b", "-o", "json").stdout)
        new_a = pv_a["spec"]["awsElasticBlockStore"]["volumeID"]
        new_b = pv_b["spec"]["csi"]["volumeHandle"]
        assert new_b.startswith("vol-") and new_b != volumes["b"]
        assert new_a.startswith("vol-") and new_a != volumes["a"]
        made = {v["VolumeId"]: v for v in ec2(moto).describe_volumes(VolumeIds=[new_a, new_b])["Volumes"]}
        assert made[new_a]["AvailabilityZone"] == "us-east-1a"
        assert made[new_a]["SnapshotId"] == a["status"]["providerSnapshotID"]
        assert (made[new_a]["VolumeType"], made[new_a]["Iops"]) == ("gp3", 4000)
        assert made[new_b]["AvailabilityZone"] == "us-east-1b"
        assert made[new_b]["SnapshotId"] == b["status"]["providerSnapshotID"]

        # Deleting the backup deletes its snapshots, then its files.
        apply_yaml(sandbox, velero("DeleteBackupRequest", "forget", namespace, backupName="snap"))
        wait_phase(sandbox, "deletebackuprequests", "forget", namespace, ("Processed",), timeout=60)
        eventually(lambda: get(sandbox, "backups", "snap", namespace) is None, timeout=30)
        assert _snapshots_tagged(moto, "snap") == []
        listing = moto.client().list_objects_v2(Bucket=bucket, Prefix="velero/backups/snap/")
        assert listing.get("KeyCount", 0) == 0
        assert SECRET_ACCESS_KEY not in server.log_path.read_text()
    finally:
        sandbox.kubectl("delete", "namespace", app, "--wait=false", check=False)


def test_the_guides_dpa_with_the_snapshot_location_in_another_region(
    sandbox: Sandbox, moto: MotoServer, server_namespace: tuple[str, ServerProcess]
) -> None:
    """The seed's DPA (profiles backupStorage and volumeSnapshot), its snapshot location in us-west-2."""
    namespace, server = server_namespace
    bucket = unique("region")
    moto.create_bucket(bucket)
    dpa: dict[str, Any] = yaml.safe_load((SEED / "dpa-0353-aws-profiles.yaml").read_text())
    dpa["metadata"]["namespace"] = namespace
    storage = dpa["spec"]["backupLocations"][0]["velero"]
    storage["objectStorage"]["bucket"] = bucket
    storage["config"].update({"s3Url": moto.endpoint, "s3ForcePathStyle": "true"})
    assert dpa["spec"]["snapshotLocations"][0]["velero"]["config"]["region"] == "us-west-2"
    app = unique("ebs-app")
    volumes = {"a": _volume(moto, "us-east-1a", "gp3"), "b": _volume(moto, "us-east-1b", "gp2")}
    apply_yaml(sandbox, dpa)
    wait_phase(sandbox, "backupstoragelocations", "default", namespace, ("Available",), timeout=60)
    eventually(lambda: get(sandbox, "volumesnapshotlocations", "default", namespace), timeout=30)
    try:
        apply_yaml(sandbox, *_app(app, volumes))
        _bound(sandbox, app)
        apply_yaml(sandbox, backup("elsewhere", namespace, includedNamespaces=[app]))
        done = wait_phase(sandbox, "backups", "elsewhere", namespace, FINISHED, timeout=90)
        status = done["status"]
        # Each volume fails on its own; the backup goes on and is stored.
        assert status["phase"] == "PartiallyFailed", status
        assert status["errors"] == 2
        assert "volumeSnapshotsAttempted" not in status
        results = _side_file(moto, bucket, "elsewhere", "results.gz")
        errors = results["errors"]["namespaces"][app]
        assert len(errors) == 2
        for volume in volumes.values():
            (message,) = [e for e in errors if volume in e]
            assert (
                f"InvalidVolume.NotFound: The volume '{volume}' does not exist in region us-west-2" in message
            )
            assert "spec.snapshotLocations.velero.config.region" in message
        stored = _side_file(moto, bucket, "elsewhere", "resource-list.json.gz")
        assert f"{app}/data-a" in stored["v1/PersistentVolumeClaim"]
        assert _snapshots_tagged(moto, "elsewhere") == []
        assert _snapshots_tagged(moto, "elsewhere", "us-west-2") == []
        assert SECRET_ACCESS_KEY not in server.log_path.read_text()
    finally:
        sandbox.kubectl("delete", "namespace", app, "--wait=false", check=False)


def test_local_mode_snapshots_restores_and_deletes_through_the_clusters_location(
    sandbox: Sandbox, moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a server: the command line chooses the cluster's VolumeSnapshotLocation and uses its Secret."""
    install_crds(sandbox)
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", moto.endpoint)
    namespace, app = unique("vsl"), unique("ebs-app")
    sandbox.kubectl("create", "namespace", namespace)
    apply_yaml(
        sandbox,
        _secret(namespace),
        velero("VolumeSnapshotLocation", "east", namespace, provider="aws", config={"region": REGION}),
    )
    cli = Cli(sandbox, tmp_path / "config", monkeypatch)
    volumes = {"a": _volume(moto, "us-east-1a", "gp2"), "b": _volume(moto, "us-east-1b", "gp2")}
    try:
        apply_yaml(sandbox, *_app(app, volumes))
        _bound(sandbox, app)
        local = ("--mode", "local", "--namespace", namespace)
        # A location that does not exist is refused before anything is taken.
        refused = cli(
            "backup",
            "create",
            "nope",
            "--include-namespaces",
            app,
            "--volume-snapshot-locations",
            "west",
            *local,
        )
        assert refused.code != 0 and "VolumeSnapshotLocation CRD for the location west" in refused.stderr
        assert _snapshots_tagged(moto, "nope") == []

        cli.ok("backup", "create", "here", "--include-namespaces", app, *local)
        stored = json.loads((cli.storage / "backups/here/velero-backup.json").read_text())
        assert stored["spec"]["volumeSnapshotLocations"] == ["east"]
        assert stored["status"]["volumeSnapshotsCompleted"] == 2
        assert len(_snapshots_tagged(moto, "here")) == 2

        sandbox.kubectl("delete", "namespace", app, "--wait=true", "--timeout=60s")
        eventually(lambda: get(sandbox, "pv", f"{app}-pv-b", "") is None, timeout=30)
        cli.ok("restore", "create", "--from-backup", "here", *local)
        _bound(sandbox, app)
        pv_b = json.loads(sandbox.kubectl("get", "pv", f"{app}-pv-b", "-o", "json").stdout)
        assert pv_b["spec"]["csi"]["volumeHandle"] not in (volumes["b"], "")

        cli.ok("backup", "delete", "here", "--confirm", "--kubeconfig", sandbox.kubeconfig, *local)
        assert _snapshots_tagged(moto, "here") == []
    finally:
        sandbox.kubectl("delete", "namespace", app, "--wait=false", check=False)
        sandbox.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
