"""Velero's request resources: DeleteBackupRequest, DownloadRequest and ServerStatusRequest.

Velero's CLI does not touch the bucket or the server process directly: it
creates one of these small resources and waits for the server to fill its
status (delete a backup, hand back a signed URL for a log, report the
server's version and plugins). strongroom's CLI does the same in server
mode, so the resources are Velero's, modelled like the others in
:mod:`strongroom.model.velero`.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from strongroom.model.velero import OpenStrEnum, Timestamp, _VeleroModel, _VeleroResource

__all__ = [
    "DeleteBackupRequest",
    "DeleteBackupRequestPhase",
    "DeleteBackupRequestSpec",
    "DeleteBackupRequestStatus",
    "DownloadRequest",
    "DownloadRequestPhase",
    "DownloadRequestSpec",
    "DownloadRequestStatus",
    "DownloadTarget",
    "DownloadTargetKind",
    "PluginInfo",
    "ServerStatusRequest",
    "ServerStatusRequestPhase",
    "ServerStatusRequestSpec",
    "ServerStatusRequestStatus",
]


# ---------------------------------------------------------------------------
# DeleteBackupRequest
# ---------------------------------------------------------------------------


class DeleteBackupRequestPhase(OpenStrEnum):
    """``status.phase`` of a DeleteBackupRequest."""

    NEW = "New"
    IN_PROGRESS = "InProgress"
    PROCESSED = "Processed"


class DeleteBackupRequestSpec(_VeleroModel):
    """Which backup to delete."""

    backup_name: str
    """The Backup to delete, with its files in object storage, its snapshots and its restores."""


class DeleteBackupRequestStatus(_VeleroModel):
    """How far the deletion got."""

    phase: DeleteBackupRequestPhase | None = None
    """New until picked up, InProgress while deleting, Processed when done (successfully or not)."""
    errors: list[str] | None = None
    """What could not be deleted; empty when the deletion succeeded."""


class DeleteBackupRequest(_VeleroResource):
    """A ``velero.io/v1`` DeleteBackupRequest: asks the server to delete a backup and everything it stored."""

    KIND: ClassVar[str] = "DeleteBackupRequest"

    kind: str = "DeleteBackupRequest"
    spec: DeleteBackupRequestSpec
    status: DeleteBackupRequestStatus = Field(default_factory=DeleteBackupRequestStatus)


# ---------------------------------------------------------------------------
# DownloadRequest
# ---------------------------------------------------------------------------


class DownloadTargetKind(OpenStrEnum):
    """Which file of a backup or restore a DownloadRequest asks for."""

    BACKUP_LOG = "BackupLog"
    BACKUP_CONTENTS = "BackupContents"
    BACKUP_VOLUME_SNAPSHOTS = "BackupVolumeSnapshots"
    BACKUP_ITEM_OPERATIONS = "BackupItemOperations"
    BACKUP_RESOURCE_LIST = "BackupResourceList"
    BACKUP_RESULTS = "BackupResults"
    RESTORE_LOG = "RestoreLog"
    RESTORE_RESULTS = "RestoreResults"
    RESTORE_RESOURCE_LIST = "RestoreResourceList"
    RESTORE_ITEM_OPERATIONS = "RestoreItemOperations"
    CSI_BACKUP_VOLUME_SNAPSHOTS = "CSIBackupVolumeSnapshots"
    CSI_BACKUP_VOLUME_SNAPSHOT_CONTENTS = "CSIBackupVolumeSnapshotContents"
    BACKUP_VOLUME_INFOS = "BackupVolumeInfos"
    RESTORE_VOLUME_INFO = "RestoreVolumeInfo"


class DownloadRequestPhase(OpenStrEnum):
    """``status.phase`` of a DownloadRequest."""

    NEW = "New"
    PROCESSED = "Processed"


class DownloadTarget(_VeleroModel):
    """The file to download: its kind and the backup or restore it belongs to."""

    kind: DownloadTargetKind
    """The kind of file, for example BackupLog, BackupContents or RestoreResults."""
    name: str
    """The name of the Backup or Restore the file belongs to."""


class DownloadRequestSpec(_VeleroModel):
    """What to download."""

    target: DownloadTarget
    """The file to download."""


class DownloadRequestStatus(_VeleroModel):
    """Where to download the file from, and until when."""

    phase: DownloadRequestPhase | None = None
    """New until the server has signed a URL; Processed afterwards."""
    download_url: str | None = None
    """A pre-signed URL the file can be fetched from without credentials."""
    expiration: Timestamp | None = None
    """When the URL stops working and the request may be deleted."""


class DownloadRequest(_VeleroResource):
    """A ``velero.io/v1`` DownloadRequest: asks the server for a signed URL to one file of a backup or restore."""

    KIND: ClassVar[str] = "DownloadRequest"

    kind: str = "DownloadRequest"
    spec: DownloadRequestSpec
    status: DownloadRequestStatus = Field(default_factory=DownloadRequestStatus)


# ---------------------------------------------------------------------------
# ServerStatusRequest
# ---------------------------------------------------------------------------


class ServerStatusRequestPhase(OpenStrEnum):
    """``status.phase`` of a ServerStatusRequest."""

    NEW = "New"
    PROCESSED = "Processed"


class PluginInfo(_VeleroModel):
    """One plugin the server runs."""

    name: str
    """The plugin's name, for example velero.io/aws."""
    kind: str
    """What the plugin does, for example ObjectStore or BackupItemAction."""


class ServerStatusRequestSpec(_VeleroModel):
    """Empty: the request carries no parameters."""


class ServerStatusRequestStatus(_VeleroModel):
    """The server's answer."""

    phase: ServerStatusRequestPhase | None = None
    """New until the server answered; Processed afterwards."""
    processed_timestamp: Timestamp | None = None
    """When the server answered."""
    server_version: str | None = None
    """The server's version."""
    plugins: list[PluginInfo] | None = None
    """The plugins the server runs."""


class ServerStatusRequest(_VeleroResource):
    """A ``velero.io/v1`` ServerStatusRequest: asks the server for its version and plugins."""

    KIND: ClassVar[str] = "ServerStatusRequest"

    kind: str = "ServerStatusRequest"
    spec: ServerStatusRequestSpec = Field(default_factory=ServerStatusRequestSpec)
    status: ServerStatusRequestStatus = Field(default_factory=ServerStatusRequestStatus)
