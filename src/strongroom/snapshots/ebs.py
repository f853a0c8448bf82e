"""AWS EBS snapshots of persistent volumes, taken as Velero's aws volume snapshotter takes them.

A VolumeSnapshotLocation of provider ``aws`` (or ``velero.io/aws``) names the
volumes' region and, optionally, the profile of its credentials file:

=======================  =================================================
``region``               required: where the volumes and snapshots are
``profile``              the profile of ``credentialsFile`` (default ``default``)
``credentialsFile``      a credentials file on the server, when none is passed
``enableSharedConfig``   accepted (only the credentials file is read)
``ebsKmsKeyId``          restored volumes are encrypted with this KMS key
=======================  =================================================

Any other key is refused, as Velero's plugin refuses it. The EC2 calls go
through boto3, AWS's SDK, in worker threads; its own settings apply (an
EC2-compatible endpoint through ``AWS_ENDPOINT_URL_EC2``, the proxy and CA
bundle of the environment).

A persistent volume is an EBS volume when it is an in-tree
``awsElasticBlockStore`` volume (``vol-...`` or ``aws://<zone>/vol-...``) or
a CSI volume of the ``ebs.csi.aws.com`` driver whose handle is ``vol-...``.
A volume that EC2 does not know in the location's region gets the guide's
message (``InvalidVolume.NotFound: The volume 'vol-...' does not exist``) and
its fix: the location's region must be the volume's.
"""

from __future__ import annotations

import asyncio
import copy
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from strongroom.errors import NotFoundError, StorageConfigError, StrongroomError
from strongroom.storage.config import check_config_keys
from strongroom.storage.credentials import DEFAULT_PROFILE, AwsCredentials, load_credentials_file

__all__ = [
    "EBS_CSI_DRIVER",
    "VELERO_AWS_SNAPSHOT_CONFIG_KEYS",
    "EbsSettings",
    "EbsSnapshotter",
    "SnapshotError",
    "VolumeNotInRegion",
    "ebs_volume_id",
    "volume_zone",
    "with_volume_id",
]

EBS_CSI_DRIVER: Final = "ebs.csi.aws.com"
VELERO_AWS_SNAPSHOT_CONFIG_KEYS: Final = (
    "region",
    "profile",
    "credentialsFile",
    "enableSharedConfig",
    "ebsKmsKeyId",
)
# Volume types whose IOPS are set, not derived from the size (Velero's list).
_IOPS_VOLUME_TYPES: Final = frozenset({"io1", "io2", "gp3"})
_VOLUME_ID = re.compile(r"vol-.*")
_ZONE_LABELS: Final = ("topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone")
# The node-affinity keys Velero reads a volume's zone from (the CSI drivers' own, then the labels).
_ZONE_KEYS: Final = (
    *_ZONE_LABELS,
    "topology.ebs.csi.aws.com/zone",
    "topology.disk.csi.azure.com/zone",
    "topology.gke.io/zone",
    "topology.cinder.csi.openstack.org/zone",
    "topology.manila.csi.openstack.org/zone",
)
_LEGACY_ZONE_LABEL: Final = "failure-domain.beta.kubernetes.io/zone"
_POLL_SECONDS: Final = 2.0


class SnapshotError(StrongroomError):
    """An EC2 call about a snapshot or volume failed; the message says which and why."""


class VolumeNotInRegion(SnapshotError):
    """EC2 does not know the volume in the location's region (the guide's InvalidVolume.NotFound)."""


@dataclass(frozen=True)
class EbsSettings:
    """A VolumeSnapshotLocation's ``config`` for EBS, validated."""

    region: str
    kms_key_id: str | None = None
    credentials: AwsCredentials | None = field(default=None, repr=False)

    @classmethod
    def from_velero_config(
        cls, config: Mapping[str, str] | None, credentials: AwsCredentials | None = None
    ) -> EbsSettings:
        values = dict(config or {})
        check_config_keys(values, VELERO_AWS_SNAPSHOT_CONFIG_KEYS)
        if credentials is None and values.get("credentialsFile"):
            credentials = load_credentials_file(
                values["credentialsFile"], values.get("profile") or DEFAULT_PROFILE
            )
        region = values.get("region", "").strip()
        if not region:
            raise StorageConfigError(
                "missing region in aws configuration",
                hint="set spec.config.region of the VolumeSnapshotLocation (in a DataProtectionApplication: "
                "spec.snapshotLocations[].velero.config.region) to the region of the volumes",
            )
        return cls(region=region, kms_key_id=values.get("ebsKmsKeyId") or None, credentials=credentials)


# -- persistent volumes --------------------------------------------------------


def ebs_volume_id(pv: Mapping[str, Any]) -> str | None:
    """The EBS volume behind a PersistentVolume, None when it is not one (another driver, NFS, ...)."""
    spec = pv.get("spec") or {}
    csi = spec.get("csi")
    if csi:
        if csi.get("driver") != EBS_CSI_DRIVER:
            return None
        found = _VOLUME_ID.search(str(csi.get("volumeHandle") or ""))
        return found.group(0) if found else None
    in_tree = spec.get("awsElasticBlockStore")
    if in_tree is not None:
        volume = str(in_tree.get("volumeID") or "")
        if not volume:
            raise SnapshotError(f"persistentvolume {_name(pv)}: spec.awsElasticBlockStore.volumeID is empty")
        found = _VOLUME_ID.search(volume)
        return found.group(0) if found else None
    return None


def volume_zone(pv: Mapping[str, Any]) -> str | None:
    """The availability zone of an EBS PersistentVolume: its zone labels, its node affinity, or ``aws://<zone>/``."""
    labels = (pv.get("metadata") or {}).get("labels") or {}
    for label in _ZONE_LABELS:
        if labels.get(label):
            return str(labels[label])
    spec = pv.get("spec") or {}
    terms = (((spec.get("nodeAffinity") or {}).get("required") or {}).get("nodeSelectorTerms")) or []
    for term in terms:
        for expression in term.get("matchExpressions") or []:
            values = expression.get("values") or []
            if (
                expression.get("key") in _ZONE_KEYS
                and expression.get("operator") == "In"
                and len(values) == 1
            ):
                return str(values[0])
    volume = str((spec.get("awsElasticBlockStore") or {}).get("volumeID") or "")
    if volume.startswith("aws://"):
        zone = volume.removeprefix("aws://").split("/", 1)[0]
        return zone or None
    return None


def with_volume_id(pv: Mapping[str, Any], volume_id: str) -> dict[str, Any]:
    """A copy of the PersistentVolume pointing at ``volume_id`` (a volume restored from a snapshot)."""
    result: dict[str, Any] = copy.deepcopy(dict(pv))
    spec = result.setdefault("spec", {})
    csi = spec.get("csi")
    if csi:
        if csi.get("driver") != EBS_CSI_DRIVER:
            raise SnapshotError(f"persistentvolume {_name(pv)}: cannot handle CSI driver {csi.get('driver')}")
        csi["volumeHandle"] = volume_id
    elif spec.get("awsElasticBlockStore") is not None:
        zone = ((result.get("metadata") or {}).get("labels") or {}).get(_LEGACY_ZONE_LABEL)
        spec["awsElasticBlockStore"]["volumeID"] = f"aws://{zone}/{volume_id}" if zone else volume_id
    else:
        raise SnapshotError(f"persistentvolume {_name(pv)}: neither spec.csi nor spec.awsElasticBlockStore")
    return result


def _name(obj: Mapping[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("name") or "?")


# -- EC2 --------------------------------------------------------------------------


class EbsSnapshotter:
    """Snapshots and volumes of one region, through EC2 (blocking calls run in worker threads)."""

    def __init__(self, settings: EbsSettings, *, wait_timeout: float = 3600.0) -> None:
        self.settings = settings
        self._wait_timeout = wait_timeout
        self._client: Any = None

    def volume_id(self, pv: Mapping[str, Any]) -> str | None:
        return ebs_volume_id(pv)

    def set_volume_id(self, pv: Mapping[str, Any], volume_id: str) -> dict[str, Any]:
        return with_volume_id(pv, volume_id)

    def _ec2(self) -> Any:
        if self._client is None:
            import boto3  # the SDK loads only when snapshots are taken

            credentials = self.settings.credentials
            self._client = boto3.session.Session(
                aws_access_key_id=credentials.access_key_id if credentials else None,
                aws_secret_access_key=credentials.secret_access_key if credentials else None,
                aws_session_token=credentials.session_token if credentials else None,
                region_name=self.settings.region,
            ).client("ec2")
        return self._client

    async def create_snapshot(self, volume_id: str, tags: Mapping[str, str]) -> str:
        """Snapshot the volume, tagged with ``tags`` and the volume's own tags; wait until it completes."""
        volume = await self._describe_volume(volume_id)
        # The backup's tags win over older ones the volume carries (from an earlier restore).
        merged = {**{t["Key"]: t["Value"] for t in volume.get("Tags") or []}, **tags}
        answer = await self._call(
            "CreateSnapshot",
            f"volume {volume_id}",
            VolumeId=volume_id,
            TagSpecifications=[{"ResourceType": "snapshot", "Tags": _tags(merged)}],
        )
        snapshot_id = str(answer["SnapshotId"])
        await self._wait_completed(snapshot_id)
        return snapshot_id

    async def volume_info(self, volume_id: str) -> tuple[str, int | None]:
        """The volume's type and, for types whose IOPS are provisioned, its IOPS."""
        volume = await self._describe_volume(volume_id)
        volume_type = str(volume.get("VolumeType") or "")
        iops = volume.get("Iops") if volume_type in _IOPS_VOLUME_TYPES else None
        return volume_type, int(iops) if iops is not None else None

    async def create_volume_from_snapshot(
        self, snapshot_id: str, volume_type: str, zone: str, iops: int | None = None
    ) -> str:
        """A new volume in ``zone`` from the snapshot, carrying the snapshot's tags (and its encryption)."""
        answer = await self._call("DescribeSnapshots", f"snapshot {snapshot_id}", SnapshotIds=[snapshot_id])
        snapshots = answer.get("Snapshots") or []
        if len(snapshots) != 1:
            raise SnapshotError(f"expected 1 snapshot {snapshot_id}, EC2 listed {len(snapshots)}")
        snapshot = snapshots[0]
        request: dict[str, Any] = {
            "SnapshotId": snapshot_id,
            "AvailabilityZone": zone,
            "Encrypted": bool(snapshot.get("Encrypted")),
        }
        if volume_type:
            request["VolumeType"] = volume_type
        if snapshot.get("Tags"):
            request["TagSpecifications"] = [{"ResourceType": "volume", "Tags": snapshot["Tags"]}]
        if self.settings.kms_key_id:
            request["Encrypted"] = True
            request["KmsKeyId"] = self.settings.kms_key_id
        if volume_type in _IOPS_VOLUME_TYPES and iops:
            request["Iops"] = iops
        answer = await self._call("CreateVolume", f"a volume from snapshot {snapshot_id}", **request)
        return str(answer["VolumeId"])

    async def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete the snapshot; one that is already gone is not an error."""
        try:
            await self._call("DeleteSnapshot", f"snapshot {snapshot_id}", SnapshotId=snapshot_id)
        except NotFoundError:
            return

    async def _describe_volume(self, volume_id: str) -> dict[str, Any]:
        try:
            answer = await self._call("DescribeVolumes", f"volume {volume_id}", VolumeIds=[volume_id])
        except NotFoundError as exc:
            raise VolumeNotInRegion(
                f"InvalidVolume.NotFound: The volume '{volume_id}' does not exist in region {self.settings.region}",
                hint="the snapshot location is in another region than the volume: set "
                "spec.snapshotLocations.velero.config.region of the DataProtectionApplication (or spec.config.region "
                "of the VolumeSnapshotLocation) to the volume's region, and take a new backup",
            ) from exc
        volumes = answer.get("Volumes") or []
        if len(volumes) != 1:
            raise SnapshotError(f"expected 1 volume {volume_id}, EC2 listed {len(volumes)}")
        return dict(volumes[0])

    async def _wait_completed(self, snapshot_id: str) -> None:
        deadline = time.monotonic() + self._wait_timeout
        while True:
            answer = await self._call(
                "DescribeSnapshots", f"snapshot {snapshot_id}", SnapshotIds=[snapshot_id]
            )
            (snapshot,) = answer.get("Snapshots") or [{}]
            state = snapshot.get("State")
            if state == "completed":
                return
            if state == "error":
                raise SnapshotError(
                    f"snapshot {snapshot_id} failed: {snapshot.get('StateMessage') or 'EC2 gave no reason'}"
                )
            if time.monotonic() >= deadline:
                raise SnapshotError(
                    f"snapshot {snapshot_id} did not complete within {self._wait_timeout:.0f}s "
                    f"(state {state}, progress {snapshot.get('Progress') or '?'})"
                )
            await asyncio.sleep(_POLL_SECONDS)

    async def _call(self, operation: str, what: str, **request: Any) -> dict[str, Any]:
        from botocore.exceptions import BotoCoreError, ClientError

        method = getattr(self._ec2(), _snake(operation))
        try:
            answer: dict[str, Any] = await asyncio.to_thread(method, **request)
        except ClientError as exc:
            error = exc.response.get("Error") or {}
            code = str(error.get("Code") or "")
            message = f"{operation} for {what} failed: {code}: {error.get('Message') or 'no message'}"
            if code.endswith(".NotFound"):
                raise NotFoundError(message) from None
            raise SnapshotError(message) from None
        except BotoCoreError as exc:
            raise SnapshotError(f"{operation} for {what} failed: {exc}") from None
        return answer


def _tags(tags: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"Key": key, "Value": value} for key, value in sorted(tags.items())]


def _snake(operation: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", operation).lower()
