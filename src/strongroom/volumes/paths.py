"""Where a pod's volume is on its node: the directory the node agent hands to restic.

The kubelet mounts every volume of pod ``U`` under
``/var/lib/kubelet/pods/U/volumes/<plugin>/<dir>``: a PVC's volume under the
PV's name (with ``/mount`` appended for CSI volumes, whose driver mounts
into that subdirectory), any other volume (emptyDir, configMap, ...) under the
volume's name. The node agent sees that tree at ``--host-pods-root`` and,
like Velero's, finds the volume with the glob
``<root>/<pod-uid>/volumes/*/<dir>``, which must match exactly once. The
match is resolved (a CSI mount may be a symlink to the data) so restic reads
the data itself and not a link to it.
"""

from __future__ import annotations

import glob
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from strongroom.errors import NotFoundError, UsageError

__all__ = ["find_volume_path", "pod_volume", "volume_directory_name"]


def pod_volume(pod: Mapping[str, Any], volume: str) -> Mapping[str, Any]:
    """The ``spec.volumes`` entry named ``volume``; NotFoundError when the pod has none."""
    for entry in (pod.get("spec") or {}).get("volumes") or ():
        if isinstance(entry, Mapping) and entry.get("name") == volume:
            return entry
    metadata = pod.get("metadata") or {}
    raise NotFoundError(
        f"volume {volume!r} not found in pod {metadata.get('namespace')}/{metadata.get('name')}"
    )


def volume_directory_name(
    volume: Mapping[str, Any], pv: Mapping[str, Any] | None = None, *, pv_is_csi: bool | None = None
) -> str:
    """The directory name of a volume under ``volumes/<plugin>/`` (Velero's ``GetVolumeDirectory``).

    ``pv`` is the PersistentVolume bound to the volume's claim, when the
    volume is a PVC; a PV with a ``csi`` source (or ``pv_is_csi``) gets ``/mount``.
    """
    name = str(volume.get("name") or "")
    claim = volume.get("persistentVolumeClaim")
    if not claim:
        return f"{name}/mount" if volume.get("csi") else name
    if pv is None:
        raise UsageError(f"volume {name!r} is a PersistentVolumeClaim: its PersistentVolume is needed")
    pv_name = str((pv.get("metadata") or {}).get("name") or "")
    csi = bool((pv.get("spec") or {}).get("csi")) if pv_is_csi is None else pv_is_csi
    return f"{pv_name}/mount" if csi else pv_name


def find_volume_path(host_pods_root: Path, pod_uid: str, directory: str) -> Path:
    """The one directory matching ``<root>/<pod-uid>/volumes/*/<directory>``, symlinks resolved."""
    for part in (pod_uid, *directory.split("/")):
        if not part or part in (".", ".."):
            raise UsageError(f"invalid volume path component {part!r} (pod {pod_uid}, volume {directory})")
    pattern = str(
        Path(glob.escape(str(host_pods_root)))
        / glob.escape(pod_uid)
        / "volumes"
        / "*"
        / glob.escape(directory)
    )
    matches = sorted(glob.glob(pattern))
    if not matches:
        raise NotFoundError(
            f"no volume directory matches {pattern}",
            hint="the pod must be running on this node with the volume mounted",
        )
    if len(matches) > 1:
        raise UsageError(f"more than one volume directory matches {pattern}: {', '.join(matches)}")
    path = Path(matches[0]).resolve()
    if not path.is_dir():
        raise NotFoundError(f"the volume path {matches[0]} does not lead to a directory")
    return path
