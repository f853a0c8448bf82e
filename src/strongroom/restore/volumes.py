"""Putting volume data back: file-system restores, CSI snapshots, and restore hooks.

The runner asks :class:`VolumeRestores` about every item just before it is
created and tells it about every item created:

* a pod whose volumes were copied by file-system backup gets the
  ``restore-wait`` init container first (every such volume mounted under
  ``/restores/<volume>``), then the init containers of restore hooks; once
  the pod exists, one PodVolumeRestore per volume asks the node agent of
  the pod's node to copy the data back, and the application starts only
  when every volume is in place;
* a VolumeSnapshot from the backup comes back pre-provisioned: a
  VolumeSnapshotContent naming the stored snapshot handle, and the
  VolumeSnapshot bound to it; the backed-up contents themselves are not
  recreated. A claim that was snapshotted is created from its VolumeSnapshot
  (``dataSource``), unless ``restorePVs`` is false;
* a PV that has a native snapshot (``<backup>-volumesnapshots.json.gz``) gets
  a new volume made from it, in the zone the snapshot recorded, by the
  snapshotter of the VolumeSnapshotLocation it was taken with, and the PV
  points at the new volume (unless ``restorePVs`` is false). A PV of that
  name that still exists is left alone (no orphan volume is made), one being
  deleted is waited for, and a PV whose claim moves to another namespace
  while the original exists becomes a clone under a new name;
* exec restore hooks start once their pod exists.

:meth:`VolumeRestores.finish` waits for the copies and the hooks.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final

from strongroom import __version__
from strongroom.archive import Results
from strongroom.archive.runlog import RunLog
from strongroom.errors import NotFoundError, StrongroomError
from strongroom.hooks import HookResults, RestoreExecHooks, RestoreHookSet, add_init_containers
from strongroom.kube import Discovery, KubeClient
from strongroom.model import labels as velero_labels
from strongroom.restore.actions import rename_pv
from strongroom.restore.images import IMAGESTREAMS, ImageStreamRestores
from strongroom.snapshots.native import PHASE_COMPLETED, SnapshotterSource
from strongroom.storage.catalog import BackupCatalog

__all__ = [
    "DEFAULT_RESTORE_HELPER_IMAGE",
    "RESTORE_WAIT_CONTAINER",
    "BackupVolumeData",
    "VolumeRestores",
    "load_volume_data",
]

_log = logging.getLogger(__name__)

RESTORE_WAIT_CONTAINER: Final = "restore-wait"
RESTORES_MOUNT: Final = "/restores"
DEFAULT_RESTORE_HELPER_IMAGE: Final = f"strongroom/strongroom:{__version__}"
SNAPSHOT_GROUP: Final = "snapshot.storage.k8s.io"
VS_HANDLE_ANNOTATION: Final = "velero.io/csi-volumesnapshot-handle"
VS_DRIVER_ANNOTATION: Final = "velero.io/csi-driver-name"
VS_RESTORE_SIZE_ANNOTATION: Final = "velero.io/csi-volumesnapshot-restore-size"
DEFAULT_FS_RESTORE_TIMEOUT: Final = timedelta(hours=4)
# Velero's --terminating-resource-timeout: how long a PV being deleted is waited for.
DEFAULT_TERMINATING_TIMEOUT: Final = timedelta(minutes=10)
_TERMINAL: Final = frozenset({"Completed", "Failed", "Canceled"})


@dataclass
class BackupVolumeData:
    """What a backup stored about its volumes, beside the tarball."""

    pod_volume_backups: list[dict[str, Any]] = field(default_factory=list)
    volume_infos: list[dict[str, Any]] = field(default_factory=list)
    volume_snapshots: list[dict[str, Any]] = field(default_factory=list)
    """Native snapshots (Velero's ``volume.Snapshot`` records)."""

    def volume_methods(self) -> dict[str, str]:
        """PV name -> how its data was backed up, for the planner.

        A native snapshot that failed holds no data: its PV counts as not
        snapshotted. A backup without volume info (Velero before 1.13) is
        read from its volume snapshot records.
        """
        methods = {
            str(info["pvName"]): str(info.get("backupMethod") or "")
            for info in self.volume_infos
            if info.get("pvName")
            and not info.get("skipped")
            and not (info.get("backupMethod") == "NativeSnapshot" and info.get("result") == "failed")
        }
        if not self.volume_infos:
            for record in self.volume_snapshots:
                if self.native_snapshot(str((record.get("spec") or {}).get("persistentVolumeName"))):
                    methods[str(record["spec"]["persistentVolumeName"])] = "NativeSnapshot"
        return methods

    def native_snapshot(self, pv_name: str) -> dict[str, Any] | None:
        """The completed native snapshot of a backed-up PV, if it has one."""
        for record in self.volume_snapshots:
            spec, status = record.get("spec") or {}, record.get("status") or {}
            if (
                spec.get("persistentVolumeName") == pv_name
                and status.get("phase") == PHASE_COMPLETED
                and status.get("providerSnapshotID")
            ):
                return record
        return None

    def claim_snapshot(self, namespace: str, claim: str) -> str | None:
        """The VolumeSnapshot a backed-up claim was snapshotted as (CSI), if it was."""
        for info in self.volume_infos:
            if (
                info.get("backupMethod") == "CSISnapshot"
                and info.get("pvcNamespace") == namespace
                and info.get("pvcName") == claim
            ):
                name = (info.get("csiSnapshotInfo") or {}).get("volumeSnapshotName")
                return str(name) if name else None
        return None

    def pod_volumes(self, namespace: str, pod: str) -> list[dict[str, Any]]:
        """The completed file-system copies of one backed-up pod's volumes."""
        return [
            pvb
            for pvb in self.pod_volume_backups
            if ((pvb.get("spec") or {}).get("pod") or {}).get("namespace") == namespace
            and pvb["spec"]["pod"].get("name") == pod
            and (pvb.get("status") or {}).get("phase") == "Completed"
            and (pvb.get("status") or {}).get("snapshotID")
        ]


async def load_volume_data(catalog: BackupCatalog, backup: str) -> BackupVolumeData:
    """Read the pod volume backups and volume info of a backup (missing files: nothing was copied)."""
    layout = catalog.layout
    data = BackupVolumeData()
    for key, target in (
        (layout.backup_pod_volume_backups(backup), data.pod_volume_backups),
        (layout.backup_volume_info(backup), data.volume_infos),
        (layout.backup_volume_snapshots(backup), data.volume_snapshots),
    ):
        try:
            raw = await catalog.read_file(key)
        except NotFoundError:
            continue
        document = json.loads(gzip.decompress(raw) or b"null")
        if isinstance(document, list):
            target.extend(item for item in document if isinstance(item, dict))
    return data


class VolumeRestores:
    """One restore's volume and hook work; the runner calls it around each create."""

    def __init__(
        self,
        kube: KubeClient,
        discovery: Discovery,
        restore: dict[str, Any],
        data: BackupVolumeData,
        results: Results,
        log: RunLog,
        *,
        hooks: RestoreHookSet | None = None,
        exec_hooks: RestoreExecHooks | None = None,
        restore_pvs: bool | None = None,
        helper_image: str = DEFAULT_RESTORE_HELPER_IMAGE,
        timeout: timedelta = DEFAULT_FS_RESTORE_TIMEOUT,
        snapshotters: SnapshotterSource | None = None,
        terminating_timeout: timedelta = DEFAULT_TERMINATING_TIMEOUT,
        images: ImageStreamRestores | None = None,
        poll: float = 0.25,
    ) -> None:
        self._kube = kube
        self._data = data
        self._results = results
        self._log = log
        self._hooks = hooks
        self._exec_hooks = exec_hooks
        self._restore_pvs = restore_pvs
        self._image = helper_image
        self._timeout = timeout
        self._poll = poll
        metadata = restore.setdefault("metadata", {})
        # A restore made outside the cluster has no UID yet: the markers and labels need one.
        metadata.setdefault("uid", str(uuid.uuid4()))
        self._name = str(metadata.get("name"))
        self._namespace = str(metadata.get("namespace") or "velero")
        self._uid = str(metadata["uid"])
        self._pvrs = discovery.find("velero.io", "podvolumerestores")
        self._contents = discovery.find(SNAPSHOT_GROUP, "volumesnapshotcontents")
        self._pvs = discovery.find("", "persistentvolumes")
        self._snapshotters = snapshotters
        self.images = images
        self._terminating_timeout = terminating_timeout
        self._pending: dict[str, tuple[str, str]] = {}
        self.restored_volumes = 0
        self.hook_results = HookResults()

    # ------------------------------------------------------------ before create

    async def before_create(
        self, resource: str, source_namespace: str | None, source_name: str, obj: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The object to create (changed), or None to leave it out."""
        if resource == "pods":
            return self._pod(source_namespace or "", source_name, obj)
        if resource == "persistentvolumeclaims":
            return self._claim(source_namespace or "", source_name, obj)
        if resource == f"volumesnapshots.{SNAPSHOT_GROUP}":
            return await self._snapshot(obj)
        if resource == f"volumesnapshotcontents.{SNAPSHOT_GROUP}":
            # Recreated from the VolumeSnapshots (pre-provisioned), never as they were.
            return None
        if resource == IMAGESTREAMS and self.images is not None:
            return await self.images.restore(source_namespace or "", source_name, obj)
        return obj

    async def restore_native_volume(
        self, source_name: str, pv: dict[str, Any], *, rename_if_exists: bool, renamed: dict[str, str]
    ) -> dict[str, Any]:
        """The PV to create: pointing at a new volume made from its native snapshot (restore.go's PV action).

        ``renamed`` records a clone's new name for the claims that follow it.
        Failures raise StrongroomError: the PV is not restored, the error names it.
        """
        record = self._data.native_snapshot(source_name)
        if record is None:
            self._log.info("No snapshot found for persistent volume", name=source_name)
            return pv
        name = str((pv.get("metadata") or {}).get("name") or source_name)
        new_name: str | None = None
        live = await self._kube.get(self._pvs, name) if self._pvs is not None else None
        if live is not None and rename_if_exists:
            new_name = f"velero-clone-{uuid.uuid4()}"
        elif live is not None:
            if not (live.get("metadata") or {}).get("deletionTimestamp"):
                # Creating a volume now would leave it orphaned: the PV that exists keeps its own.
                self._log.info(
                    "persistent volume exists: not restoring its volume from the snapshot", name=name
                )
                return pv
            await self._wait_pv_gone(name)
        spec, status = record["spec"], record["status"]
        if self._snapshotters is None:
            raise StrongroomError(
                f"its volume snapshot location {spec.get('location')} cannot be reached from here"
            )
        snapshotter = await self._snapshotters.snapshotter(str(spec.get("location") or ""))
        snapshot_id = str(status["providerSnapshotID"])
        volume_id = await snapshotter.create_volume_from_snapshot(
            snapshot_id,
            str(spec.get("volumeType") or ""),
            str(spec.get("volumeAZ") or ""),
            spec.get("volumeIOPS"),
        )
        restored = snapshotter.set_volume_id(pv, volume_id)
        self._log.info(
            f"restored persistent volume {name} from snapshot {snapshot_id} as volume {volume_id}", name=name
        )
        if new_name is not None:
            rename_pv(restored, new_name)
            renamed[source_name] = new_name
        return restored

    async def _wait_pv_gone(self, name: str) -> None:
        assert self._pvs is not None
        deadline = time.monotonic() + self._terminating_timeout.total_seconds()
        while await self._kube.get(self._pvs, name) is not None:
            if time.monotonic() > deadline:
                raise StrongroomError(
                    f"persistent volume {name} is still being deleted after {self._terminating_timeout}: "
                    "its volume is not restored from the snapshot"
                )
            await asyncio.sleep(self._poll)

    def _pod(self, source_namespace: str, name: str, pod: dict[str, Any]) -> dict[str, Any]:
        spec = pod.get("spec") or {}
        copies = self._data.pod_volumes(source_namespace, name)
        volumes = {v.get("name") for v in spec.get("volumes") or []}
        restored = [pvb["spec"]["volume"] for pvb in copies if pvb["spec"]["volume"] in volumes]
        # The planner already put the pod in its target namespace; hook specs select on that one.
        return add_init_containers(
            pod,
            self._hooks,
            restore_wait=self._restore_wait(restored) if restored else None,
            log=self._log,
        )

    def _restore_wait(self, volumes: list[str]) -> dict[str, Any]:
        return {
            "name": RESTORE_WAIT_CONTAINER,
            "image": self._image,
            "imagePullPolicy": "IfNotPresent",
            "command": ["strongroom"],
            "args": ["restore-wait", "--restore-uid", self._uid],
            "env": [
                {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            ],
            "resources": {
                "requests": {"cpu": "100m", "memory": "128Mi"},
                "limits": {"cpu": "100m", "memory": "128Mi"},
            },
            "volumeMounts": [
                {"name": volume, "mountPath": f"{RESTORES_MOUNT}/{volume}"} for volume in volumes
            ],
        }

    def _claim(self, source_namespace: str, name: str, claim: dict[str, Any]) -> dict[str, Any]:
        # The backup's volume info names the snapshot (the claim's own annotation is reset by then).
        snapshot = self._data.claim_snapshot(source_namespace, name)
        spec = claim.setdefault("spec", {})
        if not snapshot or self._restore_pvs is False:
            return claim
        source = {"apiGroup": SNAPSHOT_GROUP, "kind": "VolumeSnapshot", "name": snapshot}
        spec["dataSource"] = dict(source)
        spec["dataSourceRef"] = dict(source)
        spec.pop("volumeName", None)
        return claim

    async def _snapshot(self, snapshot: dict[str, Any]) -> dict[str, Any] | None:
        if self._restore_pvs is False:
            return None
        metadata = snapshot.setdefault("metadata", {})
        annotations = metadata.get("annotations") or {}
        handle = annotations.get(VS_HANDLE_ANNOTATION)
        driver = annotations.get(VS_DRIVER_ANNOTATION)
        namespace = str(metadata.get("namespace") or "")
        name = str(metadata.get("name") or "")
        if not handle or not driver or self._contents is None:
            message = (
                f"VolumeSnapshot {namespace}/{name} has no snapshot handle in the backup; it is not restored"
            )
            self._results.warnings.add(namespace, message)
            self._log.warning(message, namespace=namespace, name=name)
            return None
        content_name = f"velero-{name}-{uuid.uuid4().hex[:5]}"
        content = {
            "apiVersion": f"{SNAPSHOT_GROUP}/{self._contents.version}",
            "kind": "VolumeSnapshotContent",
            "metadata": {
                "name": content_name,
                "labels": {velero_labels.RESTORE_NAME_LABEL: velero_labels.valid_label_value(self._name)},
            },
            "spec": {
                "deletionPolicy": "Retain",
                "driver": driver,
                "source": {"snapshotHandle": handle},
                "volumeSnapshotRef": {"kind": "VolumeSnapshot", "namespace": namespace, "name": name},
                **(
                    {"volumeSnapshotClassName": snapshot["spec"]["volumeSnapshotClassName"]}
                    if (snapshot.get("spec") or {}).get("volumeSnapshotClassName")
                    else {}
                ),
            },
        }
        try:
            await self._kube.create(self._contents, content)
        except StrongroomError as exc:
            message = f"creating the VolumeSnapshotContent of VolumeSnapshot {namespace}/{name} failed: {exc.message}"
            self._results.errors.add(namespace, message)
            self._log.error(message, namespace=namespace, name=name)
            return None
        snapshot["spec"] = {
            "source": {"volumeSnapshotContentName": content_name},
            **(
                {"volumeSnapshotClassName": snapshot["spec"]["volumeSnapshotClassName"]}
                if (snapshot.get("spec") or {}).get("volumeSnapshotClassName")
                else {}
            ),
        }
        snapshot.pop("status", None)
        return snapshot

    # ------------------------------------------------------------- after create

    async def after_create(
        self, resource: str, source_namespace: str | None, source_name: str, created: dict[str, Any]
    ) -> None:
        if resource != "pods":
            return
        for pvb in self._data.pod_volumes(source_namespace or "", source_name):
            volumes = {v.get("name") for v in (created.get("spec") or {}).get("volumes") or []}
            if pvb["spec"]["volume"] in volumes:
                await self._create_pod_volume_restore(created, pvb)
        if self._exec_hooks is not None:
            self._exec_hooks.start(created)

    async def _create_pod_volume_restore(self, pod: Mapping[str, Any], pvb: Mapping[str, Any]) -> None:
        metadata = pod.get("metadata") or {}
        namespace, name = str(metadata.get("namespace")), str(metadata.get("name"))
        volume = str(pvb["spec"]["volume"])
        if self._pvrs is None:
            self._error(
                namespace,
                f"volume {volume} of pod {namespace}/{name} cannot be restored: the cluster does not serve "
                "velero.io PodVolumeRestores; install strongroom with `strongroom install --use-node-agent`",
            )
            return
        spec = pvb.get("spec") or {}
        labels = {
            velero_labels.RESTORE_NAME_LABEL: velero_labels.valid_label_value(self._name),
            velero_labels.RESTORE_UID_LABEL: self._uid,
            velero_labels.POD_UID_LABEL: str(metadata.get("uid", "")),
        }
        body: dict[str, Any] = {
            "apiVersion": "velero.io/v1",
            "kind": "PodVolumeRestore",
            "metadata": {"generateName": f"{self._name}-", "namespace": self._namespace, "labels": labels},
            "spec": {
                "pod": {"kind": "Pod", "namespace": namespace, "name": name, "uid": metadata.get("uid")},
                "volume": volume,
                "backupStorageLocation": spec.get("backupStorageLocation"),
                "repoIdentifier": spec.get("repoIdentifier"),
                "uploaderType": spec.get("uploaderType") or "restic",
                "snapshotID": (pvb.get("status") or {}).get("snapshotID"),
                "sourceNamespace": (spec.get("pod") or {}).get("namespace"),
            },
        }
        try:
            made = await self._kube.create(self._pvrs, body, self._namespace)
        except StrongroomError as exc:
            self._error(
                namespace,
                f"creating the PodVolumeRestore of volume {volume} of pod {namespace}/{name} failed: {exc.message}",
            )
            return
        self._pending[str(made["metadata"]["name"])] = (
            namespace,
            f"volume {volume} of pod {namespace}/{name}",
        )
        self._log.info(f"Restoring volume {volume} of pod {namespace}/{name}", namespace=namespace, name=name)

    def _error(self, namespace: str, message: str) -> None:
        self._results.errors.add(namespace, message)
        self._log.error(message, namespace=namespace)

    # ------------------------------------------------------------------ finish

    async def finish(self) -> None:
        """Wait for every volume copy and hook; failures become errors of their namespace."""
        await self.close()
        await self._wait_pod_volume_restores()
        if self._exec_hooks is not None:
            self.hook_results = await self._exec_hooks.wait()
            for namespace, messages in self.hook_results.errors.items():
                for message in messages:
                    self._results.errors.add(namespace, message)
            for namespace, messages in self.hook_results.warnings.items():
                for message in messages:
                    self._results.warnings.add(namespace, message)

    async def _wait_pod_volume_restores(self) -> None:
        if not self._pending or self._pvrs is None:
            return
        deadline = time.monotonic() + self._timeout.total_seconds()
        selector = f"{velero_labels.RESTORE_UID_LABEL}={self._uid}"
        waiting = dict(self._pending)
        while waiting:
            try:
                items = await self._kube.list_all(
                    self._pvrs, namespace=self._namespace, label_selector=selector
                )
            except StrongroomError as exc:
                _log.warning("listing PodVolumeRestores failed: %s", exc.message)
                items = []
            for item in items:
                name = str(item["metadata"]["name"])
                status = item.get("status") or {}
                if name in waiting and status.get("phase") in _TERMINAL:
                    namespace, what = waiting.pop(name)
                    if status.get("phase") == "Completed":
                        self.restored_volumes += 1
                        self._log.info(f"Restored {what}", namespace=namespace)
                    else:
                        self._error(
                            namespace,
                            f"pod volume restore failed: {what}: {status.get('message') or status.get('phase')}",
                        )
            if not waiting:
                break
            if time.monotonic() > deadline:
                for namespace, what in waiting.values():
                    self._error(
                        namespace,
                        f"timed out after {self._timeout} waiting for the node agent to restore {what}",
                    )
                break
            await asyncio.sleep(self._poll)

    def abort(self) -> None:
        """Give up on the exec hooks still waiting (the restore failed)."""
        if self._exec_hooks is not None:
            self._exec_hooks.cancel()

    async def close(self) -> None:
        """Stop the image registry and copier, if images were restored (idempotent)."""
        if self.images is not None:
            await self.images.close()


def hook_status(results: HookResults) -> dict[str, int]:
    status = {"hooksAttempted": results.attempted}
    if results.failed:
        status["hooksFailed"] = results.failed
    return status
