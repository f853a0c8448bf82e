"""The data in a backup's volumes: file-system backup, CSI snapshots, and the hooks around them.

The collector hands every page of pods and claims to :class:`VolumeBackups`
before writing it. For a pod: the pre hooks run, one PodVolumeBackup is
created per volume the pod asks to copy (Velero's selection rules), and a
task waits for the node agent to finish them and then runs the post hooks,
while the collector goes on with the next items. For a claim that file-system
backup does not copy: when its CSI driver has a VolumeSnapshotClass labelled
``velero.io/csi-volumesnapshot-class: "true"``, a VolumeSnapshot is taken,
waited for (``csiSnapshotTimeout``) and stored with the backup, the snapshot
itself kept in the storage system (its content's deletion policy set to
Retain) while the VolumeSnapshot and VolumeSnapshotContent objects are
removed from the cluster. :meth:`VolumeBackups.finish` waits for the rest
and returns what Velero stores beside the tarball: the PodVolumeBackups, the
CSI objects and the per-volume backup info the restore reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Final, Protocol

from strongroom.archive import Results
from strongroom.archive.runlog import RunLog
from strongroom.backup.images import IMAGESTREAMS, ImageStreamCopies
from strongroom.errors import StrongroomError
from strongroom.hooks import BackupHookRunner, HookFailure
from strongroom.kube import Discovery, KubeClient
from strongroom.model import labels as velero_labels
from strongroom.model.duration import parse_duration
from strongroom.model.resources import ApiResource
from strongroom.snapshots.ebs import volume_zone
from strongroom.snapshots.native import PHASE_COMPLETED, PHASE_FAILED, NativeLocation, snapshot_record
from strongroom.volumes.location import RepositoryLocation
from strongroom.volumes.repository import Repositories
from strongroom.volumes.selection import defaults_to_fs_backup, select_pod_volumes

__all__ = [
    "CSI_CLASS_LABEL",
    "ExtraItem",
    "LocationRepositories",
    "RepositoryEnsurer",
    "VolumeBackups",
    "VolumeReport",
]

_log = logging.getLogger(__name__)

CSI_CLASS_LABEL: Final = "velero.io/csi-volumesnapshot-class"
CSI_CLASS_BACKUP_ANNOTATION_PREFIX: Final = "velero.io/csi-volumesnapshot-class_"
CSI_CLASS_PVC_ANNOTATION: Final = "velero.io/csi-volume-snapshot-class"
VOLUME_SNAPSHOT_NAME: Final = "velero.io/volume-snapshot-name"
VS_HANDLE_ANNOTATION: Final = "velero.io/csi-volumesnapshot-handle"
VS_DRIVER_ANNOTATION: Final = "velero.io/csi-driver-name"
VS_RESTORE_SIZE_ANNOTATION: Final = "velero.io/csi-volumesnapshot-restore-size"
PVC_NAME_ANNOTATION: Final = "velero.io/pvc-name"
NODE_AGENT_SELECTOR: Final = "name=node-agent"
SNAPSHOT_GROUP: Final = "snapshot.storage.k8s.io"
DEFAULT_CSI_TIMEOUT: Final = timedelta(minutes=10)
DEFAULT_FS_BACKUP_TIMEOUT: Final = timedelta(hours=4)
_TERMINAL: Final = frozenset({"Completed", "Failed", "Canceled"})
_POD_PARALLELISM: Final = 8


@dataclass(frozen=True)
class ExtraItem:
    """An object the backup stores that the collector did not list (the CSI snapshot objects)."""

    resource: ApiResource
    object: dict[str, Any]


class RepositoryEnsurer(Protocol):
    """Makes sure the file-system backup repository of a namespace exists; returns its identifier."""

    async def ensure(self, volume_namespace: str) -> str: ...


@dataclass
class VolumeReport:
    """What the volumes of a backup produced, for the files stored beside the tarball and the status."""

    pod_volume_backups: list[dict[str, Any]] = field(default_factory=list)
    csi_snapshots: list[dict[str, Any]] = field(default_factory=list)
    csi_contents: list[dict[str, Any]] = field(default_factory=list)
    csi_classes: list[dict[str, Any]] = field(default_factory=list)
    volume_infos: list[dict[str, Any]] = field(default_factory=list)
    volume_snapshots: list[dict[str, Any]] = field(default_factory=list)
    """Native snapshots, as Velero's ``volume.Snapshot`` records."""
    images: list[dict[str, str]] = field(default_factory=list)
    """Internal images kept in the location's registry (repository and digest)."""
    csi_attempted: int = 0
    csi_completed: int = 0
    hooks_attempted: int = 0
    hooks_failed: int = 0


class VolumeBackups:
    """One backup's volume work; the collector calls :meth:`process` per page and :meth:`finish` at the end."""

    def __init__(
        self,
        kube: KubeClient,
        discovery: Discovery,
        backup: Mapping[str, Any],
        results: Results,
        log: RunLog,
        *,
        repositories: RepositoryEnsurer | None = None,
        hooks: BackupHookRunner | None = None,
        default_to_fs_backup: bool = False,
        fs_backup_timeout: timedelta = DEFAULT_FS_BACKUP_TIMEOUT,
        snapshot_locations: Sequence[NativeLocation] = (),
        images: ImageStreamCopies | None = None,
        poll: float = 0.25,
    ) -> None:
        self._kube = kube
        self._backup = backup
        self._results = results
        self._log = log
        self._repositories = repositories
        self._hooks = hooks
        self._poll = poll
        self._fs_timeout = fs_backup_timeout
        metadata = backup.get("metadata") or {}
        spec = backup.get("spec") or {}
        self._name = str(metadata.get("name"))
        self._namespace = str(metadata.get("namespace") or "velero")
        self._uid = metadata.get("uid")
        self._default_fs = defaults_to_fs_backup(spec, default_to_fs_backup)
        self._snapshot_volumes = spec.get("snapshotVolumes") is not False
        self._csi_timeout = _duration(spec.get("csiSnapshotTimeout"), DEFAULT_CSI_TIMEOUT)
        self._location = str(spec.get("storageLocation") or "")
        self.report = VolumeReport()
        self._pods = discovery.find("", "pods")
        self._pvcs = discovery.find("", "persistentvolumeclaims")
        self._pvs = discovery.find("", "persistentvolumes")
        self._pvbs = discovery.find("velero.io", "podvolumebackups")
        self._snapshots = discovery.find(SNAPSHOT_GROUP, "volumesnapshots")
        self._contents = discovery.find(SNAPSHOT_GROUP, "volumesnapshotcontents")
        self._classes = discovery.find(SNAPSHOT_GROUP, "volumesnapshotclasses")
        # Claims whose data a pod volume backup copies: CSI leaves them alone.
        self._fs_claims: set[tuple[str, str]] = set()
        # Claims already handed to a PodVolumeBackup: a claim mounted by several pods is copied once.
        self._copied_claims: dict[tuple[str, str], str] = {}
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._poller: asyncio.Task[None] | None = None
        self._agents: set[str] | None = None
        self._pv_cache: dict[str, dict[str, Any] | None] = {}
        self._class_cache: dict[str, dict[str, Any] | None] = {}
        self._unlabelled_classes: dict[str, list[str]] = {}
        self._snapshot_cleanup: list[tuple[str, str, str]] = []
        self._native_locations = list(snapshot_locations)
        # PVs whose claim got a CSI snapshot: no native snapshot on top (Velero's #4758).
        self._csi_volumes: set[str] = set()
        self._native_taken: list[tuple[NativeLocation, str]] = []
        self._images = images

    # ------------------------------------------------------------------ setup

    async def prepare(self, namespaces: Sequence[str]) -> None:
        """Learn which claims file-system backup copies (pods and claims may be listed in any order)."""
        if self._pods is None:
            return
        for namespace in namespaces:
            for pod in await self._kube.list_all(self._pods, namespace=namespace):
                selection = select_pod_volumes(pod, default_to_fs_backup=self._default_fs)
                volumes = {v.get("name"): v for v in (pod.get("spec") or {}).get("volumes") or []}
                for name in selection.selected:
                    claim = (volumes.get(name) or {}).get("persistentVolumeClaim") or {}
                    if claim.get("claimName"):
                        self._fs_claims.add((namespace, str(claim["claimName"])))

    # ------------------------------------------------------------- per page

    async def process(self, resource: ApiResource, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Work on a page before it is written; returns the items to write (a pod whose pre hook failed is left out)."""
        if resource.group_resource == "pods":
            return await self._process_pods(items)
        if resource.group_resource == "persistentvolumeclaims":
            await self._bounded(items, self._snapshot_claim)
        elif resource.group_resource == IMAGESTREAMS:
            if self._images is not None:
                return await self._images.process(items)
        elif resource.group_resource == "persistentvolumes":
            if self._snapshot_volumes and self._native_locations:
                await self._bounded(items, self._native_snapshot)
        elif resource.group_resource == f"volumesnapshotclasses.{SNAPSHOT_GROUP}":
            # The classes the snapshots used are stored with them already.
            taken = {c["metadata"]["name"] for c in self.report.csi_classes}
            return [item for item in items if (item.get("metadata") or {}).get("name") not in taken]
        elif resource.group_resource == f"volumesnapshots.{SNAPSHOT_GROUP}":
            # This backup's own snapshots are stored once, when taken, with their handles.
            own = velero_labels.valid_label_value(self._name)
            return [
                item
                for item in items
                if ((item.get("metadata") or {}).get("labels") or {}).get(velero_labels.BACKUP_NAME_LABEL)
                != own
            ]
        return items

    async def extra_items(self) -> list[ExtraItem]:
        """The CSI objects taken so far, to store with the backup (called once the claims are processed)."""
        extra: list[ExtraItem] = []
        if self._snapshots is not None:
            extra += [ExtraItem(self._snapshots, item) for item in self.report.csi_snapshots]
        if self._contents is not None:
            extra += [ExtraItem(self._contents, item) for item in self.report.csi_contents]
        if self._classes is not None:
            extra += [ExtraItem(self._classes, item) for item in self.report.csi_classes]
        return extra

    async def _bounded(
        self, items: list[dict[str, Any]], work: Callable[[dict[str, Any]], Awaitable[Any]]
    ) -> list[Any]:
        limit = asyncio.Semaphore(_POD_PARALLELISM)

        async def one(item: dict[str, Any]) -> Any:
            async with limit:
                return await work(item)

        return list(await asyncio.gather(*(one(item) for item in items)))

    async def _process_pods(self, pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
        kept = await self._bounded(pods, self._process_pod)
        return [pod for pod, keep in zip(pods, kept, strict=True) if keep]

    async def _process_pod(self, pod: dict[str, Any]) -> bool:
        namespace, name = _ns_name(pod)
        running = (pod.get("status") or {}).get("phase") == "Running"
        if self._hooks is not None:
            failures = await self._hooks.run("pre", pod)
            self._record_hooks(failures)
            if any(failure.fatal for failure in failures):
                self._log.error(
                    f"pre hook failed in pod {namespace}/{name}: the pod and its volumes are not backed up",
                    namespace=namespace,
                    name=name,
                )
                return False
        created: list[str] = []
        try:
            selection = select_pod_volumes(
                pod, default_to_fs_backup=self._default_fs, host_path_claims=await self._host_path_claims(pod)
            )
            for volume, reason in selection.skipped.items():
                self._log.warning(
                    f"volume {volume} of pod {namespace}/{name} is not backed up: {reason}",
                    namespace=namespace,
                    name=name,
                )
            if selection.selected and not running:
                self._log.warning(
                    f"pod {namespace}/{name} is not running: its volumes "
                    f"{', '.join(selection.selected)} cannot be backed up",
                    namespace=namespace,
                    name=name,
                )
            elif selection.selected:
                created = await self._create_pod_volume_backups(pod, selection.selected)
        except StrongroomError as exc:
            self._fs_error(
                namespace, f"the volumes of pod {namespace}/{name} are not backed up: {exc.message}"
            )
        finally:
            # Once its pre hooks ran, a pod's post hooks run whatever happens (a frozen file system thaws).
            if created or self._hooks is not None:
                self._tasks.append(asyncio.create_task(self._after_pod(pod, created)))
        return True

    async def _host_path_claims(self, pod: Mapping[str, Any]) -> list[str]:
        """The pod's claims bound to hostPath volumes, which file-system backup cannot reach (Velero's rule)."""
        namespace, _ = _ns_name(pod)
        found: list[str] = []
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            claim_name = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim_name or self._pvcs is None:
                continue
            claim = await self._kube.get(self._pvcs, str(claim_name), namespace)
            bound = await self._volume(str(((claim or {}).get("spec") or {}).get("volumeName") or ""))
            if bound is not None and "hostPath" in (bound.get("spec") or {}):
                found.append(str(claim_name))
        return found

    def _record_hooks(self, failures: Sequence[HookFailure]) -> None:
        """A failed Fail hook is an error of its pod's namespace, a failed Continue hook a warning."""
        for failure in failures:
            if failure.fatal:
                self._results.errors.add(failure.namespace, failure.message)
            else:
                self._results.warnings.add(failure.namespace, failure.message)

    # ---------------------------------------------------- file-system backup

    async def _create_pod_volume_backups(self, pod: dict[str, Any], volumes: list[str]) -> list[str]:
        namespace, name = _ns_name(pod)
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        problem = await self._fs_backup_problem(node)
        repository = ""
        if problem is None and self._repositories is not None:
            try:
                repository = await self._repositories.ensure(namespace)
            except StrongroomError as exc:
                problem = (
                    f"the file-system backup repository for namespace {namespace} is not ready: {exc.message}"
                )
        if problem is not None:
            for volume in volumes:
                self._fs_error(
                    namespace, f"volume {volume} of pod {namespace}/{name} is not backed up: {problem}"
                )
            return []
        assert self._pvbs is not None
        claims = {
            v.get("name"): (v.get("persistentVolumeClaim") or {}).get("claimName")
            for v in (pod.get("spec") or {}).get("volumes") or []
        }
        created: list[str] = []
        for volume in volumes:
            claim_name = claims.get(volume)
            if claim_name:
                first = self._copied_claims.setdefault((namespace, str(claim_name)), name)
                if first != name:
                    self._log.info(
                        f"volume {volume} of pod {namespace}/{name}: claim {claim_name} is copied with pod {first}",
                        namespace=namespace,
                        name=name,
                    )
                    continue
            body = self._pod_volume_backup(pod, volume, repository)
            if claim_name and self._pvcs is not None:
                claim = await self._kube.get(self._pvcs, str(claim_name), namespace)
                if claim is not None:
                    body["metadata"]["annotations"] = {PVC_NAME_ANNOTATION: claim_name}
                    claim_uid = str(claim["metadata"].get("uid", ""))
                    body["metadata"]["labels"][velero_labels.PVC_UID_LABEL] = claim_uid
                    body["spec"]["tags"]["pvc-uid"] = claim_uid
            try:
                made = await self._kube.create(self._pvbs, body, self._namespace)
            except StrongroomError as exc:
                if claim_name and self._copied_claims.get((namespace, str(claim_name))) == name:
                    # Another pod that mounts the claim may still copy it.
                    del self._copied_claims[(namespace, str(claim_name))]
                self._fs_error(
                    namespace,
                    f"volume {volume} of pod {namespace}/{name}: creating its PodVolumeBackup failed: {exc.message}",
                )
                continue
            pvb_name = str(made["metadata"]["name"])
            self._pending[pvb_name] = asyncio.get_running_loop().create_future()
            created.append(pvb_name)
            self._log.info(
                f"Backing up volume {volume} of pod {namespace}/{name} (PodVolumeBackup {pvb_name})",
                namespace=namespace,
                name=name,
            )
        if created and (self._poller is None or self._poller.done()):
            self._poller = asyncio.create_task(self._poll_pod_volume_backups())
        return created

    def _pod_volume_backup(self, pod: Mapping[str, Any], volume: str, repository: str) -> dict[str, Any]:
        metadata = pod.get("metadata") or {}
        labels = {velero_labels.BACKUP_NAME_LABEL: velero_labels.valid_label_value(self._name)}
        if self._uid:
            labels[velero_labels.BACKUP_UID_LABEL] = str(self._uid)
        body: dict[str, Any] = {
            "apiVersion": "velero.io/v1",
            "kind": "PodVolumeBackup",
            "metadata": {"generateName": f"{self._name}-", "namespace": self._namespace, "labels": labels},
            "spec": {
                "node": str((pod.get("spec") or {}).get("nodeName") or ""),
                "pod": {
                    "kind": "Pod",
                    "namespace": metadata.get("namespace"),
                    "name": metadata.get("name"),
                    "uid": metadata.get("uid"),
                },
                "volume": volume,
                "backupStorageLocation": self._location,
                "repoIdentifier": repository,
                "uploaderType": "restic",
                "tags": {
                    "backup": self._name,
                    "backup-uid": str(self._uid or ""),
                    "pod": metadata.get("name"),
                    "pod-uid": metadata.get("uid"),
                    "ns": metadata.get("namespace"),
                    "volume": volume,
                },
            },
        }
        if self._uid:
            body["metadata"]["ownerReferences"] = [
                {
                    "apiVersion": "velero.io/v1",
                    "kind": "Backup",
                    "name": self._name,
                    "uid": self._uid,
                    "controller": True,
                }
            ]
        return body

    async def _fs_backup_problem(self, node: str) -> str | None:
        if self._pvbs is None:
            return (
                "the cluster does not serve velero.io PodVolumeBackups; "
                "install strongroom with `strongroom install --use-node-agent`"
            )
        if not self._location:
            return "the backup names no storage location"
        if self._agents is None or node not in self._agents:
            self._agents = await self._running_agents()
        if node not in self._agents:
            return (
                f"no node agent is running on node {node or '(none)'} in namespace {self._namespace}; "
                "install one with `strongroom install --use-node-agent` and wait for its pods to be Running"
            )
        return None

    async def _running_agents(self) -> set[str]:
        if self._pods is None:
            return set()
        agents = await self._kube.list_all(
            self._pods, namespace=self._namespace, label_selector=NODE_AGENT_SELECTOR
        )
        return {
            str((pod.get("spec") or {}).get("nodeName"))
            for pod in agents
            if (pod.get("status") or {}).get("phase") == "Running"
            and not pod["metadata"].get("deletionTimestamp")
        }

    def _fs_error(self, namespace: str, message: str) -> None:
        self._results.errors.add(namespace, message)
        self._log.error(message, namespace=namespace)

    async def _poll_pod_volume_backups(self) -> None:
        assert self._pvbs is not None
        selector = f"{velero_labels.BACKUP_NAME_LABEL}={velero_labels.valid_label_value(self._name)}"
        while any(not future.done() for future in self._pending.values()):
            try:
                items = await self._kube.list_all(
                    self._pvbs, namespace=self._namespace, label_selector=selector
                )
            except StrongroomError as exc:
                _log.warning("listing PodVolumeBackups of %s failed: %s", self._name, exc.message)
                items = []
            for item in items:
                future = self._pending.get(str(item["metadata"]["name"]))
                phase = (item.get("status") or {}).get("phase")
                if future is not None and not future.done() and phase in _TERMINAL:
                    future.set_result(item)
            await asyncio.sleep(self._poll)

    async def _wait_pod_volume_backups(self, names: list[str]) -> list[dict[str, Any]]:
        deadline = time.monotonic() + self._fs_timeout.total_seconds()
        finished: list[dict[str, Any]] = []
        for name in names:
            future = self._pending[name]
            try:
                item = await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                current = None
                with contextlib.suppress(StrongroomError):
                    current = await self._kube.get(self._pvbs, name, self._namespace) if self._pvbs else None
                if current is None:
                    self._fs_error(
                        self._namespace,
                        f"PodVolumeBackup {name} disappeared before it finished; its volume is not in the backup",
                    )
                    continue
                item = copy.deepcopy(current)
                if (item.get("status") or {}).get("phase") not in _TERMINAL:
                    item.setdefault("status", {})["phase"] = "Failed"
                    item["status"]["message"] = (
                        f"timed out after {self._fs_timeout} waiting for the node agent to finish"
                    )
                if not future.done():
                    future.set_result(item)
            finished.append(item)
        return finished

    async def _after_pod(self, pod: dict[str, Any], pvb_names: list[str]) -> None:
        namespace, name = _ns_name(pod)
        try:
            for item in await self._wait_pod_volume_backups(pvb_names):
                status = item.get("status") or {}
                spec = item.get("spec") or {}
                if status.get("phase") == "Completed":
                    self._log.info(
                        f"Volume {spec.get('volume')} of pod {namespace}/{name} backed up "
                        f"(snapshot {status.get('snapshotID') or 'none: the volume is empty'})",
                        namespace=namespace,
                        name=name,
                    )
                else:
                    self._fs_error(
                        namespace,
                        f"pod volume backup failed: volume {spec.get('volume')} of pod {namespace}/{name}: "
                        f"{status.get('message') or status.get('phase')}",
                    )
                self.report.pod_volume_backups.append(item)
                try:
                    self.report.volume_infos.append(await self._pvb_volume_info(item))
                except StrongroomError as exc:
                    _log.warning("volume info of %s not complete: %s", item["metadata"]["name"], exc.message)
        finally:
            # Even when the wait failed or the backup is aborted: a frozen application must thaw.
            if self._hooks is not None:
                self._record_hooks(await self._hooks.run("post", pod))

    async def _pvb_volume_info(self, pvb: Mapping[str, Any]) -> dict[str, Any]:
        spec = pvb.get("spec") or {}
        status = pvb.get("status") or {}
        pod = spec.get("pod") or {}
        claim = ((pvb.get("metadata") or {}).get("annotations") or {}).get(PVC_NAME_ANNOTATION, "")
        pv_name = ""
        if claim and self._pvcs is not None:
            found = await self._kube.get(self._pvcs, claim, pod.get("namespace"))
            pv_name = str(((found or {}).get("spec") or {}).get("volumeName") or "")
        return {
            "pvcName": claim,
            "pvcNamespace": pod.get("namespace", "") if claim else "",
            "pvName": pv_name,
            "backupMethod": "PodVolumeBackup",
            "snapshotDataMoved": False,
            "preserveLocalSnapshot": False,
            "skipped": False,
            "startTimestamp": status.get("startTimestamp"),
            "completionTimestamp": status.get("completionTimestamp"),
            "result": "succeeded" if status.get("phase") == "Completed" else "failed",
            "pvbInfo": {
                "snapshotHandle": status.get("snapshotID", ""),
                "size": int((status.get("progress") or {}).get("totalBytes") or 0),
                "uploaderType": spec.get("uploaderType") or "restic",
                "volumeName": spec.get("volume"),
                "podName": pod.get("name"),
                "podNamespace": pod.get("namespace"),
                "nodeName": spec.get("node"),
            },
        }

    # ------------------------------------------------------------------ CSI

    async def _snapshot_claim(self, claim: dict[str, Any]) -> None:
        namespace, name = _ns_name(claim)
        try:
            await self._snapshot_claim_of(claim)
        except StrongroomError as exc:
            self._csi_error(namespace, f"CSI snapshot of PVC {namespace}/{name} failed: {exc.message}")

    async def _snapshot_claim_of(self, claim: dict[str, Any]) -> None:
        namespace, name = _ns_name(claim)
        if not self._snapshot_volumes or (namespace, name) in self._fs_claims:
            return
        if (claim.get("status") or {}).get("phase") != "Bound" or self._snapshots is None:
            return
        volume_name = str((claim.get("spec") or {}).get("volumeName") or "")
        volume = await self._volume(volume_name)
        driver = str((((volume or {}).get("spec") or {}).get("csi") or {}).get("driver") or "")
        if not driver:
            return
        try:
            snapshot_class = await self._snapshot_class(claim, driver)
        except StrongroomError as exc:
            self._csi_error(namespace, f"PVC {namespace}/{name}: {exc.message}")
            return
        if snapshot_class is None:
            unlabelled = self._unlabelled_classes.get(driver) or []
            message = (
                f"PVC {namespace}/{name} is not snapshotted: no VolumeSnapshotClass of driver {driver} "
                f'is labelled {CSI_CLASS_LABEL}: "true"'
            )
            if unlabelled:
                # The driver can snapshot, the administrator did not choose a class: say so in the results.
                message += f" (its classes: {', '.join(unlabelled)}; label one to snapshot its volumes)"
                self._results.warnings.add(namespace, message)
                self._log.warning(message, namespace=namespace, name=name)
            else:
                self._log.info(message, namespace=namespace, name=name)
            return
        self.report.csi_attempted += 1
        try:
            snapshot, content = await self._take_snapshot(claim, snapshot_class)
        except StrongroomError as exc:
            self._csi_error(namespace, f"CSI snapshot of PVC {namespace}/{name} failed: {exc.message}")
            return
        self.report.csi_completed += 1
        self._csi_volumes.add(volume_name)
        annotations = claim.setdefault("metadata", {}).setdefault("annotations", {})
        annotations[VOLUME_SNAPSHOT_NAME] = snapshot["metadata"]["name"]
        claim["metadata"].setdefault("labels", {})[VOLUME_SNAPSHOT_NAME] = velero_labels.valid_label_value(
            snapshot["metadata"]["name"]
        )
        self.report.csi_snapshots.append(snapshot)
        self.report.csi_contents.append(content)
        class_name = snapshot_class["metadata"]["name"]
        if all(c["metadata"]["name"] != class_name for c in self.report.csi_classes):
            self.report.csi_classes.append(snapshot_class)
        content_status = content.get("status") or {}
        self.report.volume_infos.append(
            {
                "pvcName": name,
                "pvcNamespace": namespace,
                "pvName": volume_name,
                "backupMethod": "CSISnapshot",
                "snapshotDataMoved": False,
                "preserveLocalSnapshot": True,
                "skipped": False,
                "result": "succeeded",
                "csiSnapshotInfo": {
                    "snapshotHandle": content_status.get("snapshotHandle", ""),
                    "size": int(content_status.get("restoreSize") or 0),
                    "driver": driver,
                    "vscName": content["metadata"]["name"],
                    "volumeSnapshotName": snapshot["metadata"]["name"],
                    "readyToUse": True,
                },
                "pvInfo": {
                    "reclaimPolicy": ((volume or {}).get("spec") or {}).get(
                        "persistentVolumeReclaimPolicy", ""
                    ),
                    "labels": ((volume or {}).get("metadata") or {}).get("labels") or {},
                },
            }
        )
        self._log.info(
            f"Took CSI snapshot {snapshot['metadata']['name']} of PVC {namespace}/{name}",
            namespace=namespace,
            name=name,
        )

    def _csi_error(self, namespace: str, message: str) -> None:
        self._results.errors.add(namespace, message)
        self._log.error(message, namespace=namespace)

    async def _volume(self, name: str) -> dict[str, Any] | None:
        if not name or self._pvs is None:
            return None
        if name not in self._pv_cache:
            self._pv_cache[name] = await self._kube.get(self._pvs, name)
        return self._pv_cache[name]

    async def _snapshot_class(self, claim: Mapping[str, Any], driver: str) -> dict[str, Any] | None:
        """The class to snapshot with: named by the claim, then by the backup, then the labelled one of the driver."""
        if self._classes is None:
            return None
        claim_annotations = (claim.get("metadata") or {}).get("annotations") or {}
        backup_annotations = (self._backup.get("metadata") or {}).get("annotations") or {}
        named = claim_annotations.get(CSI_CLASS_PVC_ANNOTATION) or backup_annotations.get(
            CSI_CLASS_BACKUP_ANNOTATION_PREFIX + driver
        )
        if named:
            found = await self._kube.get(self._classes, str(named))
            if found is None:
                raise StrongroomError(f"VolumeSnapshotClass {named} does not exist")
            if found.get("driver") != driver:
                raise StrongroomError(
                    f"VolumeSnapshotClass {named} is for driver {found.get('driver')}, not the volume's {driver}"
                )
            return found
        if driver not in self._class_cache:
            of_driver = [
                item for item in await self._kube.list_all(self._classes) if item.get("driver") == driver
            ]
            labelled = [
                item
                for item in of_driver
                if ((item.get("metadata") or {}).get("labels") or {}).get(CSI_CLASS_LABEL) == "true"
            ]
            self._unlabelled_classes[driver] = sorted(
                str(item["metadata"]["name"]) for item in of_driver if item not in labelled
            )
            if len(labelled) > 1:
                names = ", ".join(sorted(item["metadata"]["name"] for item in labelled))
                raise StrongroomError(
                    f"more than one VolumeSnapshotClass of driver {driver} is labelled {CSI_CLASS_LABEL}: {names}"
                )
            self._class_cache[driver] = labelled[0] if labelled else None
        return self._class_cache[driver]

    async def _take_snapshot(
        self, claim: Mapping[str, Any], snapshot_class: Mapping[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        assert self._snapshots is not None and self._contents is not None
        namespace, name = _ns_name(claim)
        body = {
            "apiVersion": f"{SNAPSHOT_GROUP}/{self._snapshots.version}",
            "kind": "VolumeSnapshot",
            "metadata": {
                "generateName": f"velero-{name}-",
                "namespace": namespace,
                "labels": {velero_labels.BACKUP_NAME_LABEL: velero_labels.valid_label_value(self._name)},
            },
            "spec": {
                "source": {"persistentVolumeClaimName": name},
                "volumeSnapshotClassName": snapshot_class["metadata"]["name"],
            },
        }
        created = await self._kube.create(self._snapshots, body, namespace)
        snapshot_name = str(created["metadata"]["name"])
        try:
            snapshot, content = await self._wait_snapshot(namespace, snapshot_name)
        except BaseException:
            # Not stored by any backup: a snapshot left behind would cost storage and be found by no one.
            await self._discard_snapshot(namespace, snapshot_name)
            raise
        self._snapshot_cleanup.append((namespace, snapshot_name, str(content["metadata"]["name"])))
        return snapshot, content

    async def _wait_snapshot(
        self, namespace: str, snapshot_name: str
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        assert self._snapshots is not None and self._contents is not None
        deadline = time.monotonic() + self._csi_timeout.total_seconds()
        while True:
            snapshot = await self._kube.get(self._snapshots, snapshot_name, namespace)
            if snapshot is None:
                raise StrongroomError(f"VolumeSnapshot {namespace}/{snapshot_name} disappeared")
            status = snapshot.get("status") or {}
            if status.get("readyToUse") and status.get("boundVolumeSnapshotContentName"):
                break
            if time.monotonic() > deadline:
                error = (status.get("error") or {}).get("message")
                raise StrongroomError(
                    f"VolumeSnapshot {namespace}/{snapshot_name} was not ready within the csiSnapshotTimeout "
                    f"of {self._csi_timeout}" + (f": {error}" if error else "")
                )
            await asyncio.sleep(self._poll)
        content_name = str(snapshot["status"]["boundVolumeSnapshotContentName"])
        content = await self._kube.get(self._contents, content_name)
        if content is None or not (content.get("status") or {}).get("snapshotHandle"):
            raise StrongroomError(f"VolumeSnapshotContent {content_name} has no snapshot handle")
        handle = str(content["status"]["snapshotHandle"])
        snapshot_annotations = snapshot["metadata"].setdefault("annotations", {})
        snapshot_annotations[VS_HANDLE_ANNOTATION] = handle
        snapshot_annotations[VS_DRIVER_ANNOTATION] = str(content["spec"].get("driver", ""))
        restore_size = content["status"].get("restoreSize")
        if restore_size is not None:
            snapshot_annotations[VS_RESTORE_SIZE_ANNOTATION] = str(restore_size)
        return snapshot, content

    async def _discard_snapshot(self, namespace: str, name: str) -> None:
        assert self._snapshots is not None
        with contextlib.suppress(StrongroomError):
            await self._kube.delete(self._snapshots, name, namespace)

    async def _release_snapshots(self) -> None:
        """Keep the snapshots in the storage system, drop their objects from the cluster (Velero's cleanup)."""
        assert self._snapshots is not None and self._contents is not None
        for namespace, snapshot, content in self._snapshot_cleanup:
            try:
                await self._kube.patch(self._contents, content, {"spec": {"deletionPolicy": "Retain"}})
                await self._kube.delete(self._snapshots, snapshot, namespace)
                await self._kube.delete(self._contents, content)
            except StrongroomError as exc:
                message = f"cleaning up VolumeSnapshot {namespace}/{snapshot} failed: {exc.message}"
                self._results.warnings.add(namespace, message)
                self._log.warning(message, namespace=namespace)

    # --------------------------------------------------------------- native

    async def _native_snapshot(self, pv: dict[str, Any]) -> None:
        """Snapshot a PV through the first chosen VolumeSnapshotLocation that handles it (Velero's takePVSnapshot)."""
        _, pv_name = _ns_name(pv)
        claim_ref = (pv.get("spec") or {}).get("claimRef") or {}
        claim = (str(claim_ref.get("namespace") or ""), str(claim_ref.get("name") or ""))
        if pv_name in self._csi_volumes or claim in self._fs_claims:
            # Its data is copied already: by the CSI snapshot of its claim, or by file-system backup.
            return
        namespace = claim[0] or None
        chosen: tuple[NativeLocation, str] | None = None
        for location in self._native_locations:
            try:
                volume_id = location.snapshotter.volume_id(pv)
            except StrongroomError as exc:
                self._native_error(namespace, f"persistent volume {pv_name}: {exc}")
                return
            if volume_id:
                chosen = (location, volume_id)
                break
        if chosen is None:
            self._log.info(
                f"persistent volume {pv_name} is not a volume type of any volume snapshot location: "
                "no native snapshot",
                name=pv_name,
            )
            return
        location, volume_id = chosen
        zone = volume_zone(pv)
        try:
            volume_type, iops = await location.snapshotter.volume_info(volume_id)
        except StrongroomError as exc:
            self._native_error(
                namespace, f"error getting volume info of persistent volume {pv_name} ({volume_id}): {exc}"
            )
            return
        record = snapshot_record(
            self._backup,
            location=location.name,
            pv_name=pv_name,
            volume_id=volume_id,
            volume_type=volume_type,
            zone=zone,
            iops=iops,
        )
        tags = {
            **((self._backup.get("metadata") or {}).get("labels") or {}),
            # Velero's tag names (not the label names).
            "velero.io/backup": self._name,
            "velero.io/pv": pv_name,
        }
        self.report.volume_snapshots.append(record)
        try:
            snapshot_id = await location.snapshotter.create_snapshot(volume_id, tags)
        except StrongroomError as exc:
            record["status"]["phase"] = PHASE_FAILED
            self._native_error(
                namespace, f"error taking snapshot of persistent volume {pv_name} ({volume_id}): {exc}"
            )
        else:
            record["status"] = {"providerSnapshotID": snapshot_id, "phase": PHASE_COMPLETED}
            self._native_taken.append((location, snapshot_id))
            self._log.info(
                f"Took snapshot {snapshot_id} of persistent volume {pv_name} ({volume_id}) "
                f"with volume snapshot location {location.name}",
                name=pv_name,
            )
        self.report.volume_infos.append(_native_volume_info(pv, claim, record))

    def _native_error(self, namespace: str | None, message: str) -> None:
        if namespace:
            self._results.errors.add(namespace, message)
        else:
            self._results.errors.add_velero(message)
        self._log.error(message, namespace=namespace)

    # ----------------------------------------------------------------- finish

    async def finish(self) -> VolumeReport:
        """Wait for the volume copies and post hooks; release the CSI snapshot objects."""
        try:
            if self._tasks:
                await asyncio.gather(*self._tasks)
        finally:
            if self._poller is not None:
                self._poller.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._poller
            if self._snapshot_cleanup:
                await self._release_snapshots()
            if self._images is not None:
                self.report.images = list(self._images.stored)
                await self._images.close()
        self.report.pod_volume_backups.sort(key=lambda item: str(item["metadata"]["name"]))
        if self._hooks is not None:
            status = self._hooks.hook_status()
            self.report.hooks_attempted = status.hooks_attempted or 0
            self.report.hooks_failed = status.hooks_failed or 0
        return self.report

    async def abort(self) -> None:
        """Stop waiting (the backup failed): post hooks still run; snapshots no backup stores are deleted.

        The PodVolumeBackups stay for inspection (the node agent finishes them; nothing refers to them).
        """
        for task in self._tasks:
            task.cancel()
        if self._poller is not None:
            self._poller.cancel()
        await asyncio.gather(*self._tasks, *([self._poller] if self._poller else []), return_exceptions=True)
        for namespace, snapshot, _content in self._snapshot_cleanup:
            await self._discard_snapshot(namespace, snapshot)
        self._snapshot_cleanup.clear()
        if self._images is not None:
            with contextlib.suppress(StrongroomError):
                await self._images.close()
        for location, snapshot_id in self._native_taken:
            with contextlib.suppress(StrongroomError):
                await location.snapshotter.delete_snapshot(snapshot_id)
        self._native_taken.clear()


def _ns_name(obj: Mapping[str, Any]) -> tuple[str, str]:
    metadata = obj.get("metadata") or {}
    return str(metadata.get("namespace") or ""), str(metadata.get("name") or "")


def _native_volume_info(
    pv: Mapping[str, Any], claim: tuple[str, str], record: Mapping[str, Any]
) -> dict[str, Any]:
    """The ``NativeSnapshot`` entry of the backup's volume info, as Velero writes it."""
    spec, status = record["spec"], record["status"]
    completed = status.get("phase") == PHASE_COMPLETED
    return {
        "pvcName": claim[1],
        "pvcNamespace": claim[0],
        "pvName": spec["persistentVolumeName"],
        "backupMethod": "NativeSnapshot",
        "snapshotDataMoved": False,
        "skipped": False,
        "result": "succeeded" if completed else "failed",
        "nativeSnapshotInfo": {
            "snapshotHandle": status.get("providerSnapshotID", ""),
            "volumeType": spec.get("volumeType", ""),
            "volumeAZ": spec.get("volumeAZ", ""),
            "iops": str(spec.get("volumeIOPS") or 0),
            "Phase": status.get("phase", ""),
        },
        "pvInfo": {
            "reclaimPolicy": (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy", ""),
            "labels": (pv.get("metadata") or {}).get("labels") or {},
        },
    }


def _duration(value: Any, default: timedelta) -> timedelta:
    if not value:
        return default
    try:
        parsed = parse_duration(str(value))
    except ValueError:
        return default
    return parsed if parsed > timedelta(0) else default


class LocationRepositories:
    """The file-system backup repositories of one backup location, as the backup needs them."""

    def __init__(self, repositories: Repositories, location: RepositoryLocation) -> None:
        self._repositories = repositories
        self._location = location
        # One check per namespace and backup, not one per pod (each runs restic).
        self._ready: dict[str, asyncio.Task[str]] = {}

    async def ensure(self, volume_namespace: str) -> str:
        task = self._ready.get(volume_namespace)
        if task is None or (task.done() and task.exception() is not None):
            task = self._ready[volume_namespace] = asyncio.ensure_future(self._ensure(volume_namespace))
        return await asyncio.shield(task)

    async def _ensure(self, volume_namespace: str) -> str:
        await self._repositories.ensure_repository(self._location, volume_namespace)
        return self._location.repository_url(volume_namespace)
