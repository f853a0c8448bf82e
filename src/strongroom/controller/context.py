"""What every controller of the server shares: the client, the resource types, settings and the clock.

The controllers are thin: they read a custom resource, call the engine and
write the status back. This module holds what they have in common so that
each controller is only its own rules, and so that tests can build a server
with a fake clock and short periods.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from strongroom.controller.metrics import ServerMetrics
from strongroom.errors import UsageError
from strongroom.kube import Discovery, KubeClient
from strongroom.kube.errors import KubeNotFound
from strongroom.model.resources import ApiResource
from strongroom.restore.volumes import DEFAULT_RESTORE_HELPER_IMAGE

__all__ = ["ServerConfig", "ServerContext", "ServerResources", "phase_of", "stored_form"]

_log = logging.getLogger(__name__)

VELERO_GROUP: Final = "velero.io"
OADP_GROUP: Final = "oadp.openshift.io"

# (attribute, group, resource): what the server reads and writes.
_NEEDED: Final = (
    ("backups", VELERO_GROUP, "backups"),
    ("restores", VELERO_GROUP, "restores"),
    ("schedules", VELERO_GROUP, "schedules"),
    ("locations", VELERO_GROUP, "backupstoragelocations"),
    ("snapshot_locations", VELERO_GROUP, "volumesnapshotlocations"),
    ("delete_requests", VELERO_GROUP, "deletebackuprequests"),
    ("download_requests", VELERO_GROUP, "downloadrequests"),
    ("status_requests", VELERO_GROUP, "serverstatusrequests"),
    ("pod_volume_backups", VELERO_GROUP, "podvolumebackups"),
    ("pod_volume_restores", VELERO_GROUP, "podvolumerestores"),
    ("repositories", VELERO_GROUP, "backuprepositories"),
    ("dpas", OADP_GROUP, "dataprotectionapplications"),
    ("secrets", "", "secrets"),
    ("namespaces", "", "namespaces"),
    ("leases", "coordination.k8s.io", "leases"),
)


@dataclass(frozen=True)
class ServerResources:
    """The API types the server works with, as this cluster serves them."""

    backups: ApiResource
    restores: ApiResource
    schedules: ApiResource
    locations: ApiResource
    snapshot_locations: ApiResource
    delete_requests: ApiResource
    download_requests: ApiResource
    status_requests: ApiResource
    pod_volume_backups: ApiResource
    pod_volume_restores: ApiResource
    repositories: ApiResource
    dpas: ApiResource
    secrets: ApiResource
    namespaces: ApiResource
    leases: ApiResource

    @classmethod
    def from_discovery(cls, discovery: Discovery) -> ServerResources:
        """The types, or UsageError naming every one the cluster does not serve."""
        found: dict[str, ApiResource] = {}
        missing: list[str] = []
        for attribute, group, resource in _NEEDED:
            res = discovery.find(group, resource)
            if res is None:
                missing.append(f"{resource}.{group}" if group else resource)
            else:
                found[attribute] = res
        if missing:
            raise UsageError(
                f"the cluster does not serve {', '.join(missing)}",
                hint="install strongroom's custom resource definitions first: strongroom install",
            )
        return cls(**found)


@dataclass(frozen=True)
class ServerConfig:
    """The server's settings (command-line flags), with Velero's defaults."""

    namespace: str
    default_backup_ttl: timedelta = timedelta(hours=720)
    default_location: str = "default"
    default_snapshot_locations: tuple[tuple[str, str], ...] = ()
    """The VolumeSnapshotLocation of each provider that has several (provider, name)."""
    openshift_plugin: bool = False
    """Copy ImageStreams' internal images without a DPA that lists the openshift plugin."""
    store_validation_frequency: timedelta = timedelta(minutes=1)
    backup_sync_period: timedelta = timedelta(minutes=1)
    gc_frequency: timedelta = timedelta(hours=1)
    schedule_check_period: timedelta = timedelta(seconds=1)
    download_url_ttl: timedelta = timedelta(minutes=10)
    # Processed requests (downloads, status requests) are removed after this.
    request_ttl: timedelta = timedelta(minutes=10)
    progress_interval: timedelta = timedelta(seconds=1)
    concurrent_backups: int = 1
    concurrent_restores: int = 1
    default_volumes_to_fs_backup: bool = False
    # How long a backup or restore waits for the node agents to copy the volumes (Velero's --fs-backup-timeout).
    fs_backup_timeout: timedelta = timedelta(hours=4)
    # The image of the restore-wait init container added to pods whose volumes are restored.
    restore_helper_image: str = DEFAULT_RESTORE_HELPER_IMAGE
    workdir: Path | None = None
    # Credentials of locations that name none: the Secret OADP documents.
    default_credentials_secret: str = "cloud-credentials"
    default_credentials_key: str = "cloud"


class ServerContext:
    """The client, the types, the settings and the clock of one running server."""

    def __init__(
        self,
        kube: KubeClient,
        resources: ServerResources,
        config: ServerConfig,
        *,
        clock: Callable[[], datetime] | None = None,
        metrics: ServerMetrics | None = None,
        events: Callable[[Mapping[str, Any], str, str, str], None] | None = None,
    ) -> None:
        self.kube = kube
        self.resources = resources
        self.config = config
        self.namespace = config.namespace
        self.clock: Callable[[], datetime] = clock or (lambda: datetime.now(UTC))
        self.metrics = metrics
        self._events = events

    def event(self, body: Mapping[str, Any], kind: str, reason: str, message: str) -> None:
        """Record a Kubernetes Event on ``body`` (Normal or Warning); never fails the caller."""
        if self._events is None:
            return
        try:
            self._events(body, kind, reason, message)
        except Exception:  # an event is a courtesy; the work it describes is what counts
            _log.debug("could not post event %s on %s", reason, body.get("metadata", {}).get("name"))

    async def get(self, res: ApiResource, name: str) -> dict[str, Any] | None:
        return await self.kube.get(res, name, self.namespace)

    async def list(self, res: ApiResource, *, label_selector: str | None = None) -> list[dict[str, Any]]:
        return await self.kube.list_all(res, namespace=self.namespace, label_selector=label_selector)

    async def patch(self, res: ApiResource, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """A JSON merge patch of the object (its metadata and spec; status too when not a subresource)."""
        return await self.kube.patch(res, name, patch, self.namespace)

    async def patch_status(
        self, res: ApiResource, name: str, status: dict[str, Any], *, resource_version: str | None = None
    ) -> dict[str, Any] | None:
        """Merge ``status`` into the object's status; None when the object is gone.

        Velero's Backup and Restore have no status subresource (the status is
        written with the object); other kinds have one. ``resource_version``
        makes the write conditional: a 409 then means someone else moved first.
        """
        body: dict[str, Any] = {"status": status}
        if resource_version is not None:
            body["metadata"] = {"resourceVersion": resource_version}
        subresource = "status" if "status" in res.subresources else None
        try:
            return await self.kube.patch(res, name, body, self.namespace, subresource=subresource)
        except KubeNotFound:
            return None

    async def write(
        self,
        res: ApiResource,
        name: str,
        *,
        metadata: dict[str, Any] | None = None,
        spec: dict[str, Any] | None = None,
        status: dict[str, Any] | None = None,
        resource_version: str | None = None,
    ) -> dict[str, Any]:
        """Merge metadata, spec and status into the object, in one write when the kind allows it.

        With a status subresource the status goes in a second write, after the
        first one (conditional on ``resource_version`` when given) succeeded.
        """
        body: dict[str, Any] = {}
        if metadata or resource_version:
            body["metadata"] = dict(metadata or {})
            if resource_version:
                body["metadata"]["resourceVersion"] = resource_version
        if spec:
            body["spec"] = spec
        separate = "status" in res.subresources
        if status is not None and not separate:
            body["status"] = status
        if status is not None and separate:
            if body:
                await self.kube.patch(res, name, body, self.namespace)
            return await self.kube.patch(res, name, {"status": status}, self.namespace, subresource="status")
        return await self.kube.patch(res, name, body or {"metadata": {}}, self.namespace)

    async def delete(self, res: ApiResource, name: str) -> bool:
        """Delete; False when it was already gone."""
        try:
            await self.kube.delete(res, name, self.namespace)
        except KubeNotFound:
            return False
        return True


def phase_of(body: Mapping[str, Any]) -> str:
    """The object's ``status.phase``, "" when unset."""
    return str((body.get("status") or {}).get("phase") or "")


def stored_form(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The resource as it is written to storage: without status and the API server's bookkeeping."""
    manifest = copy.deepcopy(dict(obj))
    metadata = manifest.setdefault("metadata", {})
    metadata.pop("managedFields", None)
    annotations = metadata.get("annotations") or {}
    annotations.pop("kubectl.kubernetes.io/last-applied-configuration", None)
    if not annotations:
        metadata.pop("annotations", None)
    manifest.pop("status", None)
    return manifest
