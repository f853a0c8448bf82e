"""Which pod volumes a backup copies with file-system backup, by Velero's rules.

Opt-in (the default): only the volumes named in the pod annotation
``backup.velero.io/backup-volumes``. Opt-out (``defaultVolumesToFsBackup`` or
the older ``defaultVolumesToRestic`` on the Backup): every volume except
those named in ``backup.velero.io/backup-volumes-excludes``. Volumes whose
content is the cluster's own objects (secrets, config maps, projected and
downward-API volumes, service-account tokens) are never copied: those
objects are backed up as objects. hostPath volumes are not under the
kubelet's pod directory, so the node agent cannot reach them; block
volumes have no files; a volume no container mounts has no directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

__all__ = [
    "VOLUMES_TO_BACKUP_ANNOTATION",
    "VOLUMES_TO_EXCLUDE_ANNOTATION",
    "VolumeSelection",
    "defaults_to_fs_backup",
    "select_pod_volumes",
]

VOLUMES_TO_BACKUP_ANNOTATION: Final = "backup.velero.io/backup-volumes"
VOLUMES_TO_EXCLUDE_ANNOTATION: Final = "backup.velero.io/backup-volumes-excludes"

# Volume sources whose content is API objects, backed up as such.
_OBJECT_SOURCES: Final = ("secret", "configMap", "projected", "downwardAPI")


@dataclass
class VolumeSelection:
    """The outcome for one pod: volumes to copy, and why others were left out."""

    selected: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    """Volume name -> why it is not copied (only for volumes the user asked for or that hold data)."""
    opted_out: list[str] = field(default_factory=list)


def defaults_to_fs_backup(spec: Mapping[str, Any], server_default: bool = False) -> bool:
    """A Backup's ``defaultVolumesToFsBackup``, else its deprecated ``defaultVolumesToRestic``, else the server's."""
    for key in ("defaultVolumesToFsBackup", "defaultVolumesToRestic"):
        value = spec.get(key)
        if isinstance(value, bool):
            return value
    return server_default


def _annotation_list(pod: Mapping[str, Any], key: str) -> list[str]:
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(key)
    if not isinstance(value, str) or not value.strip():
        return []
    return [name.strip() for name in value.split(",") if name.strip()]


def _mounted(pod: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    mounts: set[str] = set()
    devices: set[str] = set()
    spec = pod.get("spec") or {}
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        mounts.update(m.get("name", "") for m in container.get("volumeMounts") or [])
        devices.update(d.get("name", "") for d in container.get("volumeDevices") or [])
    return mounts, devices


def select_pod_volumes(
    pod: Mapping[str, Any],
    *,
    default_to_fs_backup: bool,
    host_path_claims: Iterable[str] = (),
) -> VolumeSelection:
    """The volumes of ``pod`` to copy with file-system backup.

    ``host_path_claims`` names the pod's claims whose volume is a hostPath PV
    (the caller looked the PVs up): those are skipped like hostPath volumes.
    """
    volumes = {v.get("name", ""): v for v in (pod.get("spec") or {}).get("volumes") or []}
    result = VolumeSelection()
    host_path = set(host_path_claims)
    if default_to_fs_backup:
        excluded = set(_annotation_list(pod, VOLUMES_TO_EXCLUDE_ANNOTATION))
        candidates = []
        for name, volume in volumes.items():
            if any(source in volume for source in _OBJECT_SOURCES):
                continue
            if name.startswith("default-token"):
                continue
            if name in excluded:
                result.opted_out.append(name)
                continue
            candidates.append(name)
    else:
        candidates = _annotation_list(pod, VOLUMES_TO_BACKUP_ANNOTATION)
    mounts, devices = _mounted(pod)
    for name in dict.fromkeys(candidates):
        volume = volumes.get(name)
        if volume is None:
            result.skipped[name] = "the pod has no volume of this name"
        elif "hostPath" in volume or (
            "persistentVolumeClaim" in volume
            and volume["persistentVolumeClaim"].get("claimName") in host_path
        ):
            result.skipped[name] = "hostPath volumes are not supported by file-system backup"
        elif any(source in volume for source in _OBJECT_SOURCES):
            result.skipped[name] = "its content is API objects, which are backed up as objects"
        elif name in devices:
            result.skipped[name] = "block volumes are not supported by file-system backup"
        elif name not in mounts:
            result.skipped[name] = "no container mounts it"
        else:
            result.selected.append(name)
    return result
