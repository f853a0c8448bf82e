"""What the node agent does for one pod volume: back it up, or restore it and tell the pod it may start.

These are the steps between "this PodVolumeBackup/PodVolumeRestore is
ours" and its final status; the controller (``strongroom.controller.nodeagent``)
claims the resources and writes their status, this module moves the data.

A backup is incremental: its parent is the newest snapshot of the same PVC
(tag ``pvc-uid``), else of the same pod volume (``pod-uid`` and ``volume``),
passed explicitly because restic's own guess (same host and path) would mix
volumes up. A restore writes the snapshot into the volume, then the done
marker ``<volume>/.velero/<restore-uid>`` that the pod's ``restore-wait``
init container waits for (Velero's protocol, so either side may be Velero's).
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from strongroom.errors import StrongroomError
from strongroom.volumes.location import RepositoryLocation
from strongroom.volumes.repository import Repositories
from strongroom.volumes.restic import Progress, while_locked

__all__ = [
    "DONE_DIR",
    "VolumeBackupResult",
    "back_up_volume",
    "parent_tags",
    "restore_volume",
    "restores_done",
    "wait_for_restores",
    "write_done_marker",
]

_log = logging.getLogger(__name__)

# The directory of done markers inside a restored volume (Velero's name, read by its restore helper too).
DONE_DIR: Final = ".velero"


@dataclass(frozen=True)
class VolumeBackupResult:
    """How one volume's backup went: the snapshot (None for an empty volume) and its sizes."""

    snapshot_id: str | None
    path: str
    total_bytes: int
    incremental_bytes: int


def parent_tags(tags: Mapping[str, str]) -> dict[str, str]:
    """The tags that identify earlier snapshots of the same data: the PVC's, else the pod volume's."""
    if tags.get("pvc-uid"):
        return {"pvc-uid": tags["pvc-uid"]}
    if tags.get("pod-uid") and tags.get("volume"):
        return {"pod-uid": tags["pod-uid"], "volume": tags["volume"]}
    return {}


async def back_up_volume(
    repositories: Repositories,
    location: RepositoryLocation,
    namespace: str,
    path: Path,
    tags: Mapping[str, str],
    *,
    progress: Progress | None = None,
) -> VolumeBackupResult:
    """Snapshot the files of the volume at ``path`` into ``namespace``'s repository in ``location``."""
    async with repositories.using(location, namespace) as restic:
        wanted = parent_tags(tags)
        parent = (
            await while_locked(
                lambda: restic.latest_snapshot(wanted),
                what=f"finding the parent of {path}",
                unlock=restic.unlock,
            )
            if wanted and not restic.created
            else None
        )
        if parent is not None:
            _log.debug("backing up %s with parent snapshot %s", path, parent.short_id)
        summary = await while_locked(
            lambda: restic.backup(path, tags=tags, parent=parent.id if parent else None, progress=progress),
            what=f"backup of {path}",
            unlock=restic.unlock,
        )
    if summary is None:
        _log.info("volume %s is empty: no snapshot taken", path)
        return VolumeBackupResult(snapshot_id=None, path=str(path), total_bytes=0, incremental_bytes=0)
    return VolumeBackupResult(
        snapshot_id=summary.snapshot_id,
        path=str(path),
        total_bytes=summary.total_bytes_processed,
        incremental_bytes=summary.data_added,
    )


async def restore_volume(
    repositories: Repositories,
    location: RepositoryLocation,
    source_namespace: str,
    snapshot_id: str,
    path: Path,
    *,
    progress: Progress | None = None,
) -> int:
    """Write ``snapshot_id`` into the volume at ``path``; returns the bytes restored.

    The repository must exist: a restore never creates one.
    """
    async with repositories.using(location, source_namespace, create=False) as restic:
        stats = await while_locked(
            lambda: restic.restore(snapshot_id, path, progress=progress),
            what=f"restore into {path}",
            unlock=restic.unlock,
        )
    return stats.total_size


def write_done_marker(path: Path, restore_uid: str) -> Path:
    """Mark the volume restored for ``restore_uid``; markers of earlier restores are removed first."""
    if not restore_uid or "/" in restore_uid or restore_uid in (".", ".."):
        raise StrongroomError(f"invalid restore UID {restore_uid!r} for the done marker")
    done_dir = path / DONE_DIR
    if done_dir.is_symlink() or done_dir.is_file():
        done_dir.unlink()
    else:
        shutil.rmtree(done_dir, ignore_errors=True)
    done_dir.mkdir(mode=0o755)
    marker = done_dir / restore_uid
    marker.touch(mode=0o644)
    return marker


# -- the restore-wait init container --------------------------------------------


def restores_done(root: Path, restore_uid: str) -> tuple[bool, list[str]]:
    """Whether every volume directory under ``root`` has its done marker; also the ones still waited for."""
    waiting: list[str] = []
    try:
        children = sorted(os.scandir(root), key=lambda entry: entry.name)
    except FileNotFoundError:
        return False, [str(root)]
    for child in children:
        if not child.is_dir():
            continue
        if not (Path(child.path) / DONE_DIR / restore_uid).exists():
            waiting.append(child.name)
    return not waiting, waiting


def _remove_markers(root: Path) -> None:
    for child in os.scandir(root):
        if child.is_dir():
            shutil.rmtree(Path(child.path) / DONE_DIR, ignore_errors=True)


def wait_for_restores(
    root: Path,
    restore_uid: str,
    *,
    interval: float = 1.0,
    timeout: float | None = None,
    report: Callable[[str], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Wait until every volume under ``root`` carries the restore's done marker, then remove the markers.

    The markers' directories are removed so that the application never sees
    them (Velero's restore helper does the same). Returns False when
    ``timeout`` passed first.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    reported: list[str] | None = None
    while True:
        done, waiting = restores_done(root, restore_uid)
        if done:
            break
        if waiting != reported:
            report(f"waiting for the restore of: {', '.join(waiting)}")
            reported = waiting
        if deadline is not None and time.monotonic() >= deadline:
            return False
        sleep(interval)
    report("all pod volume restores are done")
    _remove_markers(root)
    return True
