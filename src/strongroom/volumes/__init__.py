"""Persistent-volume data: file-system backup of pod volumes with restic (Velero's "fs-backup").

``RepositoryLocation`` is a BackupStorageLocation as restic sees it (the
repository address per namespace), ``Repositories`` opens, creates and
recreates the repositories and keeps their password and BackupRepository
resource, ``Restic`` runs the binary, ``back_up_volume``/``restore_volume``
are what the node agent does for one pod volume, and ``paths`` finds a
volume's directory on the node.
"""

from __future__ import annotations

from strongroom.volumes.agent import (
    DONE_DIR,
    VolumeBackupResult,
    back_up_volume,
    parent_tags,
    restore_volume,
    restores_done,
    wait_for_restores,
    write_done_marker,
)
from strongroom.volumes.location import RepositoryLocation
from strongroom.volumes.paths import find_volume_path, pod_volume, volume_directory_name
from strongroom.volumes.repository import (
    PASSWORD_SECRET,
    Repositories,
    RepositoryPasswords,
    RepositoryResources,
)
from strongroom.volumes.restic import (
    RESTIC_HOST,
    BackupSummary,
    Restic,
    ResticError,
    ResticTarget,
    Snapshot,
)

__all__ = [
    "DONE_DIR",
    "PASSWORD_SECRET",
    "RESTIC_HOST",
    "BackupSummary",
    "Repositories",
    "RepositoryLocation",
    "RepositoryPasswords",
    "RepositoryResources",
    "Restic",
    "ResticError",
    "ResticTarget",
    "Snapshot",
    "VolumeBackupResult",
    "back_up_volume",
    "find_volume_path",
    "parent_tags",
    "pod_volume",
    "restore_volume",
    "restores_done",
    "volume_directory_name",
    "wait_for_restores",
    "write_done_marker",
]
