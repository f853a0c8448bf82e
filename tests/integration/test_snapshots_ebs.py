"""EBS snapshots through EC2, on moto's standalone server (the same one that plays S3).

Volumes are created in moto's EC2 with the SDK, as a cloud would have them; the
snapshotter reaches moto through boto3's own ``AWS_ENDPOINT_URL_EC2``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from tests.integration.s3server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, MotoServer, moto_server
from tests.runasync import run_async

from strongroom.snapshots.ebs import EbsSettings, EbsSnapshotter, VolumeNotInRegion
from strongroom.storage.credentials import AwsCredentials

pytestmark = pytest.mark.integration

CREDENTIALS = AwsCredentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    with moto_server(tmp_path_factory.mktemp("moto-ec2")) as server:
        yield server


@pytest.fixture
def ec2_endpoint(moto: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    monkeypatch.setenv("AWS_ENDPOINT_URL_EC2", moto.endpoint)
    return moto


def ec2(moto: MotoServer, region: str = "us-east-1") -> Any:
    return boto3.client(
        "ec2",
        endpoint_url=moto.endpoint,
        region_name=region,
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )


def snapshotter(region: str = "us-east-1", **config: str) -> EbsSnapshotter:
    return EbsSnapshotter(EbsSettings.from_velero_config({"region": region, **config}, CREDENTIALS))


@run_async
async def test_snapshot_then_a_volume_from_it_in_another_zone_then_delete(ec2_endpoint: MotoServer) -> None:
    client = ec2(ec2_endpoint)
    volume = client.create_volume(
        AvailabilityZone="us-east-1a",
        Size=4,
        VolumeType="gp3",
        Iops=4000,
        TagSpecifications=[
            {
                "ResourceType": "volume",
                "Tags": [{"Key": "app", "Value": "db"}, {"Key": "velero.io/backup", "Value": "old"}],
            }
        ],
    )["VolumeId"]
    ebs = snapshotter()
    snapshot_id = await ebs.create_snapshot(volume, {"velero.io/backup": "nightly", "velero.io/pv": "pv-1"})
    (snapshot,) = client.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"]
    assert snapshot["State"] == "completed"
    assert snapshot["VolumeId"] == volume
    # The backup's tags, and the volume's own that the backup does not set again.
    assert {t["Key"]: t["Value"] for t in snapshot["Tags"]} == {
        "app": "db",
        "velero.io/backup": "nightly",
        "velero.io/pv": "pv-1",
    }

    volume_type, iops = await ebs.volume_info(volume)
    assert (volume_type, iops) == ("gp3", 4000)
    restored = await ebs.create_volume_from_snapshot(snapshot_id, volume_type, "us-east-1b", iops)
    (made,) = client.describe_volumes(VolumeIds=[restored])["Volumes"]
    assert (made["SnapshotId"], made["AvailabilityZone"], made["VolumeType"]) == (
        snapshot_id,
        "us-east-1b",
        "gp3",
    )
    assert {t["Key"]: t["Value"] for t in made["Tags"]}["velero.io/backup"] == "nightly"

    await ebs.delete_snapshot(snapshot_id)
    assert not client.describe_snapshots(Filters=[{"Name": "snapshot-id", "Values": [snapshot_id]}])[
        "Snapshots"
    ]
    await ebs.delete_snapshot(snapshot_id)  # already gone: not an error


@run_async
async def test_a_volume_of_another_region_gets_the_guides_message_and_fix(ec2_endpoint: MotoServer) -> None:
    volume = ec2(ec2_endpoint, "us-east-1").create_volume(AvailabilityZone="us-east-1a", Size=1)["VolumeId"]
    with pytest.raises(VolumeNotInRegion) as caught:
        await snapshotter("us-west-2").create_snapshot(volume, {"velero.io/backup": "b"})
    assert caught.value.message == (
        f"InvalidVolume.NotFound: The volume '{volume}' does not exist in region us-west-2"
    )
    assert "spec.snapshotLocations.velero.config.region" in (caught.value.hint or "")
    assert SECRET_ACCESS_KEY not in str(caught.value) + (caught.value.hint or "")
    # Nothing was made in either region.
    for region in ("us-east-1", "us-west-2"):
        tagged = [{"Name": "tag:velero.io/backup", "Values": ["b"]}]
        assert not ec2(ec2_endpoint, region).describe_snapshots(Filters=tagged)["Snapshots"]
