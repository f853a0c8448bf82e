"""Native volume snapshots as the engine sees them: snapshotters, the locations they serve, their records.

A backup takes native snapshots through the VolumeSnapshotLocations chosen
for it, one per provider (Velero's rule, :func:`choose_locations`): those the
Backup names in ``spec.volumeSnapshotLocations``, else the only location of a
provider, else the server's default for that provider. A persistent volume
is snapshotted by the first chosen location whose snapshotter recognises it.

Each snapshot is recorded in ``<backup>-volumesnapshots.json.gz`` as Velero's
``volume.Snapshot`` (:func:`snapshot_record`): the backup, the location, the
PV, the provider's volume ID, type, zone and IOPS, and the provider's
snapshot ID with the phase. Restore and deletion find the snapshotter again
through the record's location name.

Providers: ``aws`` (EBS, :mod:`strongroom.snapshots.ebs`). Azure managed
disks and GCE persistent disks have no snapshotter here: nothing can test
them short of the clouds themselves. Their volumes are protected by CSI
snapshots or file-system backup, and a backup that chooses such a location
says so in its warnings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from strongroom.errors import StrongroomError
from strongroom.storage.credentials import AwsCredentials

__all__ = [
    "NativeLocation",
    "SnapshotterSource",
    "UnsupportedProvider",
    "VolumeSnapshotter",
    "choose_locations",
    "snapshot_record",
    "snapshotter_for",
]

AWS_PROVIDERS: Final = frozenset({"aws", "velero.io/aws"})
PHASE_COMPLETED: Final = "Completed"
PHASE_FAILED: Final = "Failed"


class UnsupportedProvider(StrongroomError):
    """A VolumeSnapshotLocation of a provider that has no native snapshotter here."""


class VolumeSnapshotter(Protocol):
    """What Velero's VolumeSnapshotter plugin interface does, for one location."""

    def volume_id(self, pv: Mapping[str, Any]) -> str | None:
        """The provider's volume behind the PV, None when this snapshotter does not handle it."""
        ...

    def set_volume_id(self, pv: Mapping[str, Any], volume_id: str) -> dict[str, Any]:
        """A copy of the PV pointing at another volume (one restored from a snapshot)."""
        ...

    async def volume_info(self, volume_id: str) -> tuple[str, int | None]:
        """The volume's type and provisioned IOPS (None when the type has none)."""
        ...

    async def create_snapshot(self, volume_id: str, tags: Mapping[str, str]) -> str:
        """Snapshot the volume; the provider's snapshot ID once it is complete."""
        ...

    async def create_volume_from_snapshot(
        self, snapshot_id: str, volume_type: str, zone: str, iops: int | None = None
    ) -> str:
        """A new volume in ``zone`` from the snapshot; its ID."""
        ...

    async def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete the snapshot (one already gone is not an error)."""
        ...


class SnapshotterSource(Protocol):
    """Finds the snapshotter of a VolumeSnapshotLocation by name (restore and deletion)."""

    async def snapshotter(self, location: str) -> VolumeSnapshotter: ...


@dataclass(frozen=True)
class NativeLocation:
    """A VolumeSnapshotLocation chosen for a backup, with its snapshotter."""

    name: str
    provider: str
    snapshotter: VolumeSnapshotter


def choose_locations(
    named: Sequence[str],
    available: Sequence[Mapping[str, Any]],
    defaults: Mapping[str, str] | None = None,
) -> tuple[list[Mapping[str, Any]], list[str]]:
    """The locations a backup snapshots with, one per provider, and the validation errors (Velero's rules).

    ``named`` is the Backup's ``spec.volumeSnapshotLocations``, ``available`` the
    VolumeSnapshotLocations of its namespace, ``defaults`` the server's default
    location per provider (``--default-volume-snapshot-locations``).
    """
    by_name = {str((item.get("metadata") or {}).get("name")): item for item in available}
    chosen: dict[str, Mapping[str, Any]] = {}
    errors: list[str] = []
    for name in named:
        location = by_name.get(name)
        if location is None:
            errors.append(
                f"a VolumeSnapshotLocation CRD for the location {name} with the name specified in the backup "
                "spec needs to be created before this snapshot can be executed"
            )
            continue
        provider = _provider(location)
        taken = chosen.get(provider)
        if taken is not None and _name(taken) != name:
            errors.append(
                f"more than one VolumeSnapshotLocation name specified for provider {provider}: {name}; "
                f"unexpected name was {_name(taken)}"
            )
            continue
        chosen[provider] = location
    if errors:
        return [], errors
    per_provider: dict[str, list[Mapping[str, Any]]] = {}
    for location in available:
        per_provider.setdefault(_provider(location), []).append(location)
    for provider, locations in sorted(per_provider.items()):
        if provider in chosen:
            continue
        if len(locations) == 1:
            chosen[provider] = locations[0]
            continue
        default = (defaults or {}).get(provider)
        if not default:
            errors.append(
                f"provider {provider} has more than one possible volume snapshot location, and none were "
                "specified explicitly or as a default"
            )
            continue
        if default not in by_name:
            errors.append(
                f"the default volume snapshot location {default} of provider {provider} does not exist"
            )
            continue
        chosen[provider] = by_name[default]
    if errors:
        return [], errors
    return sorted(chosen.values(), key=_name), []


def snapshotter_for(location: Mapping[str, Any], credentials: object | None) -> VolumeSnapshotter:
    """The snapshotter of a VolumeSnapshotLocation; UnsupportedProvider or a config error otherwise."""
    provider = _provider(location)
    config = {str(k): str(v) for k, v in ((location.get("spec") or {}).get("config") or {}).items()}
    if provider in AWS_PROVIDERS:
        from strongroom.snapshots.ebs import EbsSettings, EbsSnapshotter

        aws = credentials if isinstance(credentials, AwsCredentials) else None
        return EbsSnapshotter(EbsSettings.from_velero_config(config, aws))
    raise UnsupportedProvider(
        f"volume snapshot location {_name(location)}: provider {provider} has no native snapshotter in "
        "strongroom (only aws EBS); its volumes are not snapshotted natively",
        hint="protect them with CSI snapshots (the csi plugin and a labelled VolumeSnapshotClass) "
        "or file-system backup (defaultVolumesToFsBackup)",
    )


def snapshot_record(
    backup: Mapping[str, Any],
    *,
    location: str,
    pv_name: str,
    volume_id: str,
    volume_type: str,
    zone: str | None,
    iops: int | None,
) -> dict[str, Any]:
    """A ``volume.Snapshot`` of Velero's ``<backup>-volumesnapshots.json.gz``, phase New."""
    metadata = backup.get("metadata") or {}
    spec: dict[str, Any] = {
        "backupName": str(metadata.get("name") or ""),
        "backupUID": str(metadata.get("uid") or ""),
        "location": location,
        "persistentVolumeName": pv_name,
        "providerVolumeID": volume_id,
        "volumeType": volume_type,
    }
    if zone:
        spec["volumeAZ"] = zone
    if iops is not None:
        spec["volumeIOPS"] = iops
    return {"spec": spec, "status": {"phase": "New"}}


def _provider(location: Mapping[str, Any]) -> str:
    return str((location.get("spec") or {}).get("provider") or "")


def _name(location: Mapping[str, Any]) -> str:
    return str((location.get("metadata") or {}).get("name") or "")
