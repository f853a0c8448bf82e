"""Which PersistentVolumes are EBS volumes, in which zone, and how a restored one is pointed at its new volume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from strongroom.errors import StorageConfigError
from strongroom.snapshots.ebs import EbsSettings, SnapshotError, ebs_volume_id, volume_zone, with_volume_id


def pv(spec: dict[str, Any], labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": "pv-1", "labels": labels or {}},
        "spec": spec,
    }


CSI = {"csi": {"driver": "ebs.csi.aws.com", "volumeHandle": "vol-0123456789abcdef0", "fsType": "ext4"}}
IN_TREE = {"awsElasticBlockStore": {"volumeID": "aws://us-east-1a/vol-0aaaabbbbccccdddd", "fsType": "ext4"}}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (CSI, "vol-0123456789abcdef0"),
        (IN_TREE, "vol-0aaaabbbbccccdddd"),
        ({"awsElasticBlockStore": {"volumeID": "vol-0aaaabbbbccccdddd"}}, "vol-0aaaabbbbccccdddd"),
        ({"csi": {"driver": "pd.csi.storage.gke.io", "volumeHandle": "projects/p/disks/d"}}, None),
        ({"nfs": {"server": "nfs.example.com", "path": "/exports"}}, None),
    ],
)
def test_the_ebs_volume_of_a_pv_is_found_as_velero_finds_it(
    spec: dict[str, Any], expected: str | None
) -> None:
    assert ebs_volume_id(pv(spec)) == expected


def test_an_in_tree_volume_without_id_is_an_error() -> None:
    with pytest.raises(SnapshotError, match="volumeID is empty"):
        ebs_volume_id(pv({"awsElasticBlockStore": {"volumeID": ""}}))


def test_the_zone_comes_from_labels_node_affinity_or_the_in_tree_id() -> None:
    assert volume_zone(pv(CSI, {"topology.kubernetes.io/zone": "eu-west-1b"})) == "eu-west-1b"
    assert volume_zone(pv(CSI, {"failure-domain.beta.kubernetes.io/zone": "eu-west-1c"})) == "eu-west-1c"
    affinity = {
        "required": {
            "nodeSelectorTerms": [
                {
                    "matchExpressions": [
                        {"key": "topology.ebs.csi.aws.com/zone", "operator": "In", "values": ["us-west-2a"]}
                    ]
                }
            ]
        }
    }
    assert volume_zone(pv({**CSI, "nodeAffinity": affinity})) == "us-west-2a"
    assert volume_zone(pv(IN_TREE)) == "us-east-1a"
    assert volume_zone(pv(CSI)) is None


def test_a_restored_pv_points_at_the_new_volume_and_the_original_is_untouched() -> None:
    original = pv(CSI)
    restored = with_volume_id(original, "vol-0fffeeeeddddcccc1")
    assert restored["spec"]["csi"]["volumeHandle"] == "vol-0fffeeeeddddcccc1"
    assert original["spec"]["csi"]["volumeHandle"] == "vol-0123456789abcdef0"
    zoned = with_volume_id(pv(IN_TREE, {"failure-domain.beta.kubernetes.io/zone": "us-east-1b"}), "vol-1")
    assert zoned["spec"]["awsElasticBlockStore"]["volumeID"] == "aws://us-east-1b/vol-1"
    assert with_volume_id(pv(IN_TREE), "vol-2")["spec"]["awsElasticBlockStore"]["volumeID"] == "vol-2"
    with pytest.raises(SnapshotError, match=r"cannot handle CSI driver pd\.csi\.storage\.gke\.io"):
        with_volume_id(pv({"csi": {"driver": "pd.csi.storage.gke.io", "volumeHandle": "d"}}), "vol-3")


def test_snapshot_location_config_follows_velero_aws_plugin() -> None:
    settings = EbsSettings.from_velero_config(
        {"region": "us-west-2", "profile": "default", "ebsKmsKeyId": "alias/k"}
    )
    assert (settings.region, settings.kms_key_id) == ("us-west-2", "alias/k")
    with pytest.raises(StorageConfigError, match="missing region in aws configuration") as caught:
        EbsSettings.from_velero_config({"profile": "default"})
    assert "snapshotLocations" in (caught.value.hint or "")
    with pytest.raises(StorageConfigError, match=r"config has invalid keys \[s3Url\]"):
        EbsSettings.from_velero_config({"region": "us-east-1", "s3Url": "http://x"})


def test_a_credentials_file_named_in_the_config_is_read_for_its_profile(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text(
        "[default]\naws_access_key_id=AKIADEFAULT\naws_secret_access_key=one\n"
        "[backups]\naws_access_key_id=AKIABACKUPS\naws_secret_access_key=two\n"
    )
    settings = EbsSettings.from_velero_config(
        {"region": "us-east-1", "credentialsFile": str(path), "profile": "backups"}
    )
    assert settings.credentials is not None
    assert settings.credentials.access_key_id == "AKIABACKUPS"
    assert "two" not in repr(settings)
