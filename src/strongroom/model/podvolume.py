"""Velero's file-system backup resources: PodVolumeBackup, PodVolumeRestore, BackupRepository.

File-system backup copies a pod volume's files with restic or kopia into a
repository per namespace and location. The server asks the node agent on
the pod's node to do the copy by creating a PodVolumeBackup (or
PodVolumeRestore); the repository itself is tracked by a BackupRepository.
The shapes are Velero's, so a cluster can be moved between Velero and
strongroom, and are modelled like the resources in :mod:`strongroom.model.velero`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from strongroom.model.velero import GoDuration, OpenStrEnum, Timestamp, _VeleroModel, _VeleroResource

__all__ = [
    "BackupRepository",
    "BackupRepositoryMaintenanceResult",
    "BackupRepositoryMaintenanceStatus",
    "BackupRepositoryPhase",
    "BackupRepositorySpec",
    "BackupRepositoryStatus",
    "DataMoveOperationProgress",
    "ObjectReference",
    "PodVolumeBackup",
    "PodVolumeBackupSpec",
    "PodVolumeBackupStatus",
    "PodVolumeOperationPhase",
    "PodVolumeRestore",
    "PodVolumeRestoreSpec",
    "PodVolumeRestoreStatus",
    "UploaderType",
]


class UploaderType(OpenStrEnum):
    """The tool that copies volume data; empty means the server's default."""

    KOPIA = "kopia"
    RESTIC = "restic"
    DEFAULT = ""


class PodVolumeOperationPhase(OpenStrEnum):
    """``status.phase`` of a PodVolumeBackup or PodVolumeRestore (Velero gives both the same phases)."""

    NEW = "New"
    ACCEPTED = "Accepted"
    PREPARED = "Prepared"
    IN_PROGRESS = "InProgress"
    CANCELING = "Canceling"
    CANCELED = "Canceled"
    COMPLETED = "Completed"
    FAILED = "Failed"


class ObjectReference(_VeleroModel):
    """``corev1.ObjectReference``: the pod whose volume is copied."""

    api_version: str | None = None
    """The API version of the referenced object (v1 for a pod)."""
    field_path: str | None = None
    """A part of the object, such as a container; unused here."""
    kind: str | None = None
    """The kind of the referenced object (Pod)."""
    name: str | None = None
    """The name of the referenced object."""
    namespace: str | None = None
    """The namespace of the referenced object."""
    resource_version: str | None = None
    """The resourceVersion the reference was made from."""
    uid: str | None = None
    """The UID of the referenced object."""


class DataMoveOperationProgress(_VeleroModel):
    """Bytes copied so far out of the total."""

    total_bytes: int | None = None
    """The size of the data to copy."""
    bytes_done: int | None = None
    """How much has been copied."""


# ---------------------------------------------------------------------------
# PodVolumeBackup
# ---------------------------------------------------------------------------


class PodVolumeBackupSpec(_VeleroModel):
    """Which pod volume to copy, from which node, into which repository."""

    node: str
    """The node the pod runs on; only that node's agent handles the request."""
    pod: ObjectReference
    """The pod whose volume is backed up."""
    volume: str
    """The name of the volume in the pod."""
    backup_storage_location: str
    """The BackupStorageLocation holding the repository."""
    repo_identifier: str
    """The repository's identifier (its URL for restic)."""
    uploader_type: UploaderType | None = None
    """kopia or restic; empty for the server's default."""
    tags: dict[str, str] | None = None
    """Tags recorded with the snapshot (backup, pod, volume ...)."""
    uploader_settings: dict[str, str] | None = None
    """Settings passed to the uploader."""
    cancel: bool | None = None
    """Set to true to cancel the copy while it is in progress."""


class PodVolumeBackupStatus(_VeleroModel):
    """How the copy went."""

    phase: PodVolumeOperationPhase | None = None
    """New, Accepted, Prepared, InProgress, Canceling, Canceled, Completed or Failed."""
    path: str | None = None
    """The path of the volume's files on the node."""
    snapshot_id: str | None = None
    """The identifier of the snapshot in the repository."""
    message: str | None = None
    """Why the copy failed, or other detail."""
    start_timestamp: Timestamp | None = None
    """When the copy started."""
    completion_timestamp: Timestamp | None = None
    """When the copy ended, whether it succeeded or not."""
    progress: DataMoveOperationProgress | None = None
    """Bytes copied so far."""
    incremental_bytes: int | None = None
    """Bytes that were new or changed since the previous snapshot."""
    accepted_timestamp: Timestamp | None = None
    """When a node agent accepted the request."""


class PodVolumeBackup(_VeleroResource):
    """A ``velero.io/v1`` PodVolumeBackup: one pod volume's files copied into a repository."""

    KIND: ClassVar[str] = "PodVolumeBackup"

    kind: str = "PodVolumeBackup"
    spec: PodVolumeBackupSpec
    status: PodVolumeBackupStatus = Field(default_factory=PodVolumeBackupStatus)


# ---------------------------------------------------------------------------
# PodVolumeRestore
# ---------------------------------------------------------------------------


class PodVolumeRestoreSpec(_VeleroModel):
    """Which snapshot to restore into which pod volume."""

    pod: ObjectReference
    """The restored pod whose volume receives the files."""
    volume: str
    """The name of the volume in the pod."""
    backup_storage_location: str
    """The BackupStorageLocation holding the repository."""
    repo_identifier: str
    """The repository's identifier (its URL for restic)."""
    uploader_type: UploaderType | None = None
    """kopia or restic; empty for the server's default."""
    snapshot_id: str
    """The snapshot to restore."""
    source_namespace: str
    """The namespace the volume was backed up from (before any namespace mapping)."""
    uploader_settings: dict[str, str] | None = None
    """Settings passed to the uploader."""
    cancel: bool | None = None
    """Set to true to cancel the copy while it is in progress."""
    snapshot_size: int | None = None
    """The size of the snapshot's data in bytes."""


class PodVolumeRestoreStatus(_VeleroModel):
    """How the copy went."""

    phase: PodVolumeOperationPhase | None = None
    """New, Accepted, Prepared, InProgress, Canceling, Canceled, Completed or Failed."""
    message: str | None = None
    """Why the copy failed, or other detail."""
    start_timestamp: Timestamp | None = None
    """When the copy started."""
    completion_timestamp: Timestamp | None = None
    """When the copy ended, whether it succeeded or not."""
    progress: DataMoveOperationProgress | None = None
    """Bytes copied so far."""
    accepted_timestamp: Timestamp | None = None
    """When a node agent accepted the request."""
    node: str | None = None
    """The node whose agent did the copy."""


class PodVolumeRestore(_VeleroResource):
    """A ``velero.io/v1`` PodVolumeRestore: one snapshot's files copied back into a pod volume."""

    KIND: ClassVar[str] = "PodVolumeRestore"

    kind: str = "PodVolumeRestore"
    spec: PodVolumeRestoreSpec
    status: PodVolumeRestoreStatus = Field(default_factory=PodVolumeRestoreStatus)


# ---------------------------------------------------------------------------
# BackupRepository
# ---------------------------------------------------------------------------


class BackupRepositoryPhase(OpenStrEnum):
    """``status.phase`` of a BackupRepository."""

    NEW = "New"
    READY = "Ready"
    NOT_READY = "NotReady"


class BackupRepositoryMaintenanceResult(OpenStrEnum):
    """How one maintenance run of a repository ended."""

    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class BackupRepositorySpec(_VeleroModel):
    """The repository of one namespace's volume data in one location."""

    volume_namespace: str
    """The namespace whose pod volumes this repository holds."""
    backup_storage_location: str
    """The BackupStorageLocation the repository lives in."""
    repository_type: UploaderType | None = None
    """kopia or restic."""
    restic_identifier: str | None = None
    """Deprecated: the restic repository URL."""
    maintenance_frequency: GoDuration
    """How often the repository is maintained (pruned), as a duration such as 168h0m0s."""
    repository_config: dict[str, str] | None = None
    """Repository-specific settings."""


class BackupRepositoryMaintenanceStatus(_VeleroModel):
    """One maintenance run."""

    result: BackupRepositoryMaintenanceResult | None = None
    """Succeeded or Failed."""
    start_timestamp: Timestamp | None = None
    """When the run started."""
    complete_timestamp: Timestamp | None = None
    """When the run ended."""
    message: str | None = None
    """Detail, such as the error of a failed run."""


class BackupRepositoryStatus(_VeleroModel):
    """Whether the repository is ready and how its maintenance went."""

    phase: BackupRepositoryPhase | None = None
    """New, Ready or NotReady."""
    message: str | None = None
    """Why the repository is not ready."""
    last_maintenance_time: Timestamp | None = None
    """When maintenance last succeeded."""
    recent_maintenance: list[BackupRepositoryMaintenanceStatus] | None = None
    """The latest maintenance runs."""


class BackupRepository(_VeleroResource):
    """A ``velero.io/v1`` BackupRepository: a restic or kopia repository for one namespace in one location."""

    KIND: ClassVar[str] = "BackupRepository"

    kind: str = "BackupRepository"
    spec: BackupRepositorySpec
    status: BackupRepositoryStatus = Field(default_factory=BackupRepositoryStatus)
